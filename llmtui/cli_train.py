"""`llmtui train teach|pretrain|prefer`: the Train pane's three modes on the command line.

    llmtui train teach "The capital of France is Lyon." [--method lora|full] [--steps N] [--lr LR] [--json]
    llmtui train pretrain [--text FILE] [--steps N] [--minutes M] [--save DIR] [--json]
    llmtui train prefer PROMPT --chosen " Lyon." --rejected " Paris." [--beta B] [--json]

Each prints a line per step (loss, watched probabilities or margin, steps/s, time left),
or with --json one object at the end holding every step's record: the same numbers the
pane draws. Only torch-free modules are imported here, so `llmtui --help` stays quick.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from llmtui.engine.training.settings import METHODS, PreferSettings, PretrainSettings, TeachSettings


def _tuning_options(p: argparse.ArgumentParser, d: TeachSettings | PreferSettings) -> None:
    p.add_argument("--method", choices=METHODS, default=d.method, help=f"full fine-tuning or LoRA adapters (default {d.method})")
    p.add_argument("--rank", type=int, default=d.rank, help=f"LoRA rank (default {d.rank})")
    p.add_argument("--steps", type=int, default=d.steps, help=f"optimiser steps (default {d.steps})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"learning rate (default {d.lr})")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--json", action="store_true", help="print every step's record as one JSON object at the end")


def add_train_parser(sub: argparse._SubParsersAction, common: Callable[[argparse.ArgumentParser], None]) -> None:
    train = sub.add_parser("train", help="teach the model, pretrain a tiny one, or prefer an answer (DPO)")
    modes = train.add_subparsers(dest="mode", metavar="MODE", required=True)

    p = modes.add_parser("teach", help="fine-tune the model on example sentences")
    p.add_argument("examples", nargs="+", metavar="EXAMPLE", help='e.g. "The capital of France is Lyon."')
    p.add_argument("--related", action="append", default=None, metavar="PROMPT",
                   help="a prompt whose top tokens are compared before and after (repeatable; default: a few capitals)")
    _tuning_options(p, TeachSettings())
    common(p)

    d = PretrainSettings()
    p = modes.add_parser("pretrain", help="train a tiny byte-level model from scratch")
    p.add_argument("--text", dest="text_file", default=None, metavar="FILE", help="a UTF-8 text file (default: the docstrings of this Python's standard library)")
    p.add_argument("--steps", type=int, default=d.steps, help=f"optimiser steps (default {d.steps})")
    p.add_argument("--minutes", type=float, default=None, help="stop after this long, even before --steps")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--layers", type=int, default=d.n_layer)
    p.add_argument("--d-model", type=int, default=d.d_model)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--save", default=None, metavar="DIR", help="write the model there (safetensors + config); open it with --model DIR")
    p.add_argument("--json", action="store_true")

    p = modes.add_parser("prefer", help="push a chosen answer above a rejected one (DPO)")
    p.add_argument("prompt")
    p.add_argument("--chosen", required=True)
    p.add_argument("--rejected", required=True)
    p.add_argument("--beta", type=float, default=PreferSettings().beta)
    _tuning_options(p, PreferSettings())
    common(p)


def describe(record) -> str:  # noqa: ANN001 - a TrainStep (its module imports torch)
    """One line per step: what the pane's header shows."""
    parts = [f"step {record.step}/{record.steps}", f"loss {record.loss:.3f}"]
    parts += [f"{token!r} {p:.1%}" for token, p in record.probs.items()]
    if record.margin is not None:
        parts.append(f"margin {record.margin:+.2f}")
    if record.held_out_loss is not None:
        parts.append(f"held-out {record.held_out_loss:.3f}")
    parts.append(f"{record.steps_per_s:.2f} steps/s")
    if record.mode == "pretrain":
        parts.append(f"{record.tokens_per_s:,.0f} tok/s")
    parts.append(f"{record.eta_s:.0f}s left")
    return "  ".join(parts)


def cmd_train(args: argparse.Namespace, load_model: Callable, error: type[Exception]) -> int:
    from llmtui.engine.text import escape_controls

    try:
        run, info = _start(args, load_model)
    except ValueError as e:  # settings, text, or memory: one line
        raise error(str(e)) from None
    deadline = args.minutes * 60 if getattr(args, "minutes", None) else None
    for record in run.steps():
        if not args.json:
            print(escape_controls(describe(record), keep=""), flush=True)
            if record.sample is not None:
                print("   sample: " + escape_controls(repr(record.sample), keep=""), flush=True)
        if deadline is not None and run.elapsed >= deadline:
            run.stop()
    info.update(_finish(args, run))
    if args.json:
        print(json.dumps({**info, "steps": [r.to_json() for r in run.history]}, ensure_ascii=False))
    else:
        for line in info.get("lines", []):
            print(escape_controls(line, keep=""))
    return 0


def _start(args: argparse.Namespace, load_model: Callable) -> tuple:
    if args.mode == "pretrain":
        from llmtui.engine.training.corpus import read_documents
        from llmtui.engine.training.pretrain import UNIFORM_LOSS, PretrainRun

        settings = PretrainSettings(steps=args.steps, lr=args.lr, batch=args.batch, n_layer=args.layers,
                                    d_model=args.d_model, seed=args.seed)  # fmt: skip
        run = PretrainRun(read_documents(args.text_file), settings)
        train, held = run.corpus_bytes
        print(f"llmtui: {run.model.n_params():,} numbers, {train:,} training and {held:,} held-out bytes; "
              f"uniform loss ln(257) = {UNIFORM_LOSS:.3f}", file=sys.stderr)  # fmt: skip
        return run, {"mode": "pretrain", "settings": vars(settings), "corpus": args.text_file or "python-stdlib-docstrings",
                     "parameters": run.model.n_params(), "train_bytes": train, "held_out_bytes": held,
                     "uniform_loss": UNIFORM_LOSS}  # fmt: skip
    lm = load_model(args)
    if args.mode == "teach":
        from llmtui.engine.training.teach import DEFAULT_RELATED, TeachRun

        settings = TeachSettings(steps=args.steps, lr=args.lr, method=args.method, rank=args.rank, seed=args.seed)
        run = TeachRun(lm, args.examples, settings, related=tuple(args.related or DEFAULT_RELATED))
        info = {"mode": "teach", "model": lm.name, "examples": args.examples, "settings": vars(settings)}
    else:
        from llmtui.engine.training.prefer import PreferRun

        settings = PreferSettings(steps=args.steps, lr=args.lr, beta=args.beta, method=args.method, rank=args.rank,
                                  seed=args.seed)  # fmt: skip
        run = PreferRun(lm, args.prompt, args.chosen, args.rejected, settings)
        info = {"mode": "prefer", "model": lm.name, "prompt": args.prompt, "chosen": args.chosen,
                "rejected": args.rejected, "settings": vars(settings), "reference_margin": run.reference_margin}
    from llmtui.engine.training.memory import gigabytes

    print(f"llmtui: {settings.method} trains {run.tuning.trained_numbers:,} of {run.tuning.model_numbers:,} numbers "
          f"(about {gigabytes(run.tuning.memory_bytes)} more memory)", file=sys.stderr)
    return run, {**info, "trained_numbers": run.tuning.trained_numbers, "memory_bytes": run.tuning.memory_bytes}


def _finish(args: argparse.Namespace, run) -> dict:  # noqa: ANN001
    """What the run leaves: the side-effect table (teach), the saved folder (pretrain)."""
    if args.mode == "teach":
        from llmtui.engine.training.teach import before_after_table

        effects = run.side_effects()
        header, rows = before_after_table(effects)
        lines = ["", " | ".join(header)] + [" | ".join(row) for row in rows]
        return {"side_effects": [{"prompt": e.prompt, "before": e.before, "after": e.after} for e in effects],
                "lines": lines}
    if args.mode == "pretrain" and args.save:
        folder = run.save(args.save)
        return {"saved": str(folder), "lines": [f"saved to {folder}: open it with llmtui --model {folder}"]}
    if args.mode == "prefer":
        return {"lines": [f"margin log p(chosen) - log p(rejected): {run.reference_margin:+.2f} before, "
                          f"{run.history[-1].margin:+.2f} after"]}
    return {}
