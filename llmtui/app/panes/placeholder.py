"""A pane still to be built: it says what it will show (and 'loading' until the model is ready)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from llmtui.app.panes.base import Pane
from llmtui.app.widgets.loading import LoadingNotice


class PlaceholderPane(Pane):
    """A pane whose content is another issue; subclasses set COMING (what it will show)."""

    COMING: ClassVar[str]

    def compose(self) -> ComposeResult:
        yield LoadingNotice(classes="pane-notice")
        yield Static(Text(self.COMING), classes="placeholder-text")
