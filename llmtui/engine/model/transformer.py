"""A decoder-only transformer in one readable file, for every family llmtui reads.

Read it top to bottom: norms, rotary positions, attention, MLPs, the block (where the
residual rule lives), then the model. Families differ by fields of `ModelConfig`, never
by copies of the model: GPT-2 is LayerNorm + learned positions + a plain GELU MLP; Llama
is RMSNorm + RoPE + a gated SiLU MLP; Gemma adds (1 + w) norms, norms after attention and
MLP, soft-capped scores and sliding-window layers; GPT-NeoX adds the parallel residual
and partial rotary; and so on (see config.py's FAMILY_DEFAULTS).

References: nanoGPT's model.py (GPT-2), Hugging Face's modeling_llama.py (RoPE with the
rotate-half convention, grouped-query attention), modeling_gemma3.py, modeling_olmo2.py,
modeling_gpt_neox.py and modeling_rope_utils.py (RoPE scaling), litgpt's KVCache.

Internals are captured by name, TransformerLens-style (`capture={"attn_weights"}`, see
`Capture`); the plain decoding path uses fused attention and stores nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from llmtui.engine.model.config import ModelConfig, RopeScaling
from llmtui.engine.model.decode_step import fused_decoder
from llmtui.engine.model.kv_cache import CACHE_BLOCK, KVCache

# --- norms -------------------------------------------------------------------


class RMSNorm(nn.Module):
    """Llama's norm: scale by the root mean square, no centring, no bias.

    Gemma stores w and scales by (1 + w): `offset` 1.0 says so.
    """

    def __init__(self, dim: int, eps: float, offset: float = 0.0) -> None:
        super().__init__()
        self.eps = eps
        self.offset = offset
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        # x / sqrt(mean(x^2) + eps) * weight, as one fused kernel
        weight = self.weight + self.offset if self.offset else self.weight
        return F.rms_norm(x, (x.shape[-1],), weight, self.eps)


def make_norm(config: ModelConfig, dim: int | None = None) -> nn.Module:
    dim = dim or config.d_model
    if config.norm == "rmsnorm":
        return RMSNorm(dim, config.norm_eps, config.norm_offset)
    return nn.LayerNorm(dim, eps=config.norm_eps, bias=config.norm_bias)


# --- rotary position embedding --------------------------------------------------


def rope_frequencies(
    config: ModelConfig, theta: float, scaling: RopeScaling | None, *, long: bool = False
) -> tuple[Tensor, float]:
    """The angle per position of each rotated pair (rotary_dim / 2,), and the factor on cos and sin.

    As transformers' modeling_rope_utils computes them; `long` picks longrope's long factors.
    """
    dim = config.rotary_dim
    exponents = torch.arange(0, dim, 2, dtype=torch.int64).float() / dim
    inv_freq = 1.0 / (theta**exponents)
    if scaling is None:
        return inv_freq, 1.0
    factor, original = scaling.factor, scaling.original_context or config.context_length
    if scaling.kind == "linear":
        return inv_freq / factor, 1.0
    if scaling.kind == "dynamic":
        # NTK: the base grows once the sequence passes the context window; llmtui stops at the
        # window, so this is the base at the window (a no-op, computed as transformers does).
        n = config.context_length
        base = theta * ((factor * n / n) - (factor - 1)) ** (dim / (dim - 2))
        return 1.0 / (base**exponents), 1.0
    if scaling.kind == "llama3":
        low_wavelen, high_wavelen = original / scaling.low_freq_factor, original / scaling.high_freq_factor
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
        smooth = (original / wavelen - scaling.low_freq_factor) / (scaling.high_freq_factor - scaling.low_freq_factor)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
        return torch.where(medium, smoothed, scaled), 1.0
    if scaling.kind == "yarn":
        return _yarn(dim, theta, scaling, original, inv_freq)
    # longrope: a divisor per frequency, the long ones once the sequence passes the original context
    attention = scaling.attention_factor or (
        1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))
    )
    divisors = torch.tensor(scaling.long_factor if long else scaling.short_factor, dtype=torch.float32)
    return 1.0 / (divisors * theta**exponents), attention


def _yarn(dim: int, theta: float, scaling: RopeScaling, original: int, inv_freq: Tensor) -> tuple[Tensor, float]:
    """YaRN: interpolate slow frequencies, keep fast ones, ramp between (transformers' _compute_yarn_parameters)."""

    def mscale(scale: float, m: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    factor = scaling.factor
    attention = scaling.attention_factor
    if not attention:
        if scaling.mscale and scaling.mscale_all_dim:
            attention = mscale(factor, scaling.mscale) / mscale(factor, scaling.mscale_all_dim)
        else:
            attention = mscale(factor)

    def correction_dim(rotations: float) -> float:
        return (dim * math.log(original / (rotations * 2 * math.pi))) / (2 * math.log(theta))

    low, high = correction_dim(scaling.beta_fast), correction_dim(scaling.beta_slow)
    if scaling.truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001  # no division by zero
    ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    keep = 1 - ramp  # 1: extrapolate (keep the frequency); 0: interpolate (divide by factor)
    return (inv_freq / factor) * (1 - keep) + inv_freq * keep, attention


class Rotary(nn.Module):
    """cos and sin of each position's angles for one RoPE variant (a base, maybe a scaling).

    Computed for the positions of each forward pass (no table of the whole window: a
    131k-token window would hold hundreds of MB), exactly as transformers computes them.
    """

    def __init__(self, config: ModelConfig, theta: float, scaling: RopeScaling | None) -> None:
        super().__init__()
        inv_freq, self.attention_factor = rope_frequencies(config, theta, scaling)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        # longrope switches to its long factors once the sequence passes the original context
        self.long_after = 0
        if scaling is not None and scaling.kind == "longrope":
            self.long_after = scaling.original_context or config.context_length
            long_inv_freq = rope_frequencies(config, theta, scaling, long=True)[0]
            self.register_buffer("long_inv_freq", long_inv_freq, persistent=False)

    def frequencies(self, past: int, T: int) -> Tensor:
        """The inverse frequencies (rotary_dim/2,) for positions past .. past+T-1 (longrope: long ones past its switch)."""
        return self.long_inv_freq if self.long_after and past + T > self.long_after else self.inv_freq

    def forward(self, past: int, T: int) -> tuple[Tensor, Tensor]:
        """cos, sin for positions past .. past+T-1, each (T, rotary_dim) in the rotate-half layout."""
        inv_freq = self.frequencies(past, T)
        t = torch.arange(past, past + T, dtype=torch.float32, device=inv_freq.device)
        freqs = torch.outer(t, inv_freq.float())  # (T, rd/2)
        emb = torch.cat([freqs, freqs], dim=-1)  # (T, rd)
        cos, sin = emb.cos(), emb.sin()
        if self.attention_factor != 1.0:
            cos, sin = cos * self.attention_factor, sin * self.attention_factor
        return cos, sin


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate pairs (i, i + rd/2) of the first rd = cos.shape[-1] dims of x (B, nh, T, hd); the rest pass."""
    rd = cos.shape[-1]
    rot, rest = (x, None) if rd == x.shape[-1] else (x[..., :rd], x[..., rd:])
    half = rd // 2
    rotated = torch.cat([-rot[..., half:], rot[..., :half]], dim=-1)
    out = rot * cos + rotated * sin
    return out if rest is None else torch.cat([out, rest], dim=-1)


# --- capture by name -------------------------------------------------------------


CAPTURE_NAMES = ("attn_weights", "resid_post", "attn_out", "mlp_out")
"""What a forward pass can keep, per layer:

- attn_weights: attention probabilities (B, nh, T, Tk), rows summing to 1 -> ForwardOutput.attentions
- resid_post: the residual stream after the layer (B, T, D) -> ForwardOutput.residuals, which
  starts with the scaled embeddings (the stream entering layer 0)
- attn_out, mlp_out: what attention and the MLP added to the stream (B, T, D), after any
  post-norm -> ForwardOutput.attn_outputs, mlp_outputs
"""


@dataclass(frozen=True)
class Capture:
    """Which internals to keep: names from CAPTURE_NAMES, for every layer or the listed ones."""

    names: frozenset[str] = frozenset()
    layers: frozenset[int] | None = None  # None: every layer

    def __post_init__(self) -> None:
        unknown = sorted(set(self.names) - set(CAPTURE_NAMES))
        if unknown:
            raise ValueError(f"can't capture {', '.join(unknown)}: capture names are {', '.join(CAPTURE_NAMES)}")

    @classmethod
    def of(cls, spec: bool | Iterable[str] | Capture | None) -> Capture:
        """True: everything; False/None: nothing; a set of names; or a Capture (names and layers)."""
        if isinstance(spec, Capture):
            return spec
        if spec is None or spec is False:
            return cls()
        if spec is True:
            return cls(frozenset(CAPTURE_NAMES))
        if isinstance(spec, str):  # "attn_weights" alone, not its letters
            return cls(frozenset({spec}))
        return cls(frozenset(spec))

    def wants(self, name: str, layer: int) -> bool:
        return name in self.names and (self.layers is None or layer in self.layers)



# --- attention ------------------------------------------------------------------


def causal_mask(T: int, Tk: int, past: int, device: torch.device, window: int = 0) -> Tensor:
    """(T, Tk) boolean: query i (at position past+i) may see key j when j <= past+i,
    and, with a window, when past+i - j < window (itself and the window - 1 keys before)."""
    q_pos = torch.arange(past, past + T, device=device)[:, None]
    k_pos = torch.arange(Tk, device=device)[None, :]
    allowed = k_pos <= q_pos
    if window:
        allowed &= k_pos > q_pos - window
    return allowed


class Attention(nn.Module):
    """Causal self-attention with grouped-query heads (n_kv_head <= n_head).

    The query, key and value projections are stacked in one matrix `qkv` (as GPT-2's
    c_attn): one matrix product instead of three, which matters when decoding one
    token at a time. Checkpoints with separate q_proj/k_proj/v_proj load as they are.
    """

    def __init__(self, config: ModelConfig, layer: int) -> None:
        super().__init__()
        self.config = config
        self.layer = layer
        self.window = config.sliding_window if config.is_sliding(layer) else 0
        hd = config.head_dim
        self.split = (config.n_head * hd, config.n_kv_head * hd, config.n_kv_head * hd)
        self.qkv = nn.Linear(config.d_model, sum(self.split), bias=config.qkv_bias)
        self.o_proj = nn.Linear(config.n_head * hd, config.d_model, bias=config.o_bias)
        if config.qk_norm != "none":  # RMSNorm over each head (Qwen3, Gemma 3) or all heads at once (OLMo 2)
            per_head = config.qk_norm == "head"
            self.q_norm = make_norm(config, hd if per_head else self.split[0])
            self.k_norm = make_norm(config, hd if per_head else self.split[1])
        self.scale = config.query_pre_attn_scalar**-0.5

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        stack_parts(state_dict, prefix, "qkv", ("q_proj", "k_proj", "v_proj"))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(
        self,
        x: Tensor,
        rope: tuple[Tensor, Tensor] | None,
        cache: KVCache | None,
        past: int,
        keep_weights: bool,
        output: bool = True,
    ) -> tuple[Tensor | None, Tensor | None]:
        """(the output (B, T, D), the probabilities (B, nh, T, Tk) if keep_weights); output=False (with
        keep_weights) stops at the probabilities: the output is None, the keys and values are still cached."""
        c = self.config
        B, T, _ = x.shape
        nq, nkv = c.n_head, c.n_kv_head
        heads = self.qkv(x)  # (B, T, (nh+2nkv)*hd)
        if c.qk_norm == "proj":  # OLMo 2: one norm over all query heads, one over all key heads
            q, k, v = heads.split(self.split, dim=-1)
            heads = torch.cat([self.q_norm(q), self.k_norm(k), v], dim=-1)
        heads = heads.view(B, T, nq + 2 * nkv, c.head_dim).transpose(1, 2)  # (B, nh+2nkv, T, hd)
        qk, v = heads.split([nq + nkv, nkv], dim=1)  # v: (B, nkv, T, hd)
        if c.qk_norm == "head":  # Qwen3, Gemma 3: each head normalised on its own
            q, k = qk.split([nq, nkv], dim=1)
            qk = torch.cat([self.q_norm(q), self.k_norm(k)], dim=1)
        if rope is not None:
            qk = apply_rope(qk, *rope)  # queries and keys rotated together: fewer, larger operations
        q, k = qk.split([nq, nkv], dim=1)  # (B, nh, T, hd), (B, nkv, T, hd)
        if cache is not None:
            k, v = cache.append(self.layer, k, v)  # (B, nkv, past+T, hd)
        Tk = k.shape[2]

        if keep_weights or c.attn_softcap:
            # Spelled out so the probabilities can be kept (B, nh, T, Tk), or the scores soft-capped.
            if c.n_rep > 1:
                k = k.repeat_interleave(c.n_rep, dim=1)
                v = v.repeat_interleave(c.n_rep, dim=1)
            scores = (q @ k.transpose(-2, -1)) * self.scale
            if c.attn_softcap:
                scores = torch.tanh(scores / c.attn_softcap) * c.attn_softcap
            scores = scores.masked_fill(~causal_mask(T, Tk, past, x.device, self.window), float("-inf"))
            probs = scores.softmax(dim=-1)
            if not output:
                return None, probs
            y = probs @ v
        else:
            probs = None
            if self.window and past + T > self.window:
                mask, is_causal = causal_mask(T, Tk, past, x.device, self.window), False
            elif T == 1:
                mask, is_causal = None, False  # one new query sees every cached key
            elif past == 0:
                mask, is_causal = None, True
            else:
                mask, is_causal = causal_mask(T, Tk, past, x.device), False
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=is_causal, scale=self.scale, enable_gqa=c.n_rep > 1
            )
        y = y.transpose(1, 2).reshape(B, T, c.n_head * c.head_dim)  # (B, T, nh*hd)
        return self.o_proj(y), probs if keep_weights else None


# --- feed-forward -----------------------------------------------------------------


ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2, Gemma
    "gelu": F.gelu,  # GPT-NeoX (the exact, erf GELU)
    "silu": F.silu,  # Llama and most others
}


class PlainMLP(nn.Module):
    """GPT-2's and GPT-NeoX's feed-forward: expand, activation, project back."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.act = ACTIVATIONS[config.activation]
        self.fc = nn.Linear(config.d_model, config.d_ff, bias=config.mlp_bias)
        self.proj = nn.Linear(config.d_ff, config.d_model, bias=config.mlp_bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.act(self.fc(x)))


class GatedMLP(nn.Module):
    """Llama's feed-forward: down(act(gate(x)) * up(x)); SwiGLU with SiLU, GeGLU with GELU (Gemma).

    gate and up are stacked in one matrix `gate_up` (one product instead of two);
    checkpoints with separate gate/up load as they are.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.act = ACTIVATIONS[config.activation]
        self.gate_up = nn.Linear(config.d_model, 2 * config.d_ff, bias=config.mlp_bias)
        self.down = nn.Linear(config.d_ff, config.d_model, bias=config.mlp_bias)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        stack_parts(state_dict, prefix, "gate_up", ("gate", "up"))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(self.act(gate) * up)


def stack_parts(state_dict: dict[str, Tensor], prefix: str, fused: str, parts: tuple[str, ...]) -> None:
    """Replace the separate `parts` weights (and biases) in a state dict by one stacked `fused` entry."""
    for kind in ("weight", "bias"):
        keys = [f"{prefix}{p}.{kind}" for p in parts]
        if all(k in state_dict for k in keys):
            state_dict[f"{prefix}{fused}.{kind}"] = torch.cat([state_dict.pop(k) for k in keys])


# --- the block ----------------------------------------------------------------------


@dataclass
class BlockOutput:
    """One block's result: the new residual stream and what each half added to it."""

    x: Tensor  # (B, T, D)
    attn_out: Tensor  # (B, T, D)
    mlp_out: Tensor  # (B, T, D)
    attn_weights: Tensor | None  # (B, nh, T, Tk) when asked for


class Block(nn.Module):
    """Attention then MLP, each added to the residual stream; the config says how.

    - pre-norm (GPT-2, Llama): x + f(norm(x))
    - pre- and post-norm (Gemma 2/3): x + norm_after(f(norm(x)))
    - post-norm only (OLMo 2): x + norm_after(f(x))
    - parallel (GPT-NeoX): x + attn(norm1(x)) + mlp(norm2(x)), both reading the same x
    """

    def __init__(self, config: ModelConfig, layer: int) -> None:
        super().__init__()
        self.config = config
        self.attn = Attention(config, layer)
        self.mlp = GatedMLP(config) if config.mlp == "gated" else PlainMLP(config)
        if config.pre_norm:
            self.attn_norm = make_norm(config)
            self.mlp_norm = make_norm(config)
        if config.post_norm:
            self.attn_post_norm = make_norm(config)
            self.mlp_post_norm = make_norm(config)

    def forward(
        self, x: Tensor, rope: tuple[Tensor, Tensor] | None, cache: KVCache | None, past: int, keep_weights: bool
    ) -> BlockOutput:
        c = self.config
        a, weights = self.attn(self.attn_norm(x) if c.pre_norm else x, rope, cache, past, keep_weights)
        if c.post_norm:
            a = self.attn_post_norm(a)
        if c.parallel_residual:
            m = self.mlp(self.mlp_norm(x))
            return BlockOutput(x + a + m, a, m, weights)
        x = x + a
        m = self.mlp(self.mlp_norm(x) if c.pre_norm else x)
        if c.post_norm:
            m = self.mlp_post_norm(m)
        return BlockOutput(x + m, a, m, weights)

    def attention_weights(self, x: Tensor, rope: tuple[Tensor, Tensor] | None, cache: KVCache | None,
                          past: int) -> Tensor:
        """Only this block's attention probabilities (B, nh, T, Tk), its keys and values cached: no attention
        output, no MLP (what a capture of the last layer's weights alone needs)."""
        weights = self.attn(self.attn_norm(x) if self.config.pre_norm else x, rope, cache, past, True, output=False)[1]
        assert weights is not None
        return weights


# --- the model ------------------------------------------------------------------------


@dataclass
class ForwardOutput:
    """What one forward pass returns.

    A list is filled only when its name was captured (see CAPTURE_NAMES); with a subset
    of layers, the other layers' entries are None.
    """

    logits: Tensor | None  # (B, T, V), or (B, 1, V) with last_only; None when logits=False
    attentions: list[Tensor | None] = field(default_factory=list)  # per layer (B, nh, T, Tk): rows sum to 1
    # n_layer + 1 of (B, T, D): the embeddings, then the stream after each block
    residuals: list[Tensor | None] = field(default_factory=list)
    attn_outputs: list[Tensor | None] = field(default_factory=list)  # per layer (B, T, D): what attention added
    mlp_outputs: list[Tensor | None] = field(default_factory=list)  # per layer (B, T, D): what the MLP added


class Transformer(nn.Module):
    """The whole decoder: embeddings, blocks, final norm, unembedding."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = nn.Embedding(config.context_length, config.d_model) if config.positions == "learned" else None
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.n_layer))
        self.final_norm = make_norm(config)
        # A tied model reads its unembedding from tok_emb, so the state dict has no lm_head.
        self.lm_head = None if config.tie_embeddings else nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.rotary = self.local_rotary = None
        if config.positions == "rope":
            self.rotary = Rotary(config, config.rope_theta, config.rope_scaling)
            # Sliding layers with their own base (Gemma 3's local layers) use plain RoPE with it.
            if config.rope_local_theta and config.sliding_window:
                self.local_rotary = Rotary(config, config.rope_local_theta, None)

    @property
    def unembedding(self) -> Tensor:
        """(V, D): the matrix that turns a final vector into one logit per token."""
        return self.tok_emb.weight if self.lm_head is None else self.lm_head.weight

    def n_params(self) -> int:
        """Parameter count, a tied matrix counted once (as model cards do)."""
        packed = sum(getattr(m, "packed_numel", 0) for m in self.modules())  # weights kept in GGUF blocks (packed.py)
        return sum(p.numel() for p in self.parameters()) + packed

    def new_cache(self, max_len: int | None = None, batch: int = 1, *, initial: int = CACHE_BLOCK) -> KVCache:
        """An empty KV cache on this model's device for up to max_len (default: the context) positions.

        It starts with room for `initial` positions (pass what you know you need) and
        grows by doubling when a forward pass needs more.
        """
        weight = self.final_norm.weight  # a float parameter in every model (tok_emb may be packed)
        return KVCache(self.config, batch, max_len or self.config.context_length, weight.device, weight.dtype, initial)

    def reusable_cache(self, cached: int, total: int) -> int:
        """How many of `cached` positions stay valid when the sequence grows to `total` tokens.

        All of them, except when longrope switches to its long factors: the cached keys were
        rotated with the short ones, so the sequence is fed again from the start (as
        transformers' Phi-3 `generate` does; a plain forward pass would mix the two).
        """
        long_after = self.rotary.long_after if self.rotary is not None else 0
        return 0 if long_after and cached <= long_after < total else cached

    def embed(self, ids: Tensor, past: int = 0) -> Tensor:
        """Token ids (B, T) at positions past.. to the residual stream entering layer 0 (B, T, D)."""
        x = self.tok_emb(ids)
        if self.config.embed_scale != 1.0:
            x = x * self.config.embed_scale  # Gemma: sqrt(d_model)
        if self.pos_emb is not None:
            x = x + self.pos_emb(torch.arange(past, past + ids.shape[1], device=ids.device))
        return x

    def unembed(self, x: Tensor) -> Tensor:
        """Final norm then unembedding: a residual vector (..., D) to logits (..., V)."""
        head = self.tok_emb if self.lm_head is None else self.lm_head
        if hasattr(head, "linear"):  # weights kept in GGUF blocks (model/packed.py): multiplied without unpacking
            logits = head.linear(self.final_norm(x))
        else:
            logits = F.linear(self.final_norm(x), self.unembedding)
        cap = self.config.final_softcap
        return torch.tanh(logits / cap) * cap if cap else logits

    def forward(
        self,
        ids: Tensor,
        cache: KVCache | None = None,
        *,
        capture: bool | Iterable[str] | Capture | None = False,
        last_only: bool = False,
        logits: bool = True,
        on_attention: Callable[[int, Tensor], None] | None = None,
    ) -> ForwardOutput:
        """Run ids (B, T) through the model.

        With a cache, ids continue the cached positions and their keys/values are
        appended (the cache counts them). last_only computes logits for the last
        position alone (decoding needs no more); logits=False computes none (a capture
        that only reads internals skips the unembedding, the largest matrix). capture
        names the internals to keep: True for all of them, a set of CAPTURE_NAMES, or a
        Capture with layers. on_attention, with attention weights captured, receives each layer's
        (B, n_head, T, past + T) weights as soon as its block has run (out.attentions then holds None
        for them): a caller can show the first layers while the others run.
        """
        B, T = ids.shape
        want = Capture.of(capture)
        past = cache.length if cache is not None else 0
        if past + T > self.config.context_length:
            raise ValueError(
                f"{past + T} tokens exceed the model's context window of {self.config.context_length}"
            )
        if cache is not None:
            if past + T > cache.max_len:
                raise ValueError(f"{past + T} tokens exceed the KV cache's {cache.max_len} positions")
            cache.reserve(past + T)  # every layer grows at once, before the first writes
            if T == 1 and logits and not want.names and (fused := fused_decoder(self, cache)) is not None:
                return ForwardOutput(logits=fused.step(self, ids, cache))  # decode_step.py
        x = self.embed(ids, past)  # (B, T, D)
        rope = self.rotary(past, T) if self.rotary is not None else None  # (T, rd) each
        local_rope = self.local_rotary(past, T) if self.local_rotary is not None else rope

        embeddings = x
        n = self.config.n_layer
        kept = {name: [None] * n for name in want.names}
        # The last block's output feeds the logits and its captured stream alone: a pass that keeps only
        # its attention weights (the Attention pane's capture) skips its attention output and MLP (on
        # SmolLM2, 1/30 of those products: ~3% of the pass's multiply-adds).
        weights_only = not logits and want.wants("attn_weights", n - 1) and not any(
            want.wants(name, n - 1) for name in ("resid_post", "attn_out", "mlp_out"))

        def keep(name: str, i: int, value: Tensor) -> None:
            if name == "attn_weights" and on_attention is not None:
                on_attention(i, value)
            else:
                kept[name][i] = value

        for i, block in enumerate(self.blocks):
            block_rope = local_rope if block.attn.window else rope
            if weights_only and i == n - 1:
                keep("attn_weights", i, block.attention_weights(x, block_rope, cache, past))
                break
            step = block(x, block_rope, cache, past, want.wants("attn_weights", i))
            x = step.x
            for name, value in (("attn_weights", step.attn_weights), ("resid_post", x),
                                ("attn_out", step.attn_out), ("mlp_out", step.mlp_out)):  # fmt: skip
                if want.wants(name, i):
                    keep(name, i, value)
        out = ForwardOutput(logits=None)
        if "attn_weights" in kept:
            out.attentions = kept["attn_weights"]
        if "resid_post" in kept:
            out.residuals = [embeddings, *kept["resid_post"]]
        if "attn_out" in kept:
            out.attn_outputs = kept["attn_out"]
        if "mlp_out" in kept:
            out.mlp_outputs = kept["mlp_out"]
        if logits:
            out.logits = self.unembed(x[:, -1:] if last_only else x)  # (B, T, V)
        return out
