"""Choosing the next token: pure functions on one logits vector, every stage kept.

The order follows Hugging Face's `generate`, with OpenAI's knobs where OpenAI puts them
(on the logits, before temperature):

1. logit bias and banned tokens (OpenAI's `logit_bias`; a ban is a bias of minus infinity),
2. repetition penalty (CTRL's, on every token of the text, as Hugging Face),
3. frequency and presence penalties (OpenAI's, on the generated tokens only),
4. temperature: the `adjusted` distribution,
5. the cuts, each on what the previous one left: banned, top-n-sigma, top-k, top-p, min-p, typical-p.

A UI can show the model's raw probabilities beside the adjusted ones, and which stage
cut which token.

    >>> probs = torch.tensor([0.25, 0.25, 0.125, 0.125, 0.125, 0.125])
    >>> top_p_mask(probs, 0.5).tolist()
    [True, True, False, False, False, False]
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from llmtui.engine.errors import ModelOutputError
from llmtui.engine.settings import SamplingSettings  # re-exported: the knobs live beside their effects

CUT_STAGES = ("banned", "n-sigma", "top-k", "top-p", "min-p", "typical")
"""The cuts in the order they apply; the names are what the probability table shows (7 columns at most)."""


@dataclass(frozen=True)
class Distribution:
    """Every stage of turning logits into the distribution a token is drawn from. All (V,)."""

    raw: Tensor  # softmax of the model's logits: what the model believes
    adjusted: Tensor  # after logit bias, penalties and temperature, before any cut
    cuts: dict[str, Tensor]  # stage name (CUT_STAGES) -> bool: removed by it, among what the earlier cuts kept
    final: Tensor  # adjusted, renormalised over the kept tokens: what is sampled

    @property
    def kept(self) -> Tensor:
        return self.final > 0

    def cut_reason(self, token_id: int) -> str | None:
        """Which stage removed this token, or None if it can be drawn."""
        return self.cut_reasons([token_id])[0]

    def cut_reasons(self, token_ids: Sequence[int]) -> list[str | None]:
        """cut_reason of each token, reading each stage's mask once for all of them (a table's ten
        candidates asked one by one cost ~70 tensor reads a token)."""
        index = torch.as_tensor(token_ids, dtype=torch.long, device=self.final.device)
        stages = [(name, mask[index].tolist()) for name, mask in self.cuts.items()]
        drawable = (self.final[index] > 0).tolist()
        reasons: list[str | None] = []
        for k in range(len(token_ids)):
            cut = next((name for name, removed in stages if removed[k]), None)
            reasons.append(cut if cut is not None or drawable[k] else "greedy")
        return reasons


def apply_repetition_penalty(logits: Tensor, previous_ids: Sequence[int], penalty: float) -> Tensor:
    """CTRL's penalty, as in Hugging Face: divide positive logits of seen tokens by it, multiply negative ones.

    Returns the logits themselves when nothing is penalised, else a float64 copy."""
    if penalty == 1.0 or len(previous_ids) == 0:
        return logits
    ids = torch.as_tensor(sorted(set(previous_ids)), dtype=torch.long, device=logits.device)
    # In float64: a large penalty on large float32 logits can't overflow to inf (and inf - inf is nan).
    out = logits.to(torch.float64, copy=True)
    seen = out[ids]
    out[ids] = torch.where(seen > 0, seen / penalty, seen * penalty)
    return out


def apply_frequency_presence(logits: Tensor, generated_ids: Sequence[int], frequency: float, presence: float) -> Tensor:
    """OpenAI's penalties: mu[j] - c[j] * frequency - (c[j] > 0) * presence, where c[j] counts how often
    token j was generated before this position (the prompt does not count).

    Returns the logits themselves when nothing is penalised, else a float64 copy."""
    if (frequency == 0 and presence == 0) or len(generated_ids) == 0:
        return logits
    counts = Counter(generated_ids)
    ids = torch.as_tensor(list(counts), dtype=torch.long, device=logits.device)
    c = torch.as_tensor(list(counts.values()), dtype=torch.float64, device=logits.device)
    out = logits.to(torch.float64, copy=True)
    out[ids] -= c * frequency + presence
    return out


def apply_logit_bias(logits: Tensor, bias: Sequence[tuple[int, float]], banned: Sequence[int]) -> Tensor:
    """OpenAI's logit_bias (added to the logits) and bans (minus infinity). A float64 copy when anything applies.

    Raises ValueError for a token id outside the vocabulary, or when every token is banned."""
    if not bias and not banned:
        return logits
    size = logits.numel()
    if any(i >= size for i, _ in bias) or any(i >= size for i in banned):
        raise ValueError(f"a biased or banned token id is outside the vocabulary (0..{size - 1})")
    if len(banned) >= size:
        raise ValueError("every token is banned: nothing is left to draw")
    out = logits.to(torch.float64, copy=True)
    if bias:
        ids, values = zip(*bias)
        out[list(ids)] += torch.tensor(values, dtype=torch.float64, device=out.device)
    if banned:
        out[list(banned)] = float("-inf")
    return out


def top_n_sigma_mask(logits: Tensor, n: float) -> Tensor:
    """Top-nσ (Tang et al., 2024): keep tokens whose logit is at least max - n·σ, σ the standard deviation of the
    logits (population, over the finite ones). Temperature scales max and σ alike, so the set does not depend on it."""
    finite = torch.isfinite(logits)
    if n <= 0:
        return finite
    values = logits[finite].double()
    sigma = values.std(unbiased=False) if values.numel() > 1 else values.new_zeros(())
    return finite & (logits.double() >= values.max() - n * sigma)


def top_k_mask(probs: Tensor, k: int) -> Tensor:
    """True for exactly the k most probable tokens (all of them when k is 0 or >= V)."""
    if k <= 0 or k >= probs.numel():
        return torch.ones_like(probs, dtype=torch.bool)
    mask = torch.zeros_like(probs, dtype=torch.bool)
    mask[torch.topk(probs, k).indices] = True
    return mask


def top_p_mask(probs: Tensor, p: float) -> Tensor:
    """True for the smallest set of most probable tokens whose probabilities add up to p.

    A token is kept when the mass of the tokens before it (in descending order) is
    still short of p; the top token is always kept.
    """
    if p >= 1.0:
        return probs > 0
    # The nucleus is usually small: sort only the top k, growing k until it holds mass p.
    k = min(64, probs.numel())
    while True:
        top, order = torch.topk(probs, k)
        mass_before = torch.cumsum(top.double(), 0) - top.double()
        if k == probs.numel() or mass_before[-1] + top[-1] >= p:
            break
        k = min(k * 8, probs.numel())
    keep_sorted = mass_before < p - 1e-9  # a hair of slack so 0.25 + 0.25 counts as reaching 0.5
    keep_sorted[0] = True
    mask = torch.zeros_like(probs, dtype=torch.bool)
    mask[order[keep_sorted]] = True
    return mask & (probs > 0)


def min_p_mask(probs: Tensor, min_p: float) -> Tensor:
    """True for tokens at least min_p times as probable as the most probable one."""
    if min_p <= 0:
        return probs > 0
    return probs >= min_p * probs.max()


def typical_p_mask(probs: Tensor, mass: float) -> Tensor:
    """Locally typical sampling (Meister et al., 2022), as Hugging Face's TypicalLogitsWarper: order tokens by how
    far their surprise (-log p) is from the entropy, and keep the smallest such prefix whose mass reaches `mass`.
    The first token is always kept; tokens tied with the last one kept stay too (Hugging Face's rule)."""
    if mass >= 1.0:
        return probs > 0
    p = probs.double()
    alive = p > 0
    log_p = torch.where(alive, p, torch.ones_like(p)).log()
    entropy = -(p * log_p).sum()
    gap = torch.where(alive, (-log_p - entropy).abs(), torch.full_like(p, float("inf")))
    order = torch.argsort(gap, stable=True)
    reached = torch.cumsum(p[order], 0) < mass
    last = min(int(reached.sum()), p.numel() - 1)
    return alive & (gap <= gap[order[last]] + 1e-12)  # ties up to rounding stay together


def distribution(
    logits: Tensor, settings: SamplingSettings, previous_ids: Sequence[int] = (), generated_ids: Sequence[int] = ()
) -> Distribution:
    """All stages for one step's logits (V,), computed in float32 on the logits' device.

    previous_ids is the whole text so far (the repetition penalty's), generated_ids the part the model
    wrote (OpenAI's frequency and presence penalties count only those)."""
    logits = logits.float()
    # Else multinomial fails deep in torch, or argmax picks garbage. The sum is NaN or infinite when any
    # logit is (one pass over the logits instead of two); huge finite logits can overflow it: then look closer.
    if not torch.isfinite(logits.sum()) and not torch.isfinite(logits).all():
        raise ModelOutputError()
    raw = logits.softmax(-1)
    penalised = apply_logit_bias(logits, settings.logit_bias, settings.banned)
    penalised = apply_repetition_penalty(penalised, previous_ids, settings.repetition_penalty)
    penalised = apply_frequency_presence(penalised, generated_ids, settings.frequency_penalty, settings.presence_penalty)
    # penalised is the logits themselves when no bias, ban or penalty applies: finite, as checked above
    banned = ~torch.isfinite(penalised) if penalised is not logits else torch.zeros_like(logits, dtype=torch.bool)
    none = torch.zeros_like(banned)
    if settings.greedy:
        # Temperature 0 is the limit of ever sharper softmax: all mass on the top token.
        adjusted = penalised.softmax(-1).float()
        final = torch.zeros_like(raw)
        final[penalised.argmax()] = 1.0
        return Distribution(raw, adjusted, {name: banned if name == "banned" else none for name in CUT_STAGES}, final)

    # Shift so the top logit is 0 before dividing: a tiny temperature then gives -inf, never nan.
    shifted = penalised.double() - penalised.max()
    adjusted = (shifted / settings.temperature).softmax(-1).float()
    cuts: dict[str, Tensor] = {"banned": banned}
    keep, probs = ~banned, adjusted
    for name, mask_of in (
        ("n-sigma", lambda _: top_n_sigma_mask(penalised, settings.top_n_sigma)),
        ("top-k", lambda p: top_k_mask(p, settings.top_k)),
        ("top-p", lambda p: top_p_mask(p, settings.top_p)),
        ("min-p", lambda p: min_p_mask(p, settings.min_p)),
        ("typical", lambda p: typical_p_mask(p, settings.typical_p)),
    ):
        kept = mask_of(probs) & keep
        cuts[name] = keep & ~kept
        keep, probs = kept, renormalise(probs * kept)
    return Distribution(raw, adjusted, cuts, probs)


def renormalise(probs: Tensor) -> Tensor:
    return probs / probs.sum()


def sample(dist: Distribution, generator: torch.Generator) -> int:
    """Draw one token id from dist.final with a seeded CPU generator (same seed, same draw on any device)."""
    final = dist.final
    nonzero = int((final > 0).sum())
    if nonzero == 1:
        return int(final.argmax())
    return int(torch.multinomial(final.cpu(), 1, generator=generator))


def make_generator(seed: int) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(seed)
