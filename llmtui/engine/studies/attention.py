"""Attention weights of a text, captured once: per layer and head, head means, what a token attends to, head patterns.

One forward pass with capture (and no logits: the unembedding is not needed) gives,
for every layer, a (1, n_head, T, T) tensor of attention probabilities.
`capture_attention` stacks them into one (n_layer, n_head, T, T) tensor, so that looking
at another layer or head is only indexing: no model runs again.

A causal model's row i depends on tokens 0..i alone, so a text that continues the one
captured before (typing on, a generation growing) reuses it: the old rows as they are,
the old keys and values from the KV cache the capture kept, and the model runs only over
the new tokens. A text that is a prefix of the one before is only a slice of it.

    >>> w = torch.tensor([[[[1.0, 0.0], [0.25, 0.75]]]])  # 1 layer, 1 head, 2 tokens
    >>> AttentionMap.from_weights((7, 8), w).top_keys(0, 0, query=1)
    [(1, 0.75), (0, 0.25)]
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from llmtui.engine.errors import ModelOutputError

if TYPE_CHECKING:
    from llmtui.engine.lm import LanguageModel
    from llmtui.engine.model.kv_cache import KVCache
    from llmtui.engine.model.transformer import Transformer

MAX_TOKENS = 1024
"""The longest text captured: the weights take n_layer * n_head * T * T floats (1 GB for 1024 tokens on SmolLM2)."""

PATTERNS: tuple[str, ...] = ("previous", "first", "self", "same")
"""Head patterns scored: attends to the previous token, to the first token, to itself, to the same token earlier."""

PATTERN_HELP: dict[str, str] = {
    "previous": "looks at the token just before",
    "first": "looks at the first token",
    "self": "looks at the token itself",
    "same": "looks at earlier copies of the same token",
}

LABEL_THRESHOLD = 0.4
"""A head is labelled with a pattern when that pattern gets at least this share of its attention on average."""


@dataclass(frozen=True)
class HeadScores:
    """How much each head follows each pattern: values[layer, head, k] for PATTERNS[k], NaN where not measurable.

    A score is the mean, over the queries where the pattern applies, of the weight the
    query puts on the pattern's keys: 1.0 means the head always does exactly that.
    """

    values: Tensor  # (n_layer, n_head, len(PATTERNS))

    def of(self, layer: int, head: int) -> dict[str, float]:
        """The scores of one head, by pattern name (NaN: the text is too short to tell)."""
        return dict(zip(PATTERNS, self.values[layer, head].tolist()))

    def label(self, layer: int, head: int, threshold: float = LABEL_THRESHOLD) -> tuple[str, float] | None:
        """The head's strongest pattern and its score, or None when no pattern reaches `threshold`."""
        best: tuple[str, float] | None = None
        for name, score in self.of(layer, head).items():
            if not math.isnan(score) and score >= threshold and (best is None or score > best[1]):
                best = (name, score)
        return best


def head_scores(weights: Tensor, ids: Sequence[int]) -> HeadScores:
    """Score every head of weights (n_layer, n_head, T, T) on each of PATTERNS.

    previous and first are measured from the third token on (for the second token the
    previous token is the first one); self from the second token on; same over the
    tokens whose id appeared earlier in the text.
    """
    L, H, T, _ = weights.shape
    w = weights.float()
    nan = torch.full((L, H), float("nan"))
    # Diagonals and a column are views, read in place (indexing with index tensors copied each one out).
    previous = w.diagonal(-1, 2, 3)[:, :, 1:].mean(-1) if T > 2 else nan  # queries 2.. on keys 1..: (L, H)
    first = w[:, :, 2:, 0].mean(-1) if T > 2 else nan
    self_ = w.diagonal(0, 2, 3)[:, :, 1:].mean(-1) if T > 1 else nan
    tokens = torch.tensor(list(ids))
    earlier = torch.ones(T, T, dtype=torch.bool).tril(-1)  # (T, T): j < i
    same_mask = (tokens[:, None] == tokens[None, :]) & earlier  # (T, T): an earlier copy of the same id
    repeated = same_mask.any(-1)  # queries with an earlier copy of themselves
    if repeated.any():
        # Only the (query, key) pairs of the mask, a few per repeated token, summed per query, instead of
        # whole (L, H, R, T) rows multiplied by the mask: all four scores of a 128-token SmolLM2 map took
        # 2.8 ms instead of 7.3 (1 thread), ~1% of a capture.
        query, key = same_mask.nonzero(as_tuple=True)  # (P,) each, queries ascending
        per_query = w.new_zeros(L, H, T).index_add_(2, query, w[:, :, query, key])  # (L, H, T)
        same = per_query[:, :, repeated].mean(-1)
    else:
        same = nan
    return HeadScores(torch.stack([previous, first, self_, same], dim=-1))


class WeightsStamp:
    """Which weights a result was computed with: every module by identity, every parameter by identity and
    in-place version (an optimiser step or a `mul_` moves it on). Training the model, or swapping its layers,
    makes an older stamp stop matching; putting the very same layers back makes it match again."""

    def __init__(self, model: Transformer) -> None:
        self._modules = [weakref.ref(m) for m in model.modules()]
        self._params = [(weakref.ref(p), p._version) for p in model.parameters()]

    def matches(self, model: Transformer) -> bool:
        modules, params = list(model.modules()), list(model.parameters())
        return (len(modules) == len(self._modules) and len(params) == len(self._params)
                and all(ref() is m for ref, m in zip(self._modules, modules))
                and all(ref() is p and p._version == version for (ref, version), p in zip(self._params, params)))


class Continuation:
    """The keys and values of a map's tokens, for a capture of a longer text to continue from.

    The cache moves to the map that uses it (`take`): two texts continuing one map would
    otherwise write their own tokens over each other's.
    """

    def __init__(self, cache: KVCache, stamp: WeightsStamp) -> None:
        self._cache: KVCache | None = cache
        self.stamp = stamp

    @property
    def available(self) -> bool:
        return self._cache is not None

    def take(self, length: int) -> KVCache:
        """The cache, cut to its first `length` positions; this continuation holds none afterwards."""
        cache, self._cache = self._cache, None
        if cache is None:
            raise ValueError("this map's KV cache was already taken by a later capture")
        cache.truncate(length)
        return cache


@dataclass(frozen=True)
class AttentionMap:
    """The attention weights of one text for every layer and head.

    weights[layer, head, i, j] is how much token i attends to token j: each row sums to
    1 and j > i is 0 (a causal model never looks ahead).
    """

    ids: tuple[int, ...]
    weights: Tensor  # (n_layer, n_head, T, T), float32, on the CPU
    scores: HeadScores  # each head's pattern scores
    continuation: Continuation | None = field(default=None, compare=False, repr=False)
    partial: int | None = field(default=None, compare=False)
    """A map handed out while its capture still runs: layers 0..partial-1 hold their weights and scores,
    the others are not computed yet (None: a whole map)."""

    @classmethod
    def from_weights(
        cls, ids: Sequence[int], weights: Tensor, continuation: Continuation | None = None
    ) -> AttentionMap:
        """The map of weights (n_layer, n_head, T, T) for ids, its head patterns scored."""
        if weights.dim() != 4 or weights.shape[2] != weights.shape[3] or weights.shape[2] != len(ids):
            raise ValueError(f"weights must be (n_layer, n_head, T, T) with T = {len(ids)} tokens, "
                             f"not {tuple(weights.shape)}")
        return cls(tuple(ids), weights, head_scores(weights, ids), continuation)

    @classmethod
    def partial_of(cls, ids: Sequence[int], weights: Tensor, ready: int) -> AttentionMap:
        """The map of a capture still running, whose layers 0..ready-1 are in `weights` (read, not copied:
        the capture writes only the later layers)."""
        scores = head_scores(weights[:ready], ids).values
        missing = torch.full((weights.shape[0] - ready, *scores.shape[1:]), float("nan"))
        return cls(tuple(ids), weights, HeadScores(torch.cat([scores, missing])), None, ready)

    @property
    def ready(self) -> int:
        """How many layers hold weights: all of them, but for a partial map."""
        return self.n_layer if self.partial is None else self.partial

    def shared_with(self, model: Transformer, ids: Sequence[int]) -> int:
        """How many leading tokens a capture of ids on model can take from this map as they are (0: none):
        all of this map's when ids continue its text, all of ids when they start it; the model's weights
        must be the ones it was captured with, and its KV cache still here."""
        c = self.continuation
        n = min(len(self.ids), len(ids))
        if c is None or not c.available or n == 0 or tuple(ids[:n]) != self.ids[:n] or not c.stamp.matches(model):
            return 0
        return model.reusable_cache(n, len(ids))

    @property
    def n_layer(self) -> int:
        return self.weights.shape[0]

    @property
    def n_head(self) -> int:
        return self.weights.shape[1]

    @property
    def n_tokens(self) -> int:
        return self.weights.shape[2]

    def matrix(self, layer: int, head: int | None) -> Tensor:
        """One head's (T, T) weights, or with head None the mean of the layer's heads (rows still sum to 1)."""
        self._check(layer, head)
        if head is None:
            return self.weights[layer].mean(0)
        return self.weights[layer, head]

    def top_keys(self, layer: int, head: int | None, query: int, k: int | None = None) -> list[tuple[int, float]]:
        """The keys token `query` attends to, strongest first, as (key index, weight); only keys j <= query."""
        if not 0 <= query < self.n_tokens:
            raise IndexError(f"query {query} is not a token of this text (0..{self.n_tokens - 1})")
        row = self.matrix(layer, head)[query, : query + 1]
        n = row.numel() if k is None else min(k, row.numel())
        values, keys = torch.topk(row, n)  # sorted, strongest first
        return list(zip(keys.tolist(), values.tolist()))

    def _check(self, layer: int, head: int | None) -> None:
        if not 0 <= layer < self.n_layer:
            raise IndexError(f"layer {layer} does not exist (0..{self.n_layer - 1})")
        if head is not None and not 0 <= head < self.n_head:
            raise IndexError(f"head {head} does not exist (0..{self.n_head - 1})")


def check_length(n_tokens: int, context_length: int, max_tokens: int = MAX_TOKENS) -> None:
    """ValueError, with what to do, when a text of n_tokens can't be captured."""
    if n_tokens == 0:
        raise ValueError("the prompt is empty: type some text first")
    if n_tokens > context_length:
        raise ValueError(f"the text is {n_tokens} tokens; the model's context window holds {context_length}: "
                         "shorten it")
    if n_tokens > max_tokens:
        raise ValueError(f"the text is {n_tokens} tokens; attention is shown for up to {max_tokens} "
                         f"(every head keeps {n_tokens}×{n_tokens} weights): shorten it")


def capture_attention(
    lm: LanguageModel, ids: Sequence[int], max_tokens: int = MAX_TOKENS, previous: AttentionMap | None = None,
    *, first: int | None = None, early: Callable[[AttentionMap], None] | None = None,
) -> AttentionMap:
    """Run the model over ids and keep every layer's attention weights.

    With `previous` (the last map captured on this model), a text that continues its text
    runs only the new tokens (see the module's docstring); anything else runs in full.
    With `early`, it is called, on this thread, with a partial map (`AttentionMap.ready`) as soon as
    layers 0..`first` have run, when layers remain after it: the layer a pane shows can be drawn while
    the others run (the later layers are most of a capture's time).
    Raises ValueError (with a user-facing message) for an empty text or one too long, and
    ModelOutputError (a ValueError) when damaged weights overflow into NaN attention.
    """
    ids = list(ids)
    check_length(len(ids), lm.config.context_length, max_tokens)
    model, c, T = lm.model, lm.config, len(ids)
    past = previous.shared_with(model, ids) if previous is not None else 0
    if past and past == len(previous.ids) == T:  # the same text on the same weights: nothing to run
        return previous
    weights = torch.empty(c.n_layer, c.n_head, T, T, dtype=torch.float32)
    if past:
        cache = previous.continuation.take(past)
        weights[:, :, :past, :past] = previous.weights[:, :, :past, :past]
        weights[:, :, :past, past:] = 0  # old tokens never look at new ones
    else:
        cache = model.new_cache(initial=T)
    stamp = WeightsStamp(model)
    if past < T:
        def keep(layer: int, layer_weights: Tensor) -> None:  # each layer's as its block has run
            weights[layer, :, past:] = layer_weights[0]  # (nh, T - past, T): the new rows
            check_finite(weights[layer, :, past:])
            if early is not None and layer == first and layer < c.n_layer - 1:
                early(AttentionMap.partial_of(ids, weights, layer + 1))

        with torch.inference_mode():
            new = torch.tensor([ids[past:]], device=lm.device)
            model(new, cache, capture={"attn_weights"}, logits=False, on_attention=keep)
    return AttentionMap.from_weights(ids, weights, Continuation(cache, stamp))


def check_finite(weights: Tensor) -> None:
    """ModelOutputError if attention weights (rows on the last axis) hold NaN or infinity: damaged weights
    whose query·key overflowed. NaN has no colour nor percentage (the heatmap's raised in its render).

    Rows sum to 1 and NaN spreads into the sum: 35x faster than isfinite on every weight
    (40 ms against 1.4 s for all layers at 1024 tokens on this project's box).
    """
    if not torch.isfinite(weights.sum(-1)).all():
        raise ModelOutputError("attention")
