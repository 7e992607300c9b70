"""Time to re-tokenize and redraw the Tokenizer pane after one keystroke, for 100 B, 1 KB and 10 KB of text.

    .venv/bin/python benchmarks/tokenizer_pane.py [--model SPEC] [--keys 30] [--compare]

The app runs headless (`App.run_test`, 120x40) on the Tokenizer pane with the model's own
tokenizer. For each size the editor is filled with that much text (English prose, code,
an emoji and some CJK, cut at a character boundary), the cursor put at the end, and then
one character is typed `--keys` times. Three numbers per keystroke:

- engine: `tokenize()` alone (tiktoken's encode, each token's bytes, the character groups);
- update: the pane's own work on the UI thread for one edit, timed around the handler of
  the editor's Changed message: tokenize, lay the chips out, counts, details;
- keystroke: from the key arriving from the terminal (sent through the driver, as a real
  key is) to the screen's next update being composed after the pane's handler ran, i.e.
  what a user waits for. Textual draws at most 60 frames a second, so up to ~17 ms of
  this is the wait for the next frame;
- (no pane): the same keystrokes with the pane's update switched off: the editor's and the
  screen's own share, the floor the pane adds to.

Aim: keystroke under 30 ms at 10 KB. With --compare, the pane stacks every tokenizer
(offline, OpenAI's encodings are unavailable and only the model's is tokenized).
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textual import events  # noqa: E402

from llmtui.app.app import LLMTuiApp  # noqa: E402
from llmtui.app.panes.tokenizer import TokenizerPane  # noqa: E402
from llmtui.engine.lm import DEFAULT_MODEL, LanguageModel  # noqa: E402
from llmtui.engine.tokenizer.tokens import tokenize  # noqa: E402

SAMPLE = (
    "The capital of France is Paris. Once upon a time, in a small village by the sea, a curious "
    "robot named Bolt learned to read. I love pizza! 🍕 東京は日本の首都です。\n"
    "def fib(n: int) -> int:\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
)
SIZES = {"100 B": 100, "1 KB": 1_000, "10 KB": 10_000}


def text_of(size: int) -> str:
    """SAMPLE repeated to `size` UTF-8 bytes, cut at a character boundary."""
    data = (SAMPLE * (size // len(SAMPLE.encode()) + 2)).encode()[:size]
    return data.decode("utf-8", errors="ignore")


def summary(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
    return f"min {ms[0]:6.2f} ms · median {statistics.median(ms):6.2f} ms · p90 {p90:6.2f} ms · max {ms[-1]:6.2f} ms"


async def keystroke(pilot, k: int, handler_ends: list[float], displays: list[float]) -> float:  # type: ignore[no-untyped-def]
    """Send one key as the terminal would; seconds until the screen update after the pane's handler."""
    key = events.Key("x", "x") if k % 2 == 0 else events.Key("backspace", None)  # the text keeps its size
    handled = len(handler_ends)
    start = time.perf_counter()
    pilot.app._driver.send_message(key)
    while len(handler_ends) == handled or not displays or displays[-1] < handler_ends[-1]:
        await asyncio.sleep(0.0002)
    latency = next(d for d in displays if d >= handler_ends[-1]) - start
    await pilot.pause(0.03)
    return latency


async def measure(lm: LanguageModel, keys: int, compare: bool) -> None:
    app = LLMTuiApp(lm=lm, pane="tokenizer")
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one(TokenizerPane)
        while pane.lm is None:
            await pilot.pause(0.05)
        if compare:
            await pilot.press("f3")
            while pane._loading:
                await pilot.pause(0.05)
        handler_times: list[float] = []
        handler_ends: list[float] = []
        original = pane._refresh

        def timed_refresh() -> None:
            start = time.perf_counter()
            original()
            handler_ends.append(time.perf_counter())
            handler_times.append(handler_ends[-1] - start)

        pane._refresh = timed_refresh  # type: ignore[method-assign]
        displays: list[float] = []
        original_display = app._display

        def display(screen, renderable) -> None:  # type: ignore[no-untyped-def]
            if renderable is not None:
                displays.append(time.perf_counter())  # the update is composed: all that is left is the write
            original_display(screen, renderable)

        app._display = display  # type: ignore[method-assign]
        for label, size in SIZES.items():
            text = text_of(size)
            pane.set_prompt(text)
            await pilot.pause(0.05)
            engine = []
            for _ in range(keys):
                start = time.perf_counter()
                tokenize(lm.tokenizer, text)
                engine.append(time.perf_counter() - start)
            handler_times.clear()
            strokes = []
            for k in range(keys):
                strokes.append(await keystroke(pilot, k, handler_ends, displays))
            # The floor: the same keystrokes with the pane's update switched off (the editor and
            # the screen only), to tell Textual's share from the pane's.
            pane._refresh = lambda: handler_ends.append(time.perf_counter())  # type: ignore[method-assign]
            floor = [await keystroke(pilot, k, handler_ends, displays) for k in range(keys)]
            pane._refresh = timed_refresh  # type: ignore[method-assign]
            n = pane.tokens().n_tokens if pane.tokens() else 0
            print(f"{label:>6} ({len(text.encode()):>6} bytes, {n:>5} tokens)")
            print(f"    engine     {summary(engine)}")
            print(f"    update     {summary(handler_times)}")
            print(f"    keystroke  {summary(strokes)}")
            print(f"    (no pane)  {summary(floor)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--keys", type=int, default=30, help="keystrokes per size")
    parser.add_argument("--compare", action="store_true", help="stack every tokenizer (F3)")
    args = parser.parse_args()
    lm = LanguageModel.load(args.model)
    print(f"{platform.processor() or platform.machine()} · Python {platform.python_version()} · {lm.name}"
          + (" · compare" if args.compare else ""))
    asyncio.run(measure(lm, args.keys, args.compare))


if __name__ == "__main__":
    main()
