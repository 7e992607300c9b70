"""The Generate pane's view-model and run state (llmtui/app/panes/generate/{view,run}.py), without an app."""

from __future__ import annotations

import pytest

from llmtui.app.panes.generate import view
from llmtui.app.panes.generate.run import PromptRequest, Run, check_fits, typed_fork
from llmtui.engine.generation import Candidate, GenerationSession, Step
from llmtui.engine.remote import UNDECIDED
from llmtui.engine.settings import SamplingSettings

GREEDY = SamplingSettings(temperature=0, max_new_tokens=5)


@pytest.fixture(scope="module")
def session(tiny_lm):
    session = GenerationSession(tiny_lm, tiny_lm.encode("Once upon a time"), GREEDY, top_n=10)
    while session.step() is not None:
        pass
    return session


def test_a_past_step_s_table_marks_the_drawn_token(session, tiny_lm):
    step = session.steps[2]
    table = view.step_view(tiny_lm.tokenizer, step, len(session.steps))
    assert table.title.startswith(f"Token 3 of {len(session.steps)} · drew ")
    assert table.drawn == step.token_id and not table.preview and table.index == 2
    assert table.labels == tuple(view.token_label(tiny_lm.tokenizer, c.id, c.text) for c in step.candidates)


def test_the_preview_s_title_says_which_token_comes_next(session, tiny_lm):
    cands = session.steps[0].candidates
    assert view.preview_view(tiny_lm.tokenizer, 0, cands, GREEDY).title == "Next token · preview"
    table = view.preview_view(tiny_lm.tokenizer, 4, cands, GREEDY)
    assert table.title == "Next token · preview (token 5)" and table.preview and table.drawn is None


def test_how_a_run_ended_is_said_in_one_line(session):
    steps = session.steps
    n = len(steps)
    assert view.ended_line("stopped", steps, 7, 0, 0) == (f"Stopped after {n} tokens · seed 7 · F7 goes on", "info")
    assert view.ended_line("paused", steps[:1], 7, 0, 0)[0].startswith("1 token · seed 7")
    assert view.ended_line("max new tokens", steps, 7, 0, 0)[0].startswith(f"Max tokens reached: {n} tokens")
    assert view.ended_line("forked", steps, 7, 0, 0)[0].startswith(f"Forked at token {steps[-1].index + 1}")
    assert view.ended_line("forked", (), 7, 0, 0)[0] == "Forked"
    assert view.ended_line("context window full", steps, 7, 1234, 2048) == (
        "Context window full: 1,234 of 2,048 tokens · fork earlier or ctrl+n clears", "error")
    assert view.ended_line("stop token", steps, 7, 0, 0)[0] == f"Finished (stop token): {n} tokens · seed 7"


def test_the_export_holds_the_table_and_every_step(session, tiny_lm):
    table = view.step_view(tiny_lm.tokenizer, session.steps[0], len(session.steps))
    prompt = PromptRequest("Once upon a time")
    exported = view.export_data("tiny", table, prompt, session, prompt, tuple(session.steps), tiny_lm.tokenizer)
    assert exported["prompt"] == {"text": "Once upon a time", "chat": False}
    assert exported["generation"]["prompt_ids"] == list(session.prompt_ids)
    assert exported["generation"]["text"] == tiny_lm.tokenizer.decode([s.token_id for s in session.steps])
    assert exported["table"]["step_index"] == 0 and exported["table"]["settings"]["temperature"] == 0
    assert view.export_data("tiny", None, None, None, None, (), None) is None
    header, rows = view.export_table(table)
    assert header[0] == "rank" and [r[6] for r in rows].count(True) == 1


def test_a_run_goes_from_running_to_stopping_to_ended():
    run = Run("step", GREEDY, PromptRequest("x"), limit=3)
    assert run.state == "running" and run.pending == 3
    run.produced = 1
    assert run.pending == 2
    run.stop.set()
    assert run.state == "stopping"
    run.ended = True
    assert run.state == "ended"


def test_a_prompt_that_fills_the_window_is_refused_with_what_to_do():
    check_fits(PromptRequest("x"), 10, 11)
    with pytest.raises(ValueError, match="the prompt is 11 tokens; the model's context window holds 11, no room"):
        check_fits(PromptRequest("x"), 11, 11)
    with pytest.raises(ValueError, match="ctrl\\+n clears the chat"):
        check_fits(PromptRequest("x", chat=True, history=(("a", "b"),)), 20, 11)


# -- a served model's steps (the server's listed candidates) ---------------------------------


def _served_step(cands, settings=SamplingSettings(temperature=2.0, top_p=0.5), unlisted=0.2, text=" a") -> Step:
    drawn = cands[0]
    return Step(index=0, position=3, token_id=drawn.id, text=text, raw_prob=drawn.raw_prob, prob=drawn.prob,
                candidates=tuple(cands), settings=settings, unlisted=unlisted)


def test_the_table_title_says_how_much_the_server_did_not_list():
    step = _served_step([Candidate(-1, " a", 0.5, None, None), Candidate(-2, "\x1b[31m", 0.3, None, UNDECIDED)])
    table = view.served_step_view(step, 4)
    assert table.title == "Token 1 of 4 · 20.0% unlisted · drew ␣a"  # the unlisted mass before what a narrow title cuts
    assert table.labels == ("␣a", "\\x1b[31m")  # escapes shown, never obeyed


def test_undecided_rows_are_explained_and_decided_ones_are_not():
    undecided = _served_step([Candidate(-1, " a", 0.5, None, None), Candidate(-2, " b", 0.3, None, UNDECIDED)])
    assert view.undecided_note(undecided) == "?: decided by the 20.0% the server did not list (its tail is unknown, never guessed)"
    decided = _served_step([Candidate(-1, " a", 0.5, 1.0, None), Candidate(-2, " b", 0.3, 0.0, "top-k")])
    assert view.undecided_note(decided) is None
    penalty = _served_step([Candidate(-1, " a", 0.5, None, UNDECIDED)], SamplingSettings(repetition_penalty=1.2))
    assert "repetition penalty" in view.undecided_note(penalty)


def test_output_colours_unknown_knob_probabilities_apart():
    step = _served_step([Candidate(-1, " a", 0.5, None, None)], text="x\n")
    by_model, by_knobs = view.output_pieces([step], [("x\n", False)], True)[0], view.output_pieces([step], [("x\n", False)], False)[0]
    assert by_model.text == "x↵\n" and by_model.style != by_knobs.style and by_knobs.style.italic


def test_a_typed_text_a_server_could_not_score_shows_as_unknown():
    """RemoteSession.append_unscored's step: no probability (nan), no candidates; drawn dim, its table says why."""
    import math

    step = Step(index=1, position=4, token_id=-1, text=", a city", raw_prob=math.nan, prob=None, candidates=(),
                settings=SamplingSettings(), forced=True)
    piece = view.output_pieces([step], [(step.text, False)], True)[0]
    assert piece.style.italic and piece.style.dim and piece.style.bgcolor is None  # not a probability's colour
    table = view.served_step_view(step, 3)
    assert table.title == "Token 2 of 3 · your text, unscored" and table.candidates == ()  # short: 80 columns
    assert view.undecided_note(step).startswith("Your text: the server can't score a given text")


def test_a_fork_to_typed_text_keeps_the_drawn_tokens_it_begins_with():
    texts = [" Paris", ".", " It"]
    assert typed_fork(texts, 0, " Paris, the city") == (1, ", the city")
    assert typed_fork(texts, 0, " Paris.") == (2, "")  # the text ends there: what followed is dropped
    assert typed_fork(texts, 1, " Lyon") == (1, " Lyon")
    assert typed_fork(texts, 2, " It is") == (3, " is")  # at the end: appended
    assert typed_fork(["", "x"], 0, "x") == (0, "x")  # an empty token's text matches nothing (it would loop)
    assert view.ended_line("typed", [None] * 3, 0, 10, None) == ("Forked to your text: 3 tokens now · F6 one more, F7 go on", "info")


def test_biased_candidates_are_labelled_with_their_bias(tiny_lm, session):
    cands = session.steps[0].candidates
    biased = SamplingSettings(logit_bias=((cands[0].id, 2.0), (cands[1].id, -4.5)))
    labels = view.candidate_labels(tiny_lm.tokenizer, cands, biased)
    plain = view.candidate_labels(tiny_lm.tokenizer, cands, GREEDY)
    assert labels[0] == plain[0] + " +2" and labels[1] == plain[1] + " -4.5" and labels[2:] == plain[2:]
    assert view.preview_view(tiny_lm.tokenizer, 0, cands, biased).labels == labels
