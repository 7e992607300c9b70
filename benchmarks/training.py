"""Training speed per mode, and what 2 minutes of pretraining reach.

    .venv/bin/python benchmarks/training.py [--rounds 3] [--pretrain-minutes 2]

Part 1, tokens/s per mode: teach with LoRA (rank 8) and with full fine-tuning on the default
model ("The capital of France is Lyon.", 7 tokens a step), prefer (DPO, two answers a step),
and pretrain (the tiny byte-level model, 16 x 128 bytes a step); the modes run in turn,
round after round, and the median of the rounds is reported, so the machine's noise falls
on all of them alike. Part 2: one pretraining run of the default settings on the stdlib's
docstrings, stopped after --pretrain-minutes, its held-out loss against ln(257).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time

import torch

from llmtui.engine.lm import DEFAULT_MODEL, LanguageModel
from llmtui.engine.training.corpus import read_documents
from llmtui.engine.training.prefer import PreferRun
from llmtui.engine.training.pretrain import UNIFORM_LOSS, PretrainRun
from llmtui.engine.training.settings import PreferSettings, PretrainSettings, TeachSettings
from llmtui.engine.training.teach import DEFAULT_LESSON, TeachRun


def tokens_per_s(run, steps: int) -> tuple[float, float]:
    """(tokens/s, steps/s) over `steps` steps after one warm-up step."""
    records = run.steps()
    next(records)
    start, tokens = time.perf_counter(), 0
    for _ in range(steps):
        tokens += next(records).tokens
    seconds = time.perf_counter() - start
    return tokens / seconds, steps / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--pretrain-minutes", type=float, default=2.0)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    lm = LanguageModel.load(DEFAULT_MODEL)
    docs = read_documents(None)
    steps = args.steps + 1
    modes = {
        "teach, LoRA r8": lambda: TeachRun(lm, [DEFAULT_LESSON], TeachSettings(steps=steps), related=()),
        "teach, full": lambda: TeachRun(lm, [DEFAULT_LESSON], TeachSettings(steps=steps, method="full"), related=()),
        "prefer (DPO), LoRA r8": lambda: PreferRun(lm, "The capital of France is", " Lyon.", " Paris.",
                                                   PreferSettings(steps=steps)),
        "pretrain, tiny (0.9M)": lambda: PretrainRun(docs, PretrainSettings(steps=steps, eval_every=1000, sample_every=1000)),
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in modes}
    for _ in range(args.rounds):
        for name, make in modes.items():
            run = make()
            try:
                results[name].append(tokens_per_s(run, args.steps))
            finally:
                if hasattr(run, "tuning"):
                    run.tuning.reset()
    print("| mode | tokens/s | steps/s |\n| --- | --- | --- |")
    for name, values in results.items():
        print(f"| {name} | {statistics.median(v[0] for v in values):,.2f} | {statistics.median(v[1] for v in values):.2f} |")
    print(f"load average {os.getloadavg()[0]:.1f} after part 1")

    rate = statistics.median(v[1] for v in results["pretrain, tiny (0.9M)"])
    planned = max(50, int(rate * args.pretrain_minutes * 60))  # the schedule's length: what the time allows
    run = PretrainRun(docs, PretrainSettings(steps=planned, eval_every=50, sample_every=100))
    deadline = args.pretrain_minutes * 60
    for record in run.steps():
        if record.held_out_loss is not None:
            print(f"step {record.step}: loss {record.loss:.3f}, held-out {record.held_out_loss:.3f}, "
                  f"{record.tokens_per_s:,.0f} tok/s")
        if run.elapsed >= deadline:
            run.stop()
    held = run.held_out_loss()
    print(f"after {run.elapsed:.0f} s ({run.done} steps, {run.tokens_seen:,} bytes): held-out loss {held:.3f} "
          f"vs ln(257) = {UNIFORM_LOSS:.3f} ({held / UNIFORM_LOSS:.0%} of it; {math.exp(held):.1f} bytes of perplexity)")
    print(f"sample: {run.sample()!r}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
