"""GGUF block formats that stay packed in memory, and their exact unpacking in plain torch.

A packed matrix is a uint8 tensor (rows, bytes per row): each row is whole blocks of
`BLOCK_SIZES[t]` weights in `BLOCK_BYTES[t]` bytes. `unpack` turns blocks into float32
with the same float operations, in the same order, as gguf.quants.dequantize (numpy),
so the values are bit-identical to the dequantizing loader's. It is the fallback that
runs where the C++ kernels (packed.cpp) can't be built, and the reference they are
tested against besides gguf.quants itself.
"""

from __future__ import annotations

import torch
from torch import Tensor

# GGML type numbers (gguf.GGMLQuantizationType) kept packed, with (weights, bytes) per block.
Q4_0, Q4_1, Q8_0, Q4_K, Q6_K = 2, 3, 8, 12, 14
BLOCK_SIZES = {Q4_0: 32, Q4_1: 32, Q8_0: 32, Q4_K: 256, Q6_K: 256}
BLOCK_BYTES = {Q4_0: 18, Q4_1: 20, Q8_0: 34, Q4_K: 144, Q6_K: 210}
PACKED_TYPES = frozenset(BLOCK_SIZES)
_HALF_OFFSETS = {Q4_0: (0,), Q4_1: (0, 2), Q8_0: (0,), Q4_K: (0, 2), Q6_K: (208,)}  # each block's float16 scales


def row_bytes(qtype: int, columns: int) -> int:
    """Bytes one packed row of `columns` weights takes."""
    return columns // BLOCK_SIZES[qtype] * BLOCK_BYTES[qtype]


def scales_finite(qtype: int, packed: Tensor) -> bool:
    """Whether every float16 scale is finite: the only way a block can unpack to NaN or infinity."""
    blocks = packed.reshape(-1, BLOCK_BYTES[qtype])
    for start in _HALF_OFFSETS[qtype]:
        if not torch.isfinite(_half(blocks, start)).all():
            return False
    return True


def _half(blocks: Tensor, start: int) -> Tensor:
    """The float16 at bytes start..start+2 of each block, as float32 (n, 1)."""
    return blocks[:, start : start + 2].contiguous().view(torch.float16).float()


def _nibbles(qs: Tensor, group: int) -> Tensor:
    """Each run of `group` bytes becomes its low nibbles, then its high nibbles: (n, 2 * bytes)."""
    n = qs.shape[0]
    qs = qs.reshape(n, -1, 1, group)
    return torch.cat([qs & 0x0F, qs >> 4], dim=2).reshape(n, -1)


def unpack(qtype: int, blocks: Tensor) -> Tensor:
    """(n, BLOCK_BYTES) uint8 blocks to (n, BLOCK_SIZES) float32 weights, as gguf.quants does."""
    n = blocks.shape[0]
    if qtype == Q4_0:
        return _half(blocks, 0) * (_nibbles(blocks[:, 2:], 16).to(torch.int8) - 8).float()
    if qtype == Q4_1:
        return _half(blocks, 0) * _nibbles(blocks[:, 4:], 16).float() + _half(blocks, 2)
    if qtype == Q8_0:
        return blocks[:, 2:].contiguous().view(torch.int8).float() * _half(blocks, 0)
    if qtype == Q4_K:
        s = blocks[:, 4:16].reshape(n, 3, 4)
        d6, m6, md = s[:, 0], s[:, 1], s[:, 2]
        sc = torch.cat([d6 & 0x3F, (md & 0x0F) | ((d6 >> 2) & 0x30)], dim=1).float()  # (n, 8)
        mn = torch.cat([m6 & 0x3F, (md >> 4) | ((m6 >> 2) & 0x30)], dim=1).float()
        d = (_half(blocks, 0) * sc).reshape(n, 8, 1)
        dm = (_half(blocks, 2) * mn).reshape(n, 8, 1)
        q = _nibbles(blocks[:, 16:], 32).reshape(n, 8, 32).float()
        return (d * q - dm).reshape(n, 256)
    if qtype == Q6_K:
        ql = _nibbles(blocks[:, :128], 64)  # (n, 256): per half, 64 low then 64 high nibbles
        qh = blocks[:, 128:192].reshape(n, 2, 1, 32)
        qh = torch.cat([(qh >> s) & 0x03 for s in (0, 2, 4, 6)], dim=2).reshape(n, 256)
        q = ((ql | (qh << 4)).to(torch.int8) - 32).float().reshape(n, 16, 16)
        d = (_half(blocks, 208) * blocks[:, 192:208].contiguous().view(torch.int8).float()).reshape(n, 16, 1)
        return (d * q).reshape(n, 256)
    raise ValueError(f"GGML type {qtype} is not kept packed")


def unpack_rows(qtype: int, packed: Tensor, columns: int) -> Tensor:
    """(rows, row bytes) packed uint8 to (rows, columns) float32."""
    blocks = packed.reshape(-1, BLOCK_BYTES[qtype])
    return unpack(qtype, blocks).reshape(packed.shape[0], columns)
