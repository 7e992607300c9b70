"""The generated text, token by token: prompt dim, each output token coloured by its probability.

A line-API widget: it wraps the pieces itself, so it knows where every token is and
can map a click to a step, and scroll a selected step into view. A cursor selects a
past step (left/right, home/end, or a click); `None` means "follow the newest".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rich.cells import cell_len, get_character_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget

PLAIN = Style()


@dataclass(frozen=True)
class Piece:
    """A stretch of text with one style; `step` is the generated step it shows, None for the prompt.

    `role` ("prompt", "special") adds that component class's style (from the theme) under `style`.
    """

    text: str
    style: Style = PLAIN
    step: int | None = None
    role: str | None = None


@dataclass(frozen=True)
class _Chunk:
    x: int
    text: str
    style: Style
    step: int | None

    @property
    def end(self) -> int:
        return self.x + cell_len(self.text)


def split_cells(text: str, room: int) -> tuple[str, str]:
    """The longest head of text that fits in `room` cells, and the rest."""
    used = 0
    for i, ch in enumerate(text):
        w = get_character_cell_size(ch)
        if used + w > room:
            return text[:i], text[i:]
        used += w
    return text, ""


_WORDS = re.compile(r"\S+\s*|\s+")


def split_words(piece: Piece) -> list[Piece]:
    """A long stretch of prompt or message text as one piece per word, so that lines break between words."""
    if len(piece.text) < 16:
        return [piece]
    return [Piece(w, piece.style, piece.step, piece.role) for w in _WORDS.findall(piece.text)]


def wrap(pieces: list[Piece], width: int, after: list[list[_Chunk]] | None = None) -> list[list[_Chunk]]:
    """Lay pieces out in lines of `width` cells: a piece moves to the next line whole when it fits there.

    `after`: lines already laid out (left unchanged) that the pieces continue, from the end of the last one.
    """
    width = max(1, width)
    lines: list[list[_Chunk]] = [*after[:-1], list(after[-1])] if after else [[]]
    x = lines[-1][-1].end if lines[-1] else 0
    for piece in pieces:
        for k, part in enumerate(piece.text.split("\n")):
            if k:
                lines.append([])
                x = 0
            if not part:
                if piece.step is not None and k == 0:
                    lines[-1].append(_Chunk(x, "", piece.style, piece.step))  # a zero-width token stays selectable
                continue
            if x and x + cell_len(part) > width and cell_len(part) <= width:
                lines.append([])
                x = 0
            while part:
                head, part = split_cells(part, width - x)
                if not head:
                    if x == 0:  # a character wider than the whole line
                        head, part = part[0], part[1:]
                    else:
                        lines.append([])
                        x = 0
                        continue
                lines[-1].append(_Chunk(x, head, piece.style, piece.step))
                x += cell_len(head)
                if part:
                    lines.append([])
                    x = 0
    return lines


class TokenText(ScrollView, can_focus=True):
    """Prompt and generated tokens, wrapped, with a selectable step cursor."""

    DEFAULT_CSS = """
    TokenText {
        background: $surface;
        & > .token-text--prompt { color: $text-muted; }
        & > .token-text--special { color: $text-secondary; text-style: bold; }
        & > .token-text--cursor { text-style: reverse bold underline; }
        & > .token-text--placeholder { color: $text-muted; text-style: italic; }
        & > .token-text--error { color: $text-error; text-style: bold; }
    }
    """

    COMPONENT_CLASSES = {
        "token-text--prompt",
        "token-text--special",
        "token-text--cursor",
        "token-text--placeholder",
        "token-text--error",
    }

    BINDINGS = [
        Binding("left", "move(-1)", "Pick token", show=True, key_display="←→"),
        Binding("right", "move(1)", "Next token", show=False),
        Binding("home", "first", "First token", show=False),
        Binding("end", "follow", "Newest", show=False),
    ]

    selected: reactive[int | None] = reactive(None, layout=False)
    """The selected step, or None to follow the newest one."""

    class Selected(Message):
        """The user moved the cursor (None: back to following the newest step)."""

        def __init__(self, token_text: TokenText, index: int | None) -> None:
            self.token_text = token_text
            self.index = index
            super().__init__()

        @property
        def control(self) -> TokenText:
            return self.token_text

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._prompt: list[Piece] = []
        self._steps: list[Piece] = []
        self._n_steps = 0
        self._next_allowed = False  # may the cursor stand on the token after the last step?
        self._placeholder: tuple[str, str] | None = None
        self._lines: list[list[_Chunk]] = []
        self._shown: list[Piece] = []
        self._layout_width = -1
        self._base = Style()
        self._width = 0
        self._styles: dict[tuple[str, bool], Style] = {}
        self._title_set: str | None = None

    # -- content ---------------------------------------------------------------------------

    def set_content(self, prompt: list[Piece], steps: list[Piece], n_steps: int) -> None:
        """Show the prompt pieces, then the step pieces (steps 0..n_steps-1).

        While tokens stream, the new pieces extend the old ones (the same objects): only they are laid out.
        """
        old_prompt, old_steps, following = self._prompt, self._steps, self.selected is None
        self._prompt, self._steps, self._n_steps = prompt, steps, n_steps
        if self.selected is not None and self.selected > self._max_index():
            self.selected = None  # laid out again, by watch_selected
        extends = (following and self._placeholder is None and prompt is old_prompt
                   and len(steps) >= len(old_steps) and all(a is b for a, b in zip(old_steps, steps)))
        self._placeholder = None
        if extends and self._lines and self._layout_width == self._content_width():
            self._append(steps[len(old_steps):])
        else:
            self._relayout()

    def set_placeholder(self, message: str, kind: str = "placeholder") -> None:
        """Show a message instead of text (kind: 'placeholder' or 'error')."""
        self._placeholder = (message, kind)
        self._prompt, self._steps, self._n_steps = [], [], 0
        self.selected = None
        self._relayout()

    def set_title(self, title: str) -> None:
        """The border's title, redrawing only the border's top line.

        Textual's `border_title` setter redraws the whole widget, even for the same title; the output's
        title counts the context used, which changes with every frame of a stream.
        """
        if title == self._title_set:
            return
        self._title_set = title
        if not hasattr(self, "_border_title") or not self.is_mounted:  # a Textual that keeps it elsewhere
            self.border_title = title
            return
        self._border_title = self.render_str(title).expand_tabs(4).split()[0]  # as the setter stores it
        left, top = self.content_offset
        self.refresh(Region(-left, -top, self.outer_size.width, 1))

    @property
    def plain_text(self) -> str:
        """Everything shown, as plain text (before wrapping)."""
        return "".join(p.text for p in self._shown)

    def step_text(self, index: int) -> str:
        """The text shown for one step."""
        return "".join(p.text for p in self._steps if p.step == index)

    @property
    def n_steps(self) -> int:
        return self._n_steps

    @property
    def following(self) -> bool:
        return self.selected is None

    def _pieces(self) -> list[Piece]:
        if self._placeholder is not None:
            message, kind = self._placeholder
            return split_words(Piece(message, self._component(kind)))
        cursor = self._component("cursor", partial=True)
        roles = {role: self._component(role) for role in ("prompt", "special")}
        prompt = [
            word
            for p in self._prompt
            for word in split_words(self._styled(p, roles))
        ]
        steps = []
        for piece in self._steps:
            piece = self._styled(piece, roles)
            if piece.step is not None and piece.step == self.selected:
                piece = Piece(piece.text or "▏", piece.style + cursor, piece.step)
            steps.append(piece)
        if self.selected is not None and self.selected == self._n_steps:
            steps.append(Piece("▏", cursor, self._n_steps))  # the next token, not drawn yet
        return prompt + steps

    def _styled(self, piece: Piece, roles: dict[str, Style] | None = None) -> Piece:
        """A piece with its role's style (the theme's) under its own."""
        if piece.role not in ("prompt", "special"):
            return piece
        style = roles[piece.role] if roles else self._component(piece.role)
        return Piece(piece.text, style + piece.style, piece.step)

    def _component(self, name: str, partial: bool = False) -> Style:
        """A component class's style, cached until the styles change (it is asked for on every redraw)."""
        key = (name, partial)
        if key not in self._styles:
            self._styles[key] = self.get_component_rich_style(f"token-text--{name}", partial=partial)
        return self._styles[key]

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        if self.is_mounted and (self._prompt or self._steps or self._placeholder):
            self._relayout()  # a new theme: the pieces take its colours

    def _content_width(self) -> int:
        return self.scrollable_content_region.width or self.size.width or 80

    def _relayout(self) -> None:
        width = self._content_width()
        self._layout_width = width
        self._shown = self._pieces()
        self._lay_out(wrap(self._shown, width))

    def _append(self, new: list[Piece]) -> None:
        """Steps added after the shown ones, with no cursor among them: the text's end is laid out again."""
        if not new:
            return
        shown = [self._styled(piece) for piece in new]
        self._shown.extend(shown)
        self._lay_out(wrap(shown, self._layout_width, after=self._lines))

    def _lay_out(self, lines: list[list[_Chunk]]) -> None:
        """Show the lines laid out, scrolled as the reader had it, and redraw those that changed."""
        width = self._layout_width
        at_end = self.scroll_offset.y >= self.max_scroll_y  # a reader who scrolled up is left in peace
        old_lines, self._lines = self._lines, lines
        old_scroll = self.scroll_offset.y
        self._set_virtual_size(Size(width, len(self._lines)))
        if self.selected is None:
            if at_end:
                self.scroll_end(animate=False, immediate=True, x_axis=False)
        else:
            self._scroll_to_selected()
        self._refresh_changed(old_lines, old_scroll)

    def _set_virtual_size(self, size: Size) -> None:
        """Grow the scrollable area without a relayout of the whole screen.

        `virtual_size` is a layout reactive: setting it lays out every widget again, which
        costs milliseconds each time the text gains a line. Only the scrollbars depend on
        it here, so they alone are updated (a scrollbar that appears still relayouts).
        """
        if size == self.virtual_size:
            return
        if not hasattr(self, "_scroll_update"):  # a Textual without the hook: the plain way
            self.virtual_size = size
            return
        self.set_reactive(Widget.virtual_size, size)
        self._scroll_update(size)

    def _refresh_changed(self, old_lines: list[list[_Chunk]], old_scroll: int) -> None:
        """Redraw only the lines that changed: while tokens stream, that is the last line or two."""
        if self.scroll_offset.y != old_scroll:
            self.refresh()
            return
        first = 0
        for first, (old, new) in enumerate(zip(old_lines, self._lines)):
            if old is not new and old != new:  # lines kept from an append are the same lists
                break
        else:
            first = min(len(old_lines), len(self._lines))
        end = max(len(old_lines), len(self._lines))
        if first < end:
            self.refresh_lines(first, end - first)

    def _scroll_to_selected(self) -> None:
        for y, line in enumerate(self._lines):
            for chunk in line:
                if chunk.step == self.selected:
                    self.scroll_to_region(Region(chunk.x, y, max(1, chunk.end - chunk.x), 1), animate=False, immediate=True)
                    return

    def on_resize(self, event: events.Resize) -> None:
        if self.scrollable_content_region.width != self._layout_width:
            self._relayout()

    def watch_selected(self, old: int | None, new: int | None) -> None:
        self._relayout()

    # -- drawing ---------------------------------------------------------------------------

    def render_lines(self, crop: Region) -> list[Strip]:
        self._base = self.rich_style  # once per redraw, as the width: neither is cheap to ask for
        self._width = self.scrollable_content_region.width
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self._width or self.scrollable_content_region.width
        base = self._base
        line_no = scroll_y + y
        if line_no >= len(self._lines):
            return Strip.blank(width, base)
        segments = [Segment(c.text, base + c.style) for c in self._lines[line_no] if c.text]
        return Strip(segments).extend_cell_length(width, base).crop(scroll_x, scroll_x + width)

    # -- selecting -------------------------------------------------------------------------

    def step_at(self, x: int, y: int) -> int | None:
        """The step drawn at content offset (x, y) of the whole text, or None."""
        if not 0 <= y < len(self._lines):
            return None
        line = [c for c in self._lines[y] if c.step is not None]
        for chunk in line:
            if chunk.x <= x < max(chunk.end, chunk.x + 1):
                return chunk.step
        return None

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        step = self.step_at(offset.x + self.scroll_offset.x, offset.y + self.scroll_offset.y)
        if step is not None:
            self._select(step)

    def _select(self, index: int | None) -> None:
        if index is not None:
            if self._max_index() < 0:
                return
            index = max(0, min(index, self._max_index()))
        self.selected = index
        self.post_message(self.Selected(self, index))

    def _max_index(self) -> int:
        """The last index the cursor may take: the newest step, or the next token when allowed."""
        return self._n_steps if self._next_allowed else self._n_steps - 1

    def allow_next(self, allowed: bool) -> None:
        """Whether the cursor may stand past the last step, on the token not drawn yet."""
        self._next_allowed = allowed
        if self.selected is not None and self.selected > self._max_index():
            self.selected = None

    def action_move(self, delta: int) -> None:
        current = self.selected if self.selected is not None else self._n_steps - 1
        self._select(current + delta)

    def action_first(self) -> None:
        self._select(0)

    def action_follow(self) -> None:
        self._select(None)
