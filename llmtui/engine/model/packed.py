"""Linear layers and embeddings whose weights stay in their GGUF blocks (Q4_0, Q4_1, Q8_0, Q4_K, Q6_K).

A float32 copy of SmolLM2-135M's weights is 540 MB; its Q4_1 file is 98 MB, and
decoding one token reads every weight once, so keeping the blocks is what makes
decoding fast (5.6x fewer bytes) and bigger models fit. The numbers do not change:
every weight is unpacked to exactly the float32 value the dequantizing loader gives
(llmtui/engine/kernels/blocks.py), then multiplied by float32 activations.

- A few rows at a time (decoding: one token): the C++ matrix-vector kernel, which
  unpacks in registers and never writes the float32 matrix.
- More rows (a prompt, a capture): the matrix is unpacked in slices into a small
  scratch buffer and multiplied there by BLAS, which is what a matrix of many rows wants.
- Without the C++ kernels (no compiler, still building, LLMTUI_KERNELS=torch): the
  same slices, unpacked by plain torch.

The packed bytes are plain attributes, not buffers: nothing saves them or moves them
to a GPU (on a GPU the loader dequantizes as before).
"""

from __future__ import annotations

import threading

import torch
from torch import Tensor, nn

from llmtui.engine.kernels import blocks
from llmtui.engine.kernels.native import KERNELS

GEMV_MAX_ROWS = 8  # packed.cpp's MAX_ROWS: up to this many input rows go through the matrix-vector kernel
SCRATCH_FLOATS = 1 << 21  # 8 MB: the largest slice of a matrix unpacked at once for BLAS

_scratch = threading.local()  # one scratch buffer per thread (the model thread, tests' threads)


def _scratch_rows(rows: int, columns: int) -> Tensor:
    # One buffer per inference mode: a tensor made under torch.inference_mode() can't be
    # written in place outside it (the fallback's copy_ raised), so each mode keeps its own.
    key = "inference" if torch.is_inference_mode_enabled() else "normal"
    buf = getattr(_scratch, key, None)
    if buf is None or buf.numel() < rows * columns:
        buf = torch.empty(max(rows * columns, SCRATCH_FLOATS), dtype=torch.float32)
        setattr(_scratch, key, buf)
    return buf[: rows * columns].view(rows, columns)


class PackedMatrix:
    """Rows of one GGML block type: `data` is (rows, bytes per row) uint8."""

    def __init__(self, qtype: int, data: Tensor, columns: int) -> None:
        if qtype not in blocks.PACKED_TYPES:
            raise ValueError(f"GGML type {qtype} is not kept packed")
        if columns % blocks.BLOCK_SIZES[qtype] or data.shape[1] != blocks.row_bytes(qtype, columns):
            raise ValueError(f"{data.shape[1]} bytes per row don't hold {columns} weights of type {qtype}")
        self.qtype, self.data, self.columns = qtype, data.contiguous(), columns

    @property
    def rows(self) -> int:
        return self.data.shape[0]

    def unpack(self, start: int, stop: int, out: Tensor) -> Tensor:
        """Rows start..stop as float32 into out (stop - start, columns)."""
        lib = KERNELS.lib
        if lib is None:
            return out.copy_(blocks.unpack_rows(self.qtype, self.data[start:stop], self.columns))
        rc = lib.llmtui_dequantize(
            self.qtype, self.data[start].data_ptr(), self.columns, None, stop - start, out.data_ptr()
        )
        assert rc == 0, rc
        return out

    def gather(self, ids: Tensor) -> Tensor:
        """The rows named by ids (n,) as float32 (n, columns): an embedding lookup."""
        lib = KERNELS.lib
        if lib is None:
            return blocks.unpack_rows(self.qtype, self.data[ids], self.columns)
        ids = ids.to(torch.int64).contiguous()
        out = torch.empty(ids.numel(), self.columns, dtype=torch.float32)
        rc = lib.llmtui_dequantize(self.qtype, self.data.data_ptr(), self.columns, ids.data_ptr(), ids.numel(),
                                   out.data_ptr())
        assert rc == 0, rc
        return out


class PackedWeight(nn.Module):
    """A (out_features, in_features) weight kept packed: one or more stacked `PackedMatrix` parts.

    Parts let a stacked matrix (q, k and v; gate and up) mix block types, as Q4_K_M
    files do (v and down often in Q6_K, the rest in Q4_K); rows of one type are best one
    part (one kernel call).
    """

    def __init__(self, parts: list[PackedMatrix]) -> None:
        super().__init__()
        if not parts or len({p.columns for p in parts}) != 1:
            raise ValueError("a packed weight needs parts with the same number of columns")
        self.parts = parts
        self.in_features = parts[0].columns
        self.out_features = sum(p.rows for p in parts)
        KERNELS.start()  # build (or load) the C++ kernels in the background; torch runs meanwhile

    @property
    def packed_numel(self) -> int:
        """Weights held packed (for parameter counts: they are not nn.Parameters)."""
        return self.out_features * self.in_features

    @property
    def packed_nbytes(self) -> int:
        return sum(p.data.numel() for p in self.parts)

    @property
    def weight(self) -> Tensor:
        """The whole matrix as float32 (out, in): built on demand, for code that reads `.weight`."""
        out = torch.empty(self.out_features, self.in_features, dtype=torch.float32)
        row = 0
        for part in self.parts:
            part.unpack(0, part.rows, out[row : row + part.rows])
            row += part.rows
        return out

    def linear(self, x: Tensor) -> Tensor:
        """x (..., in) @ weight.T, with weight never unpacked whole."""
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features).to(torch.float32).contiguous()
        m = x2.shape[0]
        out = torch.empty(m, self.out_features, dtype=torch.float32)
        lib = KERNELS.lib
        row = 0
        for part in self.parts:
            if lib is not None and m <= GEMV_MAX_ROWS:
                rc = lib.llmtui_gemv(part.qtype, x2.data_ptr(), m, self.in_features, part.data.data_ptr(), part.rows,
                                     out.data_ptr() + 4 * row, self.out_features)
                assert rc == 0, rc
            else:
                step = max(1, SCRATCH_FLOATS // self.in_features)
                for start in range(0, part.rows, step):
                    stop = min(start + step, part.rows)
                    w = part.unpack(start, stop, _scratch_rows(stop - start, self.in_features))
                    if stop - start == self.out_features and not (x2.requires_grad and torch.is_grad_enabled()):
                        torch.mm(x2, w.T, out=out)  # the whole matrix in one slice: BLAS writes out itself, no
                        # product copied into out afterwards (out= takes no gradient, hence the check)
                    else:
                        out[:, row + start : row + stop] = x2 @ w.T
            row += part.rows
        return out.reshape(*lead, self.out_features)


class PackedLinear(PackedWeight):
    """nn.Linear's interface (forward, in/out_features, bias, weight) over packed weights."""

    def __init__(self, parts: list[PackedMatrix], bias: Tensor | None = None) -> None:
        super().__init__(parts)
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        y = self.linear(x)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        types = "+".join(str(p.qtype) for p in self.parts)
        return f"in_features={self.in_features}, out_features={self.out_features}, ggml_type={types}"


class PackedEmbedding(PackedWeight):
    """nn.Embedding's interface (forward(ids), weight) over packed rows; `linear` serves a tied unembedding."""

    def __init__(self, part: PackedMatrix) -> None:
        super().__init__([part])
        self.num_embeddings, self.embedding_dim = self.out_features, self.in_features

    def forward(self, ids: Tensor) -> Tensor:
        return self.parts[0].gather(ids.reshape(-1)).reshape(*ids.shape, self.embedding_dim)
