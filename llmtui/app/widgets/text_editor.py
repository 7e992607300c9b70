"""A text editor that shows control characters as visible symbols instead of sending them to the terminal.

Textual's TextArea draws a line's characters as they are, so pasted text holding ESC [ 31 m
would reach the terminal as a colour change. Here each C0 control (but tab) and DEL is drawn
as its Unicode control picture (ESC as ␛), while the text itself keeps the real character:
what the user typed is what gets tokenized.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.widgets.text_area import Edit, EditResult

from llmtui.app.widgets.prompt_editor import PromptEditor

_PICTURES = {code: 0x2400 + code for code in range(0x20) if code != 0x09} | {0x7F: 0x2421}
# C1 controls (U+0080..U+009F) and the bidirectional controls, which can reorder what a terminal
# shows, have no pictures: a replacement character shows where one is. (Zero-width joiners stay:
# they hold emoji sequences together.)
_BIDI = [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
_PICTURES |= {code: 0xFFFD for code in [*range(0x80, 0xA0), *_BIDI]}


def control_pictures(text: str) -> str:
    """Text with controls drawn as symbols ('a\\x1b[0m' -> 'a␛[0m'); tabs stay, the length is unchanged."""
    return text.translate(_PICTURES)


class TextEditor(PromptEditor):
    """A PromptEditor whose lines show control characters as symbols (␛, ␀, ␡).

    `after_edit`, when set, is called right after each edit, before the screen is next drawn,
    so that what depends on the text can change in the same frame as the text. (The Changed
    message arrives a few hops later, often after a frame that shows the new text with the
    old tokens.)
    """

    after_edit: Callable[[], None] | None = None

    def edit(self, edit: Edit) -> EditResult:
        result = super().edit(edit)
        if self.after_edit is not None:
            self.after_edit()
        return result

    def get_line(self, line_index: int) -> Text:
        # Not TextArea.get_line: rich's Text drops some controls (BEL, backspace, CR) on the way in.
        # The cursor is placed by the document's widths, where a control takes no cell and a
        # picture takes one, so on a line holding one the cursor may sit a cell early: rare, and
        # far better than letting the terminal obey the control.
        return Text(control_pictures(self.document.get_line(line_index)), end="", no_wrap=True)
