"""A GGUF file's matrices kept in their blocks, and the Transformer built around them.

The dequantizing reader (gguf_weights.py) turns every tensor into float32: 540 MB for
SmolLM2-135M's 98 MB file. Here each 2-D weight stored as Q4_0, Q4_1, Q8_0, Q4_K or
Q6_K keeps its bytes (copied out of the memory map once, rows reordered as the
dequantizing reader reorders them) and becomes a PackedLinear or PackedEmbedding
(llmtui/engine/model/packed.py); norms, biases and matrices of other types are read by
the dequantizing reader's code, unchanged. The model computes the same numbers either way.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import re
import threading
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from llmtui.engine.errors import ModelLoadError
from llmtui.engine.kernels.blocks import BLOCK_SIZES, PACKED_TYPES, row_bytes, scales_finite
from llmtui.engine.loading.common import Progress, check_state_dict, report
from llmtui.engine.loading.gguf_header import GGUFFile, GGUFTensorInfo
from llmtui.engine.loading.gguf_weights import (
    _TENSOR_NAME,
    ARCHITECTURES,
    TOP_NAMES,
    Architecture,
    gguf_state_dict,
    unpermute_rope_rows,
)
from llmtui.engine.model.config import ModelConfig
from llmtui.engine.model.packed import PackedEmbedding, PackedLinear, PackedMatrix
from llmtui.engine.model.transformer import Transformer

# Our stacked matrices and the state-dict parts they are made of (Attention.qkv, SwiGLU.gate_up).
STACKED = {"attn.qkv": ("attn.q_proj", "attn.k_proj", "attn.v_proj"), "mlp.gate_up": ("mlp.gate", "mlp.up")}
_WEIGHT = re.compile(r"(?P<block>blocks\.\d+\.)?(?P<local>.+)\.weight")


def _our_name(gguf_name: str, arch: Architecture) -> str | None:
    match = _TENSOR_NAME.fullmatch(gguf_name)
    if match is None:
        return None
    table = TOP_NAMES if match["block"] is None else arch.blocks
    if match["name"] not in table:
        return None
    prefix = f"blocks.{match['block']}." if match["block"] is not None else ""
    return f"{prefix}{table[match['name']]}.{match['kind']}"


def read_packed(
    gguf: GGUFFile, config: ModelConfig, progress: Progress | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, list[PackedMatrix]]]:
    """(float32 state dict of what is not packed, packed matrices), both under our names, checked.

    Packed matrices are keyed by their module's weight: q, k and v as
    `blocks.N.attn.qkv.weight`, gate and up as `blocks.N.mlp.gate_up.weight`, with one
    PackedMatrix per run of parts of one block type. Each is copied out of the file once,
    straight into its place: no float32 copy and no transient one, so the memory held
    after loading stays near the file's size.
    """
    where = gguf.path.name
    arch = ARCHITECTURES[gguf.metadata["general.architecture"]]  # known: gguf_config checked it
    found: dict[str, GGUFTensorInfo] = {}
    rest: dict[str, GGUFTensorInfo] = {}
    for name, info in gguf.tensors.items():
        ours = _our_name(name, arch)
        keep = (
            ours is not None
            and ours.endswith(".weight")
            and info.type_id in PACKED_TYPES
            and len(info.shape) == 2
            and info.shape[1] % BLOCK_SIZES[info.type_id] == 0
            # fused rows in the file (gpt2's q/k/v, phi3's gate/up): the dequantizing reader splits them
            and not ours.endswith((".attn.qkv.weight", ".mlp.gate_up.weight"))
        )
        if keep:
            found[ours] = info
        else:
            rest[name] = info
    groups = _groups(found)
    for module, parts in list(groups.items()):  # a stack with a part that can't stay packed: float32, whole
        if not all(p in found for p in parts):
            del groups[module]
            for p in parts:
                if p in found:
                    info = found.pop(p)
                    rest[info.name] = info
    floats = gguf_state_dict(dataclasses.replace(gguf, tensors=rest), config, progress, check=False)
    shapes = {name: torch.empty(info.shape, device="meta") for name, info in found.items()}
    check_state_dict({**floats, **shapes}, config, where)

    packed: dict[str, list[PackedMatrix]] = {}
    for i, (module, parts) in enumerate(groups.items()):
        report(progress, f"reading {where}", i / len(groups))
        runs = [list(run) for _, run in itertools.groupby(parts, key=lambda p: found[p].type_id)]
        packed[module] = [_read_run(gguf, config, arch, [(p, found[p]) for p in run]) for run in runs]
    return floats, packed


def _groups(found: dict[str, GGUFTensorInfo]) -> dict[str, tuple[str, ...]]:
    """Module weight name -> the state-dict weights stacked in it, in order (one, q/k/v, or gate/up)."""
    groups: dict[str, tuple[str, ...]] = {}
    for name in found:
        match = _WEIGHT.fullmatch(name)
        block, local = match["block"] or "", match["local"]
        fused = next((f for f, parts in STACKED.items() if local in parts), None)
        if fused is None:
            groups[name] = (name,)
        else:
            groups[f"{block}{fused}.weight"] = tuple(f"{block}{p}.weight" for p in STACKED[fused])
    return groups


def _read_run(
    gguf: GGUFFile, config: ModelConfig, arch: Architecture, parts: list[tuple[str, GGUFTensorInfo]]
) -> PackedMatrix:
    """Stacked rows of parts of one block type, copied from the file once; q and k rows put in our order."""
    qtype, columns = parts[0][1].type_id, parts[0][1].shape[1]
    out = np.empty((sum(info.shape[0] for _, info in parts), row_bytes(qtype, columns)), dtype=np.uint8)
    row = 0
    for ours, info in parts:
        raw, rows = gguf.raw(info), info.shape[0]
        if arch.interleaved_rope and ours.endswith((".attn.q_proj.weight", ".attn.k_proj.weight")):
            heads = config.n_head if ".q_proj." in ours else config.n_kv_head
            if rows % (2 * heads):
                raise ModelLoadError(f"{gguf.path.name}: {info.name} has {rows} rows, not a whole number of heads")
            order = unpermute_rope_rows(torch.arange(rows)[:, None], heads)[:, 0].numpy()  # moves whole rows
            np.take(raw, order, axis=0, out=out[row : row + rows])
        else:
            np.copyto(out[row : row + rows], raw)
        if not scales_finite(qtype, torch.from_numpy(out[row : row + rows])):
            raise ModelLoadError(
                f"{gguf.path.name}: tensor {info.name} holds NaN or infinite values; the file is damaged — "
                "download it again"
            )
        row += rows
    return PackedMatrix(qtype, torch.from_numpy(out), columns)


def build_packed_transformer(
    config: ModelConfig, floats: dict[str, torch.Tensor], packed: dict[str, list[PackedMatrix]]
) -> Transformer:
    """A CPU Transformer whose packed matrices are PackedLinear/PackedEmbedding modules.

    Built with its random initialisation skipped (its float32 matrices are allocated but
    never written, so they never take memory, and are dropped when the packed modules take
    their place), then the rest loaded from `floats`.
    """
    with _uninitialised_parameters():
        model = Transformer(config)
    for name, module in list(model.named_modules()):
        runs = packed.get(f"{name}.weight")
        if runs is None:
            continue
        if isinstance(module, nn.Embedding):
            _replace(model, name, PackedEmbedding(runs[0]))
        elif isinstance(module, nn.Linear):
            bias = torch.empty(module.out_features) if module.bias is not None else None
            _replace(model, name, PackedLinear(runs, bias))
    missing, unexpected = model.load_state_dict(floats, strict=False)
    if missing or unexpected:
        raise ModelLoadError(f"packed model: {len(missing)} weights missing, {len(unexpected)} unexpected")
    return model.eval()


_INIT_FUNCTIONS = ("kaiming_uniform_", "uniform_", "normal_", "trunc_normal_", "zeros_", "ones_")
_init_lock = threading.Lock()


@contextlib.contextmanager
def _uninitialised_parameters() -> Iterator[None]:
    """Modules built inside skip torch.nn.init's random fills (as transformers' no_init_weights does)."""
    with _init_lock:
        saved = {name: getattr(nn.init, name) for name in _INIT_FUNCTIONS}
        for name in _INIT_FUNCTIONS:
            setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)
        try:
            yield
        finally:
            for name, fn in saved.items():
                setattr(nn.init, name, fn)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attr, new)
