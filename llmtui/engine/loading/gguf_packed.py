"""A GGUF file's matrices kept in their blocks, and the Transformer built around them.

The dequantizing reader (gguf_weights.py) turns every tensor into float32: 540 MB for
SmolLM2-135M's 98 MB file. Here each 2-D weight stored as Q4_0, Q4_1, Q8_0, Q4_K or
Q6_K keeps its bytes (a copy out of the memory map, rows reordered as the dequantizing
reader reorders them), and becomes a PackedLinear or PackedEmbedding
(llmtui/engine/model/packed.py); norms, biases and matrices of other types are read by
the dequantizing reader's code, unchanged. The model computes the same numbers either way.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from llmtui.engine.errors import ModelLoadError
from llmtui.engine.kernels.blocks import BLOCK_SIZES, PACKED_TYPES, scales_finite
from llmtui.engine.loading.common import Progress, check_state_dict, report
from llmtui.engine.loading.gguf_header import GGUFFile
from llmtui.engine.loading.gguf_weights import (
    _TENSOR_NAME,
    BLOCK_NAMES,
    TOP_NAMES,
    gguf_state_dict,
    unpermute_rope_rows,
)
from llmtui.engine.model.config import ModelConfig
from llmtui.engine.model.packed import PackedEmbedding, PackedLinear, PackedMatrix
from llmtui.engine.model.transformer import Transformer, rope_tables

# Our stacked matrices and the state-dict parts they are made of (Attention.qkv, SwiGLU.gate_up).
STACKED = {"attn.qkv": ("attn.q_proj", "attn.k_proj", "attn.v_proj"), "mlp.gate_up": ("mlp.gate", "mlp.up")}


def _our_name(gguf_name: str, family: str) -> str | None:
    match = _TENSOR_NAME.fullmatch(gguf_name)
    if match is None:
        return None
    table = TOP_NAMES if match["block"] is None else BLOCK_NAMES[family]
    if match["name"] not in table:
        return None
    prefix = f"blocks.{match['block']}." if match["block"] is not None else ""
    return f"{prefix}{table[match['name']]}.{match['kind']}"


def read_packed(
    gguf: GGUFFile, config: ModelConfig, progress: Progress | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, PackedMatrix]]:
    """(float32 state dict of what is not packed, packed matrices), both under our names, checked."""
    where = gguf.path.name
    packed: dict[str, PackedMatrix] = {}
    rest = {}
    for i, (name, info) in enumerate(gguf.tensors.items()):
        ours = _our_name(name, config.family)
        keep = (
            ours is not None
            and ours.endswith(".weight")
            and info.type_id in PACKED_TYPES
            and len(info.shape) == 2
            and info.shape[1] % BLOCK_SIZES[info.type_id] == 0
            and ".attn.qkv." not in ours  # gpt2's fused rows: the dequantizing reader splits them
        )
        if not keep:
            rest[name] = info
            continue
        report(progress, f"reading {where}", i / len(gguf.tensors))
        rows = torch.from_numpy(gguf.raw(info).copy())  # (out, bytes per row), outliving the memory map
        if not scales_finite(info.type_id, rows):
            raise ModelLoadError(
                f"{where}: tensor {name} holds NaN or infinite values; the file is damaged — download it again"
            )
        if ours.endswith((".attn.q_proj.weight", ".attn.k_proj.weight")):
            heads = config.n_head if ".q_proj." in ours else config.n_kv_head
            if rows.shape[0] % (2 * heads):
                raise ModelLoadError(f"{where}: {name} has {rows.shape[0]} rows, not a whole number of heads")
            rows = unpermute_rope_rows(rows, heads)  # reorders whole rows: the same on packed bytes
        packed[ours] = PackedMatrix(info.type_id, rows, info.shape[1])
    floats = gguf_state_dict(dataclasses.replace(gguf, tensors=rest), config, progress, check=False)
    shapes = {name: torch.empty(m.rows, m.columns, device="meta") for name, m in packed.items()}
    check_state_dict({**floats, **shapes}, config, where)
    return floats, packed


def build_packed_transformer(
    config: ModelConfig, floats: dict[str, torch.Tensor], packed: dict[str, PackedMatrix]
) -> Transformer:
    """A CPU Transformer whose packed matrices are PackedLinear/PackedEmbedding modules.

    Built on the meta device (no float32 copy of the packed weights is ever made), the
    packed modules swapped in, then the rest given memory and loaded from `floats`.
    """
    with torch.device("meta"):
        model = Transformer(config)
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Embedding) and f"{name}.weight" in packed:
            _replace(model, name, PackedEmbedding(packed[f"{name}.weight"]))
        elif isinstance(module, nn.Linear):
            local = name.split(".", 2)[-1] if name.startswith("blocks.") else name
            prefix = name[: len(name) - len(local)]
            part_names = [f"{prefix}{p}.weight" for p in STACKED.get(local, (local,))]
            if all(p in packed for p in part_names):
                bias = torch.empty(module.out_features) if module.bias is not None else None
                _replace(model, name, PackedLinear([packed[p] for p in part_names], bias))
            elif any(p in packed for p in part_names):  # a stack of packed and float parts: all float
                for p in part_names:
                    if p in packed:
                        m = packed.pop(p)
                        floats[p] = m.unpack(0, m.rows, torch.empty(m.rows, m.columns))
    model.to_empty(device="cpu")  # norms, biases, float matrices: uninitialised until loaded below
    missing, unexpected = model.load_state_dict(floats, strict=False)
    if unexpected or any(not k.endswith("rope_cos") and not k.endswith("rope_sin") for k in missing):
        raise ModelLoadError(f"packed model: {len(missing)} weights missing, {len(unexpected)} unexpected")
    if config.positions == "rope":  # non-persistent buffers, emptied by to_empty
        model.rope_cos, model.rope_sin = rope_tables(config)
    return model.eval()


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, new)
