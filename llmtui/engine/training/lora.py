"""Low-rank adapters (LoRA) attached to a model's linear layers from outside.

Each adapted `nn.Linear` is swapped for a `LoRALinear` that keeps the original layer
untouched (frozen) and adds `scale * B @ A` to its output, with A (r, in) and
B (out, r). B starts at zero, so an adapted model computes exactly what the original
did until the first step. Detaching puts the original modules back: the base weights
were never written, so the model is the original bit for bit.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class LoRALinear(nn.Module):
    """base(x) + scale * (x @ A^T) @ B^T, training only A and B."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, generator: torch.Generator) -> None:
        super().__init__()
        self.base = base
        self.rank = rank
        self.scale = alpha / rank
        w = base.weight
        # A like nn.Linear's own init (uniform in ±1/sqrt(in)); B zero: the adapter starts as a no-op.
        bound = 1.0 / base.in_features**0.5
        a = (torch.rand((rank, base.in_features), generator=generator) * 2 - 1) * bound
        self.lora_a = nn.Parameter(a.to(device=w.device, dtype=w.dtype))
        self.lora_b = nn.Parameter(torch.zeros((base.out_features, rank), device=w.device, dtype=w.dtype))

    @property
    def weight(self) -> Tensor:
        """The effective weight (base + scale * B @ A), for code that reads a layer's matrix."""
        return self.base.weight + self.scale * (self.lora_b @ self.lora_a)

    @property
    def bias(self) -> Tensor | None:
        return self.base.bias

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def forward(self, x: Tensor) -> Tensor:
        return self.base(x) + (x @ self.lora_a.t() @ self.lora_b.t()) * self.scale


def adaptable_linears(model: nn.Module) -> list[tuple[nn.Module, str, nn.Linear]]:
    """(parent, attribute, layer) of every linear layer inside the transformer blocks.

    Those are the attention and MLP matrices; the embedding and unembedding stay as they are.
    """
    found = []
    for block in model.blocks:
        for parent in block.modules():
            if isinstance(parent, LoRALinear):
                continue  # already adapted: its base is not adapted twice
            for name, child in parent.named_children():
                if isinstance(child, nn.Linear):
                    found.append((parent, name, child))
    return found


def attach_lora(model: nn.Module, rank: int, alpha: float, seed: int) -> list[LoRALinear]:
    """Wrap every attention and MLP matrix in a LoRALinear; return the adapters."""
    if rank < 1:
        raise ValueError(f"the LoRA rank must be at least 1, got {rank}")
    generator = torch.Generator().manual_seed(seed)
    adapters = []
    for parent, name, layer in adaptable_linears(model):
        adapter = LoRALinear(layer, rank, alpha, generator)
        setattr(parent, name, adapter)
        adapters.append(adapter)
    return adapters


def detach_lora(model: nn.Module) -> None:
    """Put the original linear layers back in place of their adapters."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LoRALinear):
                setattr(parent, name, child.base)


def lora_parameter_count(model: nn.Module, rank: int) -> int:
    """How many numbers LoRA of this rank trains: r * (in + out) per adapted matrix."""
    return sum(rank * (layer.in_features + layer.out_features) for _, _, layer in adaptable_linears(model))
