"""The prompt editor: a TextArea whose F-keys are left to the pane (F6 steps, F7 goes on), drawing controls safely.

Textual's TextArea draws a line's characters as they are, so pasted text holding ESC [ 31 m
would reach the terminal as a colour change. Here each C0 control (but tab) and DEL is drawn
as its Unicode control picture (ESC as ␛), while the text itself keeps the real character:
what the user typed is what gets tokenized.
"""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import TextArea

from llmtui.engine.text import BIDI_CONTROLS

_PANE_KEYS = {"f5", "f6", "f7"}

_PICTURES = {code: 0x2400 + code for code in range(0x20) if code != 0x09} | {0x7F: 0x2421}
# C1 controls (U+0080..U+009F) and the bidirectional controls, which can reorder what a terminal
# shows, have no pictures: a replacement character shows where one is. (Zero-width joiners stay:
# they hold emoji sequences together.) So does a lone surrogate, which a str may hold but a
# terminal's UTF-8 output cannot: written as it is, it would make the app's output fail.
_PICTURES |= {code: 0xFFFD for code in [*range(0x80, 0xA0), *map(ord, BIDI_CONTROLS), *range(0xD800, 0xE000)]}


def control_pictures(text: str) -> str:
    """Text with controls drawn as symbols ('a\\x1b[0m' -> 'a␛[0m'); tabs stay, the length is unchanged."""
    return text.translate(_PICTURES)


class PromptEditor(TextArea, inherit_bindings=False):
    """A soft-wrapped TextArea for prompts; tab moves focus on, F5-F7 belong to the Generate pane.

    Its lines show control characters as symbols (␛, ␀, ␡); the document keeps the real ones.
    """

    BINDINGS = [
        b for b in TextArea.BINDINGS
        if isinstance(b, Binding) and not set(b.key.split(",")) & _PANE_KEYS
    ]

    def get_line(self, line_index: int) -> Text:
        # Not TextArea.get_line: rich's Text drops some controls (BEL, backspace, CR) on the way in.
        # The cursor is placed by the document's widths, where a control takes no cell and a
        # picture takes one, so on a line holding one the cursor may sit a cell early: rare, and
        # far better than letting the terminal obey the control.
        return Text(control_pictures(self.document.get_line(line_index)), end="", no_wrap=True)
