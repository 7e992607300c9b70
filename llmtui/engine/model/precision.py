"""The opt-in faster modes (`--precision bf16|int8|int4`): matrix products with rounded weights.

`exact` (the default) is the model as loaded: packed GGUF blocks multiplied in float32, or
float32 weights. The other modes swap each matrix product's layer after loading (the
forward pass is untouched) for one that computes in lower precision:

- bf16: weights and the product's input in bfloat16; the product comes out in bfloat16.
- int8: weights rounded to 8 bits per row (one scale per output row), torch's
  `_weight_int8pack_mm`, input in bfloat16.
- int4: weights rounded to 4 bits in groups of 32 (a scale and an offset per group, as
  GGUF's Q4_1), torch's `_weight_int4pack_mm_for_cpu`, input in bfloat16.

Torch's weight-only kernels are fast only with bfloat16 inputs (3-5x slower than float32
with float32 ones, issue 17), hence bfloat16 activations in every mode. Norms, attention,
softmax, the residual stream and the embedding lookup stay float32; the unembedding is a
matrix product, so logits come out of the mode too. Probabilities therefore differ from the
exact model's (benchmarks/precision.py measures by how much): they are the mode's own.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from llmtui.engine.model.packed import PackedLinear

INT4_GROUP = 32  # weights per scale/offset pair: GGUF's Q4 block size
_INT4_TILES = 1  # _convert_weight_to_int4pack_for_cpu's innerKTiles argument


class RoundedLinear(nn.Module):
    """A matrix product in a faster, rounded precision: forward(x) = x @ W.T (+ bias), float32 in and out.

    `linear` (no bias) serves the unembedding, as packed layers' does; `weight` gives the
    rounded matrix as float32 (for code that reads `.weight`, and for training, which
    swaps it back to a float32 nn.Linear).
    """

    precision = ""

    def __init__(self, weight: Tensor, bias: Tensor | None) -> None:
        super().__init__()
        self.tied = False  # True: the unembedding of a tied embedding (RoundedEmbedding)
        self.out_features, self.in_features = weight.shape
        self.bias = None if bias is None else nn.Parameter(bias.detach().float(), requires_grad=False)

    def product(self, x: Tensor) -> Tensor:  # x (m, in) bfloat16 -> (m, out)
        raise NotImplementedError

    @property
    def packed_numel(self) -> int:
        """Weights held outside nn.Parameters, for parameter counts (Transformer.n_params); a tied head's are the
        embedding's, counted there."""
        return 0 if self.tied else self.out_features * self.in_features

    @property
    def weight(self) -> Tensor:
        raise NotImplementedError

    def linear(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        y = self.product(x.reshape(-1, self.in_features).to(torch.bfloat16).contiguous())
        return y.to(torch.float32).reshape(*lead, self.out_features)

    def forward(self, x: Tensor) -> Tensor:
        y = self.linear(x)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, precision={self.precision}"


class Bf16Linear(RoundedLinear):
    precision = "bf16"

    def __init__(self, weight: Tensor, bias: Tensor | None) -> None:
        super().__init__(weight, bias)
        self.register_buffer("w", weight.detach().to(torch.bfloat16).contiguous(), persistent=False)

    def product(self, x: Tensor) -> Tensor:
        return x @ self.w.T

    @property
    def weight(self) -> Tensor:
        return self.w.float()


class Int8Linear(RoundedLinear):
    """Symmetric 8-bit rows: w = q * scale, q in -127..127, one scale per output row."""

    precision = "int8"

    def __init__(self, weight: Tensor, bias: Tensor | None) -> None:
        super().__init__(weight, bias)
        w = weight.detach().float()
        scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127
        self.register_buffer("q", torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8).contiguous(),
                             persistent=False)
        self.register_buffer("scale", scale.to(torch.bfloat16), persistent=False)  # in the input's dtype, as the kernel wants

    def product(self, x: Tensor) -> Tensor:
        return torch.ops.aten._weight_int8pack_mm(x, self.q, self.scale)

    @property
    def weight(self) -> Tensor:
        return self.q.float() * self.scale.float()[:, None]


class Int4Linear(RoundedLinear):
    """Asymmetric 4-bit groups of 32 along each row: w = (q - 8) * scale + zero, q in 0..15."""

    precision = "int4"

    def __init__(self, weight: Tensor, bias: Tensor | None) -> None:
        super().__init__(weight, bias)
        n, k = self.out_features, self.in_features
        groups = weight.detach().float().reshape(n, k // INT4_GROUP, INT4_GROUP)
        low, high = groups.amin(dim=-1), groups.amax(dim=-1)
        scale = ((high - low) / 15).clamp(min=1e-12)
        q = torch.round((groups - low[..., None]) / scale[..., None]).clamp(0, 15).to(torch.int32)
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q.reshape(n, k).contiguous(), _INT4_TILES)
        self.register_buffer("packed", packed, persistent=False)
        zero = low + 8 * scale  # the kernel's offset is the value of q = 8
        # (groups, rows, 2) in the input's dtype, as the kernel reads it
        scale_zero = torch.stack([scale.T, zero.T], dim=-1).to(torch.bfloat16).contiguous()
        self.register_buffer("scale_zero", scale_zero, persistent=False)

    def product(self, x: Tensor) -> Tensor:
        return torch.ops.aten._weight_int4pack_mm_for_cpu(x, self.packed, INT4_GROUP, self.scale_zero)

    @property
    def weight(self) -> Tensor:
        # the values the kernel multiplies by: unpack through the kernel itself, one identity row per column
        eye = torch.eye(self.in_features, dtype=torch.bfloat16)
        return self.product(eye).float().T.contiguous()

    @staticmethod
    def fits(weight: Tensor) -> bool:
        return weight.shape[1] % INT4_GROUP == 0 and weight.shape[0] % 16 == 0  # the packer's tiles: 16 rows


class RoundedEmbedding(nn.Module):
    """A tied embedding whose lookup stays the loaded (exact) one and whose unembedding is rounded."""

    def __init__(self, lookup: nn.Module, head: RoundedLinear) -> None:
        super().__init__()
        self.lookup, self.head = lookup, head
        head.tied = True
        self.num_embeddings, self.embedding_dim = head.out_features, head.in_features

    @property
    def weight(self) -> Tensor:
        return self.lookup.weight

    def forward(self, ids: Tensor) -> Tensor:
        return self.lookup(ids)

    def linear(self, x: Tensor) -> Tensor:
        return self.head.linear(x)


_LAYERS: dict[str, type[RoundedLinear]] = {"bf16": Bf16Linear, "int8": Int8Linear, "int4": Int4Linear}
_WEIGHTS = {
    "bf16": ("bfloat16", "torch bfloat16 matmul"),
    "int8": ("int8, one scale per row", "torch _weight_int8pack_mm"),
    "int4": (f"int4, a scale and offset per {INT4_GROUP} weights", "torch _weight_int4pack_mm_for_cpu"),
}


def describe(precision: str) -> dict[str, str]:
    """How a faster mode computes, for --json and exports (LanguageModel.compute)."""
    weights, kernels = _WEIGHTS[precision]
    return {"precision": precision, "weights": f"{weights} (rounded from the loaded weights)", "kernels": kernels,
            "activations": "bfloat16 into every matrix product (norms, attention, softmax in float32)",
            "probabilities": f"the {precision} mode's own, not exact (README: measured gap)"}


def unavailable(precision: str, device: torch.device) -> str | None:
    """Why `precision` can't run on `device` here (one line), or None when it can."""
    if precision == "exact":
        return None
    if precision != "bf16" and device.type != "cpu":
        return f"--precision {precision} uses torch's CPU kernels; on {device.type} it is not available"
    try:  # a one-row product proves the kernel is in this torch build and takes bfloat16
        layer = _LAYERS[precision](torch.ones(16, 2 * INT4_GROUP), None)
        layer.to(device)(torch.ones(1, 2 * INT4_GROUP, device=device))
    except (RuntimeError, AttributeError, NotImplementedError) as err:
        why = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        return f"--precision {precision} is not available in this torch build ({why})"
    return None


def _rounded(precision: str, module: nn.Module) -> RoundedLinear | None:
    """module's matrix in `precision`, or None when its shape doesn't fit the mode's kernel."""
    weight = module.weight.detach()
    layer = _LAYERS[precision]
    if layer is Int4Linear and not Int4Linear.fits(weight):
        return None
    return layer(weight, getattr(module, "bias", None))


def apply_precision(model: nn.Module, precision: str) -> tuple[int, int]:
    """Swap every matrix product's layer of model (nn.Linear, PackedLinear) for its `precision` version, in place.

    The tied embedding keeps its exact lookup and gets a rounded unembedding. Returns (layers swapped, layers left exact because
    their shape doesn't fit the kernel: int4 wants rows of a multiple of 32 weights, 16 rows at a time).
    """
    if precision == "exact":
        return 0, 0
    swapped = kept = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, (nn.Linear, PackedLinear)):
                layer = _rounded(precision, child)
            elif name == "tok_emb" and getattr(model, "lm_head", 0) is None:  # tied: its unembedding is a product
                head = _rounded(precision, child)
                layer = None if head is None else RoundedEmbedding(child, head)
            else:
                continue
            if layer is None:
                kept += 1
                continue
            setattr(parent, name, layer)
            swapped += 1
    return swapped, kept
