"""A heatmap of a matrix: coloured cells, row and column labels, a colour legend, a selected cell, zoom and scroll.

Any matrix of numbers fits (attention weights, a layer × position grid of
probabilities, ...). Colours come from a `ColorScale` of a few bins, each with its
own readable text colour, and the legend at the bottom says what each colour means.

It is a Line-API widget: each redraw builds only the lines and cells on screen, so
a 512 × 512 matrix costs no more than a small one, and showing another matrix of
the same shape (the next attention head) is one `set_values` and a redraw.

Big matrices never get cut silently: at zoom 0 ("fit") the whole matrix is shown,
blocks of cells pooled into one when it is larger than the screen; zooms 1..6 draw
every cell, bigger at each step, and scroll. The selected cell's row label is
highlighted and its column label is written in full above the map.

    >>> ATTENTION_SCALE.bin(0.0), ATTENTION_SCALE.bin(0.02), ATTENTION_SCALE.bin(1.0)
    (0, 1, 7)
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, ClassVar, Literal, Sequence

import numpy as np
from rich.cells import cell_len
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

Pool = Literal["mean", "max", "mass"]



# -- colour scale --------------------------------------------------------------------------


def text_colour_on(background: str) -> str:
    """Black or white, whichever reads better on the background colour."""
    r, g, b = Color.parse(background).get_truecolor()
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "#000000" if luminance > 140 else "#ffffff"


@dataclass(frozen=True)
class ColorScale:
    """Values to colours in bins: bin k holds the values from bounds[k] up to bounds[k + 1].

    Values below bounds[0] fall in bin 0. Each bin has a background colour and a label
    for the legend; its text colour (black or white) is chosen for contrast, so the
    scale reads the same on dark and light themes.
    """

    bounds: tuple[float, ...]
    colours: tuple[str, ...]
    labels: tuple[str, ...]
    title: str = ""

    def __post_init__(self) -> None:
        if not len(self.bounds) == len(self.colours) == len(self.labels) or not self.bounds:
            raise ValueError("a colour scale needs as many bounds, colours and labels, at least one of each")
        if list(self.bounds) != sorted(self.bounds):
            raise ValueError("a colour scale's bounds must go up")

    def bin(self, value: float) -> int:
        """The bin of one value."""
        return max(0, bisect.bisect_right(self.bounds, value) - 1)

    def bins(self, values: np.ndarray) -> np.ndarray:
        """The bin of every value of an array (same shape, ints)."""
        return np.clip(np.searchsorted(np.asarray(self.bounds), values, side="right") - 1, 0, len(self.bounds) - 1)

    @cached_property
    def styles(self) -> tuple[Style, ...]:
        """Each bin's cell style: its colour as the background, black or white text."""
        return tuple(Style(bgcolor=c, color=text_colour_on(c)) for c in self.colours)

    def legend(self) -> Text:
        """'title  0  1  3 …', each label on its bin's colour."""
        text = Text(self.title + " " if self.title else "", style="dim")
        for label, style in zip(self.labels, self.styles):
            text.append(f" {label} ", style=style)
        return text


ATTENTION_SCALE = ColorScale(
    bounds=(0.0, 0.01, 0.03, 0.06, 0.12, 0.25, 0.5, 0.75),
    # viridis, dark purple to yellow: ordered by lightness, readable for the common colour blindnesses,
    # and both ends differ from a black and from a white terminal background
    colours=("#440154", "#46327e", "#365c8d", "#277f8e", "#1fa187", "#4ac16d", "#a0da39", "#fde725"),
    labels=("0", "1", "3", "6", "12", "25", "50", "75"),
    title="weight %",
)
"""For weights between 0 and 1 (attention, probabilities); most attention weights are small, so the bins are too."""


def percent_text(value: float) -> str:
    """A weight as a whole percentage, or '' when it rounds to 0: 0.372 -> '37'."""
    p = round(value * 100)
    return str(p) if p else ""


# -- pooling -------------------------------------------------------------------------------


def edges(n: int, blocks: int) -> np.ndarray:
    """Boundaries cutting range(n) into `blocks` nearly equal runs (blocks <= n): edges(10, 3) -> [0, 3, 6, 10]."""
    blocks = max(1, min(n, blocks))
    return (np.arange(blocks + 1) * n) // blocks


def pool(values: np.ndarray, mask: np.ndarray, row_edges: np.ndarray, col_edges: np.ndarray,
         how: Pool = "mean") -> tuple[np.ndarray, np.ndarray]:
    """Reduce a (R, C) matrix to one value per block; masked cells (True) take no part.

    "mean" and "max" are the mean and maximum of a block's cells. "mass" adds a block's
    columns and averages its rows: for a matrix whose rows sum to 1 (attention), a
    block shows how much of its rows' weight lands on its columns, so the pooled rows
    still sum to 1. A block whose cells are all masked is masked.
    """
    r0, c0 = row_edges[:-1], col_edges[:-1]
    keep = ~mask
    cells = np.add.reduceat(np.add.reduceat(keep.astype(np.int64), r0, axis=0), c0, axis=1)
    pooled_mask = cells == 0
    if how == "max":
        filled = np.where(keep, values, -np.inf)
        out = np.maximum.reduceat(np.maximum.reduceat(filled, c0, axis=1), r0, axis=0)
    else:  # columns first: along the contiguous axis
        sums = np.add.reduceat(np.add.reduceat(np.where(keep, values, 0.0), c0, axis=1), r0, axis=0)
        if how == "mass":
            out = sums / np.diff(row_edges)[:, None]
        else:
            out = sums / np.maximum(cells, 1)
    return np.where(pooled_mask, 0.0, out), pooled_mask


def resample_stack(stack: np.ndarray, mask: np.ndarray | None, rows: int, cols: int,
                   how: Pool = "mean") -> tuple[np.ndarray, np.ndarray]:
    """Every matrix of a (N, R, C) stack at rows × cols, in one pass; mask (R, C) is shared, its cells hold 0.

    Returns the (N, rows, cols) values and the (rows, cols) mask. Masked cells are not
    multiplied out (that would copy the whole stack): they must already be 0.
    """
    N, R, C = stack.shape
    if mask is None:
        mask = np.zeros((R, C), dtype=bool)
    row_edges, col_edges = edges(R, min(R, rows)), edges(C, min(C, cols))
    r0, c0 = row_edges[:-1], col_edges[:-1]
    cells = np.add.reduceat(np.add.reduceat((~mask).astype(np.float32), r0, axis=0), c0, axis=1)
    pooled_mask = cells == 0
    if N == 0:
        pooled = np.zeros((0, len(r0), len(c0)), dtype=np.float32)
    elif how == "max":
        pooled = np.maximum.reduceat(np.maximum.reduceat(stack, c0, axis=2), r0, axis=1)
    else:  # columns first: along the contiguous axis, the big pass is three times faster
        sums = np.add.reduceat(np.add.reduceat(stack, c0, axis=2), r0, axis=1)
        pooled = sums / (np.diff(row_edges)[:, None] if how == "mass" else np.maximum(cells, 1))
    r_index = (np.arange(rows) * pooled_mask.shape[0]) // rows
    c_index = (np.arange(cols) * pooled_mask.shape[1]) // cols
    return pooled[:, r_index][:, :, c_index], pooled_mask[np.ix_(r_index, c_index)]


# -- the widget ----------------------------------------------------------------------------

ZOOMS: tuple[tuple[int, int], ...] = ((1, 1), (2, 1), (3, 1), (4, 2), (6, 3), (8, 4))
"""(columns, lines) of a cell at zoom 1, 2, ...: from 4 columns on, cells are as tall as wide on screen."""
LEGEND_LINES = 1
MIN_ROWS = 3
"""Zoomed in, the column labels take two lines only while this many rows of cells still show."""


@dataclass(frozen=True)
class _Layout:
    """Where everything goes for the current data, size and zoom."""

    label_width: int  # the row labels' column, its trailing space included
    header: int  # lines above the cells: the selected column's label, then staggered column labels
    cell_width: int
    cell_height: int
    row_edges: np.ndarray  # block boundaries over the matrix rows (one block per row when not pooled)
    col_edges: np.ndarray
    grid: np.ndarray  # (row blocks, column blocks) values shown
    grid_mask: np.ndarray
    grid_bins: np.ndarray

    @property
    def pooled(self) -> bool:
        return self.n_rows < self.row_edges[-1] or self.n_cols < self.col_edges[-1]

    @property
    def n_rows(self) -> int:
        return self.grid.shape[0]

    @property
    def n_cols(self) -> int:
        return self.grid.shape[1]


class Heatmap(ScrollView, can_focus=True):
    """A matrix as coloured cells, with labels, a legend and a selected cell (the cursor)."""

    DEFAULT_CSS = """
    Heatmap {
        background: $surface;
        & > .heatmap--label { color: $text-muted; }
        & > .heatmap--selected-label { background: $accent; color: $text; text-style: bold; }
        & > .heatmap--legend { color: $text-muted; }
        & > .heatmap--empty { color: $text-muted; text-style: italic; }
    }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {"heatmap--label", "heatmap--selected-label", "heatmap--legend",
                                             "heatmap--empty"}

    BINDINGS: ClassVar[list[Binding]] = [
        Binding("up", "move(-1, 0)", "Up", show=False),
        Binding("down", "move(1, 0)", "Down", show=False),
        Binding("left", "move(0, -1)", "Left", show=False),
        Binding("right", "move(0, 1)", "Right", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "row_edge(0)", "Row start", show=False),
        Binding("end", "row_edge(1)", "Row end", show=False),
        Binding("plus,equals_sign", "zoom(1)", "Zoom in", key_display="+", show=False),
        Binding("minus", "zoom(-1)", "Zoom out", key_display="-", show=False),
    ]

    cursor: reactive[tuple[int, int]] = reactive((0, 0), init=False)
    """The selected cell (row, column) of the matrix."""
    zoom: reactive[int] = reactive(0, init=False)
    """0: fit the whole matrix (pooling blocks when it is larger than the screen); 1..len(ZOOMS): ZOOMS[zoom - 1]."""

    class CursorMoved(Message):
        """The selected cell changed."""

        def __init__(self, heatmap: Heatmap, row: int, col: int) -> None:
            self.heatmap = heatmap
            self.row = row
            self.col = col
            super().__init__()

        @property
        def control(self) -> Heatmap:
            return self.heatmap

    def __init__(
        self,
        *,
        scale: ColorScale = ATTENTION_SCALE,
        pool: Pool = "mean",
        row_title: str = "row",
        col_title: str = "column",
        cell_text: Callable[[float], str] = percent_text,
        mask_note: str = "",
        empty_text: str = "Nothing to show yet.",
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """scale: the colours; pool: how blocks are reduced when fitting a big matrix; cell_text: the number
        written in cells wide enough for it; mask_note: what a blank (masked) cell means, for the legend."""
        super().__init__(id=id, classes=classes)
        self.scale = scale
        self.pool_how: Pool = pool
        self.row_title = row_title
        self.col_title = col_title
        self.cell_text = cell_text
        self.mask_note = mask_note
        self.empty_text = empty_text
        self.values = np.zeros((0, 0), dtype=np.float32)
        self.mask = np.zeros((0, 0), dtype=bool)
        self.row_labels: list[str] = []
        self.col_labels: list[str] = []
        self._geometry: _Layout | None = None
        self._auto_zoom = True  # the zoom follows the widget's size until the user zooms
        self._line_styles: dict[str, Style] = {}

    # -- data ------------------------------------------------------------------------------

    def set_matrix(self, values: Any, row_labels: Sequence[str], col_labels: Sequence[str], mask: Any = None, *,
                   cursor: tuple[int, int] | None = None) -> None:
        """Show a new matrix (anything numpy reads as 2-D), its labels and its mask (True: no value, drawn blank).

        The zoom goes back to its default for the new size; `cursor` picks the selected cell.
        """
        values, mask = self._check(values, mask)
        if len(row_labels) != values.shape[0] or len(col_labels) != values.shape[1]:
            raise ValueError(f"{values.shape[0]} rows and {values.shape[1]} columns need as many labels, "
                             f"not {len(row_labels)} and {len(col_labels)}")
        self.values, self.mask = values, mask
        self.row_labels, self.col_labels = list(row_labels), list(col_labels)
        row, col = cursor if cursor is not None else self.cursor
        self.set_reactive(Heatmap.cursor, self._clamp(row, col))
        self._auto_zoom = True
        self.set_reactive(Heatmap.zoom, self._initial_zoom())
        self.scroll_to(0, 0, animate=False)
        self._relayout()
        self.call_after_refresh(self._follow_cursor)
        self.post_message(self.CursorMoved(self, *self.cursor))

    def set_values(self, values: Any, mask: Any = None) -> None:
        """Show other values of the same shape (the next head): labels, zoom, scroll and cursor stay."""
        values, mask = self._check(values, mask)
        if values.shape != self.values.shape:
            raise ValueError(f"set_values needs a {self.values.shape} matrix, not {values.shape}; use set_matrix")
        self.values, self.mask = values, mask
        self._relayout()

    def clear(self, text: str | None = None) -> None:
        """Show no matrix, only a line of text."""
        if text is not None:
            self.empty_text = text
        self.values = np.zeros((0, 0), dtype=np.float32)
        self.mask = np.zeros((0, 0), dtype=bool)
        self.row_labels, self.col_labels = [], []
        self._relayout()

    @staticmethod
    def _check(values: Any, mask: Any) -> tuple[np.ndarray, np.ndarray]:
        array = np.asarray(values, dtype=np.float32)
        if array.ndim != 2:
            raise ValueError(f"a heatmap shows a 2-D matrix, not one of shape {array.shape}")
        m = np.zeros(array.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        if m.shape != array.shape:
            raise ValueError(f"the mask is {m.shape}, the matrix {array.shape}")
        return array, m

    @property
    def has_data(self) -> bool:
        return self.values.size > 0

    def value_at(self, row: int, col: int) -> float | None:
        """The value of one cell, None where it is masked."""
        return None if self.mask[row, col] else float(self.values[row, col])

    # -- layout ----------------------------------------------------------------------------

    @property
    def _area(self) -> tuple[int, int]:
        region = self.content_region
        return max(1, region.width), max(1, region.height)

    def _label_width(self, width: int) -> int:
        longest = max((cell_len(label) for label in self.row_labels), default=1)
        return max(4, min(longest + 1, 16, width // 4))

    def _fit(self) -> tuple[int, int, bool]:
        """(zoom level, header lines, pooled) of the largest cells at which the whole matrix fits.

        Bigger cells come first, then the two lines of column labels. When even the
        smallest cells do not fit, the matrix is pooled: (1, 1, True).
        """
        width, height = self._area
        R, C = self.values.shape
        room = width - self._label_width(width)
        for level in range(len(ZOOMS), 0, -1):
            cw, ch = ZOOMS[level - 1]
            for header in ((3, 1) if cw >= 2 else (1,)):  # the key labels first, at any height (80x24 lost them)
                if C * cw <= room and R * ch <= height - header - LEGEND_LINES:
                    return level, header, False
        return 1, 1, True

    def _initial_zoom(self) -> int:
        """Fit when the matrix fits unpooled or is far bigger than the screen; else full resolution, scrolling."""
        if not self.has_data or not self._fit()[2]:
            return 0
        width, height = self._area
        R, C = self.values.shape
        if R <= 3 * (height - 1 - LEGEND_LINES):
            room = width - self._label_width(width)
            return 2 if 2 * C <= room else 1
        return 0

    def _relayout(self) -> None:
        width, height = self._area
        R, C = self.values.shape
        if not self.has_data:
            self._geometry = None
            self.virtual_size = Size(width, height)
            self._update_subtitle()
            self.refresh()
            return
        label_width = self._label_width(width)
        room = max(1, width - label_width)
        row_edges, col_edges = np.arange(R + 1), np.arange(C + 1)
        if self.zoom == 0:
            level, header, pooled = self._fit()
            cw, ch = ZOOMS[level - 1]
            if pooled:
                rows = max(1, height - header - LEGEND_LINES)
                cw = 2 if room >= 2 * min(C, rows) else 1  # square-ish blocks when there is room
                row_edges, col_edges = edges(R, min(R, rows)), edges(C, min(C, room // cw))
        else:
            cw, ch = ZOOMS[self.zoom - 1]
            header = 3 if cw >= 2 and height - 3 - LEGEND_LINES >= MIN_ROWS else 1
        if len(row_edges) - 1 == R and len(col_edges) - 1 == C:
            grid, grid_mask = self.values, self.mask
        else:
            grid, grid_mask = pool(self.values, self.mask, row_edges, col_edges, self.pool_how)
        self._geometry = _Layout(label_width, header, cw, ch, row_edges, col_edges, grid, grid_mask,
                                 self.scale.bins(grid))
        if self.zoom == 0:
            self.virtual_size = Size(width, height)
        else:
            self.virtual_size = Size(label_width + C * cw, header + R * ch + LEGEND_LINES)
        self._update_subtitle()
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        if self._auto_zoom:
            self.set_reactive(Heatmap.zoom, self._initial_zoom())
        self._relayout()
        self._follow_cursor()

    def watch_zoom(self) -> None:
        self._relayout()
        self.call_after_refresh(self._follow_cursor)  # once the new virtual size has set the scroll limits

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self._update_subtitle()

    @property
    def view_note(self) -> str:
        """How the matrix is shown: whole, pooled, or which rows are on screen."""
        layout = self._geometry
        if layout is None:
            return ""
        R, C = self.values.shape
        labels = f" · {self.col_title} labels: the selected one, above" if layout.header == 1 else ""
        if layout.pooled:
            rows, cols = -(-R // layout.n_rows), -(-C // layout.n_cols)
            return f"whole {R}×{C} map, up to {rows}×{cols} pooled per cell{labels} · + zooms in"
        if self.zoom == 0:
            return f"whole {R}×{C} map{labels}" + (" · + zooms in" if layout.cell_width < ZOOMS[-1][0] else "")
        visible = max(1, (self.scrollable_content_region.height - layout.header - LEGEND_LINES) // layout.cell_height)
        first = int(self.scroll_offset.y) // layout.cell_height
        last = min(R, first + visible)
        whole = "rows" if last - first < R or layout.cell_width * C > self.scrollable_content_region.width else "all"
        return f"{whole} {first + 1}–{last} of {R}{labels} · zoom {self.zoom} · − zooms out"

    def _update_subtitle(self) -> None:
        self.border_subtitle = self.view_note

    # -- cursor ----------------------------------------------------------------------------

    def _clamp(self, row: int, col: int) -> tuple[int, int]:
        R, C = self.values.shape
        return max(0, min(row, R - 1)), max(0, min(col, C - 1))

    def select(self, row: int, col: int) -> None:
        """Move the selected cell (clamped to the matrix)."""
        if self.has_data:
            self.cursor = self._clamp(row, col)

    def watch_cursor(self, old: tuple[int, int], new: tuple[int, int]) -> None:
        self._follow_cursor()
        self.refresh()
        if old != new:
            self.post_message(self.CursorMoved(self, *new))

    @staticmethod
    def _block(edges_: np.ndarray, index: int) -> int:
        return int(np.searchsorted(edges_, index, side="right") - 1)

    def _follow_cursor(self) -> None:
        """Scroll so that the selected cell is on screen (the labels and header stay where they are)."""
        layout = self._geometry
        if layout is None or self.zoom == 0:
            return
        row, col = self.cursor
        view = self.scrollable_content_region
        lines = max(1, view.height - layout.header - LEGEND_LINES)
        room = max(1, view.width - layout.label_width)
        y, x = self.scroll_offset.y, self.scroll_offset.x
        top, bottom = row * layout.cell_height, (row + 1) * layout.cell_height
        if top < y:
            y = top
        elif bottom > y + lines:
            y = bottom - lines
        left, right = col * layout.cell_width, (col + 1) * layout.cell_width
        if left < x:
            x = left
        elif right > x + room:
            x = right - room
        if (x, y) != (self.scroll_offset.x, self.scroll_offset.y):
            self.scroll_to(x, y, animate=False)

    def action_move(self, drow: int, dcol: int) -> None:
        """One cell (one block when the map is pooled) up, down, left or right."""
        layout = self._geometry
        if layout is None:
            return
        row, col = self.cursor
        if drow:
            b = max(0, min(self._block(layout.row_edges, row) + drow, layout.n_rows - 1))
            row = row + drow if not layout.pooled else int(layout.row_edges[b])
        if dcol:
            b = max(0, min(self._block(layout.col_edges, col) + dcol, layout.n_cols - 1))
            col = col + dcol if not layout.pooled else int(layout.col_edges[b])
        self.select(row, col)

    def action_page(self, direction: int) -> None:
        layout = self._geometry
        if layout is None:
            return
        lines = self.scrollable_content_region.height - layout.header - LEGEND_LINES
        self.action_move(direction * max(1, lines // layout.cell_height - 1), 0)

    def action_row_edge(self, end: int) -> None:
        row, _ = self.cursor
        self.select(row, self.values.shape[1] - 1 if end else 0)

    def action_zoom(self, direction: int) -> None:
        """Zoom in (bigger cells, scrolling when they do not fit) or out (down to the whole map)."""
        if not self.has_data:
            return
        self._auto_zoom = False
        level, _, pooled = self._fit()
        if direction > 0:
            current = self.zoom or (0 if pooled else level)
            if current < len(ZOOMS):
                self.zoom = current + 1
        elif self.zoom:
            new = self.zoom - 1
            self.zoom = new if pooled or new > level else 0

    # -- drawing ---------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._line_styles = {}  # the theme or the CSS changed: look the styles up again

    def render_lines(self, crop: Region) -> list[Strip]:
        # component styles are not cheap to look up: once, then again only when the styles change
        if not self._line_styles:
            base = self.rich_style
            self._line_styles = {
                "base": base,
                "label": base + self.get_component_rich_style("heatmap--label"),
                "selected": base + self.get_component_rich_style("heatmap--selected-label"),
                "legend": base + self.get_component_rich_style("heatmap--legend"),
                "empty": base + self.get_component_rich_style("heatmap--empty"),
            }
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        styles = self._line_styles or {"base": Style(), "label": Style(), "selected": Style(reverse=True),
                                       "legend": Style(), "empty": Style()}
        base = styles["base"]
        view = self.scrollable_content_region
        width, height = view.width, view.height
        layout = self._geometry
        if layout is None:
            if y == 0:
                line = Strip([Segment(" " + self.empty_text, styles["empty"])])
                return line.extend_cell_length(width, base).crop(0, width)
            return Strip.blank(width, base)
        if y >= height - LEGEND_LINES:
            return self._legend_line(width, styles)
        if y < layout.header:
            return self._header_line(y, width, layout, styles)
        line = (int(self.scroll_offset.y) if self.zoom else 0) + y - layout.header
        row_block, k = divmod(line, layout.cell_height)
        if not 0 <= row_block < layout.n_rows:
            return Strip.blank(width, base)
        return self._cells_line(row_block, k, width, layout, styles)

    def _visible_cols(self, width: int, layout: _Layout) -> tuple[int, int, int]:
        """(first block, last block + 1, x offset of the first block's left edge) of the columns on screen."""
        room = max(0, width - layout.label_width)
        scroll_x = int(self.scroll_offset.x) if self.zoom else 0
        first = scroll_x // layout.cell_width
        last = min(layout.n_cols, -(-(scroll_x + room) // layout.cell_width))
        return first, last, scroll_x - first * layout.cell_width

    def _cells_line(self, r: int, k: int, width: int, layout: _Layout, styles: dict[str, Style]) -> Strip:
        """Line k (of cell_height) of row block r: its label on the first line, then its cells."""
        base = styles["base"]
        cur_row, cur_col = self.cursor
        r0, r1 = int(layout.row_edges[r]), int(layout.row_edges[r + 1])
        selected_row = r0 <= cur_row < r1
        middle = k == (layout.cell_height - 1) // 2  # the line with the row's label and the cells' numbers
        if middle:
            if selected_row:
                label = self.row_labels[cur_row]
            elif r1 - r0 > 1:
                label = f"{r0}–{r1 - 1}"  # a pooled block of rows: its range
            else:
                label = self.row_labels[r0]
            label = self._fit_label(label, layout.label_width - 1, right=True)
        else:
            label = " " * (layout.label_width - 1)
        segments = [Segment(label, styles["selected"] if selected_row and middle else styles["label"]),
                    Segment(" ", base)]
        cw = layout.cell_width
        first, last, offset = self._visible_cols(width, layout)
        cur_block = self._block(layout.col_edges, cur_col) if selected_row else -1
        cells: list[Segment] = []
        grid, bins, gmask = layout.grid[r], layout.grid_bins[r], layout.grid_mask[r]
        scale_styles = self.scale.styles
        show_numbers = middle and cw >= 3 and not layout.pooled
        for c in range(first, last):
            if c == cur_block:
                style = (scale_styles[int(bins[c])] if not gmask[c] else base) + Style(bold=True)
                cells.append(Segment(("◆" if middle else " ").center(cw), style))
            elif gmask[c]:
                cells.append(Segment(" " * cw, base))
            else:
                text = self.cell_text(float(grid[c])) if show_numbers else ""
                if 0 < len(text) < cw:
                    text = text.rjust(cw - 1) + " "
                elif len(text) != cw:
                    text = " " * cw
                cells.append(Segment(text, scale_styles[int(bins[c])]))
        if offset:  # the first column on screen is cut by the horizontal scroll
            cells = list(Strip(cells).crop(offset, offset + max(0, width - layout.label_width)))
        return Strip(Segment.simplify(segments + cells)).extend_cell_length(width, base).crop(0, width)

    def _header_line(self, y: int, width: int, layout: _Layout, styles: dict[str, Style]) -> Strip:
        base = styles["base"]
        room = max(0, width - layout.label_width)
        cw = layout.cell_width
        first, last, offset = self._visible_cols(width, layout)
        _, cur_col = self.cursor
        cur_block = self._block(layout.col_edges, cur_col)
        line = [" "] * room
        line_styles: list[Style] = [base] * room
        if y == 0:
            # the selected column: '▼ key 5 ␣Paris', or 'key 5 ␣Paris ▼' when it is near the right edge
            x = (cur_block - first) * cw - offset + (cw - 1) // 2
            name = f"{self.col_title} {cur_col} {self.col_labels[cur_col]}"
            title = self.row_title if cell_len(self.row_title) < layout.label_width else ""
            prefix = Segment(title.ljust(layout.label_width), styles["label"])
            if 0 <= x < room:
                after = "▼ " + name
                if x + cell_len(after) <= room or x < room // 2:
                    self._put(line, line_styles, x + 2, name, styles["selected"], room)
                else:
                    before = name + " "
                    self._put(line, line_styles, max(0, x - cell_len(before)), before, styles["selected"], room)
                self._put(line, line_styles, x, "▼", styles["label"], room)
            else:
                arrow = ("◀ " if x < 0 else "") + name + (" ▶" if x >= room else "")
                self._put(line, line_styles, 0 if x < 0 else max(0, room - cell_len(arrow)), arrow, styles["selected"],
                          room)
            return self._strip([prefix], line, line_styles, width, base)
        # staggered labels: line k shows the columns c with c % (header - 1) == k - 1, each in the room up to its next
        lanes = layout.header - 1
        for c in range(first, last):
            if c % lanes != y - 1:
                continue
            x = (c - first) * cw - offset
            index = cur_col if c == cur_block else int(layout.col_edges[c])
            text = self._fit_label(self.col_labels[index], lanes * cw - 1)
            style = styles["selected"] if c == cur_block else styles["label"]
            start = max(0, x)
            self._put(line, line_styles, start, text[start - x:], style, room)
        return self._strip([Segment(" " * layout.label_width, base)], line, line_styles, width, base)

    @staticmethod
    def _put(line: list[str], line_styles: list[Style], x: int, text: str, style: Style, room: int) -> None:
        for ch in text:
            w = cell_len(ch)
            if x + w > room:
                break
            line[x] = ch
            line_styles[x] = style
            for k in range(1, w):  # a wide character covers the next cell too
                line[x + k] = ""
            x += w

    @staticmethod
    def _strip(prefix: list[Segment], line: list[str], line_styles: list[Style], width: int, base: Style) -> Strip:
        segments = list(prefix) + [Segment(ch, st) for ch, st in zip(line, line_styles) if ch]
        return Strip(Segment.simplify(segments)).extend_cell_length(width, base).crop(0, width)

    def _legend_line(self, width: int, styles: dict[str, Style]) -> Strip:
        base = styles["base"]
        segments = [Segment(self.scale.title + " " if self.scale.title else "", styles["legend"])]
        for label, style in zip(self.scale.labels, self.scale.styles):
            segments.append(Segment(f" {label} ", style))
        used = sum(cell_len(s.text) for s in segments)
        if self.mask_note and used + 3 + cell_len(self.mask_note) <= width:
            segments.append(Segment("   " + self.mask_note, styles["legend"]))
        return Strip(segments).extend_cell_length(width, base).crop(0, width)

    @staticmethod
    def _fit_label(label: str, width: int, right: bool = False) -> str:
        """A label cut with '…' or padded to exactly `width` cells (right-aligned when `right`)."""
        if width <= 0:
            return ""
        if cell_len(label) > width:
            out, used = "", 0
            for ch in label:
                if used + cell_len(ch) > width - 1:
                    break
                out += ch
                used += cell_len(ch)
            return out + "…" + " " * (width - used - 1)
        pad = " " * (width - cell_len(label))
        return pad + label if right else label + pad

    # -- mouse -----------------------------------------------------------------------------

    def on_click(self, event: events.Click) -> None:
        """A click on a cell selects it; on a row label, that row; on the header, that column."""
        layout = self._geometry
        offset = event.get_content_offset(self)
        if layout is None or offset is None:
            return
        row, col = self.cursor
        width = self.scrollable_content_region.width
        if offset.x >= layout.label_width:
            first, last, shift = self._visible_cols(width, layout)
            block = first + (offset.x - layout.label_width + shift) // layout.cell_width
            if first <= block < last and self._block(layout.col_edges, col) != block:
                col = int(layout.col_edges[block])
        if offset.y >= layout.header:
            line = (int(self.scroll_offset.y) if self.zoom else 0) + offset.y - layout.header
            r = line // layout.cell_height
            if not 0 <= r < layout.n_rows:
                return
            if self._block(layout.row_edges, row) != r:
                row = int(layout.row_edges[r])
        self.select(row, col)

    # -- for tests and screen readers ------------------------------------------------------

    @property
    def shown(self) -> tuple[np.ndarray, np.ndarray]:
        """The values and mask drawn, one per cell on the map (pooled when the map is)."""
        if self._geometry is None:
            return np.zeros((0, 0), dtype=np.float32), np.zeros((0, 0), dtype=bool)
        return self._geometry.grid, self._geometry.grid_mask

    @property
    def pooled(self) -> bool:
        return self._geometry is not None and self._geometry.pooled

    @property
    def cell_size(self) -> tuple[int, int]:
        """(columns, lines) of one cell as drawn now."""
        layout = self._geometry
        return (layout.cell_width, layout.cell_height) if layout else (0, 0)
