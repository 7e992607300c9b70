"""What the Layers pane draws, from the lens (a `LensGrid` study) and the pane's state: pure functions.

No widgets here: each function turns study data and a cursor into the Text, lines and
rows the pane shows or exports, so they are tested without an app (tests/views).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.style import Style
from rich.text import Text

from llmtui.app.display import table_label
from llmtui.app.palette import bar
from llmtui.app.widgets.lens_grid import ATTN_STYLE, MLP_STYLE, Cursor, fit
from llmtui.app.widgets.prob_table import percent

if TYPE_CHECKING:
    from llmtui.engine.studies.lens import LensGrid
    from llmtui.engine.tokenizer.tokenizer import Tokenizer

HELP = (
    "A token's vector passes through every layer; attention and the feed-forward network (MLP) "
    "each add to it (the residual stream), and after the last layer the unembedding turns it into "
    "next-token probabilities. The logit lens reads every layer that way: each cell is the token the "
    "model would predict next if it stopped after that layer (rows: the embeddings, then layers 1, 2, …), "
    "coloured by its probability; a bold cell already holds the model's final answer for that column. "
    "The embeddings row mostly repeats the token itself: SmolLM2 and GPT-2 read and write tokens "
    "with one shared matrix. "
    "The bars beside each layer show how much its attention (purple) and its MLP (teal) changed the selected "
    "token's vector: the length of what the block added over the length of the vector it added to "
    "(a full bar is 50% or more).\n\n"
    'Try "The capital of France is" with the default model: at the last token, " Paris" is thousands of '
    "places down the list until layer 23, about 400th at layer 24, enters the top ten at layer 28, and "
    "becomes the top prediction only at layer 30, the last one.\n\n"
    "Arrows (or a click) select a cell; space steps down one layer; a jumps to the layer where this "
    "column's answer takes the lead; c colours the cells by the final answer's probability instead. "
    "Selecting a token here makes it the app's current token: the other panes follow it."
)
"""The help screen's text (F1)."""

TOP_N = 10
"""Predictions listed for the selected cell."""

Label = Callable[[int], str]
"""A token id as a one-line label."""


def token_label(tokenizer: Tokenizer, token_id: int) -> str:
    """A token as a safe one-line label: '␣Paris'; a piece of a character shows its bytes."""
    text = tokenizer.token_text(token_id)
    return tokenizer.token_display(token_id) if "\ufffd" in text else table_label(text)


def row_label(row: int) -> str:
    """A grid row's short label: 'emb' for the embeddings' output, then 'L1', 'L2', ..."""
    return "emb" if row == 0 else f"L{row}"


def layer_name(row: int) -> str:
    """A grid row in a sentence: 'embeddings', 'layer 3'."""
    return "embeddings" if row == 0 else f"layer {row}"


def next_cell(data: LensGrid, cursor: Cursor) -> Cursor:
    """The advance key's next cell: one layer down the column; after the last layer, the next column's first."""
    row, position = cursor.row + 1, cursor.position
    if row >= data.n_rows:
        row, position = 0, (position + 1) % data.n_positions
    return Cursor(row, position)


def ready_line(data: LensGrid, pinned_from: str | None) -> str:
    """The message line once the grid is complete; `pinned_from`: the pane whose selected token's text it shows."""
    if pinned_from is not None:
        return (f"The text of the token selected in {pinned_from} (ctrl+z in the prompt brings yours back) · "
                "←→↑↓ select · a answer · c colour")
    return f"{data.n_positions} tokens × {data.n_rows} rows · ←→↑↓ select · space next layer · a answer · c colour"


def progress_line(data: LensGrid) -> str:
    """The message line while blocks of positions are still being read."""
    return f"Reading every layer… {int(data.computed.sum())} of {data.n_positions} tokens"


def cell_text(data: LensGrid, row: int, pos: int, width: int, label: Label) -> Text:
    """The answer at this position in one line, then the selected cell's top 10 and what the layer changed."""
    answer = int(data.answer_ids[pos])
    text = Text()
    text.append("Answer: ", style="dim").append(label(answer), style="bold")
    if not data.computed[pos]:
        return text.append("\n  computing…\n", style="italic dim")
    first = data.answer_layer(pos)
    text.append(f" ({percent(data.answer_probs[-1, pos].item())})\n")
    if first is not None:
        text.append("top from ", style="dim").append(layer_name(first), style="bold")
        text.append(" (last)" if first == data.n_rows - 1 else " on", style="dim")
    text.append("\n\n")
    token = label(data.ids[pos])
    text.append("Next after ", style="dim").append(token, style="bold")
    where = f", at {layer_name(row)}:"
    text.append((where if len(token) + len(where) + 11 < width else ":") + "\n", style="dim")
    label_w = max(6, min(14, width - 18))
    bar_w = max(0, width - label_w - 11)
    for n, (token_id, p) in enumerate(data.top(row, pos, TOP_N), start=1):
        text.append(f"{n:>2} ", style="dim")
        text.append(fit(label(token_id), label_w), style=Style(bold=token_id == answer))
        text.append(percent(p).rjust(7) + " ")
        text.append_text(bar(p, bar_w))
        text.append("\n")
    if row > 0:
        share = data.contribution(row, pos)
        text.append("changed by ", style="dim")
        text.append(f"attention {share.attention:.0%}", style=ATTN_STYLE)
        text.append(", ", style="dim")
        text.append(f"MLP {share.mlp:.0%}", style=MLP_STYLE)
        text.append("\n")
    return text


def answer_text(data: LensGrid, row: int, pos: int, width: int, label: Label) -> Text:
    """The rank and probability of this position's answer at every layer: how early it appears."""
    if not data.computed[pos]:
        return Text()
    text = Text("\n")
    text.append(label(int(data.answer_ids[pos])), style="bold").append(" layer by layer:\n", style="dim")
    bar_w = max(0, width - 20)
    for r, (rank, p) in enumerate(data.answer_track(pos)):
        selected = r == row
        text.append(("▶" if selected else " ") + fit(row_label(r), 4), style="bold" if selected else "dim")
        text.append(f"#{rank + 1}".rjust(7), style="bold" if rank == 0 else "")
        text.append(percent(p).rjust(7) + " ")
        text.append_text(bar(p, bar_w))
        text.append("\n")
    return text


def export_data(data: LensGrid, tokenizer: Tokenizer) -> dict:
    """The grid: for every layer (embeddings first) and position, the top prediction and its probability."""

    def cell(row: int, pos: int) -> dict | None:
        p = data.prediction(row, pos)
        return None if p is None else {"id": p[0], "text": tokenizer.token_text(p[0]), "prob": p[1]}

    return {
        "tokens": [{"id": i, "text": tokenizer.token_text(i)} for i in data.ids],
        "rows": [row_label(r) for r in range(data.n_rows)],
        "grid": [[cell(r, p) for p in range(data.n_positions)] for r in range(data.n_rows)],
        "final_answer": [{"id": int(i), "text": tokenizer.token_text(int(i))} for i in data.answer_ids.tolist()],
        "complete": data.complete,
    }


def export_table(exported: dict) -> tuple[list[str], list[list]]:
    """The exported grid as a table: a row per layer, a column per token, each cell 'text (prob)'."""
    header = ["layer", *(t["text"] for t in exported["tokens"])]
    rows = [
        [name, *("" if c is None else f"{c['text']} ({c['prob']:.2f})" for c in cells)]
        for name, cells in zip(exported["rows"], exported["grid"])
    ]
    return header, rows
