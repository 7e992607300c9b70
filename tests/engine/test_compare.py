"""Compare: two sides token by token, checked against divergences computed directly from the logits."""

import math
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from llmtui.engine.generation import GenerationSession
from llmtui.engine.lm import LanguageModel
from llmtui.engine.sampling import SamplingSettings
from llmtui.engine.studies.compare import Comparison, Side, kl_divergence, total_variation


@pytest.fixture(scope="module")
def lm(tiny_hf_llama_dir):
    return LanguageModel.load(str(tiny_hf_llama_dir))


def direct_kl(logits: torch.Tensor, t_a: float, t_b: float) -> float:
    p = (logits.double() / t_a).log_softmax(-1)
    q = (logits.double() / t_b).log_softmax(-1)
    return float((p.exp() * (p - q)).sum())


@pytest.mark.parametrize("mode", ["same-text", "free"])
def test_the_same_side_twice_gives_kl_zero_and_identical_tables(lm, mode):
    s = SamplingSettings(temperature=1.0, top_k=30, seed=3, max_new_tokens=8)
    c = Comparison(lm.encode("Hello world"), Side(lm, s), Side(lm, s), mode=mode)
    positions = list(c)
    assert len(positions) == 8
    for p in positions:
        assert p.kl == 0.0 and p.tv == 0.0 and not p.top1_differs
        assert p.a.token_id == p.b.token_id and p.a.prob == p.b.prob
        assert [(x.id, x.prob, x.cut_by) for x in p.a.candidates] == [(x.id, x.prob, x.cut_by) for x in p.b.candidates]
    summary = c.summary()
    assert summary.mean_kl == 0 and summary.top1_disagreements == () and summary.a == summary.b
    assert c.text_a == c.text_b


def test_temperature_one_against_two_in_same_text_is_the_kl_of_the_logits(lm):
    ids = lm.encode("The capital of France")
    a, b = SamplingSettings(temperature=1.0, seed=7, max_new_tokens=6), SamplingSettings(temperature=2.0)
    c = Comparison(ids, Side(lm, a), Side(lm, b), mode="same-text")
    positions = list(c)
    text = c.session_a.ids
    for p in positions:
        logits = lm.run(text[: p.a.position], capture=False).logits[0, -1]
        assert p.kl == pytest.approx(direct_kl(logits, 1.0, 2.0), rel=1e-4, abs=1e-7)
        probs_a, probs_b = (logits.double() / 1).softmax(-1), (logits.double() / 2).softmax(-1)
        assert p.tv == pytest.approx(0.5 * float((probs_a - probs_b).abs().sum()), abs=1e-6)
        assert p.b.token_id == p.a.token_id  # B was run on A's tokens
        assert p.b.prob == pytest.approx(float(probs_b[p.a.token_id]), rel=1e-4)
    assert c.summary().mean_kl == pytest.approx(sum(p.kl for p in positions) / len(positions))


def test_same_text_with_two_models_teacher_forces_b(lm, tiny_hf_gpt2_dir):
    other = LanguageModel.load(str(tiny_hf_gpt2_dir))  # same tokenizer, another network
    s = SamplingSettings(temperature=0.8, seed=1, max_new_tokens=5)
    c = Comparison(lm.encode("Hello"), Side(lm, s), Side(other, s), mode="same-text")
    positions = list(c)
    for p in positions:
        before = c.session_a.ids[: p.a.position]
        q = (other.run(before, capture=False).logits[0, -1].double() / 0.8).softmax(-1)
        pa = (lm.run(before, capture=False).logits[0, -1].double() / 0.8).softmax(-1)
        assert p.b.prob == pytest.approx(float(q[p.a.token_id]), rel=1e-4)
        assert p.kl == pytest.approx(float((pa * (pa.log() - q.log())).sum()), rel=1e-4)
    summary = c.summary()
    assert summary.b.raw_log_likelihood == pytest.approx(sum(math.log(p.b.raw_prob) for p in positions))
    assert summary.b.raw_perplexity == pytest.approx(math.exp(-summary.b.raw_log_likelihood / 5))


def test_top1_disagreements_are_counted_where_the_argmaxes_differ(lm):
    ids = lm.encode("Numbers like")
    a = SamplingSettings(temperature=1.0, seed=2, max_new_tokens=10)
    b = a.with_(frequency_penalty=2.0, presence_penalty=2.0, logit_bias={5: 8.0})
    c = Comparison(ids, Side(lm, a), Side(lm, b))
    positions = list(c)
    expected = []
    for p in positions:
        before = c.session_a.ids[: p.a.position]
        logits = lm.run(before, capture=False).logits[0, -1].double()
        generated = c.session_a.ids[len(ids): p.a.position]
        biased = logits.clone()
        biased[5] += 8.0
        for t in set(generated):
            biased[t] -= 2.0 * generated.count(t) + 2.0
        if int(logits.argmax()) != int(biased.argmax()):
            expected.append(p.index)
    assert c.summary().top1_disagreements == tuple(expected)
    assert expected  # a +8 bias moves the top token somewhere


def test_free_mode_lets_each_side_write_its_own_text_and_a_cut_gives_infinite_kl(lm):
    ids = lm.encode("Hello there")
    a = SamplingSettings(temperature=1.5, seed=11, max_new_tokens=6)
    b = a.with_(top_k=1)  # greedy in effect: B cut every token but its top one
    c = Comparison(ids, Side(lm, a), Side(lm, b), mode="free")
    positions = list(c)
    solo = GenerationSession(lm, ids, a.with_(seed=c.seed))
    assert [p.a.token_id for p in positions] == [s.token_id for s in solo]  # A is unaffected by B
    greedy = GenerationSession(lm, ids, a.with_(temperature=0))
    assert [p.b.token_id for p in positions] == [s.token_id for s in greedy]
    assert all(p.kl == math.inf for p in positions)
    summary = c.summary()
    assert summary.infinite_kl == tuple(range(6)) and c.to_json()["summary"]["mean_kl"] is None


def test_kl_and_tv_on_known_distributions():
    p, q = torch.tensor([0.5, 0.5, 0.0]), torch.tensor([0.25, 0.25, 0.5])
    assert kl_divergence(p, q) == pytest.approx(math.log(2))
    assert kl_divergence(q, p) == math.inf
    assert total_variation(p, q) == pytest.approx(0.5)


def test_two_vocabularies_or_an_unknown_mode_say_why(lm):
    s = SamplingSettings()
    with pytest.raises(ValueError, match="mode"):
        Comparison(lm.encode("hi"), Side(lm, s), Side(lm, s), mode="sideways")
    renumbered = SimpleNamespace(vocab_size=lm.tokenizer.vocab_size, token_text=lambda i: f"<{i}>")
    with pytest.raises(ValueError, match="number their tokens differently"):
        Comparison(lm.encode("hi"), Side(lm, s), Side(replace(lm, tokenizer=renumbered), s))


@pytest.mark.default_model
def test_default_model_same_text_temperature(default_lm):
    ids = default_lm.encode("The capital of France is")
    c = Comparison(ids, Side(default_lm, SamplingSettings(temperature=1.0, seed=0, max_new_tokens=4)),
                   Side(default_lm, SamplingSettings(temperature=2.0)))
    for p in c:
        logits = default_lm.run(c.session_a.ids[: p.a.position], capture=False).logits[0, -1]
        assert p.kl == pytest.approx(direct_kl(logits, 1.0, 2.0), rel=1e-3)
    same = Comparison(ids, Side(default_lm, SamplingSettings(seed=0, max_new_tokens=4)),
                      Side(default_lm, SamplingSettings(seed=0, max_new_tokens=4)), mode="free")
    assert all(p.kl == 0 and p.a.candidates == p.b.candidates for p in same)


def test_two_branches_are_read_each_on_its_own_text_from_where_they_part(lm):
    ids = lm.encode("Once upon")
    settings = SamplingSettings(temperature=0.9, top_k=50, seed=4, max_new_tokens=8)
    session = GenerationSession(lm, ids, settings)
    first = list(session)
    session.fork(3, next(c.id for c in first[3].candidates if c.id != first[3].token_id))
    second = first[:3] + session.steps[3:] + list(session)
    c = Comparison.of_branches(lm, ids, first, second)
    positions = list(c)
    assert c.shared == 3 and c.mode == "branches" and len(positions) == max(len(first), len(second)) - 3
    for p in positions:
        for step, branch in ((p.a, first), (p.b, second)):
            if 3 + p.index >= len(branch):
                assert step is None
                continue
            recorded = branch[3 + p.index]
            assert step.token_id == recorded.token_id  # the branch's own token, read under its own knobs
            assert step.prob == pytest.approx(recorded.prob, rel=1e-5)
            assert step.raw_prob == pytest.approx(recorded.raw_prob, rel=1e-5)
        if p.a and p.b:  # two contexts, one position: the divergence of the two next-token distributions
            context_a = ids + [s.token_id for s in first[: 3 + p.index]]
            context_b = ids + [s.token_id for s in second[: 3 + p.index]]
            pa = (lm.run(context_a, capture=False).logits[0, -1].double() / 0.9).softmax(-1)
            pb = (lm.run(context_b, capture=False).logits[0, -1].double() / 0.9).softmax(-1)
            # top-k 50 cuts both: compare the distributions after the knobs
            pa = pa * (pa >= pa.topk(50).values[-1]); pa /= pa.sum()
            pb = pb * (pb >= pb.topk(50).values[-1]); pb /= pb.sum()
            assert p.tv == pytest.approx(0.5 * float((pa - pb).abs().sum()), abs=1e-6)
    # Where they part both read one distribution (two tokens drawn from it); after that the contexts differ.
    assert positions[0].kl == 0 and positions[0].a.token_id != positions[0].b.token_id and positions[1].kl > 0
    summary = c.summary()
    assert summary.a.raw_log_likelihood == pytest.approx(sum(math.log(s.raw_prob) for s in first[3:]), rel=1e-5)
    assert summary.b.raw_log_likelihood == pytest.approx(sum(math.log(s.raw_prob) for s in second[3:]), rel=1e-5)
    assert c.to_json()["shared"] == 3 and c.text_b == lm.tokenizer.decode([s.token_id for s in second[3:]])
    with pytest.raises(ValueError, match="same text"):
        Comparison.of_branches(lm, ids, first, first)
