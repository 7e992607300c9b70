"""A snapshot of every pane at 80x24 and 120x36, each in dark and light, on the tiny model: a broken layout fails here.

Each pane opens on the same prompt and is shown as it settles, with nothing focused (a
text box's blinking cursor would make the picture depend on timing). After a change that alters the look on purpose, look
at the new pictures (`--snapshot-report`), then accept them with `--snapshot-update`.
"""

from __future__ import annotations

import pytest
from app_fixtures import make_app, settle, wait_for

from llmtui.app.panes import PANES

PROMPT = "The capital of France is"


@pytest.mark.parametrize(
    ("size", "theme"),
    [((80, 24), "dark"), ((80, 24), "light"), ((120, 36), "dark"), ((120, 36), "light")],
    ids=["80x24-dark", "80x24-light", "120x36-dark", "120x36-light"],
)
@pytest.mark.parametrize("pane_id", [p.PANE_ID for p in PANES])
def test_pane(snap_compare, tiny_lm, pane_id, size, theme):
    app = make_app(tiny_lm, pane=pane_id, prompt=PROMPT, theme=theme)

    async def run_before(pilot) -> None:
        await wait_for(pilot, lambda: all(p.ready for p in app.panes), what="every pane")
        await settle(pilot)
        app.screen.set_focus(None)
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
