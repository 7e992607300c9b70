"""Make screenshots/: one SVG per pane of the real app on the default model (greedy, 120x36), PNGs when rsvg-convert exists.

    .venv/bin/python scripts/screenshots.py [OUT_DIR]      (default: screenshots/)

Each pane is set up as a step of a demo (llmtui/demo.py) and saved once its work has
finished. The test suite runs this script (tests/app/test_screenshots.py), so the pictures
can't silently fall out of date with the app.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llmtui.demo import parse_demo

if TYPE_CHECKING:
    from llmtui.engine.lm import LanguageModel

SIZE = (120, 36)
STEPS = """
title = "Screenshots"

[[step]]
pane = "tokenizer"
prompt = "I love pizza! 🍕 The emoji takes three tokens, 'tokenization' two."

[[step]]
pane = "embeddings"
prompt = "king - man + woman"

[[step]]
pane = "attention"
prompt = "The cat chased the dog because the dog took its ball"
layer = 3
head = 0

[[step]]
pane = "layers"
prompt = "The capital of France is"

[[step]]
pane = "generate"
prompt = "The capital of France is"
knobs = { temperature = 0.0, seed = 0 }
generate = 12

[[step]]
pane = "train"
prompt = "The capital of France is Lyon."
train = true
"""
PANES = ("tokenizer", "embeddings", "attention", "layers", "generate", "train")


def _busy(app) -> bool:
    return any(not w.is_finished for w in app.workers)


async def _settle(pilot, timeout: float = 120.0) -> None:
    """Wait until no worker runs, twice in a row (a finished worker may start another)."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 3:
        if time.monotonic() > deadline:
            raise TimeoutError("the app did not settle")
        await pilot.pause(0.1)
        quiet = 0 if _busy(pilot.app) else quiet + 1


async def make(out: Path, lm: LanguageModel | None = None, size: tuple[int, int] = SIZE) -> list[Path]:
    """Save one SVG per pane into `out`; returns their paths."""
    from llmtui.app.app import LLMTuiApp
    from llmtui.app.demo_runner import DemoRunner
    from llmtui.engine.lm import DEFAULT_MODEL, LanguageModel

    if lm is None:
        lm = LanguageModel.load(DEFAULT_MODEL)
    out.mkdir(parents=True, exist_ok=True)
    demo = parse_demo(STEPS, "screenshots")
    app = LLMTuiApp(lm=lm, theme="dark")
    runner = DemoRunner(app, demo)  # not the app's demo: no caption bar in the pictures
    saved = []
    async with app.run_test(size=size) as pilot:
        while pilot.app.lm is None:
            await pilot.pause(0.05)
        for step in demo.steps:
            runner.next()
            await _settle(pilot)
            await pilot.pause(0.5)  # timers (previews, typing delays) fire and their workers finish
            await _settle(pilot)
            path = out / f"{step.pane}.svg"
            app.save_screenshot(path.name, str(out))
            saved.append(path)
        train = app.pane("train")
        if train.tuned:  # the lesson ends with the picture: the model goes back as it came
            train.action_original()
            await _settle(pilot)
    return saved


def to_png(svgs: list[Path]) -> list[Path]:
    """PNG copies via rsvg-convert, when it is installed (the SVGs are the source)."""
    tool = shutil.which("rsvg-convert")
    if tool is None:
        return []
    pngs = []
    for svg in svgs:
        png = svg.with_suffix(".png")
        subprocess.run([tool, "-o", str(png), str(svg)], check=True)
        pngs.append(png)
    return pngs


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else ROOT / "screenshots"
    svgs = asyncio.run(make(out))
    pngs = to_png(svgs)
    for path in svgs + pngs:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
