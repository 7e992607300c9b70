"""The probability table of one step: the top candidates, the model's probability and the knobs'.

Each row is one candidate token: the model's raw probability, its probability after
the knobs, and a bar of the latter (a light shade shows where the model's own
probability reached, so temperature's effect is visible). The drawn token is marked
▶; candidates a knob cut away are greyed and struck through, with the knob's name.
A served model's candidate whose fate the unlisted tail leaves open shows '?' (remote/judge.py).
Enter (or a second click) on a row posts `Chosen`: "what if it had said this?".

A small line-API widget rather than a DataTable: it is redrawn many times a second
while a generation streams, and each redraw must cost next to nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Region
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from llmtui.app.palette import CUT_STYLE, bar
from llmtui.engine.remote import UNDECIDED

if TYPE_CHECKING:
    from llmtui.engine.generation import Candidate
    from llmtui.engine.settings import SamplingSettings

_CONSOLE = Console(color_system="truecolor", width=1000)


def _segments(text: Text) -> list[Segment]:
    """A one-line Text as segments, its base style included (Text.render leaves that to the caller)."""
    return list(Segment.apply_style(text.render(_CONSOLE), _CONSOLE.get_style(text.style)))

TOKEN_WIDTH = 13  # "▶ " and an 11-cell label
NUMBER_WIDTH = 7  # " 100.0%"


def percent(p: float) -> str:
    """A probability as a short percentage: '77.1%', '<0.1%', '0%'."""
    if p == 0:
        return "0%"
    if p < 0.001:
        return "<0.1%"
    return f"{p:.1%}"


def settings_summary(s: SamplingSettings) -> str:
    """The knobs that act, in a few words: 'T 0.70 · top-p 0.90' or 'greedy'."""
    parts = ["greedy" if s.greedy else f"T {s.temperature:.2f}"]
    if not s.greedy:
        if s.top_k:
            parts.append(f"top-k {s.top_k}")
        if s.top_p < 1:
            parts.append(f"top-p {s.top_p:.2f}")
        if s.min_p > 0:
            parts.append(f"min-p {s.min_p:.2f}")
        if s.typical_p < 1:
            parts.append(f"typical {s.typical_p:.2f}")
        if s.top_n_sigma > 0:
            parts.append(f"n-sigma {s.top_n_sigma:g}")
    if s.repetition_penalty != 1:
        parts.append(f"repeat {s.repetition_penalty:.2f}")
    if s.frequency_penalty or s.presence_penalty:
        parts.append(f"freq {s.frequency_penalty:g} pres {s.presence_penalty:g}")
    if s.banned or s.logit_bias:
        parts.append(f"{len(s.banned)} banned" if not s.logit_bias else f"{len(s.banned)} banned, {len(s.logit_bias)} biased")
    return " · ".join(parts)


@dataclass(frozen=True)
class TableView:
    """What the table shows: one step's candidates (or the next token's, as a preview)."""

    title: str
    index: int  # the step's index; for a preview, the index the next step would take
    candidates: tuple[Candidate, ...]
    labels: tuple[str, ...]  # each candidate's token as a safe one-line label
    drawn: int | None  # the token id that was drawn; None for a preview
    settings: SamplingSettings
    preview: bool = False


def _fit(text: str, width: int) -> str:
    """Text cut (with an ellipsis) or padded to exactly `width` cells."""
    t = Text(text)
    t.truncate(width, overflow="ellipsis", pad=True)
    return t.plain


class ProbabilityTable(Widget, can_focus=True):
    """Candidates of one step, one row each, under a header line."""

    DEFAULT_CSS = """
    ProbabilityTable {
        height: 1fr;
        background: $surface;
        & > .prob-table--header { color: $text-muted; text-style: bold; }
        & > .prob-table--cursor { background: $block-cursor-blurred-background; }
        &:focus > .prob-table--cursor { background: $block-cursor-background 60%; }
        & > .prob-table--empty { color: $text-muted; text-style: italic; }
    }
    """

    COMPONENT_CLASSES = {"prob-table--header", "prob-table--cursor", "prob-table--empty"}

    BINDINGS = [
        Binding("enter", "choose", "Fork here", show=True, tooltip="Take this token here instead and go on from it"),
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("home", "cursor_to(0)", "First", show=False),
        Binding("end", "cursor_to(-1)", "Last", show=False),
    ]

    cursor: reactive[int] = reactive(0)
    """The highlighted row (the one enter chooses)."""

    class Chosen(Message):
        """The user chose a candidate: take `token_id` at step `index` instead."""

        def __init__(self, table: ProbabilityTable, index: int, token_id: int, preview: bool) -> None:
            self.table = table
            self.index = index
            self.token_id = token_id
            self.preview = preview
            super().__init__()

        @property
        def control(self) -> ProbabilityTable:
            return self.table

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view: TableView | None = None
        self._rows: list[tuple[list[Segment], tuple[str, str, str]]] = []
        self._base = Style()
        self._styles: dict[str, Style] = {}
        self._width = self._height = 0
        self._strips: dict[tuple[int, bool, bool, int, Style], Strip] = {}  # (row, focused cursor, cursor, width, base)

    # -- content ---------------------------------------------------------------------------

    def show(self, view: TableView | None) -> None:
        """Show a step's candidates (None: nothing yet). The cursor stays put within the same step."""
        same_step = view is not None and self.view is not None and view.index == self.view.index
        self.view = view
        self._rows = self._build_rows()
        self._strips.clear()
        if view is None:
            self.border_title, self.border_subtitle = "Next token", ""
        else:
            self.border_title, self.border_subtitle = Text(view.title), settings_summary(view.settings)  # tokens literally
        if not same_step and view is not None:
            drawn = [n for n, c in enumerate(view.candidates) if c.id == view.drawn]
            self.set_reactive(ProbabilityTable.cursor, drawn[0] if drawn else 0)
        self.cursor = min(self.cursor, max(0, len(self._rows) - 1))
        self.refresh()

    @property
    def bar_width(self) -> int:
        return max(4, min(48, (self.content_region.width or 40) - TOKEN_WIDTH - 2 * NUMBER_WIDTH - 2))

    def _build_rows(self) -> list[tuple[list[Segment], tuple[str, str, str]]]:
        """Each candidate's row as segments (built once per view: redraws only copy them) and as plain cells."""
        view = self.view
        if view is None:
            return []
        rows = []
        width = self.bar_width
        bold, cut_bold = Style(bold=True), CUT_STYLE + Style(bold=True)
        for c, label in zip(view.candidates, view.labels):
            drawn = c.id == view.drawn
            cut = c.cut_by not in (None, UNDECIDED)
            name = _fit(("▶ " if drawn else "  ") + label, TOKEN_WIDTH)
            model = percent(c.raw_prob).rjust(NUMBER_WIDTH)
            knobs = (c.cut_by if cut else UNDECIDED if c.prob is None else percent(c.prob)).rjust(NUMBER_WIDTH)
            text_style = (cut_bold if drawn else CUT_STYLE) if cut else (bold if drawn else None)
            segments = [
                Segment(name[:2], bold if drawn else None),
                Segment(name[2:], text_style),
                Segment(model, CUT_STYLE if cut else None),
                Segment(knobs, text_style),
                Segment("  "),
                *_segments(bar(c.prob or 0.0, width, ghost=c.raw_prob)),
            ]
            rows.append((segments, (name.strip(), model.strip(), knobs.strip())))
        return rows

    def on_resize(self, event: events.Resize) -> None:
        self._rows = self._build_rows()
        self._strips.clear()

    @property
    def cells(self) -> list[tuple[str, str, str]]:
        """Each row as plain text (token, model, knobs), for tests and screen readers."""
        return [plain for _, plain in self._rows]

    # -- drawing ---------------------------------------------------------------------------

    def _first_row(self) -> int:
        """The first row drawn: the rows scroll so that the cursor stays visible."""
        visible = max(1, (self._height or self.content_region.height) - 1)
        return max(0, min(self.cursor - visible + 1, len(self._rows) - visible)) if self.cursor >= visible else 0

    def _component(self, name: str) -> Style:
        """A component class's style, cached until the styles change (asked for on every redraw)."""
        if name not in self._styles:
            self._styles[name] = self.get_component_rich_style(f"prob-table--{name}")
        return self._styles[name]

    def render_lines(self, crop: Region) -> list[Strip]:
        self._base = self.rich_style  # once per redraw, as the size: neither is cheap to ask for
        self._width, self._height = self.content_region.width, self.content_region.height
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self._width
        base = self._base
        if y == 0:
            header = self._component("header")
            text = "  token".ljust(TOKEN_WIDTH) + "model".rjust(NUMBER_WIDTH) + "knobs".rjust(NUMBER_WIDTH) + "  after knobs"
            if not self._rows:
                text = ""
            return Strip([Segment(text, base + header)]).extend_cell_length(width, base).crop(0, width)
        n = self._first_row() + y - 1
        if not 0 <= n < len(self._rows):
            if n == 0 and self.view is None:
                empty = self._component("empty")
                return Strip([Segment(" Type a prompt: the next token's", base + empty)]).extend_cell_length(width, base)
            if n == 1 and self.view is None:
                empty = self._component("empty")
                return Strip([Segment(" candidates will show here.", base + empty)]).extend_cell_length(width, base)
            return Strip.blank(width, base)
        key = (n, n == self.cursor and self.has_focus, n == self.cursor, width, base)
        strip = self._strips.get(key)
        if strip is None:
            row_style = base
            if n == self.cursor:
                row_style = base + self._component("cursor")
            segments = self._rows[n][0]
            strip = Strip(Segment.apply_style(segments, row_style)).extend_cell_length(width, row_style).crop(0, width)
            self._strips[key] = strip
        return strip

    # -- keys and mouse --------------------------------------------------------------------

    def watch_cursor(self) -> None:
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()  # focus or theme changed the cursor's colours
        self._styles.clear()

    def action_cursor(self, delta: int) -> None:
        if self._rows:
            self.cursor = max(0, min(len(self._rows) - 1, self.cursor + delta))

    def action_cursor_to(self, row: int) -> None:
        if self._rows:
            self.cursor = row % len(self._rows)

    def action_choose(self) -> None:
        self.choose(self.cursor)

    def highlighted_token(self) -> tuple[int, str] | None:
        """The cursor's candidate as (id, text), or None when the table is empty."""
        if self.view is None or not 0 <= self.cursor < len(self.view.candidates):
            return None
        candidate = self.view.candidates[self.cursor]
        return candidate.id, candidate.text

    def choose(self, row: int) -> None:
        """Post Chosen for a row's candidate, as enter on it would."""
        if self.view is None or not 0 <= row < len(self.view.candidates):
            return
        self.post_message(self.Chosen(self, self.view.index, self.view.candidates[row].id, self.view.preview))

    def on_mouse_down(self, event: events.MouseDown) -> None:
        self._had_focus = self.has_focus

    def on_click(self, event: events.Click) -> None:
        """A click moves the cursor; a click on the cursor's row when the table had focus chooses it."""
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1:
            return
        row = self._first_row() + offset.y - 1
        if not 0 <= row < len(self._rows):
            return
        if row == self.cursor and (getattr(self, "_had_focus", False) or event.chain > 1):
            self.choose(row)
        self.cursor = row
