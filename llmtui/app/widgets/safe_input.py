"""A one-line Input that draws control characters as symbols, keeping the real ones in its value.

Textual's Input draws its value as it is, so a pasted ESC [ 2 J would reach the terminal and
clear it, and a bidi override would reorder the line. Here the value (what the pane reads) is
exactly what was typed; only what is drawn goes through `control_pictures`, which keeps the
length, so the cursor and the selection stay on the right characters.
"""

from __future__ import annotations

from rich.cells import cell_len, get_character_cell_size
from rich.text import Text
from textual.expand_tabs import expand_tabs_inline
from textual.widgets import Input

from llmtui.app.widgets.prompt_editor import control_pictures


class SafeDrawing(Input):
    """Input's drawing, with controls drawn as symbols (␛, ␀, ␡, or � for C1, bidi and lone surrogates).

    A base for any Input subclass (the command palette's input too): list it after that class, whose own
    methods do not draw (Textual's CSS type names follow the first base).
    """

    @property
    def _value(self) -> Text:
        if self.password:
            return super()._value
        text = Text(control_pictures(self.value), no_wrap=True, overflow="ignore", end="")
        if self.highlighter is not None:
            text = self.highlighter(text)
        return text

    def _position_to_cell(self, position: int) -> int:
        # The drawn widths (a picture takes a cell; the control it stands for takes none).
        return cell_len(expand_tabs_inline(control_pictures(self.value[:position]), 4))

    def _cell_offset_to_index(self, offset: int) -> int:
        # Input's own, over the drawn characters: a click lands on the character drawn there.
        cell_offset = 0
        offset += self.scroll_offset.x
        for index, char in enumerate(control_pictures(self.value)):
            width = get_character_cell_size(char)
            if cell_offset <= offset < cell_offset + width:
                return index
            cell_offset += width
        return max(0, min(offset, len(self.value)))


class SafeInput(SafeDrawing):
    """An Input whose controls are drawn as symbols; its value keeps them."""
