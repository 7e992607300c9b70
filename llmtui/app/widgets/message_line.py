"""A one-line message (what the pane is doing, or what went wrong) that redraws without a relayout."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget


class MessageLine(Widget):
    """One line of plain Text; classes -busy and -error colour it. Cheap to update many times a second."""

    DEFAULT_CSS = """
    MessageLine {
        height: 1;
        width: 1fr;
    }
    """

    text: reactive[str] = reactive("")
    """The message (plain text: never parsed as markup)."""

    def update(self, content: Text) -> None:
        """Show `content`'s text (as Static.update, so that `Pane.say` writes either)."""
        self.text = content.plain

    def render(self) -> Text:
        return Text(self.text, no_wrap=True, overflow="ellipsis")
