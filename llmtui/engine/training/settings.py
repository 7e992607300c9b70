"""What each training mode can be asked for, with its defaults: plain dataclasses, no torch.

The CLI's options, the Train pane's fields and the demo's steps read their defaults here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from llmtui.engine.model.config import ModelConfig

Method = Literal["full", "lora"]
METHODS: tuple[Method, ...] = ("full", "lora")
BYTE_VOCAB = 257  # the tiny model's vocabulary: 256 bytes and an end-of-document token


def check_tuning(lr: float, method: str, rank: int) -> None:
    """One line for a learning rate, method or rank that can't train."""
    if not 0 < lr <= 1:
        raise ValueError(f"the learning rate must be in (0, 1], got {lr}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: use full or lora")
    if rank < 1:
        raise ValueError(f"the LoRA rank must be at least 1, got {rank}")


@dataclass(frozen=True)
class TeachSettings:
    """How to teach: defaults that make SmolLM2-135M say " Lyon" in a few seconds on a CPU."""

    steps: int = 10
    lr: float = 4e-4  # 1e-3 also works, and overwrites every capital with Lyon: a side effect worth showing
    method: Method = "lora"
    rank: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        check_tuning(self.lr, self.method, self.rank)


@dataclass(frozen=True)
class PreferSettings:
    """How to prefer an answer: DPO's defaults for a few seconds on a CPU."""

    steps: int = 10
    lr: float = 4e-4
    beta: float = 0.1  # how far from the reference the policy may move: larger keeps it closer
    method: Method = "lora"
    rank: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        check_tuning(self.lr, self.method, self.rank)
        if not self.beta > 0:
            raise ValueError(f"beta must be positive, got {self.beta}")


@dataclass(frozen=True)
class PretrainSettings:
    """The tiny model (4 layers, d 128, bytes) and how to train it: about 0.9M numbers."""

    steps: int = 300
    lr: float = 3e-3
    batch: int = 16
    context: int = 128
    n_layer: int = 4
    d_model: int = 128
    n_head: int = 4
    seed: int = 0
    eval_every: int = 25
    sample_every: int = 50
    sample_prompt: str = "Return the "
    sample_chars: int = 60
    held_out_every: int = 20  # every 20th document is held out

    def __post_init__(self) -> None:
        for name in ("steps", "batch", "context", "n_layer", "d_model", "n_head", "eval_every", "sample_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.d_model % self.n_head:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_head {self.n_head}")
        check_tuning(self.lr, "full", 1)

    def model_config(self) -> ModelConfig:
        return ModelConfig(family="llama", vocab_size=BYTE_VOCAB, n_layer=self.n_layer, n_head=self.n_head,
                           d_model=self.d_model, d_ff=3 * self.d_model, context_length=self.context,
                           tie_embeddings=True)  # fmt: skip


