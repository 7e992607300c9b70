"""The Embeddings pane's view-model and history (llmtui/app/panes/embeddings/view.py, history.py), without an app."""

from __future__ import annotations

from llmtui.app.panes.embeddings import context_answer, view
from llmtui.app.panes.embeddings.history import History, HistoryEntry


def test_the_history_goes_back_and_forward_and_a_new_query_drops_what_lay_ahead():
    history = History()
    dog, cat, car = (HistoryEntry(t, True, None) for t in ("dog", "cat", "car"))
    for entry in (dog, cat, cat):  # a repeat of the current query is not added again
        history.record(entry)
    assert history.entries == [dog, cat]
    assert history.step(-1) == dog and history.step(-1) is None and history.position == 0
    history.record(car)  # after going back, a new query replaces what lay ahead
    assert history.entries == [dog, car] and history.step(1) is None and history.step(-1) == dog


def test_a_mistake_is_shown_in_place_with_a_little_either_side():
    assert view.mistake_line("king - + woman", 7, 8).plain == "In what you typed: king - + woman"
    long = "a" * 1000 + "!" + "b" * 1000
    line = view.mistake_line(long, 1000, 1001)
    assert line.plain == "In what you typed: …" + "a" * view.CONTEXT_CHARS + "!" + "b" * view.CONTEXT_CHARS + "…"
    assert any(span.style == "reverse" and line.plain[span.start:span.end] == "!" for span in line.spans)
    assert "\x1b" not in view.mistake_line("\x1b[31m x", 0, 1).plain  # controls are escaped, never sent to the terminal


def test_the_context_note_explains_layer_zero_and_identical_vectors():
    assert context_answer.context_note(0, 1.0, "cat").startswith("Layer 0 is the embedding itself")
    assert context_answer.context_note(3, 1.0, "cat").startswith("Identical at layer 3")
    assert context_answer.context_note(3, 0.5, "␣cat") == "Layer 3 · after B's tokens: their cosine with A's ␣cat · ←/→ on the chart"


def test_the_map_labels_more_neighbours_on_a_bigger_map_within_bounds():
    assert view.map_size_for(10, 5) == 6 and view.map_size_for(400, 100) == 15
    assert view.map_size_for(40, 12) < view.map_size_for(60, 14)
