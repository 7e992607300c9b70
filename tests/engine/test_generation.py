"""GenerationSession on a tiny model: step records, knobs mid-stream, fork, and the ends of a run."""

import pytest
import torch

from llmtui.engine.generation import GenerationSession
from llmtui.engine.lm import LanguageModel
from llmtui.engine.sampling import SamplingSettings, distribution


@pytest.fixture(scope="module")
def lm(tiny_hf_gpt2_dir):
    return LanguageModel.load(str(tiny_hf_gpt2_dir))


def test_steps_record_what_the_engine_computed(lm):
    ids = lm.encode("hello world")
    settings = SamplingSettings(temperature=0.9, top_k=7, seed=5, max_new_tokens=6)
    session = GenerationSession(lm, ids, settings, top_n=12)
    for step in session:
        before = session.ids[: step.position]
        logits = lm.run(before, capture=False).logits[0, -1]
        dist = distribution(logits, settings, before)
        assert step.raw_prob == pytest.approx(float(dist.raw[step.token_id]), abs=1e-5)
        assert step.prob == pytest.approx(float(dist.final[step.token_id]), abs=1e-5)
        top = torch.topk(dist.raw, 12).indices.tolist()
        assert [c.id for c in step.candidates][:12] == top
        assert sum(c.cut_by is None for c in step.candidates) <= 7
        assert step.prob > 0  # a drawn token was never cut
    assert len(session.steps) == 6 and session.finish_reason == "max new tokens"


def test_a_knob_turned_mid_stream_applies_from_the_next_token(lm):
    session = GenerationSession(lm, lm.encode("hello"), SamplingSettings(temperature=1.0, seed=1, max_new_tokens=8))
    session.step()
    session.settings = session.settings.with_(temperature=0)
    step = session.step()
    assert step.settings.temperature == 0
    assert step.token_id == step.candidates[0].id  # greedy from here on
    assert session.steps[0].settings.temperature == 1.0  # the earlier step keeps the knobs it was drawn with


def test_fork_replaces_the_rest_and_goes_on(lm):
    session = GenerationSession(lm, lm.encode("hello"), SamplingSettings(temperature=0, max_new_tokens=5))
    list(session)
    alternative = session.steps[2].candidates[3].id
    step = session.fork(2, alternative)
    assert step.forced and step.index == 2 and session.generated_ids[-1] == alternative
    assert len(session.steps) == 3
    list(session)
    fresh = GenerationSession(lm, session.ids[: session.steps[3].position], SamplingSettings(temperature=0, max_new_tokens=2))
    assert [s.token_id for s in fresh] == session.generated_ids[3:]
    with pytest.raises(IndexError):
        session.fork(9, 0)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        session.fork(0, lm.config.vocab_size)


def test_stop_token_ends_the_run(lm):
    session = GenerationSession(lm, lm.encode("hello"), SamplingSettings(temperature=0, max_new_tokens=20))
    first = session.step()
    session2 = GenerationSession(lm, lm.encode("hello"), SamplingSettings(temperature=0, max_new_tokens=20),
                                 stop_ids=[first.token_id])
    assert session2.step().token_id == first.token_id
    assert session2.finish_reason == "stop token" and session2.step() is None


def test_zero_tokens_empty_prompt_and_full_context(lm):
    assert GenerationSession(lm, lm.encode("hi"), SamplingSettings(max_new_tokens=0)).step() is None
    with pytest.raises(ValueError, match="empty"):
        GenerationSession(lm, [], SamplingSettings())
    context = lm.config.context_length
    with pytest.raises(ValueError, match="context window"):
        GenerationSession(lm, [5] * context, SamplingSettings())
    session = GenerationSession(lm, [5] * (context - 3), SamplingSettings(temperature=0, max_new_tokens=100))
    assert len(list(session)) == 3
    assert session.finish_reason == "context window full"


def test_random_seed_is_recorded_and_replays(lm):
    settings = SamplingSettings(temperature=1.5, max_new_tokens=10)
    first = GenerationSession(lm, lm.encode("hello"), settings)
    text = [s.token_id for s in first]
    again = GenerationSession(lm, lm.encode("hello"), settings.with_(seed=first.seed))
    assert [s.token_id for s in again] == text


def test_the_kv_cache_holds_what_the_run_asks_for_and_grows_when_it_goes_on(lm):
    """A short run allocates a few positions, not the whole window; going on past them grows the
    cache and the steps still equal recomputing from scratch, up to the context window."""
    ids = lm.encode("hello")
    settings = SamplingSettings(temperature=0.9, top_k=20, seed=3, max_new_tokens=4)
    session = GenerationSession(lm, ids, settings)
    list(session)
    cache = session.kv_cache
    assert cache.capacity == len(ids) + 4 < lm.config.context_length
    session.settings = settings.with_(max_new_tokens=1000)  # "go on" with a bigger budget
    list(session)
    assert session.finish_reason == "context window full"
    assert len(session.ids) == lm.config.context_length
    assert cache.capacity == lm.config.context_length  # doubled, then capped at the window
    for step in session.steps[::7]:
        before = session.ids[: step.position]
        dist = distribution(lm.run(before, capture=False).logits[0, -1], step.settings, before)
        assert step.raw_prob == pytest.approx(float(dist.raw[step.token_id]), abs=1e-5)
    # A fork back near the start keeps the grown room and goes on to the end again.
    session.fork(1, session.steps[1].candidates[2].id)
    list(session)
    assert session.finish_reason == "context window full" and session.step() is None


def test_a_stop_string_ends_the_run_and_the_text_before_it(lm):
    settings = SamplingSettings(temperature=0, max_new_tokens=30)
    free = GenerationSession(lm, lm.encode("hello"), settings)
    list(free)
    full = free.text
    stop = full[5:8]  # a piece of what greedy writes, likely across a token boundary
    assert stop and stop in full
    session = GenerationSession(lm, lm.encode("hello"), settings.with_(stop=("never here", stop)))
    list(session)
    assert session.finish_reason == "stop string"
    assert session.text == full[: full.find(stop)]
    # It stopped at the first token that completed the string, not later.
    assert stop in lm.tokenizer.decode(session.generated_ids)
    assert stop not in lm.tokenizer.decode(session.generated_ids[:-1])
    assert session.step() is None


def test_force_appends_a_token_and_share_prefill_matches_a_fresh_prefill(lm):
    ids = lm.encode("Hello world")
    settings = SamplingSettings(temperature=0.9, seed=4, max_new_tokens=5)
    a, b = GenerationSession(lm, ids, settings), GenerationSession(lm, ids, settings)
    b.share_prefill(a)
    assert [s.token_id for s in a] == [s.token_id for s in b]
    with pytest.raises(ValueError, match="fresh"):
        b.share_prefill(a)
    c = GenerationSession(lm, ids, settings)
    step, dist = c.force(7)
    assert step.forced and step.token_id == 7 and step.prob == pytest.approx(float(dist.final[7]))
    assert c.ids == ids + [7]
