"""How fast the Attention pane answers: capture and draw for prompts of 32, 128 and 512 tokens.

    .venv/bin/python benchmarks/attention_pane.py [--model SPEC] [--lengths 32 128 512] [--runs 5] [--threads N]
                                                  [--baseline DIR] [--no-app]

It loads the model once, then for each length

1. captures headless: `capture_attention` (one forward pass with every layer's
   attention kept, stacked into one tensor, head patterns scored), median of runs,
   wall time and CPU time (all threads: on a shared machine it moves less than wall time),
   and the share of it that is the check for NaN (damaged weights); then the same text
   captured as a continuation of its first n - 8 tokens (the last map's rows and KV
   cache reused: typing on, a generation growing), where the code has it;
2. drives the app headless (`App.run_test`, 160x45) on the Attention pane:
   - request → map: from `capture_text` until the heatmap holds the new text and the
     screen has been drawn (capture in the worker, message, set_matrix, a refresh): the
     layer shown (layer 0) is drawn as soon as its block has run; then request → whole
     map, until the other layers have run too and the pane holds them (the overviews and
     other layers need them); each run's text starts differently, so
     nothing of the last map can be reused;
   - next head: the pane's action plus drawing every line of the heatmap (what a key
     press costs the UI thread; no model runs), and from a key sent as a terminal sends
     it until the heatmap has been drawn on screen again;
   - the overview of every head of every layer (270 thumbnails on SmolLM2): building it
     and drawing it once.

With --baseline DIR (another checkout, see baseline.py), the headless capture is also
timed with that checkout's study, run by run beside this one's.

Aims (issue 6): the map of a 128-token prompt within 300 ms of the request; the next
head within 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import platform
import statistics
import sys
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the app runs (llmtui/cli.py); before torch loads OpenMP
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textual import events  # noqa: E402
from textual.geometry import Region  # noqa: E402

from llmtui.app.app import LLMTuiApp  # noqa: E402
from llmtui.app.panes.attention import AttentionPane  # noqa: E402
from llmtui.engine.studies.attention import capture_attention, check_finite  # noqa: E402
from llmtui.engine.lm import DEFAULT_MODEL, LanguageModel  # noqa: E402

from baseline import load_study  # noqa: E402

STORY = ("Once upon a time, a little fox lived at the edge of a quiet forest. Every morning she walked to the "
         "river to drink and to watch the fish jump, and every evening she told the owl what she had seen. ")


def text_of(lm: LanguageModel, n: int) -> str:
    """A text of exactly n tokens (the story repeated and cut on a token boundary)."""
    ids = lm.encode(STORY * (n // 10 + 2))[:n]
    text = lm.tokenizer.decode(ids)
    if len(lm.encode(text)) != n:  # a cut that re-encodes differently: trim until it round-trips
        while len(lm.encode(text)) > n:
            text = text[:-1]
    return text


def ms(seconds: list[float]) -> str:
    return f"{statistics.median(seconds) * 1000:7.1f} ms (min {min(seconds) * 1000:.1f})"


def stamp_paints(widget) -> list[float]:
    """The times at which the widget's lines are drawn from now on (until `del widget.render_lines`)."""
    painted: list[float] = []
    render_lines = widget.render_lines

    def painting(crop: Region) -> list:
        strips = render_lines(crop)
        painted.append(time.perf_counter())
        return strips

    widget.render_lines = painting
    return painted


async def drive_app(lm: LanguageModel, texts: dict[int, str], runs: int) -> dict[int, dict[str, list[float]]]:
    results: dict[int, dict[str, list[float]]] = {}
    app = LLMTuiApp(lm=lm, pane="attention")
    async with app.run_test(size=(160, 45)) as pilot:
        pane = app.query_one(AttentionPane)
        while pane.lm is None:
            await pilot.pause(0.01)
        heatmap = pane.heatmap
        for n, text in texts.items():
            r: dict[str, list[float]] = {"request": [], "whole": [], "head": [], "head_key": [], "overview": []}
            ids = tuple(lm.encode(text))
            landed = asyncio.Event()
            set_matrix = heatmap.set_matrix

            def set_and_signal(*args, set_matrix=set_matrix, landed=landed, **kwargs) -> None:
                set_matrix(*args, **kwargs)
                landed.set()

            heatmap.set_matrix = set_and_signal  # type: ignore[method-assign]
            painted = stamp_paints(heatmap)  # when the heatmap's lines were drawn (the screen's update)

            whole = asyncio.Event()  # set when the pane holds a whole map (not a partial one)
            whole_at: list[float] = []
            show = pane._show

            def show_and_signal(attention, *args, show=show, whole=whole, whole_at=whole_at, **kwargs) -> None:
                show(attention, *args, **kwargs)
                if attention.partial is None:
                    whole_at.append(time.perf_counter())
                    whole.set()

            pane._show = show_and_signal  # type: ignore[method-assign]

            async def drawn_after(moment: float) -> float:
                """When the heatmap was next drawn after `moment` (Pilot.pause would wait for the capture's worker).
                Polled every 10 ms: the UI thread waking more often slows the capture running meanwhile."""
                while not painted or painted[-1] < moment:
                    await asyncio.sleep(0.01)
                return next(t for t in painted if t >= moment)

            for run in range(runs):
                landed.clear()
                whole.clear()
                started = time.perf_counter()
                pane.capture_text(f"{run} {text}")  # a different start each run: nothing to reuse
                await landed.wait()  # no polling: the event loop idles as it would for a user
                r["request"].append(await drawn_after(time.perf_counter()) - started)
                await whole.wait()  # the other layers (the map drawn does not change: its layer was complete)
                r["whole"].append(whole_at[-1] - started)
                await pilot.pause()
            del heatmap.set_matrix, heatmap.render_lines, pane._show
            assert abs(len(pane.attention.ids) - len(ids)) <= 3
            heatmap.focus()
            region = Region(0, 0, heatmap.size.width, heatmap.size.height)
            for _ in range(max(runs, 8)):
                started = time.perf_counter()
                pane.action_head(1 if pane.head_index < pane.attention.n_head - 1 else -1)
                heatmap.render_lines(region)
                r["head"].append(time.perf_counter() - started)
            drawn = stamp_paints(heatmap)
            for _ in range(max(runs, 8)):
                key = "full_stop" if pane.head_index < pane.attention.n_head - 1 else "comma"
                head = pane.head_index
                await pilot.pause(0.05)
                started = time.perf_counter()
                app._driver.send_message(events.Key(key, None))  # as a terminal sends it (pilot.press waits for idle)
                while pane.head_index == head or not drawn or drawn[-1] < started:
                    await asyncio.sleep(0.001)
                r["head_key"].append(drawn[-1] - started)
            del heatmap.render_lines
            for _ in range(2):
                started = time.perf_counter()
                pane.action_overview("all")
                overview = pane.overview
                overview.render_lines(Region(0, 0, overview.size.width, overview.size.height))
                r["overview"].append(time.perf_counter() - started)
                pane.action_back()
                pane._overview_key = None  # build it again next time
            results[n] = r
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--lengths", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--baseline", help="a checkout whose capture is timed beside this one (runs interleaved)")
    parser.add_argument("--no-app", action="store_true", help="skip the app's measures")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    lm = LanguageModel.load(args.model)
    c = lm.config
    print(f"{lm.name}: {c.n_layer} layers x {c.n_head} heads · torch {torch.__version__} · "
          f"{torch.get_num_threads()} threads · {platform.machine()} {platform.processor() or ''}".strip())
    texts = {n: text_of(lm, n) for n in args.lengths}
    capture_attention(lm, lm.encode(texts[args.lengths[0]]))  # warm up
    this = sys.modules[capture_attention.__module__]
    baseline = load_study(args.baseline, "attention") if args.baseline else None
    print("\nheadless capture (one forward pass, weights stacked, heads scored):")
    for n, text in texts.items():
        ids = lm.encode(text)
        times, cpu, checks = [], [], []
        for _ in range(args.runs):
            started, started_cpu = time.perf_counter(), time.process_time()
            attention = capture_attention(lm, ids)
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
            started = time.perf_counter()  # the capture's NaN check alone, on every layer as it runs it
            for layer in attention.weights:
                check_finite(layer)
            checks.append(time.perf_counter() - started)
        size = c.n_layer * c.n_head * n * n * 4 / 2**20
        share = statistics.median(checks) / statistics.median(times) * 100
        print(f"  {n:4d} tokens: {ms(times)}   CPU time {ms(cpu)}   weights {size:6.1f} MiB   "
              f"of it the NaN check {ms(checks)} ({share:.1f} %)")
        if args.baseline:
            walls: dict[str, list[float]] = {"baseline": [], "this": []}
            cpus: dict[str, list[float]] = {"baseline": [], "this": []}
            for _ in range(args.runs):
                for side, module in (("baseline", baseline), ("this", this)):
                    started, started_cpu = time.perf_counter(), time.process_time()
                    module.capture_attention(lm, ids)
                    walls[side].append(time.perf_counter() - started)
                    cpus[side].append(time.process_time() - started_cpu)
            for what, t in (("wall", walls), ("CPU time", cpus)):
                print(f"  {n:4d} tokens, runs interleaved, {what}: baseline {ms(t['baseline'])}, this {ms(t['this'])}: "
                      f"{statistics.median(t['baseline']) / statistics.median(t['this']):.2f}x")
        if "previous" in inspect.signature(capture_attention).parameters:  # the code measured can continue a map
            continued = []
            for _ in range(args.runs):
                before = capture_attention(lm, ids[:-8])
                started = time.perf_counter()
                capture_attention(lm, ids, previous=before)
                continued.append(time.perf_counter() - started)
            print(f"  {n:4d} tokens continuing a map of {n - 8}: {ms(continued)}")

    if args.no_app:
        return
    results = asyncio.run(drive_app(lm, texts, args.runs))
    print("\nthe app, 160x45 (medians):")
    print("  tokens  request→map (shown layer)   request→whole map      next head (action+draw)    key → heatmap drawn        all-heads overview")
    for n, r in results.items():
        print(f"  {n:6d}  {ms(r['request'])}      {ms(r['whole'])}  {ms(r['head'])}  {ms(r['head_key'])}  {ms(r['overview'])}")


if __name__ == "__main__":
    main()
