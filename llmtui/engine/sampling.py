"""Choosing the next token: pure functions on one logits vector, every stage kept.

The order follows Hugging Face's `generate`: repetition penalty, temperature,
then the cuts top-k, top-p and min-p, each on what the previous one left. A UI
can show the model's raw probabilities beside the adjusted ones, and which knob
cut which token.

    >>> probs = torch.tensor([0.25, 0.25, 0.125, 0.125, 0.125, 0.125])
    >>> top_p_mask(probs, 0.5).tolist()
    [True, True, False, False, False, False]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from llmtui.engine.errors import ModelOutputError
from llmtui.engine.settings import SamplingSettings  # re-exported: the knobs live beside their effects



@dataclass(frozen=True)
class Distribution:
    """Every stage of turning logits into the distribution a token is drawn from. All (V,)."""

    raw: Tensor  # softmax of the model's logits: what the model believes
    adjusted: Tensor  # after repetition penalty and temperature, before any cut
    cut_by_top_k: Tensor  # bool: removed by top-k
    cut_by_top_p: Tensor  # bool: removed by top-p (among what top-k kept)
    cut_by_min_p: Tensor  # bool: removed by min-p (among what top-k and top-p kept)
    final: Tensor  # adjusted, renormalised over the kept tokens: what is sampled

    @property
    def kept(self) -> Tensor:
        return self.final > 0

    def cut_reason(self, token_id: int) -> str | None:
        """Which knob removed this token, or None if it can be drawn."""
        for name, mask in (("top-k", self.cut_by_top_k), ("top-p", self.cut_by_top_p), ("min-p", self.cut_by_min_p)):
            if mask[token_id]:
                return name
        if self.final[token_id] == 0:
            return "greedy"
        return None


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


def distribution(logits: Tensor, settings: SamplingSettings, previous_ids: Sequence[int] = ()) -> Distribution:
    """All stages for one step's logits (V,), computed in float32 on the logits' device."""
    logits = logits.float()
    if not torch.isfinite(logits).all():  # else multinomial fails deep in torch, or argmax picks garbage
        raise ModelOutputError()
    raw = logits.softmax(-1)
    penalised = apply_repetition_penalty(logits, previous_ids, settings.repetition_penalty)
    none = torch.zeros_like(raw, dtype=torch.bool)
    if settings.greedy:
        # Temperature 0 is the limit of ever sharper softmax: all mass on the top token.
        adjusted = penalised.softmax(-1).float()
        final = torch.zeros_like(raw)
        final[penalised.argmax()] = 1.0
        return Distribution(raw, adjusted, none, none, none, final)

    # Shift so the top logit is 0 before dividing: a tiny temperature then gives -inf, never nan.
    shifted = penalised.double() - penalised.max()
    adjusted = (shifted / settings.temperature).softmax(-1).float()
    keep_k = top_k_mask(adjusted, settings.top_k)
    after_k = renormalise(adjusted * keep_k)
    keep_p = top_p_mask(after_k, settings.top_p) & keep_k
    after_p = renormalise(after_k * keep_p)
    keep_min = min_p_mask(after_p, settings.min_p) & keep_p
    final = renormalise(after_p * keep_min)
    return Distribution(raw, adjusted, ~keep_k, keep_k & ~keep_p, keep_p & ~keep_min, final)


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
