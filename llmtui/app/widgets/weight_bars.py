"""A list of weights as bars, strongest first: what one token attends to, or any labelled shares of a whole.

Each row is an index, a label, the weight as a percentage and a bar coloured on the
same scale as the heatmap. A click on a row posts `Chosen` with the row's index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from rich.style import Style
from rich.text import Text
from textual import events
from textual.message import Message
from textual.widgets import Static

from llmtui.app.widgets.heatmap import ATTENTION_SCALE, ColorScale

_EIGHTHS = " ▏▎▍▌▋▊▉"


@dataclass(frozen=True)
class WeightRow:
    index: int  # what the row stands for (a key position), posted when it is clicked
    label: str  # a safe one-line label
    weight: float  # 0..1


def weight_bar(value: float, width: int, scale: ColorScale = ATTENTION_SCALE) -> Text:
    """A bar of value (0..1) in `width` cells with eighth-cell precision, in the value's colour."""
    width = max(1, width)
    eighths = round(max(0.0, min(1.0, value)) * width * 8)
    full, part = divmod(eighths, 8)
    solid = "█" * full + (_EIGHTHS[part] if part and full < width else "")
    if not solid and value > 0:
        solid = "▏"  # never invisible when it is not zero
    colour = scale.colours[scale.bin(value)]
    text = Text(solid, style=Style(color=colour))
    text.pad_right(width - text.cell_len)
    return text


def fit(text: str, width: int) -> str:
    """Text cut with '…' or padded to exactly `width` cells."""
    t = Text(text)
    t.truncate(width, overflow="ellipsis", pad=True)
    return t.plain


class WeightBars(Static):
    """A heading, then one bar per weight, then an optional note."""

    DEFAULT_CSS = """
    WeightBars {
        height: auto;
        padding: 0 1;
    }
    """

    class Chosen(Message):
        """A row was clicked."""

        def __init__(self, bars: WeightBars, index: int) -> None:
            self.bars = bars
            self.index = index
            super().__init__()

        @property
        def control(self) -> WeightBars:
            return self.bars

    def __init__(self, *, scale: ColorScale = ATTENTION_SCALE, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.scale = scale
        self.rows: list[WeightRow] = []
        self._heading = Text()
        self._note = Text()
        self._highlight: int | None = None

    def show(self, heading: Text, rows: Sequence[WeightRow], note: Text | None = None,
             highlight: int | None = None) -> None:
        """Show rows under a heading; `highlight` marks the row with that index."""
        self._heading, self.rows, self._note, self._highlight = heading, list(rows), note or Text(), highlight
        self.update(self._build())

    def on_resize(self, event: events.Resize) -> None:
        self.update(self._build())

    def _build(self) -> Text:
        width = max(20, self.content_region.width or 30)
        index_width = max((len(str(r.index)) for r in self.rows), default=1)
        label_width = max(5, min(12, width // 3))
        bar_width = max(3, width - index_width - label_width - 9)
        out = Text(no_wrap=False)
        out.append_text(self._heading)
        for row in self.rows:
            out.append("\n")
            meta = Style(meta={"weight-row": row.index})
            mark = "▶" if row.index == self._highlight else " "
            label = fit(row.label, label_width)
            line = Text(f"{mark}{row.index:>{index_width}} {label}{row.weight:>7.1%} ", style=meta)
            if row.index == self._highlight:
                line.stylize("bold")
            line.append_text(weight_bar(row.weight, bar_width, self.scale))
            line.stylize(meta)
            out.append_text(line)
        if self._note:
            out.append("\n")
            out.append_text(self._note)
        return out

    @property
    def text(self) -> str:
        """Everything shown, as plain text (for tests)."""
        return self._build().plain

    def on_click(self, event: events.Click) -> None:
        index = event.style.meta.get("weight-row")
        if index is not None:
            event.stop()
            self.post_message(self.Chosen(self, int(index)))



