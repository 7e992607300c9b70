"""Memory across a long session: 200 generations in the Generate pane, RSS at checkpoints.

    .venv/bin/python benchmarks/long_session.py [--model SPEC] [--generations 200] [--tokens 32]

It loads the model once (as the app does: on the model thread, then `gc.freeze`), then
drives one app headless (`App.run_test`) on the Generate pane the way a long talk would:
every generation presses F5 on one of a few prompts with sampling knobs (temperature 0.8,
top-k 50, top-p 0.95, a fresh seed each time); every 10th also forks the text at its
third token (which streams on to the end), every 20th is a two-turn chat, every 50th
clears. At 0 (after load), 10, 50, 100 and 200 generations it prints the process's RSS,
the live GenerationSession and KVCache objects with the bytes their caches hold, and the
number of Python objects the garbage collector tracks.

A leak shows as RSS or live objects that keep rising from 50 to 200; a bounded session
levels off after the first few generations (allocator pools, caches warming up).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from textual import events

from llmtui.app.app import LLMTuiApp
from llmtui.app.model_thread import freeze_loaded_objects, run_on_model_thread
from llmtui.app.panes.generate import GeneratePane
from llmtui.app.widgets.prob_table import ProbabilityTable
from llmtui.engine.generation import GenerationSession
from llmtui.engine.lm import DEFAULT_MODEL, LanguageModel
from llmtui.engine.model.kv_cache import KVCache
from llmtui.engine.settings import SamplingSettings

PROMPTS = [
    "Once upon a time, in a small village by the sea,",
    "The capital of France is",
    "Here is a recipe for pancakes:",
    "Explain why the sky is blue.",
]
CHECKPOINTS = (10, 50, 100, 200)


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process in MB, from /proc."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def live() -> dict[str, float]:
    """Live sessions and caches (after a full collection) and the bytes the caches hold."""
    gc.collect()
    objects = gc.get_objects()
    caches = [o for o in objects if type(o) is KVCache]  # type(): isinstance warns on torch proxies
    return {
        "sessions": sum(type(o) is GenerationSession for o in objects),
        "caches": len(caches),
        "cache_mb": sum(t.nbytes for c in caches for t in (*c.k, *c.v)) / 1e6,
        "objects": len(objects),
    }


def row(label: str, extra: str = "") -> str:
    now, peak = rss_mb()
    stats = live()
    return (f"{label:>16} | RSS {now:7.1f} MB (peak {peak:7.1f}) | sessions {stats['sessions']:2d} caches {stats['caches']:2d} "
            f"holding {stats['cache_mb']:6.1f} MB | gc objects {stats['objects']:8d}{extra}")


async def wait(condition, timeout: float = 300.0) -> None:
    """Poll with plain sleeps: pilot.pause() visits every widget each time, which under a stream
    takes the GIL from the model thread often enough to slow decoding several times over."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the app did not finish a generation in time")
        await asyncio.sleep(0.05)


async def session(lm: LanguageModel, generations: int, settings: SamplingSettings, size: tuple[int, int]) -> None:
    app = LLMTuiApp(lm=lm, pane="generate", settings=settings)
    async with app.run_test(size=size) as pilot:
        pane = app.query_one(GeneratePane)
        await wait(lambda: pane.lm is not None)

        async def done() -> None:
            await wait(lambda: not pane.running and all(w.is_finished for w in app.workers))
            await pilot.pause()

        print(row("app ready"))
        kv_sizes: list[int] = []
        start = time.perf_counter()
        tokens = 0
        for n in range(1, generations + 1):
            chat = n % 20 in (0, 19)  # two turns of a chat
            if chat != pane.chat_mode:
                await pilot.press("ctrl+t")
            pane.set_prompt(("Tell me more." if n % 20 == 0 else "Hello! Who are you?") if chat else PROMPTS[n % len(PROMPTS)])
            runs = pane._run_ids
            app._driver.send_message(events.Key("f5", None))  # as a terminal would: pilot.press waits for idle
            await wait(lambda runs=runs: pane._run_ids > runs)  # the key reached the pane and a run started
            await done()
            if n % 10 == 5 and len(pane.steps) > 3:  # fork at the third token; it streams on
                pane.output.selected = 2
                await pilot.pause()
                pane.query_one(ProbabilityTable).choose(1)
                await done()
            if pane.session is not None:
                tokens += len(pane.steps)
                cache = pane.session.kv_cache if hasattr(pane.session, "kv_cache") else pane.session._cache
                kv_sizes.append(sum(t.nbytes for t in (*cache.k, *cache.v)))
            if n % 50 == 0:
                await pilot.press("ctrl+n")
                await done()
            if n in CHECKPOINTS:
                rate = tokens / (time.perf_counter() - start)
                print(row(f"{n} generations", f" | {tokens} tokens so far, {rate:.1f} tok/s overall"))
        print(f"\nKV cache per generation: median {sorted(kv_sizes)[len(kv_sizes) // 2] / 1e6:.1f} MB, "
              f"max {max(kv_sizes) / 1e6:.1f} MB (the whole window would be "
              f"{full_window_bytes(lm) / 1e6:.1f} MB)")


def full_window_bytes(lm: LanguageModel) -> int:
    c = lm.config
    return 2 * c.n_layer * c.n_kv_head * c.context_length * c.head_dim * lm.model.tok_emb.weight.element_size()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--generations", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=32, help="max new tokens per generation")
    parser.add_argument("--size", default="100x30", help="terminal size, WxH")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False,
                            cwd=Path(__file__).parent).stdout.strip()
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads); "
          f"llmtui from {Path(sys.modules['llmtui'].__file__).parent} (git {commit})")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print(row("before load"))
    lm = run_on_model_thread(LanguageModel.load, args.model, device=args.device)
    freeze_loaded_objects()  # as the app does after loading
    print(row("after load"))
    settings = SamplingSettings(temperature=0.8, top_k=50, top_p=0.95, max_new_tokens=args.tokens)
    asyncio.run(session(lm, args.generations, settings, (width, height)))
    print(row("app closed"))
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
