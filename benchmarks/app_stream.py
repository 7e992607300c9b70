"""How the app keeps up while a generation streams: tokens/s against headless, and the UI's lag.

    .venv/bin/python benchmarks/app_stream.py [--model SPEC] [--tokens 200] [--runs 3]

It loads the model once, then for each run

1. decodes greedily headless (a `GenerationSession` loop, nothing else running),
2. drives the app (`App.run_test`, each screen update rendered to escape codes as for a
   terminal, then dropped) on the Generate pane with the same prompt and knobs, pressing F5, while
   - a repeating timer (every 20 ms) records how late each tick fires, and
   - a key is sent every 100 ms and the time until its action runs is recorded,
3. decodes headless again; the two headless runs' mean is that run's baseline.

Tokens/s are counted the same way in both: from the first generated token to the last
(the prompt's prefill is left out). Both decode on the app's model thread: torch runs on
one thread only in this process (see llmtui/app/model_thread.py for why that matters).
With --main-thread, a fresh process also decodes on its main thread, for reference.
The aim: the app at 90% of headless speed or more, the event loop never late by more
than 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the app runs (llmtui/cli.py); before torch loads OpenMP
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textual import events
from textual.binding import Binding

from llmtui.app.app import LLMTuiApp
from llmtui.app.model_thread import freeze_loaded_objects, model_thread_idle, run_on_model_thread
from llmtui.engine.generation import GenerationSession
from llmtui.engine.lm import DEFAULT_MODEL, LanguageModel
from llmtui.engine.settings import SamplingSettings

PROMPT = "Once upon a time, in a small village by the sea,"
TICK = 0.02
KEY_EVERY = 0.1


def headless_rate(lm: LanguageModel, ids: list[int], settings: SamplingSettings) -> tuple[float, int]:
    """Decode on the app's model thread, nothing else running (see llmtui/app/model_thread.py)."""
    return run_on_model_thread(_decode, lm, ids, settings)


def _decode(lm: LanguageModel, ids: list[int], settings: SamplingSettings) -> tuple[float, int]:
    session = GenerationSession(lm, ids, settings)
    first = last = 0.0
    n = 0
    for _ in session:
        n += 1
        last = time.perf_counter()
        if n == 1:
            first = last
    return (n - 1) / (last - first), n


class BenchApp(LLMTuiApp):
    """The app plus one key whose action notes when it ran (for the key round trip), rendering each
    screen update to the terminal's escape codes as a real terminal's app does (a headless app skips
    that; the driver here then drops them instead of writing them to a terminal)."""

    BINDINGS = [Binding("f12", "ping", "ping", show=False, priority=True)]

    @property
    def is_headless(self) -> bool:
        return False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pongs: list[float] = []

    def action_ping(self) -> None:
        self.pongs.append(time.perf_counter())


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


async def app_run(lm: LanguageModel, settings: SamplingSettings, size: tuple[int, int]) -> dict[str, float]:
    app = BenchApp(lm=lm, prompt=PROMPT, settings=settings)
    async with app.run_test(size=size) as pilot:
        pane = app.pane("generate")
        while pane.lm is None:
            await pilot.pause(0.01)
        await pilot.pause(0.3)  # let the first preview settle
        while not model_thread_idle():  # and what the other panes compute for the prompt (a lens, neighbours)
            await pilot.pause(0.05)
        frames = 0  # the pane's frames while the tokens stream (runner.FramePace spaces them)
        show_steps = pane._show_steps

        def counting(*args, **kwargs):
            nonlocal frames
            frames += 1
            return show_steps(*args, **kwargs)

        pane._show_steps = counting
        ticks: list[float] = []
        app.set_interval(TICK, lambda: ticks.append(time.perf_counter()))
        round_trips: list[float] = []
        ui_cpu = time.thread_time()  # the UI thread's CPU time while the tokens stream (the app's and this probe's)
        app._driver.send_message(events.Key("f5", None))  # as a terminal would; pilot.press would wait for idle

        def ended() -> bool:  # the F5 run (the pane's first) has ended
            return pane.run is not None and pane.run.ended

        # A key every KEY_EVERY seconds; its round trip is read when the next one goes. The probe sleeps
        # in between (polling every few ms would cost the UI thread CPU that the app is judged by).
        while not ended():
            sent = time.perf_counter()
            n = len(app.pongs)
            app._driver.send_message(events.Key("f12", None))
            await asyncio.sleep(KEY_EVERY)
            if len(app.pongs) > n:
                round_trips.append(app.pongs[n] - sent)
        ui_cpu = time.thread_time() - ui_cpu
        streamed = (pane.run.produced - 1) / pane.run.rate if pane.run.rate else float("nan")
        rate = pane.run.rate or 0.0  # counted as headless: from the first generated token to the last
        n_tokens = pane.run.produced
    gaps = [b - a - TICK for a, b in itertools.pairwise(ticks)]
    return {
        "rate": rate,
        "tokens": n_tokens,
        "tick_late_max": max(gaps) if gaps else float("nan"),
        "tick_late_p99": percentile(gaps, 0.99) if gaps else float("nan"),
        "key_max": max(round_trips) if round_trips else float("nan"),
        "key_p99": percentile(round_trips, 0.99) if round_trips else float("nan"),
        "key_n": len(round_trips),
        "fps": frames / streamed,
        "ui_cpu_share": ui_cpu / streamed,  # of one core, over the stream (a little more: the last key's wait)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", default="100x30", help="terminal size, WxH")
    parser.add_argument("--main-thread", action="store_true", help="also decode on a fresh process's main thread")
    parser.add_argument("--only-main-thread", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    if args.only_main_thread:  # the reference run, in its own process: torch on the main thread only
        lm = LanguageModel.load(args.model, device=args.device)
        settings = SamplingSettings(temperature=0, max_new_tokens=args.tokens)
        ids = lm.encode(PROMPT)
        _decode(lm, ids, settings.with_(max_new_tokens=8))
        print(statistics.median(_decode(lm, ids, settings)[0] for _ in range(args.runs)))
        return

    lm = run_on_model_thread(LanguageModel.load, args.model, device=args.device)
    freeze_loaded_objects()  # as the app does after loading
    settings = SamplingSettings(temperature=0, max_new_tokens=args.tokens)
    ids = lm.encode(PROMPT)
    print(f"model {lm.name} ({lm.n_params / 1e6:.0f}M params) on {args.device}; {os.cpu_count()} CPUs; "
          f"torch threads {__import__('torch').get_num_threads()}; {platform.python_version()}")
    print(f"prompt {len(ids)} tokens, {args.tokens} new tokens greedy, terminal {width}x{height}, {args.runs} runs\n")

    headless_rate(lm, ids, settings.with_(max_new_tokens=8))  # warm up
    results = []
    for run in range(args.runs):
        # headless just before and just after the app: a machine whose load drifts is averaged out
        before, n = headless_rate(lm, ids, settings)
        app = asyncio.run(app_run(lm, settings, (width, height)))
        after, _ = headless_rate(lm, ids, settings)
        rate = (before + after) / 2
        results.append((rate, app))
        print(f"run {run + 1}: headless {rate:7.1f} tok/s ({before:.1f}, {after:.1f}; {n} tokens) | app {app['rate']:7.1f} tok/s "
              f"({app['tokens']} tokens) = {app['rate'] / rate:5.1%} | timer late max {app['tick_late_max'] * 1000:5.1f} ms "
              f"p99 {app['tick_late_p99'] * 1000:5.1f} ms | key round trip max {app['key_max'] * 1000:5.1f} ms "
              f"p99 {app['key_p99'] * 1000:5.1f} ms (n={app['key_n']}) | UI thread CPU {app['ui_cpu_share']:.0%} of a core, "
              f"{app['fps']:.1f} frames/s")
    if args.main_thread:
        out = subprocess.run(
            [sys.executable, __file__, "--only-main-thread", "--model", args.model, "--device", args.device,
             "--tokens", str(args.tokens), "--runs", str(args.runs)],
            capture_output=True, text=True, check=True,
        )
        print(f"reference: headless on a fresh process's main thread {float(out.stdout.split()[-1]):.1f} tok/s (median)")
    headless = statistics.median(r for r, _ in results)
    in_app = statistics.median(a["rate"] for _, a in results)
    ratio = statistics.median(a["rate"] / r for r, a in results)
    print(f"\nmedian: headless {headless:.1f} tok/s, app {in_app:.1f} tok/s; median of the runs' ratios {ratio:.1%}; "
          f"worst timer lateness {max(a['tick_late_max'] for _, a in results) * 1000:.1f} ms, "
          f"worst key round trip {max(a['key_max'] for _, a in results) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
