"""The Attention pane's view-model (llmtui/app/panes/attention/view.py): a captured map to text, without an app."""

from __future__ import annotations

import pytest

from llmtui.app.panes.attention import view
from llmtui.engine.studies.attention import capture_attention

PROMPT = "Hello [bold]world[/] \x1b[31m again"


@pytest.fixture(scope="module")
def captured(tiny_lm):
    ids = tiny_lm.encode(PROMPT)
    return capture_attention(tiny_lm, ids), view.token_labels(tiny_lm.tokenizer, ids)


def test_labels_show_spaces_and_escape_controls(captured):
    _, labels = captured
    assert any(label.startswith("␣") for label in labels)
    assert not any(ch == "\x1b" for label in labels for ch in label)
    assert "".join(labels).replace("␣", " ").count("[bold]") == 1  # markup kept literally


def test_the_side_panel_lists_the_strongest_keys_and_the_heads_scores(captured):
    attention, labels = captured
    row = attention.n_tokens - 1
    heading, rows, note = view.side_panel(attention, labels, 1, 2, False, row, 0)
    assert heading.plain.startswith(f"query {row}  {labels[row]}  looks at") and "layer 1 head 2" in heading.plain
    keys = attention.top_keys(1, 2, row, view.TOP_KEYS)
    assert [(r.index, r.weight) for r in rows] == keys
    assert f": {float(attention.matrix(1, 2)[row, 0]):.1%}" in note.plain
    assert all(name in note.plain for name in view.PATTERN_NAMES.values())
    # the layer's mean has no pattern scores; a later key can't be looked at
    _, _, mean_note = view.side_panel(attention, labels, 1, 2, True, 0, 3)
    assert "comes later" in mean_note.plain and "looks at\n" not in mean_note.plain


def test_the_head_name_and_the_nav_line_follow_the_state(captured):
    attention, _ = captured
    assert view.head_name(attention, 1, 0, True) == f"layer 1 · mean of its {attention.n_head} heads"
    assert view.head_name(attention, 1, 3, False).startswith("layer 1 · head 3")
    line = view.nav_line(1, 3, attention.n_layer, attention.n_head, False, "layer")
    assert " layer 1 " in line.plain and " head 3 " in line.plain and f"0–{attention.n_head - 1}" in line.plain
    actions = {span.style.meta.get("nav") for span in line.spans if hasattr(span.style, "meta")}
    assert {"layer(-1)", "layer(1)", "head(-1)", "head(1)", "toggle_average", "overview('layer')"} <= actions
    assert " mean " in view.nav_line(1, 3, attention.n_layer, attention.n_head, True, "map").plain


def test_thumbnails_title_every_head_of_the_layers_shown(captured):
    attention, _ = captured
    titles, notes = view.thumbnails(attention, [0], by_layer=True)
    assert titles == [f"head {h}" for h in range(attention.n_head)] and len(notes) == attention.n_head
    titles, _ = view.thumbnails(attention, range(attention.n_layer), by_layer=False)
    assert titles == [str(h) for _ in range(attention.n_layer) for h in range(attention.n_head)]


def test_the_export_holds_the_shown_weights_and_its_table_a_row_per_query(captured):
    attention, labels = captured
    weights = attention.matrix(0, 1).numpy()
    exported = view.export_data(attention, labels, "your prompt", 0, 1, False, weights)
    assert exported["head"] == 1 and not exported["mean_of_heads"] and exported["source"] == "your prompt"
    assert [t["id"] for t in exported["tokens"]] == list(attention.ids)
    assert exported["weights"] == weights.tolist()
    assert view.export_data(attention, labels, "x", 0, 1, True, weights)["head"] is None
    header, rows = view.export_table(labels, weights)
    assert header == ["query \\ key", *labels] and [r[0] for r in rows] == list(labels)


def test_stepping_layers_and_heads_stops_at_either_end_and_says_why():
    showing = view.Showing(layer=0, head=3)
    same, why = view.step_layer(showing, -1, n_layer=4)
    assert same is showing and why == "Layer 0 is the first layer (layers 0–3)."
    assert view.step_layer(showing, 1, n_layer=4) == (view.Showing(layer=1, head=3), None)
    same, why = view.step_head(showing, 1, n_head=4)
    assert same is showing and why == "Head 3 is the last head (heads 0–3)."
    # from the layer's mean, either head key goes back to the head it was on
    assert view.step_head(view.Showing(head=2, average=True), 1, n_head=4) == (view.Showing(head=2), None)


def test_the_advance_key_walks_every_head_of_every_layer_and_wraps():
    assert view.next_head(view.Showing(layer=0, head=1), n_layer=2, n_head=3) == (0, 2)
    assert view.next_head(view.Showing(layer=0, head=2), n_layer=2, n_head=3) == (1, 0)
    assert view.next_head(view.Showing(layer=1, head=2), n_layer=2, n_head=3) == (0, 0)
    assert view.next_head(view.Showing(layer=1, head=2, average=True), n_layer=2, n_head=3) == (1, 0)


def test_an_overview_cursor_names_a_head_and_a_head_its_place_in_the_overview():
    every = view.Showing(layer=1, head=2, view="all")
    assert every.overview_cursor(n_head=3) == 5 and every.overview_head(5, n_head=3) == (1, 2)
    one_layer = view.Showing(layer=1, head=2, view="layer")
    assert one_layer.overview_cursor(n_head=3) == 2 and one_layer.overview_head(0, n_head=3) == (1, 0)
    assert view.Showing(layer=1, head=2).overview_head(0, n_head=3) == (1, 2)  # on the map: the head shown
    assert view.Showing(layer=9, head=9).within(n_layer=4, n_head=3) == view.Showing(layer=3, head=2)
