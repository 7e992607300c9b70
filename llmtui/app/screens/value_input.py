"""A small prompt for an exact knob value (say a seed of 42), validated before it is taken."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from llmtui.app.screens.live_hits import LiveHits
from llmtui.app.widgets.safe_input import SafeInput


class ValueInputScreen(LiveHits, ModalScreen["tuple[Any] | None"]):
    """Asks for one value; `check` turns the text into a value or raises ValueError with the reason.

    Dismissed with `(value,)`, or None when cancelled (a value may itself be None: a random seed).
    """

    DEFAULT_CSS = """
    ValueInputScreen {
        align: center middle;
        & > Vertical {
            width: 50;
            max-width: 100%;
            height: auto;
            border: round $accent;
            background: $panel;
            padding: 0 1;
        }
        & #value-error { color: $text-error; height: auto; }
    }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, label: str, current: str, check: Callable[[str], Any], help_text: str = "") -> None:
        super().__init__()
        self.label = label
        self.current = current
        self.check = check
        self.help_text = help_text

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = f"Set {self.label}"
            box.border_subtitle = "enter to set · esc to cancel"
            if self.help_text:
                yield Static(Text(self.help_text))
            yield SafeInput(value=self.current, id="value-input", select_on_focus=True)
            yield Static("", id="value-error")

    @on(Input.Submitted)
    def _submit(self, event: Input.Submitted) -> None:
        if self.app.screen is not self:
            return  # a second enter queued before the box closed: dismissing again would pop another screen
        try:
            value = self.check(event.value)
        except (ValueError, TypeError) as e:
            self.query_one("#value-error", Static).update(Text(str(e) or "not a valid value"))
            return
        self.dismiss((value,))

    def action_cancel(self) -> None:
        if self.app.screen is self:
            self.dismiss(None)
