"""Sampling stages: each knob does exactly what CONCEPTS.md says, and every distribution sums to 1."""

import math

import pytest
import torch
from hypothesis import given, settings as hsettings, strategies as st

from llmtui.engine.sampling import (
    SamplingSettings,
    apply_repetition_penalty,
    distribution,
    make_generator,
    min_p_mask,
    sample,
    top_k_mask,
    top_p_mask,
)

logit_vectors = st.lists(st.floats(-20, 20, allow_nan=False, width=32), min_size=2, max_size=60).map(torch.tensor)


def test_temperature_zero_picks_the_argmax():
    logits = torch.tensor([0.1, 3.0, 2.9, -1.0])
    dist = distribution(logits, SamplingSettings(temperature=0))
    assert dist.final.tolist() == [0.0, 1.0, 0.0, 0.0]
    for seed in range(20):
        assert sample(dist, make_generator(seed)) == 1


def test_top_p_keeps_the_smallest_prefix_reaching_p():
    # The example from CONCEPTS.md: 25%, 25%, 12.5%, 12.5%, ... with p = 0.5 keeps the first two.
    probs = torch.tensor([0.25, 0.25, 0.125, 0.125, 0.125, 0.125])
    assert top_p_mask(probs, 0.5).tolist() == [True, True, False, False, False, False]
    # Just past 0.5 needs a third token.
    assert top_p_mask(probs, 0.51).sum() == 3
    # p = 0 still keeps the top token, p = 1 keeps everything.
    assert top_p_mask(probs, 0.0).sum() == 1
    assert top_p_mask(probs, 1.0).all()


@given(logit_vectors, st.floats(0.01, 0.99))
def test_top_p_is_minimal_and_sufficient(logits, p):
    probs = logits.softmax(-1).double()
    kept = top_p_mask(probs, p)
    kept_probs = probs[kept].sort(descending=True).values
    assert kept_probs.sum() >= p - 1e-6  # reaches p
    assert kept_probs[:-1].sum() < p + 1e-6  # without its least probable member it would not
    # What is kept is a prefix of the descending order: nothing kept is less probable than something cut.
    if (~kept).any():
        assert probs[kept].min() >= probs[~kept].max()


@given(logit_vectors, st.integers(1, 80))
def test_top_k_keeps_exactly_k(logits, k):
    mask = top_k_mask(logits.softmax(-1), k)
    assert int(mask.sum()) == min(k, logits.numel())


def test_min_p_keeps_tokens_at_least_p_times_the_top():
    probs = torch.tensor([0.5, 0.25, 0.15, 0.1])
    assert min_p_mask(probs, 0.3).tolist() == [True, True, True, False]  # 0.15 >= 0.3 * 0.5
    assert min_p_mask(probs, 0.5).tolist() == [True, True, False, False]  # 0.25 == 0.5 * 0.5 stays


@given(
    logit_vectors,
    st.floats(0, 3),
    st.integers(0, 50),
    st.floats(0, 1),
    st.floats(0, 1),
    st.floats(0.5, 2.0),
)
@hsettings(max_examples=200, deadline=None)
def test_every_distribution_sums_to_one(logits, t, k, p, mp, rep):
    s = SamplingSettings(temperature=t, top_k=k, top_p=p, min_p=mp, repetition_penalty=rep)
    dist = distribution(logits, s, previous_ids=[0, 1])
    for stage in (dist.raw, dist.adjusted, dist.final):
        assert math.isclose(float(stage.sum()), 1.0, abs_tol=1e-4)
    # A cut token has final probability 0, a kept one more than 0, and each cut has one reason.
    cut = dist.cut_by_top_k | dist.cut_by_top_p | dist.cut_by_min_p
    assert not (dist.final[cut] > 0).any()
    assert int(dist.cut_by_top_k.int().sum() + dist.cut_by_top_p.int().sum() + dist.cut_by_min_p.int().sum()) == int(cut.sum())


def test_cuts_compose_in_order_and_name_their_knob():
    logits = torch.log(torch.tensor([0.4, 0.3, 0.15, 0.1, 0.05]))
    dist = distribution(logits, SamplingSettings(temperature=1.0, top_k=4, top_p=0.8, min_p=0.0))
    assert [dist.cut_reason(i) for i in range(5)] == [None, None, None, "top-p", "top-k"]
    # Renormalised over the three kept: 0.4/0.85, 0.3/0.85, 0.15/0.85.
    assert torch.allclose(dist.final[:3], torch.tensor([0.4, 0.3, 0.15]) / 0.85, atol=1e-5)


def test_temperature_sharpens_and_flattens():
    logits = torch.tensor([2.0, 1.0, 0.0])
    cold = distribution(logits, SamplingSettings(temperature=0.5)).final
    warm = distribution(logits, SamplingSettings(temperature=2.0)).final
    base = logits.softmax(-1)
    assert cold[0] > base[0] > warm[0]
    assert torch.allclose(cold, (logits / 0.5).softmax(-1))


def test_repetition_penalty_follows_ctrl():
    logits = torch.tensor([2.0, -2.0, 1.0])
    out = apply_repetition_penalty(logits, [0, 1], 2.0)
    assert out.tolist() == [1.0, -4.0, 1.0]


def test_same_seed_same_draws():
    logits = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    dist = distribution(logits, SamplingSettings(temperature=1.5))
    g1, g2 = make_generator(42), make_generator(42)
    assert [sample(dist, g1) for _ in range(50)] == [sample(dist, g2) for _ in range(50)]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"temperature": -1}, "temperature"),
        ({"top_p": 1.5}, "top-p"),
        ({"top_k": -3}, "top-k"),
        ({"min_p": 2}, "min-p"),
        ({"repetition_penalty": 0}, "repetition penalty"),
        ({"repetition_penalty": float("nan")}, "repetition penalty"),  # nan made every probability nan
        ({"repetition_penalty": float("inf")}, "repetition penalty"),
        ({"repetition_penalty": 101}, "repetition penalty must be between 0.01 and 100"),
        ({"repetition_penalty": 1e-300}, "repetition penalty must be between 0.01 and 100"),
        ({"temperature": float("nan")}, "temperature"),
        ({"max_new_tokens": -1}, "max new tokens"),
    ],
)
def test_bad_settings_say_which_knob(changes, message):
    with pytest.raises(ValueError, match=message):
        SamplingSettings(**changes)


@given(
    st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=2, max_size=40).map(torch.tensor),
    st.one_of(st.just(0.0), st.floats(1e-300, 100)),
    st.floats(0.01, 100),
    st.integers(0, 50),
    st.floats(0, 1),
    st.floats(0, 1),
)
@hsettings(max_examples=300, deadline=None)
def test_any_valid_knobs_on_any_finite_logits_give_a_distribution_to_draw_from(logits, t, rep, k, p, mp):
    """Every token already in the text (a long text on a small vocabulary), the largest finite logits, the
    smallest temperatures and the largest penalties: the final distribution is finite, sums to 1, and a
    draw works (a float32 penalty used to overflow to inf, and inf - inf is nan)."""
    s = SamplingSettings(temperature=t, top_k=k, top_p=p, min_p=mp, repetition_penalty=rep)
    dist = distribution(logits, s, previous_ids=list(range(len(logits))))
    assert torch.isfinite(dist.final).all() and (dist.final >= 0).all()
    assert math.isclose(float(dist.final.sum()), 1.0, abs_tol=1e-4)
    assert 0 <= sample(dist, make_generator(0)) < len(logits)
