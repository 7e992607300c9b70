"""A one-line Input that draws control characters as symbols, keeping the real ones in its value.

Textual's Input draws its value as it is, so a pasted ESC [ 2 J would reach the terminal and
clear it, and a bidi override would reorder the line. Here the value (what the pane reads) is
exactly what was typed; only what is drawn goes through `control_pictures`, which keeps the
length, so the cursor and the selection stay on the right characters.

Textual's Input also draws its whole value on every frame (its cursor blinks twice a second):
about 2 s per frame for a 1 MB paste. A long value is drawn here only around the view, from the
cell widths measured once per value.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate

from rich.cells import cell_len, get_character_cell_size
from rich.text import Text
from textual.expand_tabs import expand_tabs_inline
from textual.strip import Strip
from textual.widgets import Input

from llmtui.app.widgets.prompt_editor import control_pictures
from llmtui.app.textual_workarounds import KeysInOrder
from llmtui.app.widgets.text_box import LeavesOnEscape

LONG = 2_000
"""Values longer than this (in characters) are drawn only around the view."""


class SafeDrawing(Input):
    """Input's drawing, with controls drawn as symbols (␛, ␀, ␡, or � for C1, bidi and lone surrogates).

    A base for any Input subclass (the command palette's input too): list it after that class, whose own
    methods do not draw (Textual's CSS type names follow the first base).
    """

    _measured: tuple[str, str, list[int]] | None = None

    def _measure(self) -> tuple[str, list[int]]:
        """The drawn text and its cell ends (ends[i]: cells of drawn[:i + 1]), kept until the value changes."""
        value = self.value
        if self._measured is None or self._measured[0] is not value:
            drawn = control_pictures(value)
            self._measured = (value, drawn, list(accumulate(map(get_character_cell_size, drawn))))
        return self._measured[1], self._measured[2]

    def _is_long(self) -> bool:
        return len(self.value) > LONG and not self.password

    @property
    def _value(self) -> Text:
        if self.password:
            return super()._value
        text = Text(control_pictures(self.value), no_wrap=True, overflow="ignore", end="")
        if self.highlighter is not None:
            text = self.highlighter(text)
        return text

    @property
    def content_width(self) -> int:
        if not self._is_long():
            return super().content_width
        return self._measure()[1][-1] + 1

    def _position_to_cell(self, position: int) -> int:
        # The drawn widths (a picture takes a cell; the control it stands for takes none).
        if self._is_long():
            ends = self._measure()[1]
            return ends[position - 1] if position > 0 else 0
        return cell_len(expand_tabs_inline(control_pictures(self.value[:position]), 4))

    def _cell_offset_to_index(self, offset: int) -> int:
        # Input's own, over the drawn characters: a click lands on the character drawn there.
        offset += self.scroll_offset.x
        if self._is_long():
            ends = self._measure()[1]
            return min(bisect_right(ends, max(0, offset)), len(self.value))
        cell_offset = 0
        for index, char in enumerate(control_pictures(self.value)):
            width = get_character_cell_size(char)
            if cell_offset <= offset < cell_offset + width:
                return index
            cell_offset += width
        return max(0, min(offset, len(self.value)))

    def render_line(self, y: int) -> Strip:
        if y != 0 or not self._is_long():
            return super().render_line(y)
        drawn, ends = self._measure()
        width = self.scrollable_content_region.width
        scroll_x = self.scroll_offset.x
        start = bisect_right(ends, scroll_x)  # the first character not wholly left of the view
        end = min(len(drawn), bisect_right(ends, scroll_x + width + 1) + 1)
        skipped = ends[start - 1] if start > 0 else 0  # cells left of `start`
        text = Text(drawn[start:end], no_wrap=True, overflow="ignore", end="")
        if self.has_focus:
            if not self.selection.is_empty:
                low, high = sorted(self.selection)
                text.stylize_before(self.get_component_rich_style("input--selection"), low - start, high - start)
            if self._cursor_visible:
                cursor = self.cursor_position - start
                if self.cursor_at_end:
                    text.pad_right(1)
                text.stylize(self.get_component_rich_style("input--cursor"), cursor, cursor + 1)
        console = self.app.console
        segments = list(console.render(text, self.app.console_options.update_width(text.cell_len + 1)))
        strip = Strip(segments).crop(scroll_x - skipped, scroll_x - skipped + width + 1)
        return strip.extend_cell_length(width + 1).apply_style(self.rich_style)


class SafeInput(LeavesOnEscape, KeysInOrder, SafeDrawing):
    """An Input whose controls are drawn as symbols; its value keeps them. Escape leaves it for the pane."""

    BINDINGS = LeavesOnEscape.LEAVE_BINDINGS
