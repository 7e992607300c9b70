"""Presentation mode (F9, --present): high-contrast styles, keys always on screen, every pane usable at 80x24."""

from __future__ import annotations

import pytest
from app_fixtures import ready, settle, wait_for

from llmtui.app.app import LLMTuiApp
from llmtui.app.demo_runner import DemoBar
from llmtui.app.panes import PANES
from llmtui.app.widgets.status_line import StatusLine
from llmtui.cli import build_parser


def _look(app: LLMTuiApp) -> tuple:
    status = app.query_one(StatusLine)
    return (app.theme, status.styles.color, status.styles.text_style.bold, app.current_pane.styles.background)


async def test_f9_changes_the_styles_and_back(tiny_lm):
    app = LLMTuiApp(lm=tiny_lm, pane="generate", theme="dark")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        before = _look(app)
        assert not app.query_one(DemoBar).display
        await pilot.press("f9")
        await pilot.pause()
        present = _look(app)
        assert app.has_class("-present") and app.theme == "llmtui-present-dark"
        assert present[1] != before[1] and present[2] and not before[2]  # the status line: no grey, bold
        bar = app.query_one(DemoBar)
        assert bar.display and "F8 advance" in str(bar.render()) and bar.region.height > 0  # the keys, on screen
        await pilot.press("f9")
        await pilot.pause()
        assert _look(app) == before and not app.query_one(DemoBar).display


async def test_light_theme_gets_a_light_presentation_theme(tiny_lm):
    app = LLMTuiApp(lm=tiny_lm, theme="light", present=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        assert app.theme == "llmtui-present-light"
        await pilot.press("f9")
        assert app.theme == "textual-light"


@pytest.mark.parametrize("pane_class", PANES, ids=lambda p: p.PANE_ID)
async def test_every_pane_is_usable_at_80x24_in_presentation_mode(tiny_lm, pane_class):
    app = LLMTuiApp(lm=tiny_lm, pane=pane_class.PANE_ID, present=True, prompt="The capital of France")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.current_pane.lm is not None, what="the model")
        await settle(pilot)
        pane = app.current_pane
        assert pane.PANE_ID == pane_class.PANE_ID and pane.region.height >= 10
        focused = app.focused
        assert focused is not None and pane in focused.ancestors  # keys go to the pane
        assert focused.region.height > 0 and focused.region.width > 0
        for widget in pane.children:  # the pane's parts fit on the screen (their insides may scroll)
            if widget.display and widget.region.area:
                assert widget.region.right <= 80 and widget.region.bottom <= 24, widget
        assert app.query_one(DemoBar).region.height > 0


async def test_the_advance_key_without_a_demo(tiny_lm):
    app = LLMTuiApp(lm=tiny_lm, pane="tokenizer")
    notes = []
    app.notify = lambda message, *a, **k: notes.append(str(message))  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("f8")  # the Tokenizer has no steps: says so
        assert notes and "Nothing to advance" in notes[-1]
        await pilot.press("shift+f8")
        assert "No demo" in notes[-1]


def test_the_command_line_flags():
    args = build_parser().parse_args(["--present", "--demo", "how-llms-work", "--export-dir", "out"])
    assert (args.present, args.demo, args.export_dir) == (True, "how-llms-work", "out")
