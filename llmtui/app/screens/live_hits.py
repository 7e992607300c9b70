"""Screens whose mouse hits land only on widgets still in the app (a fix for a race of Textual's)."""

from __future__ import annotations

from textual.geometry import Offset
from textual.screen import Screen
from textual.widget import Widget


class LiveHits:
    """A Screen mixin: the widget under the mouse is one still in the app, or none.

    Textual's compositor keeps a removed widget in its map until the next layout
    (Textualize/textual#6643). A mouse press there, on a paragraph that Textual's own
    Markdown (the key panel's help) or one of our panes had just replaced, started a
    text selection from the detached widget's parent, None (AttributeError: the app
    stopped). A stale hit is no hit: the press selects nothing.
    """

    def get_widget_and_offset_at(self, x: int, y: int) -> tuple[Widget | None, Offset | None]:
        widget, offset = super().get_widget_and_offset_at(x, y)  # type: ignore[misc]
        if widget is not None and not isinstance(widget, Screen) and not widget.is_attached:
            return None, None
        return widget, offset


class MainScreen(LiveHits, Screen[None]):
    """The app's own screen, under the panes."""

