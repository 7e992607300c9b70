"""The served-model panes' view functions: pure, no terminal."""

from __future__ import annotations

from llmtui.app.panes.remote.view import needs_weights_line, output_pieces, status_text, step_table, token_chips, undecided_note
from llmtui.engine.generation import Candidate, Step
from llmtui.engine.remote import UNDECIDED
from llmtui.engine.remote.client import RemoteModel
from llmtui.engine.remote.endpoint import Endpoint
from llmtui.engine.remote.session import Traffic
from llmtui.engine.settings import SamplingSettings


def _step(cands, settings=SamplingSettings(temperature=2.0, top_p=0.5), unlisted=0.2, text=" a") -> Step:
    drawn = cands[0]
    return Step(index=0, position=3, token_id=drawn.id, text=text, raw_prob=drawn.raw_prob, prob=drawn.prob,
                candidates=tuple(cands), settings=settings, unlisted=unlisted)


def test_the_table_title_says_how_much_the_server_did_not_list():
    step = _step([Candidate(-1, " a", 0.5, None, None), Candidate(-2, "\x1b[31m", 0.3, None, UNDECIDED)])
    view = step_table(step, 4)
    assert view.title == "Token 1 of 4 · drew ␣a · 20.0% unlisted"
    assert view.labels == ("␣a", "\\x1b[31m")  # escapes shown, never obeyed


def test_undecided_rows_are_explained_and_decided_ones_are_not():
    undecided = _step([Candidate(-1, " a", 0.5, None, None), Candidate(-2, " b", 0.3, None, UNDECIDED)])
    assert undecided_note(undecided) == "?: decided by the 20.0% the server did not list (its tail is unknown, never guessed)"
    decided = _step([Candidate(-1, " a", 0.5, 1.0, None), Candidate(-2, " b", 0.3, 0.0, "top-k")])
    assert undecided_note(decided) is None
    penalty = _step([Candidate(-1, " a", 0.5, None, UNDECIDED)], SamplingSettings(repetition_penalty=1.2))
    assert "repetition penalty" in undecided_note(penalty)


def test_output_colours_unknown_knob_probabilities_apart():
    step = _step([Candidate(-1, " a", 0.5, None, None)], text="x\n")
    by_model, by_knobs = output_pieces([step], True)[0], output_pieces([step], False)[0]
    assert by_model.text == "x↵\n" and by_model.style != by_knobs.style and by_knobs.style.italic


def test_status_text_names_model_endpoint_latency_and_rate():
    remote = RemoteModel(Endpoint.parse("http://127.0.0.1:8000/v1"), "qwen")
    assert status_text(remote, None) == "qwen @ http://127.0.0.1:8000"
    assert status_text(remote, Traffic(0.1234, 11, 0.5)) == "qwen @ http://127.0.0.1:8000 · 123 ms · 20.0 tok/s"


def test_token_chips_and_the_weights_line():
    assert token_chips([(1, "hi"), (2, " \x07")]).plain == "hi 1  ␣\\x07 2  "
    line = needs_weights_line("Attention")
    assert "\n" not in line and "press o" in line
