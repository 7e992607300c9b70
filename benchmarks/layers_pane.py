"""Speed of the Layers pane's logit lens on the default model.

Measures, for a 64-token prompt (31 rows x 64 columns, a projection onto the
49,152-token vocabulary for each of the 1,984 cells):

- the forward pass with capture (the residual stream of every layer),
- the lens itself: residuals stacked and projected in batched matrix products
  (a block's cells in one product per slice of the unembedding), top 10 per cell, the final answer's rank and
  probability everywhere,
- the same projection done one cell at a time (on a sample of cells, scaled up),
  to show what batching buys,
- the drawn block: the lens made and the block holding the last position (the pane's
  cursor) read, as the pane does first (its block size is the code's BLOCK_POSITIONS),
- the whole grid for the longest prompt the pane takes (512 tokens),
- the pane in the app (headless): from a new prompt to its first block (the cursor's) and to
  its complete grid.

Each measure is the median of several rounds after a warm-up, with the minimum (the
closest to an idle machine where the CPUs are shared) in parentheses.

    .venv/bin/python benchmarks/layers_pane.py [--device cpu|cuda] [--rounds N] [--threads N] [--no-app]
                                               [--baseline DIR]

With --baseline DIR (another checkout, see baseline.py), the whole grid and the drawn
block are also timed with that checkout's lens, round by round beside this one's.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time

import sys
import os
from pathlib import Path

import torch

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the app runs (llmtui/cli.py); before torch loads OpenMP
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's llmtui, not an installed one

from llmtui.engine.studies import lens as lens_module  # noqa: E402
from llmtui.engine.studies.lens import LogitLens  # noqa: E402
from llmtui.engine.lm import LanguageModel  # noqa: E402

from baseline import load_study  # noqa: E402

TEXT = (
    "The capital of France is Paris, and the capital of Italy is Rome. A transformer reads the tokens of a "
    "text, mixes them with attention, and refines each token's vector layer by layer until the last layer "
    "predicts the next token. Reading the earlier layers the same way shows the answer forming. "
) * 12


class Timing(float):
    """A median in seconds that also knows its minimum."""

    minimum: float

    def __str__(self) -> str:
        return f"{float(self):.3f} s (min {self.minimum:.3f})"


def median_time(fn, rounds: int) -> Timing:
    fn()  # warm-up
    times = []
    for _ in range(rounds):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    timing = Timing(statistics.median(times))
    timing.minimum = min(times)
    return timing


@torch.inference_mode()
def per_cell(lm: LanguageModel, lens: LogitLens, cells: list[tuple[int, int]]) -> None:
    """The naive way: one unembedding (a matrix-vector product) and one softmax per cell."""
    for row, pos in cells:
        x = lens.residuals[row, pos].to(lm.device)
        probs = torch.softmax(lm.model.unembed(x), dim=-1)
        probs.topk(10)


async def app_time(lm: LanguageModel, text: str, rounds: int) -> tuple[Timing, Timing]:
    """Seconds from a new prompt in the Layers pane to its first block (the cursor's) and to its complete
    grid, in the headless app. Polled every 10 ms with asyncio.sleep: a UI thread woken more often (or
    Pilot.pause's idle waits) slows the model thread's work it waits for."""
    from llmtui.app.app import LLMTuiApp

    app = LLMTuiApp(lm=lm, pane="layers", prompt="Hi")
    first, whole = [], []
    async with app.run_test(size=(160, 45)) as pilot:
        pane = app.query_one("#layers")
        while not (pane.data is not None and pane.data.complete):
            await pilot.pause(0.05)
        for n in range(rounds + 1):
            prompt = f"{n} {text}"  # a different text each round: nothing reused
            ids = tuple(lm.encode(prompt))
            t0 = time.perf_counter()
            pane.editor.load_text(prompt)
            pane._request()  # at once, not after the typing pause
            shown = None
            while not (pane.data is not None and pane.data.complete and pane.data.ids == ids):
                if shown is None and pane.data is not None and pane.data.ids == ids and pane.data.computed.any():
                    shown = time.perf_counter() - t0
                await asyncio.sleep(0.01)
            if n:  # the first round is a warm-up
                whole.append(time.perf_counter() - t0)
                first.append(shown if shown is not None else whole[-1])
            await pilot.pause()
    timings = []
    for times in (first, whole):
        timing = Timing(statistics.median(times))
        timing.minimum = min(times)
        timings.append(timing)
    return timings[0], timings[1]


def drawn_block(module, lm: LanguageModel, ids: list[int]):
    """What the pane shows first: the lens made, then the block holding the last position (its cursor)."""

    def run() -> None:
        lens = module.LogitLens(lm, ids)
        lens.block(*lens.block_ranges(len(ids) - 1)[0])

    return run


def interleaved(lm: LanguageModel, ids: list[int], baseline, rounds: int) -> None:
    """This checkout's lens and the baseline's, one round each in turn: whole grid and drawn block."""
    sides = {"baseline": baseline, "this": lens_module}
    times: dict[tuple[str, str, str], list[float]] = {}
    for module in sides.values():
        module.LogitLens(lm, ids).run()  # warm-up
    for _ in range(rounds):
        for side, module in sides.items():
            for what, fn in (("whole grid", lambda m=module: m.LogitLens(lm, ids).run()),
                             ("drawn block", drawn_block(module, lm, ids))):
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                times.setdefault((what, "wall", side), []).append(time.perf_counter() - t0)
                times.setdefault((what, "CPU time", side), []).append(time.process_time() - c0)
    for what in ("whole grid", "drawn block"):
        for clock in ("wall", "CPU time"):
            b, t = (times[what, clock, side] for side in sides)
            print(f"64 tokens, {what}, rounds interleaved, {clock}: baseline {statistics.median(b):.3f} s "
                  f"(min {min(b):.3f}), this {statistics.median(t):.3f} s (min {min(t):.3f}): "
                  f"{statistics.median(b) / statistics.median(t):.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-app", action="store_true", help="skip the headless-app measure")
    parser.add_argument("--baseline", help="a checkout whose lens is timed beside this one (rounds interleaved)")
    parser.add_argument("--no-long", action="store_true", help="skip the per-cell and 512-token measures")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    lm = LanguageModel.load(device=args.device)
    all_ids = lm.encode(TEXT)
    ids64, ids512 = all_ids[:64], all_ids[:512]
    assert len(ids64) == 64 and len(ids512) == 512, "the benchmark text is too short"
    print(
        f"{lm.name} on {lm.device}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{platform.processor() or platform.machine()}; {args.rounds} rounds: median (min)"
    )
    print(f"rows {lm.config.n_layer + 1}, vocabulary {lm.config.vocab_size}, "
          f"BLOCK_POSITIONS {lens_module.BLOCK_POSITIONS}")

    forward = median_time(lambda: lm.run(ids64, capture=True), args.rounds)
    lens = LogitLens(lm, ids64)
    project = median_time(lens.run, args.rounds)
    whole = median_time(lambda: LogitLens(lm, ids64).run(), args.rounds)
    print(f"64 tokens, forward pass with capture:      {forward}")
    print(f"64 tokens, lens projection (batched):      {project}")
    print(f"64 tokens, whole grid (forward + lens):    {whole}")

    if args.baseline:
        interleaved(lm, ids64, load_study(args.baseline, "lens"), args.rounds)
    else:
        print(f"64 tokens, the drawn block (lens + the cursor's block): {median_time(drawn_block(lens_module, lm, ids64), args.rounds)}")
    if args.no_long:
        return
    sample = [(r, p) for r in range(0, 30, 5) for p in range(0, 64, 8)]  # 48 of the 1,920 hidden cells
    naive = median_time(lambda: per_cell(lm, lens, sample), max(1, args.rounds // 2))
    scale = (30 * 64) / len(sample)
    print(
        f"64 tokens, the projection one cell at a time: ~{naive * scale:.1f} s (min ~{naive.minimum * scale:.1f}; "
        f"{len(sample)} cells timed, scaled to 1,920), {naive * scale / project:.0f}x the batched median"
    )
    long = median_time(lambda: LogitLens(lm, ids512).run(), max(1, args.rounds // 2))
    print(f"512 tokens (the pane's limit), whole grid: {long}")
    if not args.no_app:
        first, whole = asyncio.run(app_time(lm, lm.tokenizer.decode(ids64[1:]), args.rounds))
        print(f"the pane (headless app 160x45), a new ~64-token prompt to its first block (the cursor's): {first}")
        print(f"the pane (headless app 160x45), a new ~64-token prompt to its complete grid: {whole}")


if __name__ == "__main__":
    main()
