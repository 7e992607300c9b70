"""Keys and pastes that arrive in one burst, fed as a terminal sends them: raw bytes through the driver's parser.

Two Textual bugs reordered them (llmtui/app/textual_workarounds.py): bound keys (Backspace, arrows)
overtaken by the printable keys behind them (Textualize/textual#6605), and a bracketed paste cut
at an ESC it holds.
"""

from __future__ import annotations

import pytest
from app_fixtures import make_app, ready
from textual.drivers import linux_driver

from llmtui.app.textual_workarounds import PASTE_END, PASTE_START, WholePasteParser

HOSTILE_PASTE = "zwj:👩\u200d💻 esc:\x1b[31mRED\x1b[0m end\x1b"


def burst(app, data: str, chunks: int = 1) -> None:
    """Send `data` as the terminal would: parsed by the parser the app's driver uses, every event queued at once."""
    parser = linux_driver.XTermParser()
    size = -(-len(data) // chunks)
    for start in range(0, len(data), size):
        for event in parser.feed(data[start:start + size]):
            app._driver.process_message(event)


async def typed(pilot, editor, data: str, chunks: int = 1) -> str:
    burst(pilot.app, data, chunks)
    await pilot.pause(0.3)
    await pilot.pause()
    return editor.text


@pytest.mark.parametrize("widget", ["generate", "tokenizer", "attention"])
@pytest.mark.parametrize(("data", "expected"), [
    ("abc\x1b[DXYZ", "abXYZc"),  # Left inside a burst
    ("hello there\x7f\x7f\x7fQ", "hello thQ"),  # Backspace, then text
    ("abc\x1b[D\x1b[D\x7fQ", "Qbc"),  # arrows, Backspace, text
])
async def test_a_burst_of_keys_edits_in_order(tiny_lm, widget, data, expected):
    app = make_app(tiny_lm, pane=widget, prompt="")
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        pane = app.current_pane
        box = pane.prompt if widget == "attention" else pane.editor
        box.focus()
        await pilot.pause()
        for attempt in range(3):  # the race was lost 2 times in 6: try a few bursts
            (box.clear() if widget == "attention" else box.load_text(""))
            await pilot.pause()
            burst(app, data)
            await pilot.pause(0.3)
            text = box.value if widget == "attention" else box.text
            assert text == expected, f"attempt {attempt}"


@pytest.mark.parametrize("chunks", [1, 3, 7])
def test_a_paste_holding_esc_is_one_paste_event(chunks):
    parser = WholePasteParser()
    data = "a" + PASTE_START + HOSTILE_PASTE + PASTE_END + "b"
    size = -(-len(data) // chunks)
    events = [e for start in range(0, len(data), size) for e in parser.feed(data[start:start + size])]
    assert [(type(e).__name__, getattr(e, "key", None) or getattr(e, "text", None)) for e in events] == [
        ("Key", "a"), ("Paste", HOSTILE_PASTE), ("Key", "b")]


def test_the_drivers_read_with_the_paste_parser():
    from textual.drivers import web_driver

    assert linux_driver.XTermParser is WholePasteParser and web_driver.XTermParser is WholePasteParser


@pytest.mark.parametrize("pane_id", ["generate", "tokenizer"])
async def test_a_pasted_esc_keeps_the_text_in_order(tiny_lm, pane_id):
    """Bug 5: the part after the ESC came first, and the ESC was shown as '^'."""
    app = make_app(tiny_lm, pane=pane_id, prompt="")
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        editor = app.current_pane.editor
        editor.focus()
        await pilot.pause()
        assert await typed(pilot, editor, "x" + PASTE_START + HOSTILE_PASTE + PASTE_END + "y", chunks=3) == \
            "x" + HOSTILE_PASTE + "y"
