"""Snapshots of the Generate pane (pytest-textual-snapshot): a broken layout fails here.

After a change that alters the look on purpose, look at the new pictures
(`pytest tests/app/test_app_snapshot.py --snapshot-report`), then accept them with
`pytest tests/app/test_app_snapshot.py --snapshot-update`.
"""

from __future__ import annotations

import app_fixtures
from app_fixtures import finished, greedy, make_app, ready

from llmtui.app.widgets.prob_table import ProbabilityTable
from llmtui.engine.settings import SamplingSettings



async def _still(pilot) -> None:
    """No blinking cursor in a snapshot."""
    for area in pilot.app.query("TextArea"):
        area.cursor_blink = False


def test_generate_pane_after_a_greedy_run(snap_compare, tiny_lm):
    """100x30, dark: a greedy generation, a past token selected, its table focused."""
    app = make_app(tiny_lm, prompt="The capital of France is", settings=greedy(max_new_tokens=24))

    async def run_before(pilot) -> None:
        pane = await ready(pilot)
        await _still(pilot)
        await pilot.press("f5")
        await finished(pilot, pane)
        pane.output.focus()
        await pilot.press("left", "left", "left")
        pane.query_one(ProbabilityTable).focus()
        await pilot.pause()

    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)


def test_generate_pane_at_80x24_light_with_cuts(snap_compare, tiny_lm):
    """80x24, light: sampling with top-k and top-p, so the table shows cut candidates."""
    settings = SamplingSettings(temperature=0.8, top_k=6, top_p=0.8, seed=1, max_new_tokens=16)
    app = make_app(tiny_lm, prompt="Hello [bold]world[/]", settings=settings, theme="light")

    async def run_before(pilot) -> None:
        pane = await ready(pilot)
        await _still(pilot)
        await pilot.press("f5")
        await finished(pilot, pane)
        # Focus decides whether the prompt's cursor is drawn: fix it, or the picture depends on timing.
        pane.output.focus()
        await pilot.pause()

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
