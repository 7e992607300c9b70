"""Textual's command palette, made robust to keys that come faster than it redraws."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.await_complete import AwaitComplete
from textual.binding import Binding, BindingType
from textual.command import CommandInput, CommandList
from textual.command import CommandPalette as TextualCommandPalette
from textual.worker import Worker

from llmtui.app.screens.live_hits import LiveHits
from llmtui.app.widgets.option_clicks import FreshOptionClicks
from llmtui.app.widgets.safe_input import SafeDrawing


class SafeCommandInput(CommandInput, SafeDrawing):
    """The palette's search field, drawing a pasted ESC or bidi control as a symbol (Textual's drew it raw).

    CommandInput comes first: Textual's CSS type names (and `query_one(CommandInput)`) follow the first base.
    """


class SafeCommandList(CommandList, FreshOptionClicks):
    """The palette's results, where a click on a result that is gone chooses nothing (FreshOptionClicks).

    CommandList comes first, for Textual's CSS type names and `query_one(CommandList)`.
    """


class CommandPalette(LiveHits, TextualCommandPalette):
    """The palette (ctrl+p), its search field drawn safely (SafeCommandInput), with races of Textual's fixed:

    - a choice queued before escape closed it (enter then escape, fast) made it dismiss itself a
      second time, popping the app's last screen (ScreenStackError): once closed, it ignores closes;
    - a page key between the results showing and their first layout raised KeyError in the list
      (its lines are only measured once it has a size): the key waits for the layout;
    - closed within half a second of a search, its "No matches found" or "busy" timer, a search still
      running, or one started by typing it handled after escape could reach the list while the palette
      was being removed (NoMatches): closing stops the timers and the search, and a closed palette
      starts no search.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("pagedown", "page_commands(1)", "Next page", show=False),
        Binding("pageup", "page_commands(-1)", "Previous page", show=False),
    ]

    def compose(self) -> ComposeResult:
        for widget in super().compose():
            if type(widget) is CommandInput:
                widget = SafeCommandInput(placeholder=widget.placeholder, select_on_focus=False)
            elif type(widget) is CommandList:
                widget = SafeCommandList()
            yield widget

    _dismissed = False  # not `_closing`: Textual's message pump has one

    def dismiss(self, result: object = None) -> AwaitComplete:
        if self._dismissed or self.app.screen is not self:
            return AwaitComplete.nothing()
        # What follows would look for the list while the closing palette removes it.
        self._dismissed = True
        self._cancel_gather_commands()
        self._stop_no_matches_countdown()
        self._stop_busy_countdown()
        return super().dismiss(result)

    def _gather_commands(self, search_value: str) -> Worker[None] | None:  # type: ignore[override]
        """Start a search (Textual's worker), unless the palette is closing: typing handled after escape."""
        if self._dismissed:
            return None
        return super()._gather_commands(search_value)

    def action_page_commands(self, direction: int, waited: bool = False) -> None:
        """Move the highlight a page down (1) or up (-1)."""
        commands = self.query_one(CommandList)
        if commands.highlighted is not None and not commands.scrollable_content_region:
            if not waited:
                self.call_after_refresh(self.action_page_commands, direction, True)
            return
        if direction > 0:
            commands.action_page_down()
        else:
            commands.action_page_up()
