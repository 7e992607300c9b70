"""What the knobs would do to a served model's listed candidates, decided only where the list decides it.

A server lists the top N tokens with their raw log-probabilities; the rest of the vocabulary
(the unlisted tail) is one number, 1 - sum(listed). The knobs act in the local engine's
order (repetition penalty, temperature, top-k, top-p, min-p; see sampling.py), so a cut is
reported only when it holds for every way the tail could be spread:

- top-k and min-p look at ranks and ratios to the top token: always decidable.
- top-p needs the total mass, where temperature reweights the tail: bounded, not known.
  At temperature 1 the tail's mass is exact; below 1 it can shrink to almost nothing;
  above 1 it can grow without bound (the vocabulary size is not sent).
- penalties, biases, typical-p and top-n-sigma need logits that were not sent: nothing is decidable.

Undecided cuts are marked UNDECIDED and unknown probabilities are None: never invented.

    >>> [c.cut_by for c in judge([(1, "a", 0.5), (2, "b", 0.3)], SamplingSettings(temperature=1, top_k=1))]
    [None, 'top-k']
"""

from __future__ import annotations

import math
from typing import Sequence

from llmtui.engine.generation import Candidate
from llmtui.engine.remote import UNDECIDED
from llmtui.engine.settings import SamplingSettings

_SLACK = 1e-9  # the local top-p's slack: 0.25 + 0.25 counts as reaching 0.5


def unlisted_mass(raw_probs: Sequence[float]) -> float:
    """The probability the listed candidates leave to the rest of the vocabulary (never below 0)."""
    return max(0.0, 1.0 - math.fsum(raw_probs))


def judge(listed: Sequence[tuple[int, str, float]], settings: SamplingSettings) -> tuple[Candidate, ...]:
    """Candidates (id, text, raw probability), sorted by raw probability, with cuts and probabilities where decidable."""
    listed = sorted(listed, key=lambda c: -c[2])
    raws = [p for _, _, p in listed]
    if not listed or raws[0] <= 0:
        return tuple(Candidate(i, t, p, None, UNDECIDED) for i, t, p in listed)
    if beyond_the_list(settings):
        return tuple(Candidate(i, t, p, None, UNDECIDED) for i, t, p in listed)
    if settings.greedy:
        return tuple(Candidate(i, t, p, 1.0 if n == 0 else 0.0, None if n == 0 else "greedy")
                     for n, (i, t, p) in enumerate(listed))
    cuts = _cuts(raws, settings)
    probs = _probabilities(raws, cuts, settings)
    return tuple(Candidate(i, t, p, q, cut) for (i, t, p), cut, q in zip(listed, cuts, probs))


def beyond_the_list(s: SamplingSettings) -> bool:
    """Knobs a top-N list can't judge: penalties and biases move tokens whose logits were not sent; typical-p
    and top-n-sigma need the whole distribution (its entropy, its logits' spread)."""
    return bool(s.repetition_penalty != 1 or s.frequency_penalty or s.presence_penalty or s.typical_p < 1
                or s.top_n_sigma or s.logit_bias or s.banned)


def draws_from_raw(s: SamplingSettings) -> bool:
    """Whether no knob is at work: then the model's own probabilities are the ones drawn from."""
    return s.temperature == 1 and not (s.top_k or s.min_p) and s.top_p >= 1 and not beyond_the_list(s)


def _tail_weight(raws: Sequence[float], a: float, top_k: int) -> tuple[float, float]:
    """Bounds on sum(p ** a) over the unlisted tokens the top-k leaves, in units of top ** a.

    Each unlisted token is no more probable than the last listed one (p_min)."""
    rest, top, p_min = unlisted_mass(raws), raws[0], raws[-1]
    if rest < 1e-12 or (top_k and top_k <= len(raws)):
        return 0.0, 0.0
    if p_min <= 0:
        return 0.0, math.inf
    lumps = (rest / top) * (p_min / top) ** (a - 1)  # the tail in lumps as large as p_min
    if a == 1:
        lo, hi = rest / top, rest / top
    elif a > 1:
        lo, hi = 0.0, lumps  # spread thin it weighs next to nothing
    else:
        lo, hi = lumps, math.inf  # a thin spread over an unknown vocabulary weighs without bound
    if top_k:  # only top_k - N tail tokens survive: their share of the tail is unknown, their count is not
        lo, hi = 0.0, min(hi, (top_k - len(raws)) * (p_min / top) ** a)
    return lo, hi


def _weights(raws: Sequence[float], temperature: float) -> tuple[list[float], float]:
    """Listed p ** (1/T) in units of top ** (1/T) (so tiny temperatures neither overflow nor vanish), and 1/T."""
    a = 1 / temperature
    return [(p / raws[0]) ** a for p in raws], a


def _cuts(raws: Sequence[float], s: SamplingSettings) -> list[str | None]:
    w, a = _weights(raws, s.temperature)
    tail_lo, tail_hi = _tail_weight(raws, a, s.top_k)
    kept_w = math.fsum(w[: s.top_k] if s.top_k else w)
    total_lo, total_hi = kept_w + tail_lo, kept_w + tail_hi
    cuts: list[str | None] = []
    before = 0.0
    for rank, weight in enumerate(w):
        if s.top_k and rank >= s.top_k:
            cuts.append("top-k")
            continue
        if s.min_p > 0 and weight < s.min_p * w[0]:
            cuts.append("min-p")  # cut whatever top-p did (it may have been top-p's: then the name is min-p's)
        elif rank == 0 or s.top_p >= 1 or before / total_lo < s.top_p - _SLACK:
            cuts.append(None)  # kept even with the least tail
        elif before / total_hi >= s.top_p - _SLACK:
            cuts.append("top-p")  # cut even with the most tail
        else:
            cuts.append(UNDECIDED)
        before += weight
    return cuts


def _tail_cut(raws: Sequence[float], cuts: Sequence[str | None], s: SamplingSettings) -> bool:
    """Whether the knobs surely cut every unlisted token."""
    if unlisted_mass(raws) < 1e-12 or (s.top_k and s.top_k <= len(raws)):
        return True
    # Tail tokens are no more probable than the last listed one: if that one is cut by top-p or min-p, so are they.
    return cuts[-1] in ("top-p", "min-p")


def _probabilities(raws: Sequence[float], cuts: Sequence[str | None], s: SamplingSettings) -> list[float | None]:
    """Each listed candidate's probability after the knobs: 0 when cut, None when the tail leaves it open."""
    if draws_from_raw(s):
        return list(raws)  # no knob at work: the model's own probabilities, tail and all
    if UNDECIDED in cuts or not _tail_cut(raws, cuts, s):
        return [0.0 if c not in (None, UNDECIDED) else None for c in cuts]
    w, _ = _weights(raws, s.temperature)
    total = math.fsum(x for x, c in zip(w, cuts) if c is None)
    return [x / total if c is None else 0.0 for x, c in zip(w, cuts)]
