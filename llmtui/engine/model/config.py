"""Model configuration: one dataclass whose fields say how each family computes.

Families differ by data, not by code: `family` names the model for display and picks
defaults for the flavour fields from `FAMILY_DEFAULTS`; the transformer reads only the
fields. A loader sets what its file says (a Gemma 3's sliding window, a Phi-3's RoPE
scaling) and may override any default.

Rotary positions always use the rotate-half layout (pairs i and i + rotary_dim/2), as
Hugging Face checkpoints and llama.cpp's NEOX rope type do; loaders of llama.cpp's
interleaved layout (GGUF `llama`) permute the q/k rows into it.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Literal

Family = str
"""A family name from FAMILY_DEFAULTS: shown to the user; the flavour fields drive the computation."""

# Structural flavours each family has whatever its size; numbers a file states (windows,
# soft-caps, rope bases) come from the file. None in the config means "the family's value".
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "gpt2": dict(norm="layernorm", mlp="plain", activation="gelu_tanh", positions="learned", bias=True),
    "llama": dict(norm="rmsnorm", mlp="gated", activation="silu", positions="rope", bias=False),
    "mistral": dict(norm="rmsnorm", mlp="gated", activation="silu", positions="rope", bias=False),
    "qwen2": dict(norm="rmsnorm", mlp="gated", activation="silu", positions="rope", bias=False, qkv_bias=True),
    "qwen3": dict(norm="rmsnorm", mlp="gated", activation="silu", positions="rope", bias=False, qk_norm="head"),
    "phi3": dict(norm="rmsnorm", mlp="gated", activation="silu", positions="rope", bias=False),
    "gemma2": dict(norm="rmsnorm", mlp="gated", activation="gelu_tanh", positions="rope", bias=False,
                   norm_offset=1.0, embed_scale="sqrt_d_model", post_norm=True),
    "gemma3": dict(norm="rmsnorm", mlp="gated", activation="gelu_tanh", positions="rope", bias=False,
                   norm_offset=1.0, embed_scale="sqrt_d_model", post_norm=True, qk_norm="head"),
    "olmo2": dict(norm="rmsnorm", mlp="gated", activation="silu", positions="rope", bias=False,
                  qk_norm="proj", pre_norm=False, post_norm=True),
    "gptneox": dict(norm="layernorm", mlp="plain", activation="gelu", positions="rope", bias=True,
                    parallel_residual=True),
}  # fmt: skip

CHOICES: dict[str, tuple[str, ...]] = {
    "norm": ("layernorm", "rmsnorm"),
    "mlp": ("plain", "gated"),
    "activation": ("gelu_tanh", "gelu", "silu"),
    "positions": ("learned", "rope"),
    "qk_norm": ("none", "head", "proj"),
}
# Configs written before `activation` existed (the weight cache keeps them as JSON).
_LEGACY_MLP = {"gelu": ("plain", "gelu_tanh"), "swiglu": ("gated", "silu")}

RopeKind = Literal["linear", "dynamic", "llama3", "yarn", "longrope"]
ROPE_KINDS: tuple[str, ...] = ("linear", "dynamic", "llama3", "yarn", "longrope")


def _check_number(name: str, value: object, *, positive: bool = False) -> None:
    """A finite real (and > 0 when positive, else >= 0): a damaged file's "abc", NaN or -1 stops here."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and 0 <= value < math.inf
    if not ok or (positive and value == 0):
        kind = "positive" if positive else "non-negative"
        raise ValueError(f"{name} must be a finite, {kind} number, got {value!r}")


def _check_whole(name: str, value: object, *, zero_ok: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be a whole number, got {value!r}")  # noqa: TRY004 - loaders catch ValueError
    if value < 0 or (value == 0 and not zero_ok):
        raise ValueError(f"{name} must be positive, got {value}")


@dataclass(frozen=True)
class RopeScaling:
    """How RoPE frequencies are stretched past the trained context, as transformers' `rope_type`s.

    - linear: every frequency divided by `factor`;
    - dynamic: NTK: the base grows with the sequence once it passes the context window;
    - llama3: low frequencies divided by `factor`, high ones kept, a smooth ramp between
      (wavelength bounds from `original_context` / low_freq_factor and / high_freq_factor);
    - yarn: the same idea with the ramp between `beta_fast` and `beta_slow` rotations,
      and cos/sin multiplied by an attention factor;
    - longrope: one divisor per frequency, `short_factor` while the sequence fits in
      `original_context`, `long_factor` past it; cos/sin multiplied by an attention factor.
    """

    kind: RopeKind
    factor: float = 1.0
    original_context: int = 0  # original_max_position_embeddings; 0: the config's context_length
    low_freq_factor: float = 1.0  # llama3
    high_freq_factor: float = 4.0  # llama3
    beta_fast: float = 32.0  # yarn
    beta_slow: float = 1.0  # yarn
    truncate: bool = True  # yarn: round the correction range to whole dimensions
    mscale: float = 0.0  # yarn: with mscale_all_dim, sets the attention factor
    mscale_all_dim: float = 0.0
    attention_factor: float = 0.0  # yarn, longrope: 0 derives it from factor (as transformers does)
    short_factor: tuple[float, ...] = ()  # longrope: one per rotary frequency (rotary_dim / 2)
    long_factor: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ROPE_KINDS:
            raise ValueError(f"unknown RoPE scaling {self.kind!r}: llmtui implements {', '.join(ROPE_KINDS)}")
        _check_number("rope_scaling.factor", self.factor, positive=True)
        _check_whole("rope_scaling.original_context", self.original_context, zero_ok=True)
        for name in ("low_freq_factor", "high_freq_factor", "beta_fast", "beta_slow"):
            _check_number(f"rope_scaling.{name}", getattr(self, name), positive=True)
        for name in ("mscale", "mscale_all_dim", "attention_factor"):
            _check_number(f"rope_scaling.{name}", getattr(self, name))
        if self.kind == "llama3" and self.low_freq_factor >= self.high_freq_factor:
            raise ValueError("rope_scaling llama3 needs low_freq_factor < high_freq_factor")
        for name in ("short_factor", "long_factor"):
            values = tuple(getattr(self, name))  # JSON gives lists
            object.__setattr__(self, name, values)
            for v in values:
                _check_number(f"rope_scaling.{name}", v, positive=True)
        if self.kind == "longrope" and not (self.short_factor and self.long_factor):
            raise ValueError("rope_scaling longrope needs short_factor and long_factor")


@dataclass(frozen=True)
class ModelConfig:
    """Shape and flavour of a decoder-only transformer.

    Every flavour field left as None takes the family's value from FAMILY_DEFAULTS, then
    the generic default noted beside it.
    """

    family: Family
    vocab_size: int
    n_layer: int
    n_head: int
    d_model: int
    d_ff: int
    context_length: int
    # Grouped-query attention: n_head query heads share n_kv_head key/value heads.
    n_kv_head: int = 0  # 0 means "same as n_head" (plain multi-head attention)
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    tie_embeddings: bool = True
    head_dim: int = 0  # 0: d_model // n_head
    # --- norms
    norm: Literal["layernorm", "rmsnorm"] | None = None
    norm_bias: bool | None = None  # LayerNorm's bias (default True); RMSNorm has none
    norm_offset: float | None = None  # RMSNorm scales by (offset + weight): Gemma stores w for 1 + w (default 0)
    pre_norm: bool | None = None  # x + f(norm(x)) (default True)
    post_norm: bool | None = None  # x + norm(f(...)): Gemma 2/3 (with pre_norm), OLMo 2 (alone) (default False)
    qk_norm: Literal["none", "head", "proj"] | None = None  # RMSNorm on q and k: per head (Qwen3, Gemma 3)
    # or over all heads' projection at once (OLMo 2) (default "none")
    # --- MLP
    mlp: Literal["plain", "gated"] | None = None  # plain: down(act(up x)); gated: down(act(gate x) * up x)
    activation: Literal["gelu_tanh", "gelu", "silu"] | None = None
    # --- biases
    bias: bool | None = None  # the default for the three below
    qkv_bias: bool | None = None  # on the q, k, v projections (Qwen2 alone has these)
    o_bias: bool | None = None  # on attention's output projection
    mlp_bias: bool | None = None  # on the MLP's projections
    # --- embeddings, residual, attention scores, logits
    positions: Literal["learned", "rope"] | None = None
    embed_scale: float | None = None  # token embeddings multiplied by it: Gemma's sqrt(d_model) (default 1)
    parallel_residual: bool | None = None  # x + attn(norm1 x) + mlp(norm2 x): GPT-NeoX (default False)
    query_pre_attn_scalar: float = 0.0  # scores scaled by its -1/2 power; 0: head_dim (Gemma: 256 or d/nh)
    attn_softcap: float = 0.0  # scores -> cap * tanh(scores / cap) before the softmax; 0: none (Gemma 2)
    final_softcap: float = 0.0  # the same on the logits (Gemma 2); 0: none
    # --- sliding-window attention: a query sees itself and the sliding_window - 1 keys before it
    sliding_window: int = 0  # 0: none
    sliding_layers: tuple[bool, ...] = ()  # per layer, True where the window applies; (): every layer
    # --- rotary positions
    rotary_dim: int = 0  # dimensions of each head rotated (partial rotary, NeoX's rotary_pct); 0: head_dim
    rope_scaling: RopeScaling | None = None
    rope_local_theta: float = 0.0  # base of sliding layers' plain RoPE (Gemma 3); 0: same RoPE as the others

    def __post_init__(self) -> None:
        if self.family not in FAMILY_DEFAULTS:
            raise ValueError(f"unknown model family {self.family!r}: expected one of {', '.join(FAMILY_DEFAULTS)}")
        # Types and signs first: a damaged file's "abc", NaN or 0 must not reach the arithmetic below.
        for name in ("vocab_size", "n_layer", "n_head", "d_model", "d_ff", "context_length"):
            _check_whole(name, getattr(self, name), zero_ok=False)
        for name in ("n_kv_head", "head_dim", "sliding_window", "rotary_dim"):  # 0 there means "derive it" or "none"
            _check_whole(name, getattr(self, name), zero_ok=True)
        _check_number("rope_theta", self.rope_theta, positive=True)
        for name in ("norm_eps", "query_pre_attn_scalar", "attn_softcap", "final_softcap", "rope_local_theta"):
            _check_number(name, getattr(self, name))
        self._fill_flavours()
        self._derive_shapes()
        self._check_flavours()

    def _set(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)

    def _fill_flavours(self) -> None:
        if self.mlp in _LEGACY_MLP and self.activation is None:
            mlp, activation = _LEGACY_MLP[self.mlp]
            self._set("mlp", mlp)
            self._set("activation", activation)
        family = FAMILY_DEFAULTS[self.family]
        generic = dict(norm_offset=0.0, pre_norm=True, post_norm=False, qk_norm="none", embed_scale=1.0,
                       parallel_residual=False)  # fmt: skip
        for name in ("norm", "mlp", "activation", "positions", "bias", *generic):
            if getattr(self, name) is None:
                self._set(name, family.get(name, generic.get(name)))
        if self.embed_scale == "sqrt_d_model":
            self._set("embed_scale", math.sqrt(self.d_model))
        for name in ("qkv_bias", "o_bias", "mlp_bias"):
            if getattr(self, name) is None:
                self._set(name, family.get(name, self.bias))
        if self.norm_bias is None:
            self._set("norm_bias", self.norm == "layernorm")
        # JSON (the weight cache) gives lists and dicts back.
        self._set("sliding_layers", tuple(self.sliding_layers))
        if isinstance(self.rope_scaling, dict):
            self._set("rope_scaling", RopeScaling(**self.rope_scaling))

    def _derive_shapes(self) -> None:
        if self.n_kv_head == 0:
            self._set("n_kv_head", self.n_head)
        if self.head_dim == 0:
            if self.d_model % self.n_head:
                raise ValueError(f"d_model {self.d_model} is not divisible by n_head {self.n_head}")
            self._set("head_dim", self.d_model // self.n_head)
        if self.n_head % self.n_kv_head:
            raise ValueError(f"n_head {self.n_head} is not a multiple of n_kv_head {self.n_kv_head}")
        if self.rotary_dim == 0:
            self._set("rotary_dim", self.head_dim)
        if self.query_pre_attn_scalar == 0:
            self._set("query_pre_attn_scalar", float(self.head_dim))

    def _check_flavours(self) -> None:
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name in ("tie_embeddings", "norm_bias", "pre_norm", "post_norm", "parallel_residual",
                     "bias", "qkv_bias", "o_bias", "mlp_bias"):  # fmt: skip
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        _check_number("norm_offset", self.norm_offset)
        _check_number("embed_scale", self.embed_scale, positive=True)
        if self.norm != "rmsnorm" and (self.norm_offset or self.qk_norm != "none"):
            raise ValueError("norm_offset and qk_norm apply to RMSNorm models only")
        if self.norm == "rmsnorm" and self.norm_bias:
            raise ValueError("RMSNorm has no bias (norm_bias must be false)")
        if not (self.pre_norm or self.post_norm):
            raise ValueError("a block needs pre_norm, post_norm or both")
        if self.parallel_residual and (self.post_norm or not self.pre_norm):
            raise ValueError("parallel_residual works with pre-norm blocks only")
        if self.rotary_dim % 2 or self.rotary_dim > self.head_dim:
            raise ValueError(f"rotary_dim must be even and at most head_dim {self.head_dim}, got {self.rotary_dim}")
        if self.positions != "rope" and (self.rope_scaling is not None or self.rope_local_theta):
            raise ValueError("rope_scaling and rope_local_theta need positions='rope'")
        if self.rope_local_theta and not self.sliding_window:
            raise ValueError("rope_local_theta is the base of sliding layers: it needs a sliding_window")
        if self.sliding_layers:
            if len(self.sliding_layers) != self.n_layer or not all(isinstance(s, bool) for s in self.sliding_layers):
                raise ValueError(f"sliding_layers must hold one true/false per layer ({self.n_layer})")
            if not self.sliding_window:
                raise ValueError("sliding_layers needs a sliding_window")
        scaling = self.rope_scaling
        if scaling is not None and not isinstance(scaling, RopeScaling):
            raise ValueError(f"rope_scaling must be a RopeScaling, got {scaling!r}")
        if scaling is not None and scaling.kind == "longrope":
            for name in ("short_factor", "long_factor"):
                if len(getattr(scaling, name)) != self.rotary_dim // 2:
                    raise ValueError(
                        f"rope_scaling.{name} has {len(getattr(scaling, name))} values; "
                        f"rotary_dim {self.rotary_dim} needs {self.rotary_dim // 2}"
                    )

    @property
    def n_rep(self) -> int:
        """How many query heads share one key/value head."""
        return self.n_head // self.n_kv_head

    def is_sliding(self, layer: int) -> bool:
        """Whether layer `layer` attends through the sliding window."""
        if not self.sliding_window:
            return False
        return self.sliding_layers[layer] if self.sliding_layers else True
