"""Small multiples: many little heatmaps side by side (every head of a layer, or of the model), one selectable.

Each thumbnail is drawn with half-block characters ('▀': the top pixel in the
foreground colour, the bottom one in the background), so one terminal cell holds
two square pixels. The matrices come as one (N, R, C) stack (a view of a bigger
tensor is fine: nothing is copied) and are pooled into the thumbnails' pixels in one
vectorised pass; small ones are repeated. The arrows (or the mouse) move the highlight; enter or a click posts
`Opened` for the thumbnail, to open it large.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from llmtui.app.widgets.heatmap import ATTENTION_SCALE, ColorScale, Pool, resample_stack

MAX_PIXELS = 24
"""The largest thumbnail side, in pixels (a pixel is half a terminal cell tall)."""
MIN_PIXELS = 4


@dataclass(frozen=True)
class Thumb:
    """One small heatmap: a title ('head 5'), a short note ('prev .91'), and its matrix."""

    title: str
    note: str
    values: np.ndarray  # (R, C)


@dataclass(frozen=True)
class _Grid:
    columns: int
    tile_width: int  # columns per thumbnail, its one-column gap included
    tile_height: int  # lines per thumbnail: the title line, the pixels, a blank line
    pixels: int  # the thumbnail's side in pixels
    label_width: int  # room for the grid rows' labels

    def rows(self, n: int) -> int:
        return -(-n // self.columns)


class HeadOverview(ScrollView, can_focus=True):
    """A grid of thumbnails with a highlighted one."""

    DEFAULT_CSS = """
    HeadOverview {
        background: $surface;
        & > .head-overview--title { color: $text-muted; }
        & > .head-overview--note { color: $text-muted; text-style: italic; }
        & > .head-overview--cursor { background: $accent; color: $text; text-style: bold; }
        & > .head-overview--label { color: $text-muted; text-style: bold; }
    }
    """

    COMPONENT_CLASSES = {"head-overview--title", "head-overview--note", "head-overview--cursor", "head-overview--label"}

    BINDINGS = [
        Binding("left", "move(-1, 0)", "Left", show=False),
        Binding("right", "move(1, 0)", "Right", show=False),
        Binding("up", "move(0, -1)", "Up", show=False),
        Binding("down", "move(0, 1)", "Down", show=False),
        Binding("enter", "open", "Open", tooltip="Open the highlighted heatmap large"),
    ]

    cursor: reactive[int] = reactive(0, init=False)
    """The highlighted thumbnail."""

    class Highlighted(Message):
        """The highlight moved to thumbnail `index`."""

        def __init__(self, overview: HeadOverview, index: int) -> None:
            self.overview = overview
            self.index = index
            super().__init__()

        @property
        def control(self) -> HeadOverview:
            return self.overview

    class Opened(Message):
        """The user chose thumbnail `index` (enter or a click) of the `count` shown then."""

        def __init__(self, overview: HeadOverview, index: int, count: int) -> None:
            self.overview = overview
            self.index = index
            self.count = count  # a listener can tell a choice made among thumbnails since replaced
            super().__init__()

        @property
        def control(self) -> HeadOverview:
            return self.overview

    def __init__(self, *, scale: ColorScale = ATTENTION_SCALE, pool: Pool = "mean", id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.scale = scale
        self.pool_how: Pool = pool
        self.stack = np.zeros((0, 0, 0), dtype=np.float32)
        self.mask: np.ndarray | None = None
        self.titles: list[str] = []
        self.notes: list[str] = []
        self.columns: int | None = None
        self.row_labels: list[str] = []
        self._grid: _Grid | None = None
        self._pixels: tuple[np.ndarray, np.ndarray] | None = None  # (bins (N, p, p), mask (p, p)) at the pixel size
        self._line_styles: dict[str, Style] = {}

    def set_thumbs(self, stack: np.ndarray, titles: Sequence[str], notes: Sequence[str] = (), mask: Any = None, *,
                   columns: int | None = None, row_labels: Sequence[str] = (), cursor: int = 0) -> None:
        """Show one thumbnail per matrix of `stack` (N, R, C), with its title and note.

        mask (R, C), shared by all: True where a matrix has no value (drawn blank); the
        values there must be 0, as they are in a causal attention matrix. `columns` fixes
        how many thumbnails per row (rows then scroll), None fits them all on screen;
        row_labels name the grid's rows (say 'L0', 'L1', ... when each row is a layer).
        """
        stack = np.asarray(stack, dtype=np.float32)
        if stack.ndim != 3 or len(titles) != stack.shape[0]:
            raise ValueError(f"a stack of N matrices (N, R, C) and N titles, not {stack.shape} and {len(titles)}")
        self.stack = stack
        self.mask = None if mask is None else np.asarray(mask, dtype=bool)
        self.titles = list(titles)
        self.notes = list(notes) + [""] * (len(titles) - len(notes))
        self.columns = columns
        self.row_labels = list(row_labels)
        self.set_reactive(HeadOverview.cursor, max(0, min(cursor, len(self.titles) - 1)))
        self._pixels = None
        self._relayout()
        self.scroll_to(0, 0, animate=False)
        self._follow_cursor()

    def clear(self) -> None:
        self.set_thumbs(np.zeros((0, 0, 0), dtype=np.float32), [])

    @property
    def thumbs(self) -> list[Thumb]:
        """The thumbnails shown, in order."""
        return [Thumb(t, n, self.stack[i]) for i, (t, n) in enumerate(zip(self.titles, self.notes))]

    # -- layout ----------------------------------------------------------------------------

    def _choose_grid(self) -> _Grid | None:
        n = len(self.titles)
        if not n:
            return None
        width = max(1, self.content_region.width)
        height = max(1, self.content_region.height)
        label_width = max((cell_len(label) for label in self.row_labels), default=0)
        label_width = label_width + 1 if label_width else 0
        room = width - label_width
        if self.columns is not None:
            columns = max(1, min(self.columns, n))
            tile_width = max(MIN_PIXELS + 1, room // columns)
            pixels = max(MIN_PIXELS, min(MAX_PIXELS, tile_width - 1, 12))
            return _Grid(columns, tile_width, 1 + -(-pixels // 2) + 1, pixels, label_width)
        best: _Grid | None = None
        for columns in range(1, n + 1):
            rows = -(-n // columns)
            tile_width = room // columns
            tile_height = height // rows
            pixels = min(MAX_PIXELS, tile_width - 1, 2 * (tile_height - 2))
            if pixels < MIN_PIXELS and best is not None:
                continue
            pixels = max(MIN_PIXELS, pixels)
            grid = _Grid(columns, max(MIN_PIXELS + 1, tile_width), 1 + -(-pixels // 2) + 1, pixels, label_width)
            if best is None or pixels > best.pixels:
                best = grid
        return best

    def _relayout(self) -> None:
        grid = self._choose_grid()
        old = self._grid
        self._grid = grid
        if grid is None:
            self._pixels = None
            self.virtual_size = Size(self.content_region.width, self.content_region.height)
            self.refresh()
            return
        if old is None or old.pixels != grid.pixels or self._pixels is None:
            values, mask = resample_stack(self.stack, self.mask, grid.pixels, grid.pixels, self.pool_how)
            self._pixels = (self.scale.bins(values), mask)
        rows = grid.rows(len(self.titles))
        self.virtual_size = Size(grid.label_width + grid.columns * grid.tile_width, rows * grid.tile_height)
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        self._relayout()
        self._follow_cursor()

    def tile_at(self, x: int, y: int) -> int | None:
        """The thumbnail at content offset (x, y) of the whole grid, or None."""
        grid = self._grid
        if grid is None or x < grid.label_width:
            return None
        column = (x - grid.label_width) // grid.tile_width
        index = (y // grid.tile_height) * grid.columns + column
        return index if column < grid.columns and 0 <= index < len(self.titles) else None

    # -- cursor ----------------------------------------------------------------------------

    def watch_cursor(self, old: int, new: int) -> None:
        self._follow_cursor()
        self.refresh()
        if old != new:
            self.post_message(self.Highlighted(self, new))

    def _follow_cursor(self) -> None:
        grid = self._grid
        if grid is None:
            return
        top = (self.cursor // grid.columns) * grid.tile_height
        self.scroll_to_region(Region(0, top, 1, grid.tile_height), animate=False, immediate=True)

    def action_move(self, dx: int, dy: int) -> None:
        grid = self._grid
        if grid is None:
            return
        index = self.cursor + dx + dy * grid.columns
        if 0 <= index < len(self.titles):
            self.cursor = index

    def action_open(self) -> None:
        if self.titles:
            self.post_message(self.Opened(self, self.cursor, len(self.titles)))

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        index = self.tile_at(offset.x + int(self.scroll_offset.x), offset.y + int(self.scroll_offset.y))
        if index is not None:
            self.cursor = index
            self.post_message(self.Opened(self, index, len(self.titles)))

    # -- drawing ---------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._line_styles = {}  # the theme or the CSS changed: look the styles up again

    def render_lines(self, crop: Region) -> list[Strip]:
        if not self._line_styles:  # component styles are not cheap to look up: once per style change
            base = self.rich_style
            self._line_styles = {
                "base": base,
                "title": base + self.get_component_rich_style("head-overview--title"),
                "note": base + self.get_component_rich_style("head-overview--note"),
                "cursor": base + self.get_component_rich_style("head-overview--cursor"),
                "label": base + self.get_component_rich_style("head-overview--label"),
            }
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        styles = self._line_styles or {k: Style() for k in ("base", "title", "note", "cursor", "label")}
        base = styles["base"]
        width = self.scrollable_content_region.width
        grid = self._grid
        if grid is None:
            return Strip.blank(width, base)
        scroll_x, scroll_y = int(self.scroll_offset.x), int(self.scroll_offset.y)
        line = y + scroll_y
        grid_row, k = divmod(line, grid.tile_height)
        if grid_row >= grid.rows(len(self.titles)):
            return Strip.blank(width, base)
        segments: list[Segment] = []
        if grid.label_width:
            label = self.row_labels[grid_row] if k == 0 and grid_row < len(self.row_labels) else ""
            segments.append(Segment(label.ljust(grid.label_width), styles["label"]))
        for column in range(grid.columns):
            index = grid_row * grid.columns + column
            if index >= len(self.titles):
                break
            segments.extend(self._tile_line(index, k, grid, styles))
        strip = Strip(Segment.simplify(segments)).extend_cell_length(scroll_x + width, base)
        return strip.crop(scroll_x, scroll_x + width)

    def _tile_line(self, index: int, k: int, grid: _Grid, styles: dict[str, Style]) -> list[Segment]:
        """Line k of one tile: its title, then its pixels two rows at a time, then a blank line."""
        base = styles["base"]
        tile = grid.tile_width
        if k == 0:
            selected = index == self.cursor
            title = self.titles[index]
            note = (" " + self.notes[index]) if self.notes[index] else ""
            text = (title + note)[: tile - 1]
            title_part, note_part = text[: len(title)], text[len(title):]
            style = styles["cursor"] if selected else styles["title"]
            return [Segment(title_part, style), Segment(note_part, style if selected else styles["note"]),
                    Segment(" " * (tile - cell_len(text)), base)]
        pixel_row = 2 * (k - 1)
        if pixel_row >= grid.pixels:
            return [Segment(" " * tile, base)]
        assert self._pixels is not None
        all_bins, mask = self._pixels
        bins = all_bins[index]
        colours = self.scale.colours
        background = base.bgcolor
        segments = []
        for px in range(grid.pixels):
            top_masked = bool(mask[pixel_row, px])
            top = None if top_masked else colours[int(bins[pixel_row, px])]
            if pixel_row + 1 < grid.pixels and not mask[pixel_row + 1, px]:
                bottom: Any = colours[int(bins[pixel_row + 1, px])]
            else:
                bottom = background
            if top is None:
                segments.append(Segment(" ", Style(bgcolor=bottom)))
            else:
                segments.append(Segment("▀", Style(color=top, bgcolor=bottom)))
        segments.append(Segment(" " * (tile - grid.pixels), base))
        return segments
