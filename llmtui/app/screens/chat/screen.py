"""The chat's turns, one row each: edit a user message and re-run the chat from that turn, or re-run it as it was.

A re-run keeps the turns before the chosen one (and the system prompt) and sends the chosen message
again, edited or not: what came after it is dropped, as `Chat.rerun_from` defines. The screen
edits a copy; the Generate pane runs the result (`ChatRerun`) when the screen closes with one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from llmtui.app.screens.chat.view import COLUMNS, rows, system_line
from llmtui.app.screens.value_input import ValueInputScreen
from llmtui.app.screens.whole_screen import WholeScreenCard
from llmtui.engine.chat import Chat


@dataclass(frozen=True)
class ChatRerun:
    """What to run: the chat before the chosen turn, and the user message to send there."""

    chat: Chat
    text: str


def check_message(text: str) -> str:
    if not text.strip():
        raise ValueError("the message is empty: type what the user says")
    return text


class ChatTurnsScreen(WholeScreenCard["ChatRerun | None"]):
    """Dismissed with a `ChatRerun`, or None when the user goes back without one."""

    DEFAULT_CSS = """
    ChatTurnsScreen {
        & #chat-table { height: 1fr; }
        & #chat-system, & #chat-message { height: auto; }
    }
    """
    BINDINGS = [
        Binding("enter,e", "edit", "Edit and re-run", priority=True),
        Binding("r", "rerun", "Re-run"),
    ]

    def __init__(self, chat: Chat, default_system: str | None, served: bool = False) -> None:
        super().__init__()
        self.chat = chat
        self.default_system = default_system
        self.served = served  # a served model's chat: its template's system prompt is unknown here

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "The chat's turns"
            box.border_subtitle = "enter edit the message and re-run from it · r re-run as it was · esc back"
            yield Static(system_line(self.chat, self.default_system, self.served), id="chat-system")
            table: DataTable[Any] = DataTable(id="chat-table", cursor_type="row", zebra_stripes=True)
            table.add_columns(*COLUMNS)
            for cells in rows(self.chat):
                table.add_row(*cells)
            yield table
            yield Static(Text("No turns yet: in chat mode (ctrl+t), send a message first." if not self.chat.turns
                              else "A re-run drops the chosen turn's reply and every later turn."), id="chat-message")

    def on_mount(self) -> None:
        table = self.query_one("#chat-table", DataTable)
        table.focus()
        table.move_cursor(row=len(self.chat.turns) - 1)  # the last turn: the one most often re-run

    def _selected(self) -> int | None:
        row = self.query_one("#chat-table", DataTable).cursor_row
        return row if 0 <= row < len(self.chat.turns) else None

    def _rerun(self, index: int, text: str | None) -> None:
        if self.app.screen is not self:
            return
        chat = self.chat.copy()
        message = chat.rerun_from(index, text)
        self.dismiss(ChatRerun(chat, message))

    def action_edit(self) -> None:
        index = self._selected()
        if index is None:
            return

        def done(result: tuple[Any] | None) -> None:
            if result is not None:
                self._rerun(index, result[0])

        self.app.push_screen(ValueInputScreen(f"turn {index + 1}'s message", self.chat.turns[index].user,
                                              check_message, "Enter re-runs the chat from this turn."), done)

    def action_rerun(self) -> None:
        index = self._selected()
        if index is not None:
            self._rerun(index, None)

