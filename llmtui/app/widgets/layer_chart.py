"""A bar chart of one number per layer (a cosine similarity), with a baseline and a selected layer.

Each column is a layer (0: the embeddings). A bar's lower part, up to the baseline
(the same measure for unrelated tokens), is drawn muted; the part above it is
bright: what is left is how much more alike the two vectors are than any pair.
Left/right (when focused) or a click selects a layer and posts `LayerChart.Selected`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

_LOWER = " ▁▂▃▄▅▆▇█"
GUTTER = 5  # "0.90 " on the left


class LayerChart(Widget, can_focus=True):
    """Values per layer as vertical bars; one layer is selected."""

    DEFAULT_CSS = """
    LayerChart {
        & > .chart--bar { color: $primary; }
        & > .chart--base { color: $primary-muted; }
        & > .chart--selected { color: $accent; }
        & > .chart--axis { color: $text-muted; }
        & > .chart--selected-axis { color: $text-accent; text-style: bold; }
        &:focus > .chart--selected-axis { background: $block-cursor-background; color: $block-cursor-foreground; }
    }
    """

    COMPONENT_CLASSES = {"chart--bar", "chart--base", "chart--selected", "chart--axis", "chart--selected-axis"}

    BINDINGS = [
        Binding("left", "move(-1)", "Layer down", show=False),
        Binding("right", "move(1)", "Layer up", show=False),
        Binding("home", "jump(0)", "First layer", show=False),
        Binding("end", "jump(-1)", "Last layer", show=False),
    ]

    selected: reactive[int] = reactive(0)
    """The selected layer."""

    class Selected(Message):
        """The user selected a layer."""

        def __init__(self, layer: int) -> None:
            self.layer = layer
            super().__init__()

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._values: tuple[float, ...] = ()
        self._base: tuple[float, ...] | None = None

    @property
    def values(self) -> tuple[float, ...]:
        return self._values

    def show(self, values: Sequence[float], base: Sequence[float] | None, layer: int) -> None:
        self._values, self._base = tuple(values), (tuple(base) if base is not None else None)
        self.set_reactive(LayerChart.selected, max(0, min(layer, len(self._values) - 1)))
        self.refresh()

    def select(self, layer: int) -> None:
        """Select a layer as a user would (posts Selected)."""
        layer = max(0, min(layer, len(self._values) - 1))
        if self._values and layer != self.selected:
            self.selected = layer
            self.post_message(self.Selected(layer))

    def action_move(self, step: int) -> None:
        self.select(self.selected + step)

    def action_jump(self, layer: int) -> None:
        self.select(layer if layer >= 0 else len(self._values) - 1)

    def _column_edges(self, width: int) -> list[int]:
        """Where each layer's column starts (and the last one ends), across the whole width: the chart fills
        its box (capped at 3 cells a column it filled half of it)."""
        n = max(1, len(self._values))
        room = max(n, width - GUTTER)
        return [round(i * room / n) for i in range(n + 1)]

    def on_click(self, event: events.Click) -> None:
        layer = event.style.meta.get("layer")
        if layer is not None:
            event.stop()
            self.select(int(layer))

    def render(self) -> Text:
        size = self.content_region.size
        if not self._values or size.height < 3 or size.width < GUTTER + 2:
            return Text("")
        rows = size.height - 1  # the last row is the axis
        edges = self._column_edges(size.width)
        lows = [*self._values, *(self._base or ())]
        low = max(-1.0, min(0.9, math.floor(min(lows) * 10) / 10))  # the chart's floor, a round number
        span = 1.0 - low
        bar, base, selected, axis = (
            self.get_component_rich_style(c) for c in ("chart--bar", "chart--base", "chart--selected", "chart--axis")
        )
        lines: list[Text] = []
        for r in range(rows):
            top = rows - r  # this row covers heights (top - 1, top], in rows
            line = Text(f"{1.0:.2f} " if r == 0 else (f"{low:.2f} " if r == rows - 1 else " " * GUTTER), style=axis)
            for i, v in enumerate(self._values):
                height = max(0.0, (v - low) / span) * rows
                fill = max(0, min(8, round((height - (top - 1)) * 8)))
                b = self._base[i] if self._base is not None else None
                base_height = max(0.0, (b - low) / span) * rows if b is not None else 0.0
                meta = Style(meta={"layer": i})
                col_w = edges[i + 1] - edges[i]
                if fill == 0 and b is not None and top - 1 < base_height <= top:  # the baseline above the bar
                    line.append("─" * col_w, base + meta)
                else:
                    style = selected if i == self.selected else (base if top <= base_height + 0.5 else bar)
                    line.append(_LOWER[fill] * col_w, style + meta)
            lines.append(line)
        marks = [" "] * edges[-1]
        for n in range(0, len(self._values), 5 if edges[-1] >= 2 * len(self._values) else 10):
            if abs(edges[n] - edges[self.selected]) < len(str(max(n, self.selected))) + 1 and n != self.selected:
                continue  # the selected layer's number goes there
            if edges[n] + len(str(n)) > len(marks):
                continue  # it would be cut
            for k, ch in enumerate(str(n)):
                marks[edges[n] + k] = ch
        axis_line = Text(" " * GUTTER + "".join(marks), style=axis)
        start = GUTTER + edges[self.selected]
        label = str(self.selected)
        axis_line = (
            axis_line[:start]
            + Text(label, self.get_component_rich_style("chart--selected-axis"))
            + axis_line[start + len(label) :]
        )
        lines.append(axis_line)
        for line in lines:  # never wrap: a wrapped row would break the chart
            line.truncate(size.width)
        return Text("\n").join(lines)
