"""What the Attention pane draws, from a captured `AttentionMap` (a study) and the pane's state: pure functions.

No widgets here: labels, the head's name, the nav line, the side panel's text and rows,
the overview's thumbnail titles and the export, so they are tested without an app
(tests/views).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import numpy as np
from rich.style import Style
from rich.text import Text

from llmtui.app.display import table_label
from llmtui.app.widgets.weight_bars import WeightRow, weight_bar

if TYPE_CHECKING:
    from llmtui.engine.studies.attention import AttentionMap
    from llmtui.engine.tokenizer.tokenizer import Tokenizer

View = Literal["map", "layer", "all"]

HELP = (
    "In every layer, each attention head lets a token weigh the tokens before it: a row of the map is one "
    "token (the query), its cells how much it looks at each earlier token (the keys). A row sums to 1 and "
    "never looks ahead, hence the blank upper triangle. Heads specialise: the previous token, the first "
    "token, the same word earlier; the overview labels each head with the pattern it follows most.\n\n"
    "Type a prompt and press enter. [ and ] change the layer, , and . the head (both count from 0, as "
    "`llmtui attention --layer --head` does); a averages the heads of the layer. The arrows (or a click) "
    "select a cell: the side panel lists what that token attends to, strongest first. + and - zoom; a long "
    "text scrolls, and zoomed out the whole map is shown with blocks of tokens pooled. o shows every head "
    "of the layer small, O every head of the model: enter or a click opens one. g shows the text of the "
    "Generate pane (prompt and generated tokens)."
)
"""The help screen's text (F1)."""

MORE_KEYS = [
    ("arrows, click", "Select a cell: a token (row) and a token it looks at (column)"),
    ("+ -", "Zoom in (bigger cells, scrolling) and out (down to the whole map)"),
    ("pgup pgdn home end", "Move a page up or down, to the row's first or last cell"),
    ("enter, click", "In an overview: open the highlighted head"),
    ("escape", "From an overview back to the map"),
]
"""The map's and the overview's own keys, for the help screen."""

TOP_KEYS = 12
"""Keys listed for the selected token (the strongest)."""
SHORT = {"previous": "prev", "first": "first", "self": "self", "same": "same"}
"""Pattern names short enough for a thumbnail's title."""
PATTERN_NAMES = {"previous": "previous token", "first": "first token", "self": "itself", "same": "same token"}


@dataclass(frozen=True)
class Showing:
    """Which weights the pane shows: a layer and a head (or the layer's mean), on the map or in an overview."""

    layer: int = 0
    head: int = 0
    average: bool = False
    view: View = "map"

    def within(self, n_layer: int, n_head: int) -> Showing:
        """The same, kept within a model's (or a capture's) layers and heads."""
        return replace(self, layer=max(0, min(self.layer, n_layer - 1)), head=max(0, min(self.head, n_head - 1)))

    def overview_head(self, cursor: int, n_head: int) -> tuple[int, int]:
        """The (layer, head) under an overview's cursor (on the map: the head shown)."""
        if self.view == "all":
            return divmod(cursor, n_head)
        return (self.layer, cursor) if self.view == "layer" else (self.layer, self.head)

    def overview_cursor(self, n_head: int) -> int:
        """Where the overview's cursor stands for the head shown."""
        return self.head if self.view == "layer" else self.layer * n_head + self.head


def step_layer(showing: Showing, delta: int, n_layer: int) -> tuple[Showing, str | None]:
    """The previous or next layer; at the first or last one, the same and why."""
    new = showing.layer + delta
    if not 0 <= new < n_layer:
        return showing, (f"Layer {showing.layer} is the {'first' if delta < 0 else 'last'} layer "
                         f"(layers 0–{n_layer - 1}).")
    return replace(showing, layer=new), None


def step_head(showing: Showing, delta: int, n_head: int) -> tuple[Showing, str | None]:
    """The previous or next head (from the mean: back to one head); at either end, the same and why."""
    if showing.average:
        return replace(showing, average=False), None
    new = showing.head + delta
    if not 0 <= new < n_head:
        return showing, (f"Head {showing.head} is the {'first' if delta < 0 else 'last'} head "
                         f"(heads 0–{n_head - 1}).")
    return replace(showing, head=new), None


def next_head(showing: Showing, n_layer: int, n_head: int) -> tuple[int, int]:
    """The advance key's next (layer, head): after a layer's last head, the next layer's first (from the mean: head 0)."""
    n = showing.layer * n_head + (0 if showing.average else showing.head + 1)
    return divmod(n % (n_layer * n_head), n_head)


def token_labels(tokenizer: Tokenizer, ids: Sequence[int]) -> tuple[str, ...]:
    """Each token as a one-line label: spaces as '␣', controls escaped, a piece of a character as its bytes."""
    out = []
    for i in ids:
        text = tokenizer.token_text(i)
        out.append(tokenizer.token_display(i) if "\ufffd" in text else table_label(text))
    return tuple(out)


def head_name(attention: AttentionMap, layer: int, head: int, average: bool) -> str:
    """'layer 3 · head 1 · previous-token head 0.92', or the layer's mean."""
    if average:
        return f"layer {layer} · mean of its {attention.n_head} heads"
    name = f"layer {layer} · head {head}"
    label = attention.scores.label(layer, head)
    if label is not None:
        name += f" · {label[0]}-token head {label[1]:.2f}" if label[0] in ("previous", "first") else \
            f" · {label[0]} {label[1]:.2f}"
    return name


def nav_line(layer: int, head: int, n_layer: int, n_head: int, average: bool, view: View) -> Text:
    """The line of clickable controls (each part's style carries its action as meta 'nav')."""
    button = Style(bold=True)

    def click(action: str) -> Style:
        return Style(meta={"nav": action})

    text = Text(no_wrap=True, overflow="ellipsis")
    text.append("[◀", style=button + click("layer(-1)"))
    text.append(f" layer {layer} ", style=click("layer(1)"))
    text.append("▶]", style=button + click("layer(1)"))
    text.append(f" 0–{n_layer - 1}   ", style="dim")
    text.append(",◀", style=button + click("head(-1)"))
    text.append(" mean " if average else f" head {head} ", style=click("head(1)"))
    text.append("▶.", style=button + click("head(1)"))
    text.append(f" 0–{n_head - 1}   ", style="dim")
    for label, action, on_ in (("a mean", "toggle_average", average),
                               ("o heads", "overview('layer')", view == "layer"),
                               ("O all", "overview('all')", view == "all")):
        look = Style(reverse=True, bold=True) if on_ else Style(underline=True)
        text.append(f" {label} ", style=look + click(action))
        text.append(" ")
    return text


def side_panel(attention: AttentionMap, labels: Sequence[str], layer: int, head: int, use_mean: bool,
               row: int, col: int) -> tuple[Text, list[WeightRow], Text]:
    """What query `row` attends to (heading, the strongest keys as rows, a note on key `col` and the head's scores)."""
    heading = Text()
    heading.append(f"query {row} ", style="bold")
    heading.append(f" {labels[row]} ", style="bold reverse")
    heading.append(" looks at", style="bold")
    where = f"mean of layer {layer}" if use_mean else f"layer {layer} head {head}"
    heading.append(f"\n{where}, strongest first:", style="dim")
    keys = attention.top_keys(layer, None if use_mean else head, row, TOP_KEYS)
    rows = [WeightRow(j, labels[j], w) for j, w in keys]
    note = Text()
    shown = sum(w for _, w in keys)
    if row + 1 > len(keys):
        note.append(f"  … {row + 1 - len(keys)} more keys share {1 - shown:.1%}\n", style="dim")
    if col <= row:
        weight = float(attention.matrix(layer, None if use_mean else head)[row, col])
        note.append(f"key {col} ", style="bold")
        note.append(f" {labels[col]} ", style="reverse")
        note.append(f": {weight:.1%}\n")
    else:
        note.append(f"key {col} comes later: token {row} can't look at it\n", style="dim")
    if not use_mean:
        note.append(f"\nlayer {layer} head {head} looks at\n", style="bold")
        for name, score in attention.scores.of(layer, head).items():
            note.append(f" {PATTERN_NAMES[name]:<15}")
            if math.isnan(score):
                note.append("   —  (too short)\n", style="dim")
            else:
                note.append(f"{score:6.2f} ")
                note.append_text(weight_bar(score, 8))
                note.append("\n")
    return heading, rows, note


def thumbnails(attention: AttentionMap, layers: Sequence[int], by_layer: bool) -> tuple[list[str], list[str]]:
    """The overview's thumbnails: a title and a note (the head's pattern) for every head of `layers`."""
    titles, notes = [], []
    for layer in layers:
        for head in range(attention.n_head):
            label = attention.scores.label(layer, head)
            notes.append(f"{SHORT[label[0]]} {label[1]:.2f}".replace("0.", ".") if label else "")
            titles.append(f"head {head}" if by_layer else f"{head}")
    return titles, notes


def export_data(attention: AttentionMap, labels: Sequence[str], source: str, layer: int, head: int, average: bool,
                weights: np.ndarray) -> dict:
    """The map shown: its tokens and its weights (row i: how much token i attends to each token)."""
    return {
        "source": source,
        "layer": layer,
        "head": None if average else head,
        "mean_of_heads": average,
        "tokens": [{"id": i, "label": label} for i, label in zip(attention.ids, labels)],
        "weights": weights.tolist(),
    }


def export_table(labels: Sequence[str], weights: np.ndarray) -> tuple[list[str], list[list]]:
    """The map as a table: a row per query token, a column per key token."""
    return ["query \\ key", *labels], [[label, *row] for label, row in zip(labels, weights.tolist())]
