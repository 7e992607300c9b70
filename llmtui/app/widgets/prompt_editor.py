"""The prompt editor: a TextArea whose F-keys are left to the pane (F6 steps, F7 goes on), drawing controls safely.

Textual's TextArea draws a line's characters as they are, so pasted text holding ESC [ 31 m
would reach the terminal as a colour change. Here each C0 control (but tab) and DEL is drawn
as its Unicode control picture (ESC as ␛), while the text itself keeps the real character:
what the user typed is what gets tokenized.
"""

from __future__ import annotations

import re
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.widgets import TextArea
from textual.widgets.text_area import Edit, EditResult

from llmtui.app.textual_workarounds import KeysInOrder
from llmtui.app.widgets.text_box import LeavesOnEscape
from llmtui.engine.text import BIDI_CONTROLS

_PANE_KEYS = {"f5", "f6", "f7"}

_PICTURES = {code: 0x2400 + code for code in range(0x20) if code != 0x09} | {0x7F: 0x2421}
# C1 controls (U+0080..U+009F) and the bidirectional controls, which can reorder what a terminal
# shows, have no pictures: a replacement character shows where one is. (Zero-width joiners stay:
# they hold emoji sequences together.) So does a lone surrogate, which a str may hold but a
# terminal's UTF-8 output cannot: written as it is, it would make the app's output fail.
_PICTURES |= {code: 0xFFFD for code in [*range(0x80, 0xA0), *map(ord, BIDI_CONTROLS), *range(0xD800, 0xE000)]}


# Every character str.splitlines() breaks at. Textual's document splits lines there but ends a line
# only at \r or \n: a trailing \x0b, \x0c, \x85, U+2028 ... would be dropped, the others become the
# document's newline. So the editor turns them all into "\n" before the document sees them: the one
# change it makes to what is typed or pasted, and nothing is lost.
_LINE_BREAK = re.compile("\r\n|[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def one_newline(text: str) -> str:
    """Text with every line break as '\\n' ('a\\r\\nb\\x0b' -> 'a\\nb\\n')."""
    return _LINE_BREAK.sub("\n", text)


def control_pictures(text: str) -> str:
    """Text with controls drawn as symbols ('a\\x1b[0m' -> 'a␛[0m'); tabs stay, the length is unchanged."""
    return text.translate(_PICTURES)


class PromptEditor(LeavesOnEscape, KeysInOrder, TextArea, inherit_bindings=False):
    """A soft-wrapped TextArea for prompts; tab moves focus on, F5-F7 belong to the Generate pane, Escape leaves.

    Its lines show control characters as symbols (␛, ␀, ␡); the document keeps the real ones. Line
    breaks of every kind are kept as "\\n" (see `one_newline`).
    """

    BINDINGS = [
        *LeavesOnEscape.LEAVE_BINDINGS,
        *(b for b in TextArea.BINDINGS if isinstance(b, Binding) and not set(b.key.split(",")) & _PANE_KEYS),
    ]

    def __init__(self, text: str = "", **kwargs: Any) -> None:
        super().__init__(one_newline(text), **kwargs)

    def load_text(self, text: str) -> None:
        super().load_text(one_newline(text))

    def edit(self, edit: Edit) -> EditResult:
        edit.text = one_newline(edit.text)  # typing, pasting, replacing: every edit passes here
        return super().edit(edit)

    def _recompute_cursor_offset(self) -> None:
        # Textual's undo puts the shorter text back before it moves the cursor back; a scrollbar going
        # away in between asks where the cursor is, on a line that is gone (ValueError stopped the app:
        # Textualize/textual#6686). Only the drawn offset is clamped: the undo restores the cursor next.
        self._cursor_offset = self.wrapped_document.location_to_offset(self.clamp_visitable(self.cursor_location))

    def get_line(self, line_index: int) -> Text:
        # Not TextArea.get_line: rich's Text drops some controls (BEL, backspace, CR) on the way in.
        # The cursor is placed by the document's widths, where a control takes no cell and a
        # picture takes one, so on a line holding one the cursor may sit a cell early: rare, and
        # far better than letting the terminal obey the control.
        return Text(control_pictures(self.document.get_line(line_index)), end="", no_wrap=True)
