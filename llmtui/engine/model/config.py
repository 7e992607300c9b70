"""Model configuration: one dataclass; the GPT-2 and Llama families differ by fields."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Literal

Family = Literal["gpt2", "llama"]


@dataclass(frozen=True)
class ModelConfig:
    """Shape and flavour of a decoder-only transformer.

    The family picks the defaults for the flavour fields (norm, MLP, positions, biases);
    loaders may still override any of them.
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
    # Flavour, filled from the family when left as None.
    norm: Literal["layernorm", "rmsnorm"] | None = None
    mlp: Literal["gelu", "swiglu"] | None = None
    positions: Literal["learned", "rope"] | None = None
    bias: bool | None = None
    head_dim: int = field(default=0)

    def __post_init__(self) -> None:
        defaults = {
            "gpt2": dict(norm="layernorm", mlp="gelu", positions="learned", bias=True),
            "llama": dict(norm="rmsnorm", mlp="swiglu", positions="rope", bias=False),
        }
        if self.family not in defaults:
            raise ValueError(f"unknown model family {self.family!r}: expected 'gpt2' or 'llama'")
        # Types and signs first: a damaged file's "abc", NaN or 0 must not reach the arithmetic below.
        for name in ("vocab_size", "n_layer", "n_head", "d_model", "d_ff", "context_length", "n_kv_head", "head_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"{name} must be a whole number, got {value!r}")  # noqa: TRY004 - loaders catch ValueError
            if value < 0 or (value == 0 and name not in ("n_kv_head", "head_dim")):  # 0 there means "derive it"
                raise ValueError(f"{name} must be positive, got {value}")
        for name in ("norm_eps", "rope_theta"):
            value = getattr(self, name)
            low_ok = value > 0 if name == "rope_theta" else value >= 0
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (low_ok and value < math.inf):
                raise ValueError(f"{name} must be a finite, positive number, got {value!r}")
        for name, value in defaults[self.family].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.n_kv_head == 0:
            object.__setattr__(self, "n_kv_head", self.n_head)
        if self.head_dim == 0:
            if self.d_model % self.n_head:
                raise ValueError(f"d_model {self.d_model} is not divisible by n_head {self.n_head}")
            object.__setattr__(self, "head_dim", self.d_model // self.n_head)
        if self.n_head % self.n_kv_head:
            raise ValueError(f"n_head {self.n_head} is not a multiple of n_kv_head {self.n_kv_head}")

    @property
    def n_rep(self) -> int:
        """How many query heads share one key/value head."""
        return self.n_head // self.n_kv_head
