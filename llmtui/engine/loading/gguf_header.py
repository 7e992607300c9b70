"""GGUF's header: metadata and tensor directory, read quickly and bounds-checked (no torch).

Our own reader rather than gguf.GGUFReader: that one builds numpy views field by field
and takes ~3 s on a 49k-token vocabulary; this takes ~0.1 s. The tokenizer reads its
vocabulary from here and the weight loader its tensors, so the file is parsed one way.
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as Q

from llmtui.engine.errors import ModelLoadError


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
        raise ModelLoadError(
            f"{where} claims {n_tensors:,} tensors and {n_kv:,} metadata keys in {len(data):,} bytes; "
            "the file is truncated or corrupt"
        )
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cur.string()
        metadata[key] = cur.value(cur.unpack("<I"))
    infos = []
    for _ in range(n_tensors):
        name = cur.string()
        n_dims = cur.unpack("<I")
        if not 1 <= n_dims <= 4:
            raise ModelLoadError(f"{where}: tensor {name} has {n_dims} dimensions; the file is corrupt")
        dims = [cur.unpack("<Q") for _ in range(n_dims)]
        if 0 in dims:  # ggml has no empty tensors; an empty one would only fail later, less clearly
            raise ModelLoadError(f"{where}: tensor {name} has shape {tuple(reversed(dims))}; the file is corrupt")
        infos.append((name, dims, cur.unpack("<I"), cur.unpack("<Q")))
    alignment = metadata.get("general.alignment", 32)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise ModelLoadError(f"{where} has an invalid general.alignment {alignment!r}; the file is corrupt")
    data_start = -(-cur.pos // alignment) * alignment
    tensors: dict[str, GGUFTensorInfo] = {}
    for name, dims, type_id, offset in infos:
        n_bytes = 0
        if type_id in KNOWN_TYPES:
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


KNOWN_TYPES = frozenset(t.value for t in Q)


