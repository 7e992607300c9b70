"""A decoder-only transformer in one readable file: GPT-2 and Llama families.

Read it top to bottom: norms, rotary positions, attention, MLPs, the block, the
KV cache, then the model. Differences between the families are fields of
`ModelConfig` (norm, mlp, positions, bias), not copies of the model.

References: nanoGPT's model.py (GPT-2), Hugging Face's modeling_llama.py (RoPE with
the rotate-half convention, grouped-query attention), litgpt's KVCache.

Internals (attention probabilities, the residual stream after every layer, the
output of every attention and MLP block) are captured only when `capture=True`;
the plain decoding path uses fused attention and stores nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmtui.engine.model.config import ModelConfig


# --- norms -------------------------------------------------------------------


class RMSNorm(nn.Module):
    """Llama's norm: scale by the root mean square, no centring, no bias."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        # x / sqrt(mean(x^2) + eps) * weight, as one fused kernel
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def make_norm(config: ModelConfig) -> nn.Module:
    if config.norm == "rmsnorm":
        return RMSNorm(config.d_model, config.norm_eps)
    return nn.LayerNorm(config.d_model, eps=config.norm_eps)


# --- rotary position embedding --------------------------------------------------


def rope_tables(config: ModelConfig, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
    """cos and sin for every position, each (context_length, head_dim)."""
    hd = config.head_dim
    inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float32, device=device) / hd))
    t = torch.arange(config.context_length, dtype=torch.float32, device=device)
    freqs = torch.outer(t, inv_freq)  # (T, hd/2)
    emb = torch.cat([freqs, freqs], dim=-1)  # (T, hd): the rotate-half layout
    return emb.cos(), emb.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate pairs (i, i + hd/2) of x (B, nh, T, hd) by each position's angle."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


# --- KV cache -------------------------------------------------------------------


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
        self.length = 0
        room = max_len if initial is None else max(1, min(initial, max_len))
        # Positions past `length` are never read (attention stops at the filled ones): no zero fill needed.
        shape = (batch, config.n_kv_head, room, config.head_dim)  # (B, nkv, room, hd)
        self.k = [torch.empty(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.v = [torch.empty(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]

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
                grown[:, :, : self.length] = old[:, :, : self.length]
                kv[i] = grown

    def append(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write k, v (B, n_kv, T, hd) after the cached positions; return all keys/values so far."""
        start, end = self.length, self.length + k.shape[2]
        if end > self.k[layer].shape[2]:
            self.reserve(end)  # the model reserves before its first layer; this covers direct use
        self.k[layer][:, :, start:end] = k
        self.v[layer][:, :, start:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]

    def truncate(self, length: int) -> None:
        """Forget every position from `length` on."""
        if not 0 <= length <= self.length:
            raise ValueError(f"can't truncate a cache of {self.length} positions to {length}")
        self.length = length

    def copy_prefix_from(self, other: KVCache, length: int) -> None:
        """Take the first `length` positions of another cache of the same model (a shared prompt's prefill)."""
        if length > other.length:
            raise ValueError(f"the other cache holds {other.length} positions, not {length}")
        self.reserve(length)
        for mine, theirs in ((self.k, other.k), (self.v, other.v)):
            for a, b in zip(mine, theirs):
                a[:, :, :length] = b[:, :, :length]
        self.length = length


# --- attention ------------------------------------------------------------------


class Attention(nn.Module):
    """Causal self-attention with grouped-query heads (n_kv_head <= n_head).

    The query, key and value projections are stacked in one matrix `qkv` (as GPT-2's
    c_attn): one matrix product instead of three, which matters when decoding one
    token at a time. Checkpoints with separate q_proj/k_proj/v_proj load as they are.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        hd, bias = config.head_dim, bool(config.bias)
        self.split = (config.n_head * hd, config.n_kv_head * hd, config.n_kv_head * hd)
        self.qkv = nn.Linear(config.d_model, sum(self.split), bias=bias)
        self.o_proj = nn.Linear(config.n_head * hd, config.d_model, bias=bias)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        stack_parts(state_dict, prefix, "qkv", ("q_proj", "k_proj", "v_proj"))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(
        self,
        x: Tensor,
        rope: tuple[Tensor, Tensor] | None,
        cache: KVCache | None,
        layer: int,
        past: int,
        capture: bool,
    ) -> tuple[Tensor, Tensor | None]:
        c = self.config
        B, T, _ = x.shape
        heads = self.qkv(x).view(B, T, c.n_head + 2 * c.n_kv_head, c.head_dim).transpose(1, 2)  # (B, nh+2nkv, T, hd)
        qk, v = heads.split([c.n_head + c.n_kv_head, c.n_kv_head], dim=1)  # v: (B, nkv, T, hd)
        if rope is not None:
            qk = apply_rope(qk, *rope)  # queries and keys rotated together
        q, k = qk.split([c.n_head, c.n_kv_head], dim=1)  # (B, nh, T, hd), (B, nkv, T, hd)
        if cache is not None:
            k, v = cache.append(layer, k, v)  # (B, nkv, past+T, hd)
        Tk = k.shape[2]

        if capture:
            # Spelled out so the probabilities can be kept: (B, nh, T, Tk).
            if c.n_rep > 1:
                k = k.repeat_interleave(c.n_rep, dim=1)
                v = v.repeat_interleave(c.n_rep, dim=1)
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(c.head_dim)
            scores = scores.masked_fill(~causal_mask(T, Tk, past, x.device), float("-inf"))
            probs = scores.softmax(dim=-1)
            y = probs @ v
        else:
            probs = None
            if T == 1:
                mask, is_causal = None, False  # one new query sees every cached key
            elif past == 0:
                mask, is_causal = None, True
            else:
                mask, is_causal = causal_mask(T, Tk, past, x.device), False
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, enable_gqa=c.n_rep > 1)
        y = y.transpose(1, 2).reshape(B, T, c.n_head * c.head_dim)  # (B, T, nh*hd)
        return self.o_proj(y), probs


def causal_mask(T: int, Tk: int, past: int, device: torch.device) -> Tensor:
    """(T, Tk) boolean: query i (at position past+i) may see key j when j <= past+i."""
    q_pos = torch.arange(past, past + T, device=device)[:, None]
    k_pos = torch.arange(Tk, device=device)[None, :]
    return k_pos <= q_pos


# --- feed-forward -----------------------------------------------------------------


class GeluMLP(nn.Module):
    """GPT-2's feed-forward: expand, GELU (tanh approximation), project back."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.d_model, config.d_ff, bias=bool(config.bias))
        self.proj = nn.Linear(config.d_ff, config.d_model, bias=bool(config.bias))

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class SwiGLU(nn.Module):
    """Llama's feed-forward: down(silu(gate(x)) * up(x)), a SiLU-gated linear unit.

    gate and up are stacked in one matrix `gate_up` (one product instead of two);
    checkpoints with separate gate/up load as they are.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.gate_up = nn.Linear(config.d_model, 2 * config.d_ff, bias=False)
        self.down = nn.Linear(config.d_ff, config.d_model, bias=False)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        stack_parts(state_dict, prefix, "gate_up", ("gate", "up"))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


def stack_parts(state_dict: dict[str, Tensor], prefix: str, fused: str, parts: tuple[str, ...]) -> None:
    """Replace the separate `parts` weights (and biases) in a state dict by one stacked `fused` entry."""
    for kind in ("weight", "bias"):
        keys = [f"{prefix}{p}.{kind}" for p in parts]
        if all(k in state_dict for k in keys):
            state_dict[f"{prefix}{fused}.{kind}"] = torch.cat([state_dict.pop(k) for k in keys])


# --- the block ----------------------------------------------------------------------


class Block(nn.Module):
    """Pre-norm residual block: x + attention(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = make_norm(config)
        self.attn = Attention(config)
        self.mlp_norm = make_norm(config)
        self.mlp = SwiGLU(config) if config.mlp == "swiglu" else GeluMLP(config)


# --- the model ------------------------------------------------------------------------


@dataclass
class ForwardOutput:
    """What one forward pass returns. The lists are filled only with capture=True."""

    logits: Tensor  # (B, T, V), or (B, 1, V) with last_only
    attentions: list[Tensor] = field(default_factory=list)  # per layer (B, nh, T, Tk): rows sum to 1
    residuals: list[Tensor] = field(default_factory=list)  # n_layer + 1 of (B, T, D): embeddings, then after each block
    attn_outputs: list[Tensor] = field(default_factory=list)  # per layer (B, T, D): what attention added
    mlp_outputs: list[Tensor] = field(default_factory=list)  # per layer (B, T, D): what the MLP added


class Transformer(nn.Module):
    """The whole decoder: embeddings, blocks, final norm, unembedding."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = nn.Embedding(config.context_length, config.d_model) if config.positions == "learned" else None
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.final_norm = make_norm(config)
        # A tied model reads its unembedding from tok_emb, so the state dict has no lm_head.
        self.lm_head = None if config.tie_embeddings else nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.positions == "rope":
            cos, sin = rope_tables(config)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)

    @property
    def unembedding(self) -> Tensor:
        """(V, D): the matrix that turns a final vector into one logit per token."""
        return self.tok_emb.weight if self.lm_head is None else self.lm_head.weight

    def n_params(self) -> int:
        """Parameter count, a tied matrix counted once (as model cards do)."""
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, max_len: int | None = None, batch: int = 1, *, initial: int = CACHE_BLOCK) -> KVCache:
        """An empty KV cache on this model's device for up to max_len (default: the context) positions.

        It starts with room for `initial` positions (pass what you know you need) and
        grows by doubling when a forward pass needs more.
        """
        weight = self.tok_emb.weight
        return KVCache(self.config, batch, max_len or self.config.context_length, weight.device, weight.dtype, initial)

    def unembed(self, x: Tensor) -> Tensor:
        """Final norm then unembedding: a residual vector (..., D) to logits (..., V)."""
        return F.linear(self.final_norm(x), self.unembedding)

    def forward(
        self,
        ids: Tensor,
        cache: KVCache | None = None,
        *,
        capture: bool = False,
        last_only: bool = False,
    ) -> ForwardOutput:
        """Run ids (B, T) through the model.

        With a cache, ids continue the cached positions and their keys/values are
        appended. last_only computes logits for the last position alone (decoding
        needs no more). capture=True also returns the internals.
        """
        B, T = ids.shape
        past = cache.length if cache is not None else 0
        if past + T > self.config.context_length:
            raise ValueError(
                f"{past + T} tokens exceed the model's context window of {self.config.context_length}"
            )
        if cache is not None:
            if past + T > cache.max_len:
                raise ValueError(f"{past + T} tokens exceed the KV cache's {cache.max_len} positions")
            cache.reserve(past + T)  # every layer grows at once, before the first writes
        x = self.tok_emb(ids)  # (B, T, D)
        rope = None
        if self.pos_emb is not None:
            x = x + self.pos_emb(torch.arange(past, past + T, device=ids.device))
        else:
            rope = (self.rope_cos[past : past + T], self.rope_sin[past : past + T])  # (T, hd) each

        out = ForwardOutput(logits=x)
        if capture:
            out.residuals.append(x)
        for i, block in enumerate(self.blocks):
            a, probs = block.attn(block.attn_norm(x), rope, cache, i, past, capture)
            x = x + a
            m = block.mlp(block.mlp_norm(x))
            x = x + m
            if capture:
                out.attentions.append(probs)
                out.attn_outputs.append(a)
                out.mlp_outputs.append(m)
                out.residuals.append(x)
        if cache is not None:
            cache.length = past + T
        if last_only:
            x = x[:, -1:]
        out.logits = self.unembed(x)  # (B, T, V)
        return out
