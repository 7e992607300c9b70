"""Workarounds for Textual bugs that reorder what a user types or pastes; each names its upstream issue.

Remove one when the Textual we pin has the upstream fix.

1. Keys in a burst reorder (Textualize/textual#6605; proposed fix #6631). A text box inserts a
   printable key in its own `_on_key`, but a key it has a binding for (Backspace, arrows, ctrl+k)
   is not handled there: the event bubbles through every ancestor's message queue up to the App,
   which then runs the text box's binding. Keys that arrive together (a fast typist, a terminal
   sending a burst) overtake it: `abc`, Left, `XYZ` became "abcXYZ" instead of "abXYZc".
   `KeysInOrder` runs the widget's own bindings in its `_on_key`, as #6631 does upstream.
2. A bracketed paste holding ESC is cut (seen in Textual 8.2.8's `XTermParser`; no upstream
   issue yet). Inside a paste an ESC still starts an escape sequence: the text after it comes
   out at once as key presses (ESC as "^") and the paste's text before it only at the end, so
   `a\\x1b[31mb` pasted arrived as "^[31mb" typed, then "a" pasted. `WholePasteParser` takes
   everything between the paste's start and end markers as the paste's text, as it is.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual import events
from textual._xterm_parser import XTermParser
from textual.message import Message
from textual.widget import Widget

PASTE_START = "\x1b[200~"
PASTE_END = "\x1b[201~"


class KeysInOrder:
    """A text box mixin, listed before the Textual widget: its own bindings run as its key arrives (#6605).

    Textual's App would run the same binding, in the same namespace, once the key had bubbled
    up to it; priority bindings were checked before the key reached the widget, so only the
    moment changes, not what runs.
    """

    async def _on_key(self: Widget, event: events.Key) -> None:  # type: ignore[misc]
        for binding in self._bindings.key_to_bindings.get(event.key, ()):
            if not binding.priority and await self.app.run_action(binding.action, self):
                event.stop()
                event.prevent_default()  # the widget's own `_on_key` would not insert it anyway
                return


class WholePasteParser(XTermParser):
    """Textual's terminal parser, except that a bracketed paste becomes one Paste event holding all its text.

    The paste's text is kept exactly (controls included; the widgets draw them as symbols), but
    NUL, which Textual drops from pastes too (Textualize/textual#1661). A paste may span many
    reads; an end marker split between two reads is still found.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._paste: list[str] | None = None  # the text of a paste still arriving
        self._held = ""  # the end of the last read, which may hold the start of the end marker

    def feed(self, data: str) -> Iterable[Message]:
        if not data:
            return super().feed(data)  # end of input
        out: list[Message] = []
        while data:
            if self._paste is None:
                start = data.find(PASTE_START)
                if start < 0:
                    out.extend(super().feed(data))
                    break
                if start:
                    out.extend(super().feed(data[:start]))
                self._paste, self._held, data = [], "", data[start + len(PASTE_START):]
                continue
            window = self._held + data
            end = window.find(PASTE_END)
            if end < 0:
                keep = len(window) - (len(PASTE_END) - 1)
                self._paste.append(window[:max(keep, 0)])
                self._held = window[max(keep, 0):]
                break
            self._paste.append(window[:end])
            out.append(events.Paste("".join(self._paste).replace("\x00", "")))
            self._paste, self._held, data = None, "", window[end + len(PASTE_END):]
        return out


def install() -> None:
    """Make Textual's terminal and browser drivers read input with `WholePasteParser` (once, at import of the app)."""
    from textual.drivers import linux_driver, web_driver

    linux_driver.XTermParser = WholePasteParser  # type: ignore[misc]
    web_driver.XTermParser = WholePasteParser  # type: ignore[misc]


__all__ = ["KeysInOrder", "WholePasteParser", "install"]
