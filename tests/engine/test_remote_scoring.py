"""A given text's probabilities on a served model: echo + logprobs, vLLM's prompt_logprobs, and a server with neither.

tests/fake_server.py's scripted model reads text character by character (CHAR_LOGPROBS).
"""

from __future__ import annotations

import math

import pytest

from fake_server import CHAR_LOGPROBS, char_logprob, fake_server
from llmtui.engine.errors import RemoteError
from llmtui.engine.remote.client import RemoteModel
from llmtui.engine.remote.endpoint import Endpoint
from llmtui.engine.remote.scoring import score_text
from llmtui.engine.remote.session import RemoteSession
from llmtui.engine.settings import SamplingSettings

PROMPT = "The capital of France is"


def connect(url: str) -> RemoteModel:
    return RemoteModel.connect(Endpoint.parse(url))


def completion_bodies(srv) -> list[dict]:
    return [body for path, _, body in srv.requests if path == "/v1/completions"]


@pytest.mark.parametrize("fault, dialect", [(None, "echo"), ("prompt-logprobs-only", "prompt_logprobs")])
def test_a_fork_to_typed_text_gets_the_servers_probabilities(fault, dialect):
    with fake_server(fault=fault) as srv:
        session = RemoteSession(connect(srv.url), PROMPT, SamplingSettings(temperature=1.0), top_n=3)
        first = session.step()
        steps = session.force_text(" Rome")
        assert session.model.scoring == dialect
        bodies = completion_bodies(srv)
    assert session.text == first.text + " Rome" and [s.text for s in steps] == list(" Rome")
    assert [s.index for s in steps] == [1, 2, 3, 4, 5] and all(s.forced for s in steps)
    for step in steps:
        assert step.raw_prob == pytest.approx(math.exp(char_logprob(step.text)))
        listed = {c.text: c.raw_prob for c in step.candidates}
        top3 = dict(list(CHAR_LOGPROBS.items())[:3])
        assert {t: listed[t] for t in top3} == {t: pytest.approx(math.exp(v)) for t, v in top3.items()}
        listed_texts = {*top3, step.text}  # servers list the text's own token beside the top ones
        assert step.unlisted == pytest.approx(1 - sum(math.exp(char_logprob(t)) for t in listed_texts))
    scoring = [b for b in bodies if b.get("echo") or b.get("prompt_logprobs")][-1]
    assert scoring["prompt"] == PROMPT + first.text + " Rome" and scoring["max_tokens"] == 1
    assert scoring.get("echo") is (True if dialect == "echo" else None) and not scoring["stream"]


def test_the_dialect_is_found_once():
    with fake_server(fault="prompt-logprobs-only") as srv:
        model = connect(srv.url)
        score_text(model, PROMPT, " a", SamplingSettings(), 3)
        score_text(model, PROMPT, " b", SamplingSettings(), 3)
    asked = [("echo" in b, "prompt_logprobs" in b) for b in completion_bodies(srv) if b["logprobs"] != 5]
    assert asked == [(True, False), (False, True), (False, True)]  # echo tried once, ignored; then straight on


def test_the_knobs_judge_a_scored_text():
    with fake_server() as srv:
        steps = score_text(connect(srv.url), PROMPT, " ex", SamplingSettings(temperature=1.0, top_k=2), 5)
    space, e, x = steps
    assert space.prob is not None and space.prob > 0  # the top token: kept, and top-k 2 decides the whole distribution
    assert e.prob is not None and e.prob > 0
    assert x.prob == 0.0 and next(c for c in x.candidates if c.text == "x").cut_by == "top-k"


def test_a_server_that_scores_no_given_text_says_so_and_keeps_the_session():
    with fake_server(fault="no-scoring") as srv:
        session = RemoteSession(connect(srv.url), PROMPT, SamplingSettings(), top_n=3)
        session.step()
        before = session.text
        with pytest.raises(RemoteError) as e:
            session.force_text(" Rome")
    line = str(e.value)
    assert "\n" not in line and "neither echo" in line and "prompt_logprobs" in line
    assert session.text == before and len(session.steps) == 1 and session.model.scoring is None


def test_scoring_needs_a_context():
    with fake_server() as srv:
        with pytest.raises(RemoteError, match="needs some text before it"):
            score_text(connect(srv.url), "", "Rome", SamplingSettings(), 3)
        assert score_text(connect(srv.url), PROMPT, "", SamplingSettings(), 3) == []


def test_an_echo_shifted_by_one_token_is_refused_not_believed():
    """llama-cpp-python's server gives each echoed token the next one's list (a model without BOS): a check
    against a plain completion's list after the prompt catches it."""
    with fake_server(fault="shifted-echo") as srv:
        with pytest.raises(RemoteError) as e:
            score_text(connect(srv.url), PROMPT, " Rome", SamplingSettings(), 3)
    assert "misaligned" in str(e.value) and "\n" not in str(e.value)
    with fake_server() as srv:
        score_text(connect(srv.url), PROMPT, " Rome", SamplingSettings(), 3)
        plain = [b for p, _, b in srv.requests if p == "/v1/completions" and not b.get("echo")]
    assert len(plain) == 1 and plain[0]["prompt"] == PROMPT + " Rome"  # the check ran, once, and passed


def test_a_token_across_the_boundary_is_one_line_and_the_session_is_kept():
    with fake_server() as srv:
        session = RemoteSession(connect(srv.url), PROMPT + " Par", SamplingSettings(), top_n=3)
        with pytest.raises(RemoteError) as e:
            session.force_text("is")  # the scripted model reads " Paris" as one token
    assert "one token (' Paris')" in str(e.value) and "\n" not in str(e.value) and session.steps == []


def test_force_text_at_a_step_replaces_it_and_what_follows_once_scored():
    with fake_server() as srv:
        session = RemoteSession(connect(srv.url), PROMPT, SamplingSettings(temperature=1.0), top_n=3)
        list(session.stream())  # " Paris", ".", " It", " is"
        steps = session.force_text(" ok", at=1)
        scoring = [b for b in completion_bodies(srv) if b.get("echo")][-1]
    assert scoring["prompt"] == PROMPT + " Paris ok"  # scored after the kept text only
    assert [s.text for s in session.steps] == [" Paris", " ", "o", "k"] and [s.index for s in steps] == [1, 2, 3]
    assert not session.steps[0].forced and all(s.forced for s in steps)


@pytest.mark.parametrize("fault, cannot", [("no-scoring", True), ("shifted-echo", True), ("500", False)])
def test_a_text_the_server_cant_score_is_cannot_score_and_a_fault_is_not(fault, cannot):
    """The pane goes on from an unscored text (CannotScore) but reports a fault (a plain RemoteError) as one."""
    from llmtui.engine.remote.scoring import CannotScore

    with fake_server() as srv:
        session = RemoteSession(connect(srv.url), PROMPT, SamplingSettings(), top_n=3)
        list(session.stream())
        srv.fault = fault
        with pytest.raises(RemoteError) as e:
            session.force_text(" ok", at=1)
    assert isinstance(e.value, CannotScore) is cannot and len(session.steps) == 4  # nothing dropped on a failure


def test_an_unscored_text_is_one_forced_step_and_the_next_request_goes_on_from_it():
    with fake_server(fault="no-scoring") as srv:
        session = RemoteSession(connect(srv.url), PROMPT, SamplingSettings(), top_n=3)
        list(session.stream())
        step = session.append_unscored(", a city", at=1)
        session.step()
        sent = completion_bodies(srv)[-1]
    assert step is not None and step.forced and math.isnan(step.raw_prob) and step.candidates == ()
    assert [s.text for s in session.steps] == [" Paris", ", a city", " Paris"]
    assert sent["prompt"] == PROMPT + " Paris, a city" and sent["max_tokens"] == 1


def test_a_served_chat_reply_is_not_forked_to_text():
    with fake_server() as srv:
        session = RemoteSession(connect(srv.url), "Hi", SamplingSettings(), top_n=3, chat=True)
        list(session.stream())
        for fork in (lambda: session.force_text(" ok", at=1), lambda: session.append_unscored(" ok", at=1)):
            with pytest.raises(RemoteError, match="chat reply can't be forked"):
                fork()
