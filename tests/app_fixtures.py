"""Fixtures and helpers for the app's Pilot tests (imported by tests/app/test_*.py).

The fast tests run the app on the tiny random Llama (`tiny_lm`, a fixture of
tests/conftest.py) injected as `LLMTuiApp(lm=...)`. Tests that compare with the
real model use `default_lm` (marked `default_model`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from llmtui.app.app import LLMTuiApp
from llmtui.app.panes.generate import GeneratePane
from llmtui.engine.lm import LanguageModel
from llmtui.engine.settings import SamplingSettings

def make_app(lm: LanguageModel, **kwargs) -> LLMTuiApp:
    """The app on an injected model, opened on the Generate pane."""
    kwargs.setdefault("pane", "generate")
    return LLMTuiApp(lm=lm, **kwargs)


def greedy(**changes) -> SamplingSettings:
    return SamplingSettings(temperature=0.0, seed=0, **changes)


async def wait_for(pilot, condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Pause the pilot until condition() holds; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.01)


async def settle(pilot, timeout: float = 20.0) -> None:
    """Wait until every worker has finished (cancelled ones included) and the messages are handled."""
    await wait_for(pilot, lambda: all(w.is_finished for w in pilot.app.workers), timeout, what="the workers")
    await pilot.pause()


async def ready(pilot) -> GeneratePane:
    """Wait until the Generate pane has its model and its first preview has settled."""
    app = pilot.app
    pane = app.query_one(GeneratePane)
    await wait_for(pilot, lambda: pane.lm is not None, what="the model")
    await settle(pilot)
    return pane


async def finished(pilot, pane: GeneratePane, timeout: float = 30.0) -> None:
    """Wait until no generation runs and every worker is done."""
    await wait_for(pilot, lambda: not pane.running, timeout, what="the generation to end")
    await settle(pilot)


async def press_now(pilot, key: str) -> None:
    """Send a key as a terminal would, without waiting for the app to go idle (pilot.press waits
    for every message, so it only returns once a whole generation has streamed)."""
    from textual import events

    pilot.app._driver.send_message(events.Key(key, None))
    await pilot.pause(0.01)


async def choose_and_finish(pilot, pane: GeneratePane, row: int) -> None:
    """Choose a row of the probability table (forcing that token) and wait for the run it starts to end.

    `choose` only posts a message: waiting for `not pane.running` at once could return before
    the forced run began, or while it streamed, and the test then read a half-made text.
    """
    from llmtui.app.widgets.prob_table import ProbabilityTable

    before = pane.run
    pane.query_one(ProbabilityTable).choose(row)
    await wait_for(pilot, lambda: pane.run is not before, what="the forced run to start")
    await finished(pilot, pane)


async def generate(pilot, pane: GeneratePane, key: str = "f5") -> None:
    await pilot.press(key)
    await finished(pilot, pane)
