"""A modal screen that takes the whole terminal in one bordered box (Compare, Branches, the chat's turns)."""

from __future__ import annotations

from textual.binding import Binding
from textual.screen import ModalScreen, ScreenResultType


class WholeScreenCard(ModalScreen[ScreenResultType]):
    """A `Vertical` box filling the screen; escape closes it with None. Subclasses yield the box in compose."""

    DEFAULT_CSS = """
    WholeScreenCard {
        align: center middle;
        & > Vertical { width: 100%; height: 100%; border: round $accent; background: $panel; padding: 0 1; }
    }
    """
    BINDINGS = [Binding("escape", "close", "Back")]

    def action_close(self) -> None:
        if self.app.screen is self:  # a second escape queued before the screen closed: dismiss pops no other
            self.dismiss(None)
