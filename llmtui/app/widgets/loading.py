"""A pane's notice while the model loads, or the reason it could not be loaded."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from llmtui.app.state import ModelState

WHAT_TO_DO = "Quit with ctrl+q and start again with --model NAME|PATH (llmtui --help lists the options)."


def notice_text(state: ModelState) -> Text:
    """The notice for a model state (plain Text: nothing in it is markup)."""
    if state.phase == "failed":
        text = Text("The model could not be loaded.\n\n", style="bold")
        text.append(str(state.error), style="bold red")
        text.append("\n\n" + WHAT_TO_DO)
        return text
    if state.phase == "ready":
        return Text("")
    return Text(state.describe())


class LoadingNotice(Static):
    """Shows the app's model state; watches it, so a pane just composes one."""

    DEFAULT_CSS = """
    LoadingNotice {
        color: $text-muted;
        padding: 0 1;
        &.-failed { color: $text; }
    }
    """

    def on_mount(self) -> None:
        self.watch(self.app, "model_state", self._show, init=True)

    def _show(self, state: ModelState) -> None:
        self.set_class(state.phase == "failed", "-failed")
        self.display = state.phase != "ready"
        self.update(notice_text(state))
