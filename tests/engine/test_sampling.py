"""Sampling stages: each knob does exactly what CONCEPTS.md says, and every distribution sums to 1."""

import math

import pytest
import torch
from hypothesis import assume, given, settings as hsettings, strategies as st

from llmtui.engine.sampling import (
    CUT_STAGES,
    SamplingSettings,
    apply_frequency_presence,
    apply_repetition_penalty,
    distribution,
    make_generator,
    min_p_mask,
    sample,
    top_k_mask,
    top_n_sigma_mask,
    top_p_mask,
    typical_p_mask,
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
    cut = torch.stack(list(dist.cuts.values()))
    assert not (dist.final[cut.any(0)] > 0).any()
    assert int(cut.int().sum(0).max()) <= 1


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


# --- The knobs people meet elsewhere, each against its published definition ---------------------------------


@given(logit_vectors, st.lists(st.integers(0, 59), max_size=30), st.floats(-2, 2), st.floats(-2, 2))
def test_frequency_and_presence_penalties_follow_openai(logits, generated, frequency, presence):
    """OpenAI: mu[j] -> mu[j] - c[j] * alpha_frequency - float(c[j] > 0) * alpha_presence."""
    generated = [i % len(logits) for i in generated]
    out = apply_frequency_presence(logits, generated, frequency, presence)
    for j in range(len(logits)):
        c = generated.count(j)
        expected = float(logits[j]) - c * frequency - float(c > 0) * presence
        assert float(out[j]) == pytest.approx(expected, abs=1e-5)


def test_frequency_and_presence_count_only_the_generated_tokens():
    """The prompt's tokens are not 'sampled prior to the current position': only what the model wrote counts."""
    logits = torch.zeros(4)
    dist = distribution(logits, SamplingSettings(temperature=1, frequency_penalty=1.0, presence_penalty=0.5),
                        previous_ids=[0, 0, 1, 2], generated_ids=[2, 2])
    expected = torch.tensor([0.0, 0.0, -2.5, 0.0]).softmax(-1)
    assert torch.allclose(dist.adjusted, expected, atol=1e-6)


@given(logit_vectors, st.floats(0.0, 0.999))  # 1 is off (Hugging Face refuses it)
@hsettings(max_examples=200, deadline=None)
def test_typical_p_matches_hugging_faces_typical_warper(logits, mass):
    from transformers import TypicalLogitsWarper

    scores = logits.double().log_softmax(-1)
    mass = max(mass, 1e-6)  # Hugging Face refuses 0
    reference = TypicalLogitsWarper(mass=mass)(None, scores[None].clone())[0] > float("-inf")
    mine = typical_p_mask(scores.exp(), mass)
    # Where two tokens are equally typical up to rounding, rounding decides; compare the rest.
    gap = (-scores - (-(scores.exp() * scores).sum())).abs()
    cut_line = gap[reference].max()
    clear = ((gap - cut_line).abs() > 1e-9) | (gap == cut_line)
    cumulative = torch.cumsum(scores.exp()[torch.argsort(gap)], 0)
    assume(((cumulative - mass).abs() > 1e-9).all())
    assert mine[clear].tolist() == reference[clear].tolist()


def test_typical_p_prefers_tokens_near_the_entropy():
    """One sure token and a flat tail: the entropy is low, so the sure token (surprise near it) is what is typical."""
    probs = torch.tensor([0.9] + [0.1 / 50] * 50)
    assert typical_p_mask(probs, 0.5).tolist() == [True] + [False] * 50
    # A flat distribution: every token is exactly as surprising as the entropy, and ties stay together.
    assert typical_p_mask(torch.full((8,), 1 / 8), 0.3).all()


@given(logit_vectors, st.floats(0.01, 4.0), st.floats(0.05, 5.0))
def test_top_n_sigma_keeps_logits_within_n_deviations_of_the_top_whatever_the_temperature(logits, n, t):
    mask = top_n_sigma_mask(logits, n)
    sigma = float(logits.double().std(unbiased=False))
    for j, keep in enumerate(mask.tolist()):
        margin = float(logits.max()) - float(logits[j])
        if abs(margin - n * sigma) > 1e-6:  # away from the boundary, where rounding decides
            assert keep == (margin <= n * sigma)
    assert mask[logits.argmax()]
    # Temperature scales the top logit and sigma alike: the kept set is the same (the paper's point).
    scaled = top_n_sigma_mask(logits.double() / t, n)
    near = (float(logits.max()) - logits.double() - n * sigma).abs() < 1e-6
    assert (scaled == mask)[~near].all()
    assert top_n_sigma_mask(logits, 0).all()  # 0 is off


def test_logit_bias_adds_to_the_logit_and_a_ban_cuts_the_token():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    s = SamplingSettings(temperature=1.0, logit_bias={2: 3.0}, banned=[0])
    dist = distribution(logits, s)
    expected = torch.tensor([float("-inf"), 1.0, 3.0, -1.0]).softmax(-1)
    assert torch.allclose(dist.final, expected, atol=1e-6)
    assert [dist.cut_reason(i) for i in range(4)] == ["banned", None, None, None]
    assert dist.raw[0] > 0.5  # the model's own belief is shown unchanged
    greedy = distribution(logits, s.with_(temperature=0))
    assert greedy.final.argmax() == 2 and greedy.cut_reason(0) == "banned"
    for seed in range(30):
        assert sample(dist, make_generator(seed)) != 0
    with pytest.raises(ValueError, match="every token is banned"):
        distribution(logits, SamplingSettings(banned=[0, 1, 2, 3]))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        distribution(logits, SamplingSettings(banned=[4]))


def test_each_cut_is_named_in_the_table_order():
    """Six candidates, each cut by a different stage, in the order the stages apply."""
    logits = torch.tensor([5.0, 4.0, 3.5, 3.0, 1.0, -9.0, 4.5])
    s = SamplingSettings(temperature=1.0, banned=[6], top_n_sigma=1.5, top_k=4, top_p=0.99, min_p=0.1)
    dist = distribution(logits, s)
    reasons = [dist.cut_reason(i) for i in range(7)]
    assert reasons[6] == "banned" and reasons[5] == "n-sigma" and reasons[0] is None
    assert list(dist.cuts) == list(CUT_STAGES)


@given(
    logit_vectors,
    st.floats(0, 3),
    st.floats(-2, 2),
    st.floats(-2, 2),
    st.floats(0, 1),
    st.floats(0, 3),
    st.lists(st.integers(0, 1), max_size=1),  # at most one of two tokens: all banned is refused (tested above)
)
@hsettings(max_examples=200, deadline=None)
def test_new_knobs_keep_a_distribution_to_draw_from(logits, t, fp, pp, typical, sigma, banned):
    s = SamplingSettings(temperature=t, frequency_penalty=fp, presence_penalty=pp, typical_p=typical,
                         top_n_sigma=sigma, banned=banned, logit_bias={0: 2.0})
    dist = distribution(logits, s, previous_ids=[0, 1, 1], generated_ids=[1, 1])
    assert torch.isfinite(dist.final).all() and math.isclose(float(dist.final.sum()), 1.0, abs_tol=1e-4)
    token = sample(dist, make_generator(0))
    assert token not in banned and dist.cut_reason(token) is None


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"frequency_penalty": 2.5}, "frequency penalty"),
        ({"presence_penalty": -3}, "presence penalty"),
        ({"typical_p": 1.2}, "typical-p"),
        ({"top_n_sigma": -1}, "top-n-sigma"),
        ({"top_n_sigma": float("nan")}, "top-n-sigma"),
        ({"logit_bias": {3: 101}}, "logit bias"),
        ({"logit_bias": {3: float("nan")}}, "logit bias"),
        ({"banned": [-1]}, "token ids"),
        ({"stop": [""]}, "stop string"),
    ],
)
def test_bad_new_knobs_say_which(changes, message):
    with pytest.raises(ValueError, match=message):
        SamplingSettings(**changes)


def test_settings_round_trip_through_json():
    import json

    s = SamplingSettings(temperature=1.1, logit_bias={5: -2.5, 1: 1.0}, banned=[9, 3], stop=["\n\n", "User:"], seed=4)
    again = SamplingSettings.from_json(json.loads(json.dumps(s.to_json())))
    assert again == s and again.logit_bias == ((1, 1.0), (5, -2.5)) and again.banned == (3, 9)
    with pytest.raises(ValueError, match="unknown knob"):
        SamplingSettings.from_json({"temprature": 1})


@pytest.mark.parametrize("settings", [
    SamplingSettings(temperature=0.0),
    SamplingSettings(temperature=0.8, top_k=5, top_p=0.9, banned=(3,)),
    SamplingSettings(temperature=1.2, min_p=0.05, typical_p=0.8, logit_bias=((7, -100.0),)),
])
def test_cut_reasons_of_many_tokens_read_as_each_token_asked_alone(settings):
    """The table asks for its candidates' reasons at once; each is the first stage whose mask removed the
    token, 'greedy' for a token temperature 0 left out, None for a token that can be drawn."""
    logits = torch.randn(200, generator=torch.Generator().manual_seed(1)) * 3
    dist = distribution(logits, settings, [1, 2, 3])
    ids = list(range(200))

    def alone(i: int) -> str | None:
        for name, mask in dist.cuts.items():
            if bool(mask[i]):
                return name
        return "greedy" if float(dist.final[i]) == 0 else None

    reasons = dist.cut_reasons(ids)
    assert reasons == [alone(i) for i in ids]
    assert len(set(reasons)) >= 2  # the settings cut something: the test sees more than one answer
