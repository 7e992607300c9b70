"""The Attention pane: which earlier tokens each token looks at, for every layer and head.

A prompt is run once, on the model thread, with its attention captured (every layer and
head at once); moving to another layer or head then only redraws. The heatmap's rows
are the tokens that look (queries), its columns the tokens looked at (keys); the
blank upper triangle is the causal mask. An overview draws every head of a layer (or
of the model) small, each labelled with the pattern it follows most, and the side
panel lists what the selected token attends to, strongest first.

The pane class is assembled from parts, each in its own module: `capture.py` (running the model
over a text, in a worker) and `navigation.py` (layer, head, mean and overviews; the nav line);
`maps.py` is the widget that draws the captured weights, `view.py` what it draws.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Input, Static

from llmtui.app.panes.attention import view
from llmtui.app.panes.attention.capture import CapturePart
from llmtui.app.panes.attention.maps import AttentionMaps
from llmtui.app.panes.attention.navigation import NavigationPart
from llmtui.app.panes.base import Debounce, Pane
from llmtui.app.widgets.head_overview import HeadOverview
from llmtui.app.widgets.heatmap import Heatmap
from llmtui.app.widgets.loading import LoadingNotice
from llmtui.app.widgets.safe_input import SafeInput
from llmtui.app.widgets.weight_bars import WeightBars

if TYPE_CHECKING:
    from llmtui.engine.lm import LanguageModel
    from llmtui.engine.studies.attention import AttentionMap

TYPING_DELAY = 0.5
"""Seconds after the last key press in the prompt before its attention is computed."""


class AttentionPane(CapturePart, NavigationPart, Pane):
    """A prompt's attention weights: a heatmap per layer and head, overviews, and what a token attends to."""

    PANE_ID = "attention"
    MESSAGE_LINE = "#att-message"
    TITLE = "Attention"
    SHORT_TITLE = "Attn"
    HELP = view.HELP

    BINDINGS = [
        # the nav line shows these four keys next to its arrows: the footer keeps its room for the others
        Binding("left_square_bracket", "layer(-1)", "Previous layer", key_display="[", show=False),
        Binding("right_square_bracket", "layer(1)", "Next layer", key_display="]", show=False),
        Binding("comma", "head(-1)", "Previous head", key_display=",", show=False),
        Binding("full_stop", "head(1)", "Next head", key_display=".", show=False),
        Binding("a", "toggle_average", "Average", tooltip="The mean of the layer's heads, or one head"),
        Binding("o", "overview('layer')", "Heads", tooltip="Every head of this layer, small"),
        Binding("O", "overview('all')", "All layers", tooltip="Every head of every layer, small"),
        Binding("g", "from_generate", "From Generate", tooltip="The Generate pane's text: prompt and generated tokens"),
        Binding("escape", "back", "", show=False, tooltip="From an overview back to the map"),
    ]

    def help_keys(self) -> list[tuple[str, str]]:
        """The pane's keys as they are typed ('[' rather than its key name), then the map's and the overview's."""
        return [(b.key_display or b.key, b.description) for b in self._bindings_for_help() if b.description] \
            + view.MORE_KEYS

    def __init__(self) -> None:
        super().__init__()
        self.showing = view.Showing()
        """The layer and head shown (or the layer's mean), on the map or in an overview."""
        self.source = ""
        """What the shown text is: 'your prompt', "the Generate pane's text"."""
        self.capture_seconds: float | None = None
        """How long the last capture took (model run included)."""
        self._pending_row: int | None = None  # the query row to select when the capture lands (a followed token)
        self._typing = Debounce(self, TYPING_DELAY, lambda: self.capture_text(self.prompt.value))
        self._focus_map = False  # move the focus to the map when the capture lands (enter was pressed)
        self._cursor_at: tuple[tuple[int, ...] | None, int] = (None, -1)  # (text, row) at the last cursor move
        self._request = 0  # the captures asked for, counted: the newest one's partial map alone is shown

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield LoadingNotice(classes="pane-notice")
        with Horizontal(id="att-top"):
            yield Static("Prompt ›", id="att-prompt-label")
            yield SafeInput(id="att-prompt", placeholder="Type a prompt and press enter to see its attention")
        yield Static(id="att-nav")
        yield Static(id="att-message")
        yield AttentionMaps(id="att-main")

    def on_mount(self) -> None:
        self._update_nav()

    @property
    def prompt(self) -> Input:
        return self.query_one("#att-prompt", Input)

    @property
    def maps(self) -> AttentionMaps:
        return self.query_one(AttentionMaps)

    @property
    def heatmap(self) -> Heatmap:
        return self.maps.heatmap

    @property
    def overview(self) -> HeadOverview:
        return self.maps.overview

    @property
    def bars(self) -> WeightBars:
        return self.maps.bars

    @property
    def attention(self) -> AttentionMap | None:
        """The shown text's attention (None before the first capture)."""
        return self.maps.attention

    @property
    def labels(self) -> tuple[str, ...]:
        return self.maps.labels

    @property
    def layer_index(self) -> int:
        return self.showing.layer

    @property
    def head_index(self) -> int:
        return self.showing.head

    @property
    def average(self) -> bool:
        """Whether the map shows the mean of the layer's heads instead of one head."""
        return self.showing.average

    @property
    def view(self) -> view.View:
        return self.showing.view

    @property
    def shown_weights(self) -> np.ndarray:
        """The (T, T) weights on the map now: one head's, or the layer's mean."""
        return self.heatmap.values

    def focus_default(self) -> None:
        if self.attention is None:
            self.prompt.focus()
        elif self.view == "map":
            self.heatmap.focus()
        else:
            self.overview.focus()

    def set_prompt(self, text: str) -> None:
        self.prompt.value = text
        self.prompt.cursor_position = len(text)

    # -- the model -------------------------------------------------------------------------

    def model_ready(self, lm: LanguageModel) -> None:
        c = lm.config
        self.showing = self.showing.within(c.n_layer, c.n_head)
        self._update_nav()
        if self.prompt.value.strip():
            self._focus_map = self.app.focused is self.prompt  # a prompt from the command line: ready to explore
            self.capture_text(self.prompt.value)
        else:
            self.say(f"Ready · {c.n_layer} layers × {c.n_head} heads · type a prompt and press enter")

    # -- the nav line (its keys and moves are in navigation.py) --------------------------------

    @on(events.Click, "#att-nav")
    async def _nav_clicked(self, event: events.Click) -> None:
        action = event.style.meta.get("nav")
        if action:
            event.stop()
            await self.run_action(action)

    # -- widgets' messages (here: Textual registers @on handlers on widget classes only) ----

    @on(Heatmap.CursorMoved, "#att-map")
    def _cursor_moved(self, event: Heatmap.CursorMoved) -> None:
        event.stop()
        self.maps.update_side(self.showing)
        if (event.row, event.col) == self.heatmap.cursor:  # else a stale move, on a text shown before this one
            self._post_selection(event.row)

    @on(HeadOverview.Highlighted, "#att-overview")
    def _head_highlighted(self, event: HeadOverview.Highlighted) -> None:
        event.stop()
        self.maps.update_side(self.showing)

    @on(HeadOverview.Opened, "#att-overview")
    def _head_opened(self, event: HeadOverview.Opened) -> None:
        event.stop()
        self._open_head(event)

    @on(Input.Submitted, "#att-prompt")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._focus_map = True
        self.capture_text(event.value)

    @on(Input.Changed, "#att-prompt")
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        if self.lm is None:
            return
        self._typing.cancel()
        if event.value.strip():
            self._typing.restart()

    # -- export ----------------------------------------------------------------------------

    def export_data(self) -> dict | None:
        """The map shown: its tokens and its weights (row i: how much token i attends to each token)."""
        if self.attention is None:
            return None
        s = self.showing
        return view.export_data(self.attention, self.labels, self.source, s.layer, s.head, s.average, self.shown_weights)

    def export_table(self) -> tuple[list[str], list[list]] | None:
        return None if self.attention is None else view.export_table(self.labels, self.shown_weights)
