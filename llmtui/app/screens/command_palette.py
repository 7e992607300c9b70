"""Textual's command palette, made to close at most once."""

from __future__ import annotations

from textual.await_complete import AwaitComplete
from textual.command import CommandPalette as TextualCommandPalette


class CommandPalette(TextualCommandPalette):
    """The palette (ctrl+p). Textual's may handle a choice that was queued before escape closed it
    (enter then escape, fast) and dismiss itself a second time, which pops the app's last screen
    (ScreenStackError). Once closed, this one ignores further closes."""

    def dismiss(self, result: object = None) -> AwaitComplete:
        if self.app.screen is not self:
            return AwaitComplete.nothing()
        return super().dismiss(result)
