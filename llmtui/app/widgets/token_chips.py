"""Token chips: text cut into tokens, each a coloured chip with its id under it, drawn line by line.

A line-API ScrollView. The layout is a few integers per token (its line and column), and
only the lines on screen are drawn, so 10,000 tokens cost about what 100 do. Chips
alternate colours so that boundaries show; spaces, newlines and tabs are visible (· ↵ →);
bytes that are not a whole character are written <0xF0>; when a character is cut
across several tokens, a bracket under their chips shows the character they make.
Several sections (one per tokenizer) can be stacked, each with a title line.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from rich.cells import cell_len, get_character_cell_size
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

from llmtui.engine.tokenizer.tokens import LabelKind, Tokenization, token_label

if TYPE_CHECKING:
    from llmtui.engine.tokenizer.tokenizer import Tokenizer

GAP = 1
"""Columns between two chips."""


@dataclass(frozen=True)
class ChipSection:
    """One tokenizer's tokens (or a note instead, e.g. why it is unavailable), under an optional title."""

    key: str
    title: Text | None = None
    tokenizer: Tokenizer | None = None
    tokens: Tokenization | None = None
    note: Text | None = None


@dataclass(frozen=True)
class _Label:
    """How one token id looks: its label's runs and width, its id as text, and its chip's width."""

    runs: tuple[tuple[str, LabelKind], ...]
    width: int  # cells of the label
    id_text: str
    chip: int  # cells of the chip: the label or the id, the wider


@dataclass
class _Line:
    """One line of chips: tokens [start, stop) of a section, their columns, and group brackets."""

    start: int
    stop: int = 0
    brackets: list[tuple[int, int, str, bool, bool]] = field(default_factory=list)  # x0, x1, text, opens, closes


@dataclass
class _Layout:
    """A section laid out at one width."""

    section: ChipSection
    labels: list[_Label]
    ids: list[str]
    xs: list[int]  # column of each token's chip
    widths: list[int]  # cells of each chip
    line_of: list[int]  # line index of each token
    lines: list[_Line]
    note_lines: list[Text]
    first_row: int = 0  # the row of the section's first line (title, note or chips)
    line_rows: list[int] = field(default_factory=list)  # first row of each chip line


def clip(text: str, room: int) -> str:
    """Text cut to `room` cells, with '…' when cut."""
    if cell_len(text) <= room:
        return text
    out, used = [], 0
    for ch in text:
        w = get_character_cell_size(ch)
        if used + w > room - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


class TokenChips(ScrollView, can_focus=True):
    """Tokens as chips with their ids, wrapped, with a cursor on one token."""

    DEFAULT_CSS = """
    TokenChips {
        background: $surface;
        & > .token-chips--even { background: $primary 45%; color: $foreground; }
        & > .token-chips--odd { background: $foreground 22%; color: $foreground; }
        & > .token-chips--special { background: $warning 70%; color: $text; text-style: bold; }
        & > .token-chips--cursor { background: $accent; color: $text; text-style: bold; }
        & > .token-chips--marker { color: $foreground 65%; }
        & > .token-chips--byte { text-style: italic; }
        & > .token-chips--escape { color: $text-error; }
        & > .token-chips--id { color: $text-muted; }
        & > .token-chips--id-cursor { color: $text-accent; text-style: bold; }
        & > .token-chips--group { color: $text-accent; }
        & > .token-chips--title { color: $text; text-style: bold; }
        & > .token-chips--note { color: $text-muted; }
    }
    """

    COMPONENT_CLASSES = {
        "token-chips--even",
        "token-chips--odd",
        "token-chips--special",
        "token-chips--cursor",
        "token-chips--marker",
        "token-chips--byte",
        "token-chips--escape",
        "token-chips--id",
        "token-chips--id-cursor",
        "token-chips--group",
        "token-chips--title",
        "token-chips--note",
    }

    BINDINGS = [
        Binding("left", "move(-1)", "Previous token", show=False),
        Binding("right", "move(1)", "Next token", show=False),
        Binding("up", "move_line(-1)", "Line up", show=False),
        Binding("down", "move_line(1)", "Line down", show=False),
        Binding("home", "first", "First token", show=False),
        Binding("end", "last", "Last token", show=False),
        Binding("enter", "open", "Embeddings", tooltip="Open the selected token in the Embeddings pane"),
    ]

    selected: reactive[int | None] = reactive(None, layout=False, always_update=True)
    """The selected token, counted across all sections; None when nothing is selected."""

    class Moved(Message):
        """The user put the cursor on a token (arrows, home/end, a click); not sent when the owner moves it."""

        def __init__(self, chips: TokenChips, section: ChipSection, index: int) -> None:
            self.chips = chips
            self.section = section
            self.index = index
            super().__init__()

        @property
        def control(self) -> TokenChips:
            return self.chips

    class Opened(Message):
        """Enter (or a double click) on a token: the pane decides what opening it means."""

        def __init__(self, chips: TokenChips, section: ChipSection, index: int) -> None:
            self.chips = chips
            self.section = section
            self.index = index
            super().__init__()

        @property
        def control(self) -> TokenChips:
            return self.chips

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._sections: list[ChipSection] = []
        self._layouts: list[_Layout] = []
        self._offsets: list[int] = []  # flat index of each section's first token
        self._total = 0
        self._rows: list[tuple[int, str, int]] = []  # (section, kind, payload) for every row
        self._width = -1
        self._labels: WeakKeyDictionary[Tokenizer, dict[int, _Label]] = WeakKeyDictionary()
        self._styles: dict[str, Style] = {}
        self._base = Style()
        self._message: Text | None = None
        self._message_lines: list[Text] = []
        self._kind_styles: dict[str, Style] = {}

    # -- content ---------------------------------------------------------------------------

    def show(self, sections: list[ChipSection], selected: int | None = None) -> None:
        """Show these sections; `selected` (a flat index) is clamped to the tokens there are."""
        old_keys, old_scroll = self._visible_keys(), self.scroll_offset.y
        self._sections = sections
        self._message = None
        self._relayout()
        self.set_reactive(TokenChips.selected, None if selected is None or not self._total else
                          max(0, min(selected, self._total - 1)))
        self._scroll_to_selected()
        self._refresh_changed(old_keys, old_scroll)

    def show_message(self, message: Text) -> None:
        """A message instead of tokens (loading, unavailable, nothing typed yet)."""
        self._sections = []
        self._message = message
        self._relayout()
        self.refresh()
        self.selected = None

    @property
    def sections(self) -> list[ChipSection]:
        return self._sections

    @property
    def total(self) -> int:
        """Tokens shown, across all sections."""
        return self._total

    def locate(self, flat: int) -> tuple[ChipSection, int]:
        """The section and token index of a flat index."""
        s = bisect_right(self._offsets, flat) - 1
        return self._sections[s], flat - self._offsets[s]

    def flat_index(self, section_key: str, index: int) -> int | None:
        for s, section in enumerate(self._sections):
            if section.key == section_key and section.tokens is not None and index < section.tokens.n_tokens:
                return self._offsets[s] + index
        return None

    def chip_label(self, tokenizer: Tokenizer | None, token_id: int, data: bytes) -> str:
        """The text a chip shows for a token (markers and escapes included)."""
        return "".join(text for text, _ in self._label(tokenizer, token_id, data).runs)

    @property
    def plain_lines(self) -> list[str]:
        """Every row as plain text (for tests and the benchmark)."""
        return [self._row_strip(y).text for y in range(len(self._rows))]

    # -- layout ----------------------------------------------------------------------------

    def _label(self, tokenizer: Tokenizer | None, token_id: int, data: bytes) -> _Label:
        cache = self._labels.setdefault(tokenizer, {}) if tokenizer is not None else {}
        return cache.get(token_id) or self._new_label(cache, token_id, data, _space_marker(tokenizer))

    @staticmethod
    def _new_label(cache: dict[int, _Label], token_id: int, data: bytes, space: str) -> _Label:
        """A token's label, kept by id: the same id always looks the same."""
        runs = token_label(data, space)
        width, id_text = sum(cell_len(text) for text, _ in runs), str(token_id)
        label = cache[token_id] = _Label(runs, width, id_text, max(width, len(id_text)))
        return label

    def _relayout(self) -> None:
        width = max(8, self.scrollable_content_region.width or self.size.width or 80)
        self._width = width
        self._layouts, self._offsets, self._rows = [], [], []
        total = 0
        self._message_lines = list(self._message.wrap(self.app.console, width)) if self._message is not None else []
        self._rows = [(-1, "message", k) for k in range(len(self._message_lines))]
        for s, section in enumerate(self._sections):
            layout = self._layout_section(section, width)
            self._offsets.append(total)
            total += len(layout.ids)
            if s:
                self._rows.append((s, "blank", 0))
            layout.first_row = len(self._rows)
            if section.title is not None:
                self._rows.append((s, "title", 0))
            for k in range(len(layout.note_lines)):
                self._rows.append((s, "note", k))
            for k, line in enumerate(layout.lines):
                layout.line_rows.append(len(self._rows))
                self._rows.append((s, "chips", k))
                self._rows.append((s, "ids", k))
                if line.brackets:
                    self._rows.append((s, "groups", k))
            self._layouts.append(layout)
        self._total = total
        self.virtual_size = Size(width, len(self._rows))

    def _layout_section(self, section: ChipSection, width: int) -> _Layout:
        tokens = section.tokens
        note_lines = list(section.note.wrap(self.app.console, width)) if section.note is not None else []
        if tokens is None:
            return _Layout(section, [], [], [], [], [], [], note_lines)
        cache = self._labels.setdefault(section.tokenizer, {}) if section.tokenizer is not None else {}
        space = _space_marker(section.tokenizer)
        labels = [cache.get(i) or self._new_label(cache, i, data, space) for i, data in zip(tokens.ids, tokens.chunks)]
        ids = [label.id_text for label in labels]
        widths = [label.chip for label in labels]
        if max(widths, default=0) > width:
            widths = [min(width, w) for w in widths]
        n = len(ids)
        xs = [0] * n
        line_of = [0] * n
        lines: list[_Line] = [_Line(0)]
        group_end = {g.first: g.last for g in tokens.groups}
        breaks = self._newline_tokens(tokens)  # a newline in the text starts a new line of chips
        x = line_no = 0
        keep_until = -1  # the last token of the group being placed: keep it on one line when it fits
        for k in range(n):
            w = widths[k]
            if k in group_end and k > keep_until:
                keep_until = group_end[k]
                unit = sum(widths[k : keep_until + 1]) + GAP * (keep_until - k)
                if x and x + unit > width and unit <= width:
                    lines[-1].stop = k
                    lines.append(_Line(k))
                    x, line_no = 0, line_no + 1
            if x and x + w > width:
                lines[-1].stop = k
                lines.append(_Line(k))
                x, line_no = 0, line_no + 1
            xs[k] = x
            line_of[k] = line_no
            x += w + GAP
            if k in breaks and k + 1 < n:
                lines[-1].stop = k + 1
                lines.append(_Line(k + 1))
                x, line_no = 0, line_no + 1
        lines[-1].stop = n
        if n == 0:
            lines = []
        for group in tokens.groups:
            text = "".join(t for t, _ in token_label(group.text.encode("utf-8", "surrogatepass")))
            first_line, last_line = line_of[group.first], line_of[group.last]
            for ln in range(first_line, last_line + 1):
                a = group.first if ln == first_line else lines[ln].start
                b = group.last if ln == last_line else lines[ln].stop - 1
                lines[ln].brackets.append((xs[a], xs[b] + widths[b], text, ln == first_line, ln == last_line))
        return _Layout(section, labels, ids, xs, widths, line_of, lines, note_lines)

    @staticmethod
    def _newline_tokens(tokens: Tokenization) -> set[int]:
        """Indices of the tokens holding a newline ('↵', '.↵', '↵····'), found from the newlines, not the tokens."""
        data = b"".join(tokens.chunks)
        ends = tokens.ends
        found = set()
        p = data.find(b"\n")
        while p >= 0:
            found.add(bisect_left(ends, p + 1))  # the token holding byte p
            p = data.find(b"\n", p + 1)
        return found

    def on_resize(self, event: events.Resize) -> None:
        if max(8, self.scrollable_content_region.width) != self._width:
            self._relayout()
            self._scroll_to_selected()
            self.refresh()

    # -- drawing ---------------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles = {}  # the theme or the CSS changed: look the component styles up again

    def render_lines(self, crop: Region) -> list[Strip]:
        if not self._styles:
            self._load_styles()
        return super().render_lines(crop)

    def _load_styles(self) -> None:
        """The component styles, looked up once (it is not cheap) until the styles change."""
        self._base = self.rich_style
        self._styles = {
            name: self._base + self.get_component_rich_style(f"token-chips--{name}")
            for name in ("even", "odd", "special", "cursor", "id", "id-cursor", "group", "title", "note")
        }
        # Only the colour and attributes of these: they are laid over a chip's own background.
        self._kind_styles = {}
        for kind in ("marker", "byte", "escape"):
            full = self.get_component_rich_style(f"token-chips--{kind}")
            self._kind_styles[kind] = Style(color=full.color, bold=full.bold, italic=full.italic)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        if not self._styles:
            self._load_styles()  # a direct call (tests)
        strip = self._row_strip(scroll_y + y)
        return strip.extend_cell_length(width, self._base).crop(scroll_x, scroll_x + width)

    def _row_strip(self, row: int) -> Strip:
        if not self._styles:
            self._load_styles()
        base = self._base
        if not 0 <= row < len(self._rows):
            return Strip([])
        s, kind, k = self._rows[row]
        if kind == "message":
            line = self._message_lines[k]
            return Strip([Segment(t.text, base + t.style) for t in line.render(self.app.console)], line.cell_len)
        if kind == "blank":
            return Strip([])
        layout = self._layouts[s]
        if kind == "title":
            title = layout.section.title
            assert title is not None
            line = title.copy()
            line.truncate(self._width, overflow="ellipsis")
            return Strip([Segment(t.text, self._styles["title"] + t.style) for t in line.render(self.app.console)])
        if kind == "note":
            note = layout.note_lines[k]
            return Strip([Segment(t.text, self._styles["note"] + t.style) for t in note.render(self.app.console)])
        line = layout.lines[k]
        cursor = self.selected - self._offsets[s] if self.selected is not None else None
        segments: list[Segment] = []
        x = 0
        if kind == "groups":
            style = self._styles["group"]
            for x0, x1, text, opens, closes in line.brackets:
                if x0 > x:
                    segments.append(Segment(" " * (x0 - x), base))
                span = x1 - x0
                head = ("╰" if opens else "─") + (("─ " + text + " ") if opens else "")
                head = clip(head, max(1, span - (1 if closes else 0)))
                fill = span - cell_len(head) - (1 if closes else 0)
                segments.append(Segment(head + "─" * max(0, fill) + ("╯" if closes and span > 1 else ""), style))
                x = x1
            return Strip(segments)
        tokens = layout.section.tokens
        assert tokens is not None
        for i in range(line.start, line.stop):
            x0 = layout.xs[i]
            if x0 > x:
                segments.append(Segment(" " * (x0 - x), base))
            w = layout.widths[i]
            if kind == "ids":
                style = self._styles["id-cursor" if i == cursor else "id"]
                segments.append(Segment(layout.ids[i].ljust(w), style))
            else:
                name = "cursor" if i == cursor else "special" if i in tokens.special else "odd" if i % 2 else "even"
                style = self._styles[name]
                label = layout.labels[i]
                if label.width > w:  # a long token (a run of spaces): cut, the details show it all
                    segments.append(Segment(clip("".join(t for t, _ in label.runs), w), style))
                else:
                    for text, run_kind in label.runs:
                        segments.append(Segment(text, style + self._kind_styles[run_kind] if run_kind != "text" else style))
                    if w > label.width:
                        segments.append(Segment(" " * (w - label.width), style))
            x = x0 + w
        return Strip(segments)

    # -- the cursor ------------------------------------------------------------------------

    def watch_selected(self, old: int | None, new: int | None) -> None:
        for flat in (old, new):  # the two chips (and their ids) that change look
            if flat is not None and flat < self._total:
                self.refresh_lines(self._position(flat)[0], 2)
        self._scroll_to_selected()

    def _row_key(self, row: int) -> tuple[object, ...]:
        """What a row shows, cheaply: equal keys draw equal rows."""
        s, kind, k = self._rows[row]
        if kind in ("chips", "ids", "groups"):
            layout = self._layouts[s]
            line = layout.lines[k]
            cursor = self.selected - self._offsets[s] if self.selected is not None else -1
            tokens = layout.section.tokens
            return (kind, layout.section.key, line.start, layout.ids[line.start : line.stop],
                    layout.xs[line.start : line.stop], cursor if line.start <= cursor < line.stop else -1,
                    tokens.special.intersection(range(line.start, line.stop)) if tokens is not None else (),
                    line.brackets if kind == "groups" else ())
        if kind == "message":
            return (kind, self._message_lines[k].plain)
        if kind == "note":
            return (kind, s, self._layouts[s].note_lines[k].plain)
        if kind == "title":
            title = self._layouts[s].section.title
            return (kind, s, title.plain if title is not None else "")
        return (kind,)

    def _visible_keys(self) -> list[tuple[object, ...]]:
        top = self.scroll_offset.y
        return [self._row_key(y) for y in range(top, min(len(self._rows), top + self.scrollable_content_region.height))]

    def _refresh_changed(self, old_keys: list[tuple[object, ...]], old_scroll: int) -> None:
        """Redraw only the rows that changed: typing at the end of a long text changes a row or two."""
        if self.scroll_offset.y != old_scroll:
            self.refresh()  # scrolled: every row moved
            return
        new_keys = self._visible_keys()
        top = old_scroll
        changed = [y for y in range(max(len(old_keys), len(new_keys)))
                   if y >= len(old_keys) or y >= len(new_keys) or old_keys[y] != new_keys[y]]
        if changed:
            self.refresh_lines(top + changed[0], changed[-1] - changed[0] + 1)

    def _position(self, flat: int) -> tuple[int, int, int]:
        """(row, x, width) of a token's chip."""
        s = bisect_right(self._offsets, flat) - 1
        layout, i = self._layouts[s], flat - self._offsets[s]
        return layout.line_rows[layout.line_of[i]], layout.xs[i], layout.widths[i]

    def _scroll_to_selected(self) -> None:
        if self.selected is None or not self._total:
            return
        row, x, w = self._position(self.selected)
        top = row - 1 if row and self._rows[row - 1][1] == "title" else row
        # force: right after a relayout the scrollbars are not updated yet, and would veto the scroll
        self.scroll_to_region(Region(x, top, max(1, w), row + 3 - top), animate=False, immediate=True, force=True)

    def select(self, flat: int | None) -> None:
        """Put the cursor on a token (clamped), or nowhere."""
        if flat is not None:
            if not self._total:
                return
            flat = max(0, min(flat, self._total - 1))
        self.selected = flat

    def _user_select(self, flat: int) -> None:
        """The user moved the cursor: move it and say so."""
        if not self._total:
            return
        before = self.selected
        self.select(flat)
        if self.selected is not None and self.selected != before:
            section, index = self.locate(self.selected)
            self.post_message(self.Moved(self, section, index))

    def action_move(self, delta: int) -> None:
        if self.selected is None:
            self._user_select(0 if delta > 0 else self._total - 1)
        else:
            self._user_select(self.selected + delta)

    def action_first(self) -> None:
        self._user_select(0)

    def action_last(self) -> None:
        self._user_select(self._total - 1)

    def action_move_line(self, delta: int) -> None:
        """The token on the line above/below that is nearest in column."""
        if not self._total:
            return
        if self.selected is None:
            self._user_select(0)
            return
        s = bisect_right(self._offsets, self.selected) - 1
        layout, i = self._layouts[s], self.selected - self._offsets[s]
        target_line = layout.line_of[i] + delta
        if not 0 <= target_line < len(layout.lines):
            # off this section's edge: the next/previous section's nearest line
            t = s + delta
            while 0 <= t < len(self._layouts) and not self._layouts[t].lines:
                t += delta
            if not 0 <= t < len(self._layouts):
                return
            s, layout = t, self._layouts[t]
            target_line = 0 if delta > 0 else len(layout.lines) - 1
        line = layout.lines[target_line]
        x = self._position(self.selected)[1]
        best = min(range(line.start, line.stop), key=lambda j: abs(layout.xs[j] - x))
        self._user_select(self._offsets[s] + best)

    def action_open(self) -> None:
        if self.selected is not None and self._total:
            section, index = self.locate(self.selected)
            self.post_message(self.Opened(self, section, index))

    def token_at(self, x: int, y: int) -> int | None:
        """The flat index of the chip (or its id) drawn at virtual (x, y), or None."""
        if not 0 <= y < len(self._rows):
            return None
        s, kind, k = self._rows[y]
        if kind not in ("chips", "ids", "groups"):
            return None
        layout = self._layouts[s]
        line = layout.lines[k]
        for i in range(line.start, line.stop):
            if layout.xs[i] <= x < layout.xs[i] + layout.widths[i] + (GAP if kind == "groups" else 0):
                return self._offsets[s] + i
        return None

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        flat = self.token_at(offset.x + self.scroll_offset.x, offset.y + self.scroll_offset.y)
        if flat is not None:
            self._user_select(flat)
            if event.chain == 2:
                self.action_open()


def _space_marker(tokenizer: Tokenizer | None) -> str:
    """How a space inside a token is drawn: '·', or '▁' for SentencePiece vocabularies (as they write it)."""
    return getattr(tokenizer, "space_marker", "·")
