"""Captures of two checkouts timed side by side: the Attention pane's map and the Layers pane's lens grid.

    git archive main llmtui models | tar -x -C /tmp/before   # the code before (any commit) and its catalogue
    .venv/bin/python benchmarks/checkouts.py --before /tmp/before [--after .] [--rounds 4] [--runs 5] [--threads 1]

Unlike `--baseline` in attention_pane.py and layers_pane.py (which swaps one study module
and keeps this checkout's model), each side runs in a process of its own with its own
`llmtui`, so changes to the model (engine/model/*) count too. Processes alternate, before
then after, for each round: on a shared machine both sides meet the same load. Each
process loads the default model, warms up, then times `runs` runs of each measure:

- attention, 128 tokens: `capture_attention` of a fresh text (nothing reused);
- lens, 64 tokens, drawn block: `LogitLens` (its forward pass) and the block holding the
  last position (what the Layers pane draws first);
- lens, 64 tokens, whole grid: `LogitLens(...).run()`.

Printed per side: CPU time (this process, all threads; on a loaded box it moves less than
wall time) and wall time, each as the median of the rounds' medians and the minimum of all
runs; then before / after of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
STORY = ("Once upon a time, a little fox lived at the edge of a quiet forest. Every morning she walked to the "
         "river to drink and to watch the fish jump, and every evening she told the owl what she had seen. ")
LENS_TEXT = ("The capital of France is Paris, and the capital of Italy is Rome. A transformer reads the tokens of a "
             "text, mixes them with attention, and refines each token's vector layer by layer until the last layer "
             "predicts the next token. ")
MEASURES = ("attention, 128 tokens", "lens, 64 tokens, drawn block", "lens, 64 tokens, whole grid")


def worker(root: str, runs: int, threads: int) -> None:
    """In a process of its own: the checkout at root measured, one JSON line of {measure: [[wall, cpu], ...]}."""
    sys.path.insert(0, root)
    import torch

    torch.set_num_threads(threads)
    from llmtui.engine.lm import LanguageModel
    from llmtui.engine.studies.attention import capture_attention
    from llmtui.engine.studies.lens import LogitLens

    assert Path(sys.modules["llmtui"].__file__).resolve().is_relative_to(Path(root).resolve()), "wrong llmtui"
    lm = LanguageModel.load()
    story = lm.encode(STORY * 20)
    lens_ids = lm.encode(LENS_TEXT * 8)[:64]

    def attention(run: int) -> None:
        capture_attention(lm, story[run * 3 : run * 3 + 128])  # a different text each run: nothing to reuse

    def drawn_block(run: int) -> None:
        lens = LogitLens(lm, lens_ids)
        lens.block(*lens.block_ranges(len(lens_ids) - 1)[0])

    def whole_grid(run: int) -> None:
        LogitLens(lm, lens_ids).run()

    results: dict[str, list[list[float]]] = {}
    for name, fn in zip(MEASURES, (attention, drawn_block, whole_grid)):
        fn(runs)  # warm-up
        times = []
        for run in range(runs):
            wall, cpu = time.perf_counter(), time.process_time()
            fn(run)
            times.append([time.perf_counter() - wall, time.process_time() - cpu])
        results[name] = times
    print(json.dumps(results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="the checkout before (a folder holding llmtui/)")
    parser.add_argument("--after", default=str(HERE.parents[1]), help="the checkout after (default: this one)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads in each process")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.runs, args.threads)
        return
    if not args.before:
        parser.error("--before is required: the checkout to compare with")
    sides = {"before": args.before, "after": args.after}
    # {side: {measure: [per-round lists of (wall, cpu)]}}
    got: dict[str, dict[str, list[list[list[float]]]]] = {s: {m: [] for m in MEASURES} for s in sides}
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    for round_ in range(args.rounds):
        for side, root in sides.items():
            out = subprocess.run([sys.executable, str(HERE), "--worker", root, "--runs", str(args.runs),
                                  "--threads", str(args.threads)], capture_output=True, text=True, env=env,
                                 cwd=root)
            if out.returncode:
                raise SystemExit(f"{side} ({root}) failed:\n{out.stderr[-3000:]}")
            for measure, times in json.loads(out.stdout.splitlines()[-1]).items():
                got[side][measure].append(times)
        print(f"round {round_ + 1}/{args.rounds} done; load average {os.getloadavg()[0]:.1f}", flush=True)
    print(f"{args.rounds} rounds x {args.runs} runs, {args.threads} torch thread(s); median of the rounds' "
          f"medians (min of all runs)")
    for measure in MEASURES:
        for clock, i in (("CPU", 1), ("wall", 0)):
            medians = {s: statistics.median(statistics.median(t[i] for t in r) for r in got[s][measure])
                       for s in sides}
            mins = {s: min(t[i] for r in got[s][measure] for t in r) for s in sides}
            print(f"  {measure}, {clock}: before {medians['before'] * 1000:.0f} ms ({mins['before'] * 1000:.0f}), "
                  f"after {medians['after'] * 1000:.0f} ms ({mins['after'] * 1000:.0f}): "
                  f"{medians['before'] / medians['after']:.2f}x")


if __name__ == "__main__":
    main()
