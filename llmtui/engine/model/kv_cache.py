"""The KV cache: keys and values of every layer for the tokens seen so far (after litgpt's KVCache).

The cache owns its length: each layer appends its new keys and values at `length`, and
the append of the last layer moves `length` on, so a forward pass that stops half way
(an error in layer 3) leaves the cache as it was. Layers that attend through a sliding
window keep every key too; the attention mask hides the ones older than the window.
"""

from __future__ import annotations

import torch
from torch import Tensor

from llmtui.engine.model.config import ModelConfig

CACHE_BLOCK = 256
"""Positions a new cache has room for when its user doesn't say (it grows from there)."""


class KVCache:
    """Keys and values of every layer for the tokens seen so far.

    Grows on demand: it starts with room for `initial` positions and doubles (up to
    `max_len`, the model's context window by default) when an append needs more, so a
    short generation holds megabytes, not the whole window (377 MB for SmolLM2's 8,192
    positions). `length` is the number of positions filled; `truncate(n)` rewinds (used
    to fork a generation from an earlier step) and keeps the room already made.
    """

    def __init__(
        self,
        config: ModelConfig,
        batch: int,
        max_len: int,
        device: torch.device,
        dtype: torch.dtype,
        initial: int | None = None,
    ) -> None:
        if max_len < 1:
            raise ValueError(f"a KV cache needs room for at least one position, got max_len={max_len}")
        self.max_len = max_len
        self._length = 0
        room = max_len if initial is None else max(1, min(initial, max_len))
        # Positions past `length` are never read (attention stops at the filled ones): no zero fill needed.
        shape = (batch, config.n_kv_head, room, config.head_dim)  # (B, nkv, room, hd)
        self.k = [torch.empty(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.v = [torch.empty(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]

    @property
    def length(self) -> int:
        """Positions filled (by every layer)."""
        return self._length

    @property
    def capacity(self) -> int:
        """Positions the cache has room for now (it grows up to max_len)."""
        return self.k[0].shape[2]

    @property
    def nbytes(self) -> int:
        """Bytes held by the keys and values of every layer."""
        return sum(t.numel() * t.element_size() for t in (*self.k, *self.v))

    def reserve(self, n: int) -> None:
        """Make room for n positions: double the capacity (capped at max_len) until it fits."""
        if n > self.max_len:
            raise ValueError(f"KV cache full: {n} positions needed, room for at most {self.max_len}")
        if n <= self.capacity:
            return
        room = self.capacity
        while room < n:
            room *= 2
        room = min(room, self.max_len)
        for kv in (self.k, self.v):
            for i, old in enumerate(kv):
                grown = old.new_empty((*old.shape[:2], room, old.shape[3]))
                grown[:, :, : self._length] = old[:, :, : self._length]
                kv[i] = grown

    def append(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write k, v (B, n_kv, T, hd) after the cached positions; return all keys/values so far.

        The last layer's append completes the step: `length` then counts the new positions.
        """
        start, end = self._length, self._length + k.shape[2]
        if end > self.k[layer].shape[2]:
            self.reserve(end)  # the model reserves before its first layer; this covers direct use
        self.k[layer][:, :, start:end] = k
        self.v[layer][:, :, start:end] = v
        if layer == len(self.k) - 1:
            self._length = end
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def advance(self, n: int) -> None:
        """Count n more positions that a fused decoding step wrote into every layer itself (decode_step.py)."""
        if self._length + n > self.capacity:
            raise ValueError(f"can't count {n} more positions: the cache has room for {self.capacity}")
        self._length += n

    def truncate(self, length: int) -> None:
        """Forget every position from `length` on."""
        if not 0 <= length <= self._length:
            raise ValueError(f"can't truncate a cache of {self._length} positions to {length}")
        self._length = length

    def copy_prefix_from(self, other: KVCache, length: int) -> None:
        """Take the first `length` positions of another cache of the same model (a shared prompt's prefill)."""
        if length > other.length:
            raise ValueError(f"the other cache holds {other.length} positions, not {length}")
        self.reserve(length)
        for mine, theirs in ((self.k, other.k), (self.v, other.v)):
            for a, b in zip(mine, theirs):
                a[:, :, :length] = b[:, :, :length]
        self._length = length
