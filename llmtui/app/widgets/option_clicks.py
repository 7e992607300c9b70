"""A guard for Textual's OptionList against clicks on rows drawn before its options changed."""

from __future__ import annotations

from textual import events
from textual.widgets import OptionList


class FreshOptionClicks(OptionList):
    """An OptionList in which a click on a row that is gone chooses nothing.

    A click carries the option index drawn under the mouse in the last frame. When the
    options changed since (the palette's results narrowed as the user typed, the nearest
    neighbours were recomputed), Textual's OptionList looked that index up in the new,
    shorter list: IndexError stopped the app. Found by the soak test (seeds 1 and 8).
    """

    async def _on_click(self, event: events.Click) -> None:
        option = event.style.meta.get("option")
        if option is not None and not 0 <= option < self.option_count:
            event.prevent_default()  # Textual calls each class's handler; this stops OptionList's
