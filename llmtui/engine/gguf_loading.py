"""Read llama.cpp's GGUF files (architectures llama and gpt2) into our float32 state dict.

GGUF stores tensors with its own names (`blk.0.attn_q.weight`), often quantized in blocks
(Q4_1: 32 weights share a scale and a minimum). We dequantize with the `gguf` package's
reference code, rename to our names, and undo the one layout change llama.cpp makes:
its converter reorders the rows of q and k so its RoPE kernel can rotate adjacent pairs,
while our model (like Hugging Face's) rotates the two halves of each head.
"""

from __future__ import annotations

import math
import mmap
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf.quants import dequantize

from llmtui.engine.config import ModelConfig
from llmtui.engine.load_common import ModelLoadError, Progress, check_state_dict, report

Q = GGMLQuantizationType
SUPPORTED_TYPES = frozenset(
    {Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K}
)

# GGUF name -> our name, for whole-model tensors and for the part after `blk.N.`.
TOP_NAMES = {"token_embd": "tok_emb", "position_embd": "pos_emb", "output_norm": "final_norm", "output": "lm_head"}
BLOCK_NAMES = {
    "llama": {
        "attn_norm": "attn_norm",
        "attn_q": "attn.q_proj",
        "attn_k": "attn.k_proj",
        "attn_v": "attn.v_proj",
        "attn_output": "attn.o_proj",
        "ffn_norm": "mlp_norm",
        "ffn_gate": "mlp.gate",
        "ffn_up": "mlp.up",
        "ffn_down": "mlp.down",
    },
    "gpt2": {
        "attn_norm": "attn_norm",
        "attn_qkv": "attn.qkv",  # fused q, k, v rows: split below
        "attn_output": "attn.o_proj",
        "ffn_norm": "mlp_norm",
        "ffn_up": "mlp.fc",
        "ffn_down": "mlp.proj",
    },
}
_TENSOR_NAME = re.compile(r"(?:blk\.(?P<block>\d+)\.)?(?P<name>\w+)\.(?P<kind>weight|bias)")


@dataclass(frozen=True)
class GGUFTensorInfo:
    name: str
    shape: tuple[int, ...]  # PyTorch order: (rows, columns); GGUF lists the dims the other way round
    type_id: int  # a GGMLQuantizationType value, or an unknown number from a newer llama.cpp
    n_bytes: int
    offset: int  # absolute, in the file


@dataclass
class GGUFFile:
    """A GGUF file's metadata and tensor directory; tensor data stays memory-mapped until asked for."""

    path: Path
    metadata: dict[str, Any]
    tensors: dict[str, GGUFTensorInfo]
    _data: mmap.mmap = field(repr=False)

    def raw(self, info: GGUFTensorInfo) -> np.ndarray:
        """The tensor's bytes as (rows, bytes per row) uint8, the layout gguf.quants expects."""
        rows = info.shape[:-1]
        return np.frombuffer(self._data, dtype=np.uint8, count=info.n_bytes, offset=info.offset).reshape(*rows, -1)


# GGUF metadata value types (gguf.GGUFValueType): scalars by struct format.
_SCALAR_FORMATS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY, _FLOAT32 = 8, 9, 6


class _Cursor:
    """Reads little-endian GGUF fields from a buffer; running off the end means a truncated file."""

    def __init__(self, buf: mmap.mmap, where: str) -> None:
        self.buf, self.pos, self.where = buf, 0, where

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise ModelLoadError(
                f"{self.where} ends in the middle of its header; the file is truncated — download it again"
            )
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        n = self.unpack("<Q")
        if self.pos + n > len(self.buf):
            raise ModelLoadError(
                f"{self.where} ends in the middle of its header; the file is truncated — download it again"
            )
        raw = self.buf[self.pos : self.pos + n]
        self.pos += n
        return raw.decode("utf-8", errors="surrogateescape")  # lossless even for odd token bytes

    def value(self, type_id: int) -> Any:
        if type_id == _STRING:
            return self.string()
        if type_id == _ARRAY:
            item_type, count = self.unpack("<I"), self.unpack("<Q")
            if item_type in _SCALAR_FORMATS:  # numbers: one numpy read instead of a Python loop
                dtype = np.dtype(_SCALAR_FORMATS[item_type].replace("?", "b1"))
                if self.pos + count * dtype.itemsize > len(self.buf):
                    raise ModelLoadError(
                        f"{self.where} ends in the middle of its header; the file is truncated — download it again"
                    )
                values = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos).copy()
                self.pos += count * dtype.itemsize
                return values
            return [self.value(item_type) for _ in range(count)]
        if type_id not in _SCALAR_FORMATS:
            raise ModelLoadError(
                f"{self.where} has a metadata value of unknown type {type_id}; "
                "the file is corrupt or from a newer llama.cpp"
            )
        value = self.unpack(_SCALAR_FORMATS[type_id])
        # float32 metadata (1e-5 stored as 9.99999974e-06) reads back as the number that was meant.
        return float(f"{value:.7g}") if type_id == _FLOAT32 else value


def read_gguf_header(path: Path) -> GGUFFile:
    """Metadata and tensor directory of a GGUF file (version 2 or 3, little-endian).

    Our own reader rather than gguf.GGUFReader: that one builds numpy views field by field
    and takes ~3 s on a 49k-token vocabulary; this takes ~0.1 s. Every read is bounds-checked,
    so a truncated or garbage file gives a ModelLoadError, never a traceback.
    """
    where = path.name
    try:
        with path.open("rb") as f:
            if f.read(4) != b"GGUF":
                raise ModelLoadError(
                    f"{where} is not a GGUF file (it doesn't start with 'GGUF'); "
                    "pass a .gguf file or a Hugging Face folder"
                )
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as err:
        raise ModelLoadError(f"can't read {path} ({err.strerror or err})") from err
    cur = _Cursor(data, where)
    cur.pos = 4
    version = cur.unpack("<I")
    if version not in (2, 3):
        raise ModelLoadError(f"{where} is GGUF version {version}; llmtui reads versions 2 and 3 (little-endian)")
    n_tensors, n_kv = cur.unpack("<Q"), cur.unpack("<Q")
    if n_tensors > len(data) // 24 or n_kv > len(data) // 12:  # each needs at least that many bytes
        raise ModelLoadError(f"{where} claims {n_tensors} tensors and {n_kv} metadata keys; the file is corrupt")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string()
        metadata[key] = cur.value(cur.unpack("<I"))
    infos = []
    for _ in range(n_tensors):
        name = cur.string()
        n_dims = cur.unpack("<I")
        if n_dims > 4:
            raise ModelLoadError(f"{where}: tensor {name} has {n_dims} dimensions; the file is corrupt")
        dims = [cur.unpack("<Q") for _ in range(n_dims)]
        infos.append((name, dims, cur.unpack("<I"), cur.unpack("<Q")))
    alignment = metadata.get("general.alignment", 32)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise ModelLoadError(f"{where} has an invalid general.alignment {alignment!r}; the file is corrupt")
    data_start = -(-cur.pos // alignment) * alignment
    tensors: dict[str, GGUFTensorInfo] = {}
    for name, dims, type_id, offset in infos:
        n_bytes = 0
        if type_id in _KNOWN_TYPES:
            block, type_size = GGML_QUANT_SIZES[Q(type_id)]
            if dims and dims[0] % block:
                raise ModelLoadError(
                    f"{where}: tensor {name} has rows of {dims[0]} values, "
                    f"not a multiple of its {Q(type_id).name} block of {block}"
                )
            n_bytes = math.prod(dims) // block * type_size
        if data_start + offset + n_bytes > len(data):
            raise ModelLoadError(
                f"{where} ends before the data of tensor {name}; the file is truncated — download it again"
            )
        if name in tensors:
            raise ModelLoadError(f"{where} holds tensor {name} twice; the file is corrupt")
        tensors[name] = GGUFTensorInfo(name, tuple(reversed(dims)), type_id, n_bytes, data_start + offset)
    return GGUFFile(path, metadata, tensors, data)


_KNOWN_TYPES = frozenset(t.value for t in Q)


def gguf_config(gguf: GGUFFile) -> ModelConfig:
    """ModelConfig from the `{arch}.*` metadata keys."""
    where, meta = gguf.path.name, gguf.metadata
    arch = meta.get("general.architecture")
    if arch not in BLOCK_NAMES:
        raise ModelLoadError(f"{where}: architecture {arch!r} is not supported; llmtui reads llama and gpt2 GGUF files")

    def get(key: str, default: Any = None, required: bool = False) -> Any:
        value = meta.get(f"{arch}.{key}", default)
        if value is None and required:
            raise ModelLoadError(
                f"{where} lacks the metadata key {arch}.{key}; the file is incomplete or from an unusual converter"
            )
        if isinstance(value, (list, np.ndarray)):
            raise ModelLoadError(
                f"{where}: {arch}.{key} differs per layer, which llmtui does not implement (its layers are all alike)"
            )
        return value

    scaling = get("rope.scaling.type")
    if scaling not in (None, "none"):
        raise ModelLoadError(
            f"{where} uses RoPE scaling {scaling!r}, which llmtui does not implement; pick a model without it"
        )
    if "rope_freqs.weight" in gguf.tensors:
        raise ModelLoadError(
            f"{where} carries per-frequency RoPE factors (Llama 3.1-style scaling), which llmtui does not implement"
        )
    tokens = meta.get("tokenizer.ggml.tokens")
    embd = gguf.tensors.get("token_embd.weight")
    vocab = len(tokens) if tokens is not None else (embd.shape[0] if embd is not None else 0)

    n_head = int(get("attention.head_count", required=True))
    d_model = int(get("embedding_length", required=True))
    head_dim = int(get("attention.key_length") or d_model // max(n_head, 1))
    rope_dims = get("rope.dimension_count")
    if arch == "llama" and rope_dims not in (None, head_dim):
        raise ModelLoadError(
            f"{where} rotates {rope_dims} of {head_dim} head dimensions (partial RoPE), which llmtui does not implement"
        )
    eps_key = "attention.layer_norm_rms_epsilon" if arch == "llama" else "attention.layer_norm_epsilon"
    try:
        return ModelConfig(
            family=arch,
            vocab_size=vocab,
            n_layer=int(get("block_count", required=True)),
            n_head=n_head,
            n_kv_head=int(get("attention.head_count_kv") or n_head),
            d_model=d_model,
            d_ff=int(get("feed_forward_length", required=True)),
            context_length=int(get("context_length", required=True)),
            norm_eps=float(get(eps_key, required=True)),
            rope_theta=float(get("rope.freq_base") or 10000.0),
            tie_embeddings="output.weight" not in gguf.tensors,
            head_dim=head_dim,
        )
    except (ValueError, TypeError) as err:
        raise ModelLoadError(f"{where}: inconsistent model metadata ({err})") from err


def unpermute_rope_rows(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Undo llama.cpp's q/k row order: per head, interleaved pairs back to two halves.

    llama.cpp's converter (`LlamaModel.permute`) moves head row `half * hd/2 + j` to
    `2 * j + half`. Rows of one head, hd = 4: GGUF [a0, b0, a1, b1] -> ours [a0, a1, b0, b1].
    """
    hd = w.shape[0] // n_heads
    return w.reshape(n_heads, hd // 2, 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def _type_name(type_id: int) -> str:
    return Q(type_id).name if type_id in _KNOWN_TYPES else f"type number {type_id}"


def gguf_state_dict(gguf: GGUFFile, config: ModelConfig, progress: Progress | None = None) -> dict[str, torch.Tensor]:
    """All tensors dequantized to float32, under our names, checked against the config."""
    where = gguf.path.name
    for info in gguf.tensors.values():
        if info.type_id not in SUPPORTED_TYPES:
            raise ModelLoadError(
                f"{where}: tensor {info.name} is stored as {_type_name(info.type_id)}, which llmtui can't read; "
                "use a GGUF quantized as F32, F16, Q8_0, Q4_0, Q4_1 or a K-quant"
            )
    block_names = BLOCK_NAMES[config.family]
    state_dict: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for i, info in enumerate(gguf.tensors.values()):
        report(progress, f"dequantizing {where}", i / len(gguf.tensors))
        match = _TENSOR_NAME.fullmatch(info.name)
        table = TOP_NAMES if match and match["block"] is None else block_names
        if match is None or match["name"] not in table:
            unknown.append(info.name)
            continue
        prefix = f"blocks.{match['block']}." if match["block"] is not None else ""
        ours = f"{prefix}{table[match['name']]}.{match['kind']}"
        values = dequantize(gguf.raw(info), Q(info.type_id))
        # F32 comes back as a view into the memory-mapped file: copy so it outlives the map.
        w = torch.from_numpy(values.copy() if info.type_id == Q.F32 else values).reshape(info.shape)
        if ours.endswith((".attn.q_proj.weight", ".attn.k_proj.weight")):  # llama; gpt2 has a fused qkv
            heads = config.n_head if ".q_proj." in ours else config.n_kv_head
            if w.shape[0] % (2 * heads):
                raise ModelLoadError(f"{where}: {info.name} has {w.shape[0]} rows, not a whole number of heads")
            w = unpermute_rope_rows(w, heads)
        if ".attn.qkv." in ours:
            q_rows, kv_rows = config.n_head * config.head_dim, config.n_kv_head * config.head_dim
            if w.shape[0] != q_rows + 2 * kv_rows:
                raise ModelLoadError(
                    f"{where}: {info.name} has {w.shape[0]} rows, expected {q_rows + 2 * kv_rows} for q, k and v"
                )
            for part, chunk in zip(("q_proj", "k_proj", "v_proj"), w.split([q_rows, kv_rows, kv_rows]), strict=True):
                state_dict[ours.replace(".qkv.", f".{part}.")] = chunk.clone()
        else:
            state_dict[ours] = w.contiguous()
    if unknown:
        raise ModelLoadError(
            f"{where} has tensors llmtui has no place for ({', '.join(unknown[:3])}); "
            f"it is not a plain {config.family} model"
        )
    check_state_dict(state_dict, config, where)
    report(progress, f"dequantizing {where}", 1.0)
    return state_dict


def read_gguf(path: Path, progress: Progress | None = None) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """Config and float32 state dict (our names) of a GGUF file."""
    gguf = read_gguf_header(path)
    config = gguf_config(gguf)
    return config, gguf_state_dict(gguf, config, progress)
