"""What a comparison costs against one side alone: compare's two sides should cost under 2.2x one side.

    .venv/bin/python benchmarks/compare.py [--tokens 64] [--rounds 5] [--threads 1]

On the default model, one prompt (about 50 tokens), a fixed seed; each round runs, in turn:

- one side: a `GenerationSession` (prefill and decode), as the Generate pane does;
- compare, free mode, one model under two settings (the sides share the prompt's prefill);
- compare, same-text mode, one model under two settings (B reads A's logits: one forward pass a token);
- compare, same-text mode, two models (a second copy of the model loaded apart: no sharing at all).

Times are wall-clock for the whole run, prompt included; medians over the rounds, the variants
interleaved so the machine's noise falls on all of them alike. Each run's position count is
printed: the ratios are only fair when they match.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from llmtui.engine.generation import GenerationSession
from llmtui.engine.lm import DEFAULT_MODEL, LanguageModel
from llmtui.engine.settings import SamplingSettings
from llmtui.engine.studies.compare import Comparison, Side

PROMPT = ("Once upon a time, in a small village by the sea, there lived an old fisherman who knew every "
          "current of the bay. Every morning he rowed out before dawn, and every evening he told the children")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lm = LanguageModel.load(DEFAULT_MODEL)
    other = LanguageModel.load(DEFAULT_MODEL)  # a second model object: nothing shared with the first
    ids = lm.encode(PROMPT)
    a = SamplingSettings(temperature=0.7, seed=1, max_new_tokens=args.tokens)
    b = a.with_(temperature=1.3, top_p=0.9)

    def one_side() -> int:
        return len(list(GenerationSession(lm, ids, a)))

    def compare(mode: str, b_lm: LanguageModel) -> callable:
        def run() -> int:
            return len(list(Comparison(ids, Side(lm, a), Side(b_lm, b), mode=mode)))
        return run

    variants = {
        "one side": one_side,
        "compare free, one model": compare("free", lm),
        "compare same-text, one model": compare("same-text", lm),
        "compare same-text, two models": compare("same-text", other),
    }
    for run in variants.values():  # warm up
        run()
    times: dict[str, list[float]] = {name: [] for name in variants}
    counts: dict[str, int] = {}
    for _ in range(args.rounds):
        for name, run in variants.items():
            start = time.perf_counter()
            counts[name] = run()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["one side"])
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, {args.threads} thread(s), load average {os.getloadavg()[0]:.1f}")
    print(f"prompt {len(ids)} tokens, {args.tokens} new tokens, {args.rounds} rounds (median)")
    print("| variant | positions | time | / one side |\n| --- | --- | --- | --- |")
    for name, ts in times.items():
        t = statistics.median(ts)
        print(f"| {name} | {counts[name]} | {t * 1000:.0f} ms | {t / base:.2f}x |")


if __name__ == "__main__":
    main()
