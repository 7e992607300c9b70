"""The panes that need a model's weights, on a served model: one line saying so, and o to open a local model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from llmtui.app.messages import LocalModelWanted
from llmtui.app.panes.base import Pane
from llmtui.app.panes.remote.view import needs_weights_line

if TYPE_CHECKING:
    from llmtui.app.state import ModelState


class NeedsWeightsPane(Pane):
    """Stands in for a pane that reads weights; the app swaps the real one in when a local model opens."""

    REAL: type[Pane]
    BINDINGS = [Binding("o", "open_local", "Open a local model", tooltip="Load the default model on this machine")]

    def compose(self) -> ComposeResult:
        yield Static(needs_weights_line(self.TITLE), id="needs-weights", markup=False)

    def focus_default(self) -> None:
        self.focus()

    def focus_main(self) -> None:
        self.focus()

    def model_state_changed(self, state: ModelState) -> None:
        """Its one line stays until the real pane replaces it."""

    def action_open_local(self) -> None:
        self.post_message(LocalModelWanted())  # the app swaps this pane for the real one


def needs_weights(real: type[Pane]) -> type[NeedsWeightsPane]:
    """A stand-in with the real pane's id, tab title and help."""
    return type(f"{real.__name__}NeedsWeights", (NeedsWeightsPane,), {
        "REAL": real, "PANE_ID": real.PANE_ID, "TITLE": real.TITLE, "SHORT_TITLE": real.SHORT_TITLE,
        "HELP": real.HELP, "can_focus": True})
