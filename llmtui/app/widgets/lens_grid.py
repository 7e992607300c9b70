"""The logit-lens grid: a row per layer, a column per position, each cell the token that layer would predict.

A line-API scroll view that draws its own fixed parts: the header line (the prompt's
tokens, one per column) stays on top when the rows scroll, and the left part (the
layer's name and two bars: how much its attention block and its MLP changed the
vector at the selected position) stays put when the columns scroll. A cell cursor
moves with the arrow keys or a click and posts `CellSelected`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from llmtui.app.palette import bin_of

if TYPE_CHECKING:
    from llmtui.engine.studies.lens import LensGrid as LensData

CELL = 8
"""Narrowest column: 7 cells for the token, 1 of gap."""
WIDE_CELL = 12
"""Widest column, when a short prompt leaves room: longer tokens show whole."""
BAR_FULL = 0.5
"""A bar is full when a block's output is half as long as the vector it adds to (more: clipped, '▸')."""
LABEL = 4
"""The layer's name: 'emb ', 'L30 '."""
ATTN_STYLE = Style(color="#9575cd")
"""Attention's bars: a mid purple, readable on dark and light themes."""
MLP_STYLE = Style(color="#26a69a")
"""The MLP's bars: a mid teal."""

_EIGHTHS = " ▏▎▍▌▋▊▉"

ColourBy = Literal["top", "answer"]


def fit(text: str, width: int) -> str:
    """Text cut to `width` cells (an ellipsis marks a cut) and padded to exactly that width.

    >>> fit("␣Paris", 7), fit("␣dismantle", 7)
    ('␣Paris ', '␣disma…')
    """
    t = Text(text)
    t.truncate(width, overflow="ellipsis", pad=True)
    return t.plain


def share_bar(value: float, width: int, style: Style, full: float = BAR_FULL) -> list[Segment]:
    """A bar of value (`full` fills it; more is clipped and ends in '▸') in `width` cells, eighth-cell precise."""
    if width <= 0:
        return []
    over = value > full
    eighths = round(max(0.0, min(1.0, value / full)) * width * 8)
    full, part = divmod(eighths, 8)
    text = "█" * full + (_EIGHTHS[part] if part and full < width else "")
    if over:
        text = text[: width - 1] + "▸"
    return [Segment(text, style), Segment(" " * (width - len(text)))]


@dataclass(frozen=True)
class Cursor:
    row: int  # 0: the embeddings' output; n: after layer n
    position: int


class LensGrid(ScrollView, can_focus=True):
    """Layers × positions; each cell the predicted next token, coloured by a probability."""

    DEFAULT_CSS = """
    LensGrid {
        background: $surface;
        scrollbar-size-vertical: 1;
        & > .lens-grid--header { color: $text-muted; text-style: bold; }
        & > .lens-grid--label { color: $text-muted; }
        & > .lens-grid--crosshair { background: $accent 35%; color: $text; text-style: bold; }
        & > .lens-grid--cursor { text-style: bold reverse; }
        & > .lens-grid--pending { color: $text-disabled; }
        & > .lens-grid--placeholder { color: $text-muted; text-style: italic; }
        & > .lens-grid--error { color: $text-error; text-style: bold; }
    }
    """

    COMPONENT_CLASSES = {
        "lens-grid--header",
        "lens-grid--label",
        "lens-grid--crosshair",
        "lens-grid--cursor",
        "lens-grid--pending",
        "lens-grid--placeholder",
        "lens-grid--error",
    }

    BINDINGS = [
        Binding("up", "move(-1, 0)", "Layer up", show=False),
        Binding("down", "move(1, 0)", "Layer down", show=False),
        Binding("left", "move(0, -1)", "Previous token", show=False),
        Binding("right", "move(0, 1)", "Next token", show=False),
        Binding("space", "move(1, 0)", "Next layer", tooltip="Step down one layer (the answer forming)"),
        Binding("home", "to_position(0)", "First token", show=False),
        Binding("end", "to_position(-1)", "Last token", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("ctrl+home", "to_row(0)", "Embeddings row", show=False),
        Binding("ctrl+end", "to_row(-1)", "Last layer", show=False),
    ]

    cursor: reactive[Cursor] = reactive(Cursor(0, 0), init=False)
    """The selected cell."""
    colour_by: reactive[ColourBy] = reactive("top", init=False)
    """Colour a cell by its own top prediction's probability ("top"), or by the final answer's there ("answer")."""

    class CellSelected(Message):
        """The user moved the cursor (a key or a click)."""

        def __init__(self, grid: LensGrid, cursor: Cursor, moved_column: bool, data: LensData) -> None:
            self.grid = grid
            self.cursor = cursor
            self.moved_column = moved_column
            self.data = data  # the grid the cursor is in: by the time this is handled, another may show
            super().__init__()

        @property
        def control(self) -> LensGrid:
            return self.grid

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.data: LensData | None = None
        self._label: Callable[[int], str] = str
        self._labels: dict[int, str] = {}
        self._header: list[str] = []
        self._placeholder: tuple[str, str] | None = ("", "placeholder")
        self._bar = 4
        self._cell = CELL
        self._scroll_pending = False

    # -- content ---------------------------------------------------------------------------

    def show(self, data: LensData, token_label: Callable[[int], str], cursor: Cursor | None = None) -> None:
        """Show a (possibly partly computed) grid; token_label turns a token id into a safe one-line label."""
        self.data = data
        self._label = token_label
        self._labels = {}
        self._header = [token_label(i) for i in data.ids]
        self._placeholder = None
        if cursor is None:
            cursor = Cursor(data.n_rows - 1, data.n_positions - 1)
        self._resize_virtual()
        self.set_reactive(LensGrid.cursor, self._clamp(cursor))
        self._scroll_pending = True  # done at the next draw, once the new virtual size is laid out
        self.refresh()

    def updated(self) -> None:
        """The data gained computed positions: redraw."""
        self.refresh()

    def set_placeholder(self, message: str, kind: str = "placeholder") -> None:
        """A message instead of the grid (kind: 'placeholder' or 'error')."""
        self.data = None
        self._placeholder = (message, kind)
        self.virtual_size = Size(0, 0)
        self.refresh()

    @property
    def placeholder(self) -> str | None:
        return self._placeholder[0] if self._placeholder else None

    def label(self, token_id: int) -> str:
        if token_id not in self._labels:
            self._labels[token_id] = self._label(token_id)
        return self._labels[token_id]

    # -- geometry --------------------------------------------------------------------------

    @property
    def fixed_width(self) -> int:
        """The left part that never scrolls sideways: name, attention bar, MLP bar, separator."""
        return LABEL + 2 * self._bar + 2

    def _resize_virtual(self) -> None:
        if self.data is None:
            return
        width = self.scrollable_content_region.width or self.size.width
        self._bar = 3 if width < 60 else 4 if width < 100 else 6
        band = width - self.fixed_width
        self._cell = max(CELL, min(WIDE_CELL, band // self.data.n_positions))
        cells = self.data.n_positions * self._cell
        pad = band % self._cell if cells > band else 0  # so that scrolled to the end, no column is cut on the left
        self.virtual_size = Size(self.fixed_width + cells + pad, self.data.n_rows + 1)

    def on_resize(self, event: events.Resize) -> None:
        self._resize_virtual()
        self._scroll_to_cursor()

    def _clamp(self, cursor: Cursor) -> Cursor:
        if self.data is None:
            return cursor
        return Cursor(
            max(0, min(cursor.row, self.data.n_rows - 1)), max(0, min(cursor.position, self.data.n_positions - 1))
        )

    def _scroll_to_cursor(self) -> None:
        if self.data is None:
            return
        cell = self._cell
        width = max(cell, self.scrollable_content_region.width - self.fixed_width)
        height = max(1, self.scrollable_content_region.height - 1)
        x, y = self.scroll_offset
        left = self.cursor.position * cell
        if left < x:
            x = left
        elif left + cell > x + width:
            x = -(-(left + cell - width) // cell) * cell  # whole columns on the left: no half-cut token there
        if self.cursor.row < y:
            y = self.cursor.row
        elif self.cursor.row >= y + height:
            y = self.cursor.row - height + 1
        self.scroll_to(x, y, animate=False, immediate=True)

    def watch_cursor(self) -> None:
        self._scroll_to_cursor()
        self.refresh()

    def watch_colour_by(self) -> None:
        self.refresh()

    # -- drawing ---------------------------------------------------------------------------

    def render_lines(self, crop):  # type: ignore[no-untyped-def]
        self._styles = {
            name: self.get_component_rich_style(f"lens-grid--{name}")
            for name in ("header", "label", "crosshair", "cursor", "pending", "placeholder", "error")
        }
        self._base = self.rich_style
        if self._scroll_pending and self.data is not None:
            self._scroll_pending = False
            self._scroll_to_cursor()
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base = self._base
        if self.data is None:
            return self._placeholder_line(y, width)
        scroll_x, scroll_y = self.scroll_offset
        band = max(0, width - self.fixed_width)
        if y == 0:
            left, cells = self._header_parts(scroll_x, band)
        else:
            row = scroll_y + y - 1
            if row >= self.data.n_rows:
                return Strip.blank(width, base)
            left, cells = self._row_parts(row, scroll_x, band)
        strip = Strip(Segment.apply_style(left + cells, base))
        return strip.extend_cell_length(width, base).crop(0, width)

    def _placeholder_line(self, y: int, width: int) -> Strip:
        base = self._base
        message, kind = self._placeholder or ("", "placeholder")
        lines = Text(message).wrap(self.app.console, max(10, width - 2))
        if y - 1 < 0 or y - 1 >= len(lines):
            return Strip.blank(width, base)
        text = lines[y - 1]
        return (
            Strip([Segment(" " + text.plain, base + self._styles[kind])]).extend_cell_length(width, base).crop(0, width)
        )

    def _visible_columns(self, scroll_x: int, band: int) -> tuple[int, int, int]:
        """First column drawn, one past the last, and how many cells of the first are scrolled off."""
        assert self.data is not None
        first = scroll_x // self._cell
        last = min(self.data.n_positions, (scroll_x + band) // self._cell + 1)
        return first, last, scroll_x - first * self._cell

    def _crop_band(self, segments: list[Segment], skip: int, band: int) -> list[Segment]:
        strip = Strip(segments).crop(skip, skip + band)
        return list(strip)

    def _header_parts(self, scroll_x: int, band: int) -> tuple[list[Segment], list[Segment]]:
        header = self._styles["header"]
        b = self._bar
        left = [
            Segment(" " * LABEL, header),
            Segment("attn"[:b].ljust(b), header + ATTN_STYLE),
            Segment(" "),
            Segment("mlp"[:b].ljust(b), header + MLP_STYLE),
            Segment("│", self._styles["label"]),
        ]
        first, last, skip = self._visible_columns(scroll_x, band)
        cells: list[Segment] = []
        for pos in range(first, last):
            style = self._styles["crosshair"] if pos == self.cursor.position else header
            cells += [Segment(fit(self._header[pos], self._cell - 1), style), Segment(" ")]
        return left, self._crop_band(cells, skip, band)

    def _row_parts(self, row: int, scroll_x: int, band: int) -> tuple[list[Segment], list[Segment]]:
        data = self.data
        assert data is not None
        cursor = self.cursor
        name = fit(_layer_name(row), LABEL)
        label_style = self._styles["crosshair"] if row == cursor.row else self._styles["label"]
        left = [Segment(name, label_style)]
        if row == 0:
            left.append(Segment(" " * (2 * self._bar + 1)))
        else:
            share = data.contribution(row, cursor.position)
            left += share_bar(share.attention, self._bar, ATTN_STYLE)
            left.append(Segment(" "))
            left += share_bar(share.mlp, self._bar, MLP_STYLE)
        left.append(Segment("│", self._styles["label"]))
        first, last, skip = self._visible_columns(scroll_x, band)
        cells: list[Segment] = []
        pending = self._styles["pending"]
        for pos in range(first, last):
            cell = self.cell(row, pos)
            if cell is None:
                cells += [Segment(fit("  ·", self._cell - 1), pending), Segment(" ")]
                continue
            text, p, is_answer = cell
            style = bin_of(p).style
            if is_answer:
                style += Style(bold=True)
            if row == cursor.row and pos == cursor.position:
                style += self._styles["cursor"]
            cells += [Segment(fit(text, self._cell - 1), style), Segment(" ")]
        return left, self._crop_band(cells, skip, band)

    def cell(self, row: int, position: int) -> tuple[str, float, bool] | None:
        """What a cell shows: the predicted token's label, the probability that colours it, and
        whether it is the final answer at that position; None while not computed."""
        data = self.data
        if data is None:
            return None
        top = data.prediction(row, position)
        if top is None:
            return None
        token_id, p = top
        answer = int(data.answer_ids[position])
        colour = p if self.colour_by == "top" else float(data.answer_probs[row, position])
        return self.label(token_id), colour, token_id == answer

    def row_text(self, row: int) -> list[str]:
        """The labels of a row's cells, for tests and screen readers ('' where not computed)."""
        assert self.data is not None
        return [(c[0] if (c := self.cell(row, p)) else "") for p in range(self.data.n_positions)]

    # -- keys and mouse --------------------------------------------------------------------

    def _select(self, cursor: Cursor) -> None:
        if self.data is None:
            return
        cursor = self._clamp(cursor)
        moved_column = cursor.position != self.cursor.position
        self.cursor = cursor
        self.post_message(self.CellSelected(self, cursor, moved_column, self.data))

    def action_move(self, rows: int, columns: int) -> None:
        self._select(Cursor(self.cursor.row + rows, self.cursor.position + columns))

    def action_to_position(self, position: int) -> None:
        if self.data is not None:
            self._select(Cursor(self.cursor.row, position % self.data.n_positions))

    def action_to_row(self, row: int) -> None:
        if self.data is not None:
            self._select(Cursor(row % self.data.n_rows, self.cursor.position))

    def action_page(self, direction: int) -> None:
        self._select(
            Cursor(
                self.cursor.row + direction * max(1, self.scrollable_content_region.height - 2), self.cursor.position
            )
        )

    def on_click(self, event: events.Click) -> None:
        """A click on a cell selects it; on a column's token, that column; on a layer's name, that row."""
        if self.data is None:
            return
        offset = event.get_content_offset(self)
        if offset is None:
            return
        row = self.cursor.row if offset.y == 0 else self.scroll_offset.y + offset.y - 1
        if offset.x < self.fixed_width:
            position = self.cursor.position
        else:
            position = (self.scroll_offset.x + offset.x - self.fixed_width) // self._cell
        if 0 <= row < self.data.n_rows and 0 <= position < self.data.n_positions:
            self._select(Cursor(row, position))


def _layer_name(row: int) -> str:
    return "emb" if row == 0 else f"L{row}"
