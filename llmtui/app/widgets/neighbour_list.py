"""Tokens ranked by cosine similarity: a selectable list (rank, token, number, bar), and two lists side by side.

An OptionList whose rows are rebuilt to fit its width (the bar takes what is left)
and when the theme changes (the bar's colour comes from the CSS). Enter or a click
on a row posts OptionList.OptionSelected; its option_index is the row's index in `rows`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import events
from textual.widget import Widget
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from llmtui.app.widgets.option_clicks import FreshOptionClicks
from llmtui.app.widgets.scatter import shorten

_EIGHTHS = " ▏▎▍▌▋▊▉"
LABEL_CELLS = 14  # "␣kinesisfireh…" fits; most tokens are shorter


@dataclass(frozen=True)
class NeighbourRow:
    """One row: a token (or a word of several tokens) and its similarity to the query."""

    key: int | None  # the token id (what the map's point is called); None or negative for a word of several tokens
    label: str  # safe, one line: '␣dog'
    similarity: float
    note: str = ""  # a short tag after the bar ("input", "mean")
    query_text: str = ""  # what to type to make this row the query


def similarity_bar(similarity: float, cells: int, style: Style) -> Text:
    """A bar of a cosine similarity (0..1 fills the cells; negative values draw nothing), eighth-cell precise."""
    eighths = round(max(0.0, min(1.0, similarity)) * max(1, cells) * 8)
    full, part = divmod(eighths, 8)
    text = Text("█" * full + (_EIGHTHS[part] if part and full < cells else ""), style=style)
    text.pad_right(cells - text.cell_len)
    return text


class NeighbourList(FreshOptionClicks):
    """Tokens ranked by similarity; choosing one posts OptionSelected."""

    DEFAULT_CSS = """
    NeighbourList {
        /* No text colours: these styles lie over the row's own colours (the cursor row's too), so they
           only dim; the bar is accent-coloured, which stands out on the cursor ($primary) and on the background. */
        & > .neighbours--rank { text-style: dim; }
        & > .neighbours--number { text-style: none; }
        & > .neighbours--bar { color: $accent; }
        & > .neighbours--note { text-style: dim italic; }
    }
    """

    COMPONENT_CLASSES = OptionList.COMPONENT_CLASSES | {
        "neighbours--rank",
        "neighbours--number",
        "neighbours--bar",
        "neighbours--note",
    }

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, markup=False)
        self._rows: tuple[NeighbourRow, ...] = ()
        self._built_width = -1

    @property
    def rows(self) -> tuple[NeighbourRow, ...]:
        return self._rows

    def on_mount(self) -> None:
        self.watch(self.app, "theme", lambda _: self.call_after_refresh(self._rebuild, True), init=False)

    def show(self, rows: Sequence[NeighbourRow], empty: str = "") -> None:
        """Replace the rows (the cursor goes to the first); `empty` is shown when there are none."""
        self._rows = tuple(rows)
        self._rebuild(force=True, empty=empty)
        if self._rows:
            self.highlighted = 0

    def on_resize(self, event: events.Resize) -> None:
        self._rebuild()

    def _rebuild(self, force: bool = False, empty: str | None = None) -> None:
        width = self.scrollable_content_region.width
        if not force and width == self._built_width:
            return
        self._built_width = width
        keep = self.highlighted
        self.clear_options()
        if not self._rows:
            if empty:
                self.add_option(Option(Text(empty, style="italic"), disabled=True))
            return
        self.add_options([Option(self._prompt(n, row, width)) for n, row in enumerate(self._rows, 1)])
        if keep is not None and keep < len(self._rows):
            self.highlighted = keep

    def _prompt(self, rank: int, row: NeighbourRow, width: int) -> Text:
        rank_text = f"{rank:>2} "
        label = shorten(row.label, LABEL_CELLS)
        number = f"{row.similarity:6.3f} "
        note = f" {row.note}" if row.note else ""
        fixed = len(rank_text) + LABEL_CELLS + len(number)
        bar_cells = max(0, (width or 40) - fixed - len(note) - 1)
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(rank_text, self.get_component_rich_style("neighbours--rank", partial=True))
        text.append(label)
        text.append(" " * (LABEL_CELLS - cell_len(label)))
        text.append(number, self.get_component_rich_style("neighbours--number", partial=True))
        if bar_cells >= 3:
            text.append_text(
                similarity_bar(
                    row.similarity, bar_cells, self.get_component_rich_style("neighbours--bar", partial=True)
                )
            )
        if note:
            text.append(note, self.get_component_rich_style("neighbours--note", partial=True))
        return text


class NeighbourColumns(Widget):
    """Two short lists of tokens and similarities side by side (say, a word in sentence A and in B)."""

    DEFAULT_CSS = """
    NeighbourColumns {
        & > .columns--heading { text-style: bold; }
        & > .columns--number { text-style: dim; }
    }
    """

    COMPONENT_CLASSES = {"columns--heading", "columns--number"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._columns: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()

    def show(self, columns: Sequence[tuple[str, Sequence[tuple[str, float]]]]) -> None:
        """(heading, [(safe label, similarity), ...]) per column."""
        self._columns = tuple((h, tuple(rows)) for h, rows in columns)
        self.refresh()

    @property
    def columns(self) -> tuple[tuple[str, tuple[tuple[str, float], ...]], ...]:
        return self._columns

    def render(self) -> Text:
        if not self._columns:
            return Text("")
        width = self.content_region.width or 40
        n = len(self._columns)
        col = max(10, (width - 2 * (n - 1)) // n)
        heading = self.get_component_rich_style("columns--heading", partial=True)
        number = self.get_component_rich_style("columns--number", partial=True)
        lines = [Text("  ".join(h.ljust(col) for h, _ in self._columns).rstrip(), style=heading)]
        for r in range(max(len(rows) for _, rows in self._columns)):
            line = Text(no_wrap=True, overflow="crop")
            for c, (_, rows) in enumerate(self._columns):
                if c:
                    line.append("  ")
                if r >= len(rows):
                    line.append(" " * col)
                    continue
                label = shorten(rows[r][0], col - 6)
                line.append(label)
                line.append(" " * (col - 5 - cell_len(label)))
                line.append(f"{rows[r][1]:5.2f}", number)
            line.truncate(width)
            lines.append(line)
        return Text("\n").join(lines)
