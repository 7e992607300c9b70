"""The Layers pane's view-model (llmtui/app/panes/layers/view.py): the lens's study data to text, without an app."""

from __future__ import annotations

from functools import partial

import pytest

from llmtui.app.panes.layers import view
from llmtui.app.widgets.lens_grid import Cursor
from llmtui.engine.studies.lens import LogitLens, logit_lens

PROMPT = "Once upon a time there was"


@pytest.fixture(scope="module")
def grid(tiny_lm):
    return logit_lens(tiny_lm, tiny_lm.encode(PROMPT))


@pytest.fixture
def label(tiny_lm):
    return partial(view.token_label, tiny_lm.tokenizer)


def test_a_cell_lists_its_top_ten_and_the_layers_share_of_the_change(grid, tiny_lm, label):
    pos = grid.n_positions - 1
    text = view.cell_text(grid, 1, pos, 40, label).plain
    lines = text.splitlines()
    assert lines[0].startswith("Answer: " + label(int(grid.answer_ids[pos])))
    ranked = [line for line in lines if line[:2].strip().isdigit()]
    assert [int(line[:2]) for line in ranked] == list(range(1, view.TOP_N + 1))
    top_id, top_p = grid.top(1, pos, 1)[0]
    assert label(top_id)[:6] in ranked[0] and f"{top_p:.1%}"[:3] in ranked[0]
    share = grid.contribution(1, pos)
    assert f"attention {share.attention:.0%}" in text and f"MLP {share.mlp:.0%}" in text
    # the embeddings row has no attention or MLP before it
    assert "changed by" not in view.cell_text(grid, 0, pos, 40, label).plain


def test_a_position_not_read_yet_says_computing(tiny_lm, label):
    lens = LogitLens(tiny_lm, tiny_lm.encode(PROMPT))
    partial_grid = lens.empty_grid()
    partial_grid.add(lens.block(0, 1))
    assert "computing…" in view.cell_text(partial_grid, 1, 2, 40, label).plain
    assert view.answer_text(partial_grid, 1, 2, 40, label).plain == ""
    assert view.progress_line(partial_grid) == f"Reading every layer… 1 of {partial_grid.n_positions} tokens"


def test_the_answer_track_has_a_line_per_row_and_marks_the_selected_one(grid, label):
    pos = 2
    lines = view.answer_text(grid, 1, pos, 40, label).plain.strip("\n").splitlines()[1:]
    assert len(lines) == grid.n_rows
    assert [line.startswith("▶") for line in lines] == [r == 1 for r in range(grid.n_rows)]
    assert lines[0][1:].startswith("emb") and lines[1][1:].startswith("L1")
    ranks = [rank for rank, _ in grid.answer_track(pos)]
    assert [int(line.split("#")[1].split()[0]) for line in lines] == [r + 1 for r in ranks]


def test_the_advance_key_walks_down_a_column_then_on_to_the_next(grid):
    last = grid.n_rows - 1
    assert view.next_cell(grid, Cursor(0, 0)) == Cursor(1, 0)
    assert view.next_cell(grid, Cursor(last, 0)) == Cursor(0, 1)
    assert view.next_cell(grid, Cursor(last, grid.n_positions - 1)) == Cursor(0, 0)


def test_the_message_line_says_where_a_followed_text_came_from(grid):
    assert view.ready_line(grid, None).startswith(f"{grid.n_positions} tokens × {grid.n_rows} rows")
    assert "selected in Generate" in view.ready_line(grid, "Generate") and "ctrl+z" in view.ready_line(grid, "Generate")


def test_the_export_holds_every_cell_and_its_table_a_row_per_layer(grid, tiny_lm):
    exported = view.export_data(grid, tiny_lm.tokenizer)
    assert exported["rows"] == ["emb", *(f"L{r}" for r in range(1, grid.n_rows))]
    assert len(exported["grid"]) == grid.n_rows and all(len(r) == grid.n_positions for r in exported["grid"])
    top_id, top_p = grid.prediction(1, 0)
    assert exported["grid"][1][0] == {"id": top_id, "text": tiny_lm.tokenizer.token_text(top_id), "prob": top_p}
    assert exported["complete"] is True
    header, rows = view.export_table(exported)
    assert header == ["layer", *(tiny_lm.tokenizer.token_text(i) for i in grid.ids)]
    assert rows[1][0] == "L1" and rows[1][1] == f"{tiny_lm.tokenizer.token_text(top_id)} ({top_p:.2f})"


def test_row_names():
    assert [view.row_label(r) for r in range(3)] == ["emb", "L1", "L2"]
    assert [view.layer_name(r) for r in range(2)] == ["embeddings", "layer 1"]
