"""A change to a loaded model's weights that can always be undone.

`Tuning.begin(lm, method, ...)` makes the model trainable (every weight for "full",
low-rank adapters for "lora"), after checking the memory it will need; `reset()`
puts the original weights back bit for bit (full: from a copy taken first; LoRA:
the base layers were never written). Every pane that runs the model sees the tuned
weights in between, because they live in the model itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from llmtui.engine.training.lora import attach_lora, detach_lora, lora_parameter_count
from llmtui.engine.training.settings import METHODS, Method
from llmtui.engine.training.memory import BYTES_PER_TRAINED_NUMBER, activation_bytes, available_bytes, check_fits



def training_bytes(model: nn.Module, method: Method, rank: int, tokens: int) -> int:
    """Memory a tuning of this model will add: optimiser state, gradients, the reset copy, activations."""

    c = model.config
    trained = model.n_params() if method == "full" else lora_parameter_count(model, rank)
    acts = activation_bytes(c.n_layer, c.d_model, c.d_ff, c.n_head, c.vocab_size, tokens, tokens)
    return BYTES_PER_TRAINED_NUMBER[method] * trained + acts


@dataclass
class Tuning:
    """The trainable side of a loaded model during and after teaching or preference tuning."""

    model: nn.Module
    method: Method
    rank: int
    parameters: list[nn.Parameter]
    model_numbers: int  # the model's own weights (adapters not counted)
    memory_bytes: int  # what training adds: gradients, Adam's state, the reset copy, activations (estimated)
    _original: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)  # full: the weights to go back to
    active: bool = True
    _packed: list[tuple[nn.Module, str, nn.Module]] = field(default_factory=list, repr=False)  # put back by reset

    @classmethod
    def begin(
        cls,
        model: nn.Module,
        method: Method,
        *,
        rank: int = 8,
        alpha: float | None = None,
        seed: int = 0,
        tokens: int = 64,
        available: int | None = -1,
    ) -> Tuning:
        """Make `model` trainable; raise TrainingMemoryError (one line) if it would not fit.

        `available` is the free memory in bytes (-1: ask the system; None: don't check).
        """
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}: use full or lora")
        needed = training_bytes(model, method, rank, tokens)
        check_fits(f"{'full fine-tuning' if method == 'full' else f'LoRA rank {rank}'} with Adam",
                   needed, available_bytes() if available == -1 else available)
        packed = unpack_weights(model)
        for p in model.parameters():
            p.requires_grad_(method == "full")
        own = model.n_params()
        if method == "full":
            original = {name: p.detach().clone() for name, p in model.named_parameters()}
            return cls(model, method, rank, list(model.parameters()), own, needed, original, _packed=packed)
        adapters = attach_lora(model, rank, alpha if alpha is not None else 2.0 * rank, seed)
        params = [p for a in adapters for p in (a.lora_a, a.lora_b)]
        return cls(model, method, rank, params, own, needed, _packed=packed)

    @property
    def trained_numbers(self) -> int:
        """How many numbers training changes."""
        return sum(p.numel() for p in self.parameters)

    def reset(self) -> None:
        """The original weights, bit for bit; the model is no longer trainable."""
        if not self.active:
            return
        if self.method == "lora":
            detach_lora(self.model)
        else:
            with torch.no_grad():
                for name, p in self.model.named_parameters():
                    p.copy_(self._original[name])
            self._original.clear()
        for parent, name, layer in self._packed:  # the packed layers themselves: the same kernels, bit for bit
            setattr(parent, name, layer)
        self._packed.clear()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.parameters = []
        self.active = False


def unpack_weights(model: nn.Module) -> list[tuple[nn.Module, str, nn.Module]]:
    """Swap weights kept in GGUF blocks (model/packed.py) or rounded by a faster precision (model/precision.py)
    for float32 layers holding the same values.

    Gradients must flow through every matrix (LoRA's into the layers below, full fine-tuning's into
    the weights themselves), and the packed kernels are forward-only. The values are the unpacked
    blocks bit for bit, so the model computes the same function (a faster precision's rounded weights
    are multiplied in float32 while training: close to the mode's numbers, not equal). Returns (parent, name, packed layer) of
    each swap, for `reset` to put back.
    """
    from llmtui.engine.model.packed import PackedEmbedding, PackedLinear
    from llmtui.engine.model.precision import RoundedEmbedding, RoundedLinear

    swapped = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, (PackedLinear, RoundedLinear)):
                layer = nn.Linear(child.in_features, child.out_features, bias=child.bias is not None, device="meta")
                layer.weight = nn.Parameter(child.weight.detach().clone(), requires_grad=False)
                if child.bias is not None:
                    layer.bias = nn.Parameter(child.bias.detach().clone(), requires_grad=False)
            elif isinstance(child, (PackedEmbedding, RoundedEmbedding)):
                layer = nn.Embedding.from_pretrained(child.weight.detach().clone(), freeze=True)
            else:
                continue
            setattr(parent, name, layer)
            swapped.append((parent, name, child))
    return swapped

