"""The Attention pane's maps: the heatmap or an overview of heads, beside what the selected token attends to.

It holds the captured weights and draws them for a `Showing` (layer, head, mean, view);
moving to another layer or head only redraws (no model run).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import ContentSwitcher

from llmtui.app.panes.attention import view
from llmtui.app.panes.attention.view import Showing
from llmtui.app.widgets.head_overview import HeadOverview
from llmtui.app.widgets.heatmap import Heatmap
from llmtui.app.widgets.weight_bars import WeightBars

if TYPE_CHECKING:
    from llmtui.engine.studies.attention import AttentionMap


class AttentionMaps(Horizontal):
    """The map or an overview (switched), and the side panel."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.attention: AttentionMap | None = None
        """The shown text's attention (None before the first capture)."""
        self.labels: tuple[str, ...] = ()
        self._mask = np.zeros((0, 0), dtype=bool)
        self._overview_key: tuple[str, int, int] | None = None  # what the overview shows, to skip rebuilding it

    def compose(self) -> ComposeResult:
        with ContentSwitcher(id="att-views", initial="att-map"):
            yield Heatmap(id="att-map", pool="mass", row_title="query", col_title="key",
                          mask_note="blank: can't look ahead", empty_text="Type a prompt above and press enter.")
            yield HeadOverview(id="att-overview", pool="mass")
        with VerticalScroll(id="att-side"):
            yield WeightBars(id="att-bars")

    @property
    def heatmap(self) -> Heatmap:
        return self.query_one("#att-map", Heatmap)

    @property
    def overview(self) -> HeadOverview:
        return self.query_one("#att-overview", HeadOverview)

    @property
    def bars(self) -> WeightBars:
        return self.query_one("#att-bars", WeightBars)

    def matrix(self, showing: Showing) -> np.ndarray:
        """The (T, T) weights of the head shown, or the layer's mean."""
        assert self.attention is not None
        return self.attention.matrix(showing.layer, None if showing.average else showing.head).numpy()

    def show(self, attention: AttentionMap, labels: tuple[str, ...], showing: Showing, row: int | None) -> int:
        """A new capture: the map opens on `row` (default: the last) at what it looks at most. Returns the row."""
        self.attention, self.labels = attention, labels
        T = attention.n_tokens
        self._mask = np.triu(np.ones((T, T), dtype=bool), 1)
        self._overview_key = None
        values = self.matrix(showing)
        row = row if row is not None and row < T else T - 1
        self.heatmap.set_matrix(values, labels, labels, self._mask, cursor=(row, int(np.argmax(values[row]))))
        if showing.view != "map":
            self.show_overview(showing)
        self.update_side(showing)
        return row

    def complete(self, attention: AttentionMap, showing: Showing) -> None:
        """The whole map of the text a partial map showed: the other layers now; the cursor stays put."""
        self.attention = attention
        self._overview_key = None
        self.redraw(showing)

    def clear(self, error: str) -> None:
        """No weights (a failed capture): the map says why, so that it never shows another text's attention."""
        self.attention, self.labels = None, ()
        self.heatmap.clear(error)
        self.overview.clear()
        self._overview_key = None
        self.bars.show(Text(""), [])

    def redraw(self, showing: Showing) -> bool:
        """The layer, head or mode changed: redraw from the captured weights. False for a layer whose block
        is still running (a partial map): it is drawn when the whole map lands."""
        if self.attention is not None and showing.layer >= self.attention.ready:
            return False
        if self.attention is not None:
            self.heatmap.set_values(self.matrix(showing), self._mask)
            if showing.view != "map":
                self.show_overview(showing)
        self.update_side(showing)
        return True

    def switch(self, showing: Showing) -> None:
        """Show the map or an overview, as `showing.view` says, and focus it."""
        switcher = self.query_one("#att-views", ContentSwitcher)
        if showing.view == "map":
            switcher.current = "att-map"
            self.redraw(showing)
            self.heatmap.focus()
        else:
            self.show_overview(showing)
            switcher.current = "att-overview"
            self.update_side(showing)
            self.overview.focus()

    def update_side(self, showing: Showing) -> None:
        """The side panel: what the selected token attends to, and the head's pattern scores."""
        attention = self.attention
        if attention is None:
            self.bars.show(Text("Select a cell of the map: what its token attends to shows here.", style="dim"), [])
            return
        layer, head = showing.overview_head(self.overview.cursor, attention.n_head)
        use_mean = showing.average and showing.view == "map"
        row, col = self.heatmap.cursor
        heading, rows, note = view.side_panel(attention, self.labels, layer, head, use_mean, row, col)
        self.bars.show(heading, rows, note, highlight=col)

    def show_overview(self, showing: Showing) -> None:
        """Every head of the layer (or of the model) small; rebuilt only when the layer, view or capture changed."""
        attention = self.attention
        if attention is None:
            self.overview.clear()
            return
        key = (showing.view, showing.layer if showing.view == "layer" else -1, id(attention))
        cursor = showing.overview_cursor(attention.n_head)
        if key == self._overview_key:
            if self.overview.cursor != cursor:
                self.overview.cursor = cursor
            return
        self._overview_key = key
        layers = [showing.layer] if showing.view == "layer" else list(range(attention.n_layer))
        titles, notes = view.thumbnails(attention, layers, showing.view == "layer")
        T = attention.n_tokens
        if showing.view == "layer":
            stack = attention.weights[showing.layer].numpy()  # (n_head, T, T): a view, no copy
            self.overview.set_thumbs(stack, titles, notes, self._mask, cursor=cursor)
        else:
            stack = attention.weights.reshape(-1, T, T).numpy()  # every head of every layer, a view
            self.overview.set_thumbs(stack, titles, notes, self._mask, columns=attention.n_head,
                                     row_labels=[f"L{n}" for n in layers], cursor=cursor)

    @on(WeightBars.Chosen, "#att-bars")
    def _key_chosen(self, event: WeightBars.Chosen) -> None:
        event.stop()
        row, _ = self.heatmap.cursor
        self.heatmap.select(row, event.index)
