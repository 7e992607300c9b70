"""A labelled scatter plot drawn with text: points on a 2-D map (PCA of embeddings), each with its label.

Terminal cells are about twice as tall as they are wide, so one row spans two
columns' worth of the map: distances on screen stay proportional in both directions
and "close on screen" means "close in the projection". Labels are placed next to
their point where there is room (right, left, above, below), else on the nearest
free spot, shortened only when no spot is wide enough: every point keeps a label.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import events
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

Role = Literal["query", "input", "result", "neighbour", "word"]

MARKERS: dict[str, str] = {"query": "◆", "input": "▲", "result": "✚", "neighbour": "•", "word": "●"}
"""One glyph per role, so the roles differ in shape, not only in colour."""

ROW_ASPECT = 2.0
"""A cell's height over its width: a row covers this many columns' worth of distance."""


@dataclass(frozen=True)
class MapPoint:
    """One point to draw: its label (already safe to show), where it is, and what it is."""

    label: str
    x: float
    y: float
    role: Role = "neighbour"
    key: int | None = None  # what the owner calls it (a token id), to highlight it


@dataclass(frozen=True)
class Placed:
    """A point and its label on the character grid."""

    point: MapPoint
    col: int
    row: int
    label: str  # possibly shortened
    label_col: int
    label_row: int


def _grid_positions(points: Sequence[MapPoint], width: int, height: int) -> list[tuple[int, int]]:
    """Cell (col, row) of each point, one scale for both axes (a row is ROW_ASPECT columns)."""
    if not points:
        return []
    xs, ys = [p.x for p in points], [p.y for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    cols, rows = width - 1, height - 1  # the last column and row: cells run from 0 to these
    span_x, span_y = x1 - x0, y1 - y0
    # units per column: the larger of what each axis needs; an axis one cell long shows no spread
    # (a map one row high once put points on row 1: an IndexError found by the soak test)
    unit = max(
        span_x / cols if span_x > 0 and cols > 0 else 0.0,
        span_y / (rows * ROW_ASPECT) if span_y > 0 and rows > 0 else 0.0,
    )
    if unit <= 0:
        return [(max(cols, 0) // 2, max(rows, 0) // 2)] * len(points)
    used_cols, used_rows = min(span_x / unit, cols), min(span_y / (unit * ROW_ASPECT), rows)
    off_c, off_r = (cols - used_cols) / 2, (rows - used_rows) / 2  # centre the cloud
    out = []
    for p in points:
        c = round(off_c + (p.x - x0) / unit)
        r = round(off_r + (y1 - p.y) / (unit * ROW_ASPECT))  # y grows upwards
        out.append((min(max(c, 0), cols), min(max(r, 0), rows)))
    return out


def shorten(label: str, cells: int) -> str:
    """The label cut to `cells` cells, ending in '…' when cut."""
    if cell_len(label) <= cells:
        return label
    out = ""
    for ch in label:
        if cell_len(out + ch) > cells - 1:
            break
        out += ch
    return out + "…"


def layout_map(points: Sequence[MapPoint], width: int, height: int, first: Sequence[int] = ()) -> list[Placed]:
    """Place every point and its label on a width x height grid.

    Points listed in `first` (indices) get their labels placed before the others, so
    they sit right beside their points. A label needs free cells and a gap to the next
    label; tried in order: right, left, above, below, then rings further out, then
    shorter versions of itself.
    """
    if width < 2 or height < 1:
        return []
    cells = _grid_positions(points, width, height)
    taken = [[False] * width for _ in range(height)]  # markers and labels
    text_at = [[False] * width for _ in range(height)]  # labels only (kept apart by a gap)
    for c, r in cells:
        taken[r][c] = True
    order = list(dict.fromkeys([*first, *range(len(points))]))
    placed: dict[int, Placed] = {}

    def free(col: int, row: int, n: int) -> bool:
        if row < 0 or row >= height or col < 0 or col + n > width:
            return False
        if any(taken[row][col + i] for i in range(n)):
            return False
        return not ((col > 0 and text_at[row][col - 1]) or (col + n < width and text_at[row][col + n]))

    def spots(c: int, r: int, n: int):
        yield c + 1, r
        yield c - n, r
        for dr in (-1, 1):
            for dc in (0, -n // 2, 1 - n, 1):
                yield c + dc, r + dr
        for ring in range(2, max(width, height)):  # further out: nearest rows first, then columns
            for dr in (0, -ring, ring, *(d for k in range(1, ring) for d in (-k, k))):
                for dc in (ring, -n - ring + 1, 1 - n // 2):
                    yield c + dc, r + dr

    for i in order:
        point, (c, r) = points[i], cells[i]
        label = point.label or "?"
        spot = None
        for size in sorted({cell_len(label), 12, 8, 5, 3}, reverse=True):
            if size > cell_len(label):
                continue
            text = shorten(label, size)
            n = cell_len(text)
            spot = next(((col, row) for col, row in spots(c, r, n) if free(col, row, n)), None)
            if spot is not None:
                label = text
                break
        if spot is None:  # no room at all: overwrite beside the point
            label = shorten(label, max(1, width - c - 1))
            spot = (min(c + 1, width - 1), r)
        col, row = spot
        n = cell_len(label)
        for k in range(n):
            if col + k < width:
                taken[row][col + k] = True
                text_at[row][col + k] = True
        placed[i] = Placed(point, c, r, label, col, row)
    return [placed[i] for i in range(len(points))]


class ScatterMap(Widget):
    """Points with labels, projected to 2-D; the highlighted one (by key) stands out."""

    DEFAULT_CSS = """
    ScatterMap {
        width: 1fr;
        height: 1fr;
        & > .scatter--query { color: $text-accent; text-style: bold; }
        & > .scatter--input { color: $text-warning; text-style: bold; }
        & > .scatter--result { color: $text-success; text-style: bold; }
        & > .scatter--word { color: $text; }
        & > .scatter--neighbour { color: $text-primary; }
        & > .scatter--label { color: $text; }
        & > .scatter--highlight { background: $block-cursor-background; color: $block-cursor-foreground; text-style: bold; }
        & > .scatter--empty { color: $text-muted; }
    }
    """

    COMPONENT_CLASSES = {
        "scatter--query",
        "scatter--input",
        "scatter--result",
        "scatter--word",
        "scatter--neighbour",
        "scatter--label",
        "scatter--highlight",
        "scatter--empty",
    }

    points: reactive[tuple[MapPoint, ...]] = reactive((), layout=False)
    """What to draw."""
    highlight: reactive[int | None] = reactive(None)
    """The key of the point to make stand out (the list's cursor)."""
    empty_text: reactive[str] = reactive("")
    """Shown when there are no points."""

    class Resized(Message):
        """The map's drawing area changed size (its owner may want more or fewer points)."""

        def __init__(self, width: int, height: int) -> None:
            self.width, self.height = width, height
            super().__init__()

    def on_resize(self, event: events.Resize) -> None:
        size = self.content_region.size
        self.post_message(self.Resized(size.width, size.height))

    def placed(self) -> list[Placed]:
        """The layout at the widget's current size (what `render` draws)."""
        size = self.content_region.size
        first = [i for i, p in enumerate(self.points) if p.role != "neighbour" or p.key == self.highlight]
        return layout_map(self.points, size.width, size.height, first)

    def render(self) -> Text:
        size = self.content_region.size
        width, height = size.width, size.height
        if not self.points or width < 2 or height < 1:
            return Text(self.empty_text, style=self.get_component_rich_style("scatter--empty"))
        grid: list[list[tuple[str, Style] | None]] = [[(" ", Style())] * width for _ in range(height)]
        label_style = self.get_component_rich_style("scatter--label")
        hi_style = self.get_component_rich_style("scatter--highlight")
        layout = self.placed()

        def put(col: int, row: int, text: str, style: Style) -> None:
            for ch in text:
                w = cell_len(ch)
                if w == 0:  # a combining mark: joins the previous cell
                    if col > 0 and grid[row][col - 1] is not None:
                        prev = grid[row][col - 1]
                        grid[row][col - 1] = (prev[0] + ch, prev[1])  # type: ignore[index]
                    continue
                if col + w > width:
                    return
                if grid[row][col] is None and col > 0:  # half of a wide character: blank its first half
                    grid[row][col - 1] = (" ", grid[row][col - 1][1] if grid[row][col - 1] else Style())
                old = grid[row][col]
                if old is not None and cell_len(old[0]) > 1 and col + 1 < width:  # we cover its first half
                    grid[row][col + 1] = (" ", old[1])
                for k in range(1, w):  # a wide character covers the next cell too
                    if col + k < width:
                        grid[row][col + k] = None
                grid[row][col] = (ch, style)
                col += w

        # labels first, then markers on top: a point is never hidden by a label
        for p in layout:
            style = (
                hi_style
                if p.point.key is not None and p.point.key == self.highlight
                else (
                    label_style
                    if p.point.role == "neighbour"
                    else self.get_component_rich_style(f"scatter--{p.point.role}")
                )
            )
            put(p.label_col, p.label_row, p.label, style)
        for p in layout:
            role_style = self.get_component_rich_style(f"scatter--{p.point.role}")
            if p.point.key is not None and p.point.key == self.highlight:
                role_style = hi_style
            put(p.col, p.row, MARKERS[p.point.role], role_style)
        text = Text(no_wrap=True, overflow="crop")
        for r, row in enumerate(grid):
            for cell in row:
                if cell is not None:
                    text.append(cell[0], cell[1])
            if r < height - 1:
                text.append("\n")
        return text
