"""The help of a pane: a few sentences on the concept it shows, and the keys it takes."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from llmtui.app.screens.live_hits import LiveHits


class HelpScreen(LiveHits, ModalScreen[None]):
    """A modal card: the pane's title, its help text and a table of keys. Any of esc, ?, F1, q closes it."""

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
        & > VerticalScroll {
            width: 76;
            max-width: 100%;
            height: auto;
            max-height: 100%;
            border: round $accent;
            background: $panel;
            padding: 0 1;
        }
        & .help-text { margin: 1 0; }
    }
    """

    BINDINGS = [
        Binding("escape,question_mark,f1,q", "dismiss", "Close", show=True),
    ]

    def __init__(self, title: str, help_text: str, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.help_title = title
        self.help_text = help_text
        self.keys = keys

    def compose(self) -> ComposeResult:
        with VerticalScroll() as box:
            box.border_title = self.help_title
            box.border_subtitle = "esc to close"
            yield Static(Text(self.help_text), classes="help-text")
            table = Table.grid(padding=(0, 2))
            table.add_column(style="bold", no_wrap=True)
            table.add_column()
            for key, description in self.keys:
                table.add_row(Text(key), Text(description))
            yield Static(table, classes="help-keys")

    def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
