"""The app's one rule for text boxes: Escape leaves one, ctrl+l goes back in, digits switch panes only outside.

A text box takes every printable key (a 1 is typed, not a pane switch), so a user needs a
key out that works in every pane: Escape moves to the pane's main widget (in Generate, while
tokens stream, it first stops them, as it always did). alt+1…6 switch panes from anywhere;
the status line says which of these apply where the focus is.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import Input, TextArea


def is_text_box(widget: Widget | None) -> bool:
    """Whether keys typed into `widget` become text."""
    return isinstance(widget, (TextArea, Input))


class LeavesOnEscape:
    """A text box mixin, listed first, whose class adds LEAVE_BINDINGS to its own: Escape focuses the pane's main widget.

    Not a Widget: Textual takes a widget's CSS type from its first Widget base, which stays TextArea or Input.
    Outside a pane (a dialog's input) the binding is inactive, so Escape goes on to the dialog.
    """

    LEAVE_BINDINGS = [Binding("escape", "leave_text", "Leave the text", show=False)]

    def _pane(self: Widget):  # -> Pane | None (the panes import the widgets: no import at the top)
        from llmtui.app.panes.base import Pane

        return next((node for node in self.ancestors if isinstance(node, Pane)), None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "leave_text":
            return self._pane() is not None
        return super().check_action(action, parameters)  # type: ignore[misc]

    def action_leave_text(self) -> None:
        pane = self._pane()
        if pane is not None:
            pane.leave_text()
