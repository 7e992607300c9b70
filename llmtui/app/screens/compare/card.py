"""What both Compare screens share (a local model's, screen.py, and a served model's, served_screen.py): the
layout's sizes, the two keys, and the plumbing of B's box, the table and the message line. Each screen
composes the same ids (#cmp-a, #cmp-b, #cmp-b-head, #cmp-table, #cmp-tops, #cmp-summary, #cmp-message)
and says how a run goes and what the selected position's candidates look like (`action_run`, `_show_tops`).
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.binding import Binding
from textual.widgets import DataTable, Input, Static

from llmtui.app.screens.whole_screen import WholeScreenCard


class CompareCard(WholeScreenCard[None]):
    DEFAULT_CSS = """
    CompareCard {
        & #cmp-b { height: 3; }
        & #cmp-table { height: 1fr; min-height: 4; }
        & #cmp-tops { height: auto; max-height: 35%; }
        & #cmp-a, & #cmp-b-head, & #cmp-summary, & #cmp-message, & #cmp-legend { height: auto; }
        & #cmp-legend { color: $text-muted; }
    }
    """
    BINDINGS = [
        Binding("ctrl+o", "toggle_mode", "Mode", priority=True, tooltip="Same text (B read on A's tokens) or free"),
        Binding("f5", "run", "Compare", priority=True, tooltip="Compare again with B's words as typed"),
    ]

    def on_mount(self) -> None:
        self.query_one("#cmp-table", DataTable).focus()
        self.action_run()

    def action_run(self) -> None:
        raise NotImplementedError

    def _show_tops(self, index: int) -> None:
        raise NotImplementedError

    def _say(self, text: str) -> None:
        self.query_one("#cmp-message", Static).update(Text(text))

    @on(Input.Submitted, "#cmp-b")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_run()

    @on(DataTable.RowHighlighted, "#cmp-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_tops(event.cursor_row)
