"""The logit lens: what the model would predict next if it stopped after each layer.

The residual stream after a layer is read the way the last one is: through the final
norm and the unembedding, then a softmax. One forward pass (with capture, and no logits)
gives the residuals of every layer at every position, stacked to (L+1, T, D). A block of
positions is read in one batched product: the unembedding is walked once per block, a
slice of its rows at a time (a packed one is unpacked slice by slice into one small
buffer, never whole), and every cell of the block is multiplied by each slice. Each
slice leaves only a running top-k per cell, a running log-sum-exp and a count of the
tokens that beat the final prediction: no cell ever holds its V logits at once.

The last row is the model's own output: the final norm and unembedding of the last
residual, the very computation of its logits, and the final prediction is its top token.

    lens = LogitLens(lm, lm.prompt_ids("The capital of France is"))
    grid = lens.run()
    grid.top_ids[-1, -1, 0]         # the model's next token: " Paris"
    grid.answer_layer(4)            # the first layer from which " Paris" stays on top
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import torch
from torch import Tensor

from llmtui.engine.errors import ModelOutputError
from llmtui.engine.model.packed import PackedWeight

if TYPE_CHECKING:
    from llmtui.engine.lm import LanguageModel
    from llmtui.engine.model.transformer import Transformer

TOP_K = 10
"""Predictions kept per cell."""
SLICE_LOGITS = 1 << 21
"""Logits computed at once (cells x unembedding rows): 8 MB, small enough that the passes over them that
follow (top-k, rank, exp) find them in the CPU's cache."""
SLICE_WEIGHTS = 1 << 21
"""Unembedding weights unpacked at once (8 MB of float32): a slice has at most this many, whatever the cells."""
BLOCK_POSITIONS = 16
"""Positions per block when a caller wants the grid in pieces: about the columns a 160-wide Layers pane
draws, so the drawn block (the selected column's) lands after a quarter of a 64-token grid's work."""


@dataclass(frozen=True)
class LensBlock:
    """The lens at every layer for positions start .. start+n-1 (rows: embeddings, then each layer)."""

    start: int
    top_ids: Tensor  # (L+1, n, K) int64: most probable first
    top_probs: Tensor  # (L+1, n, K) float32
    answer_ranks: Tensor  # (L+1, n) int32: rank of the final prediction (0 = top)
    answer_probs: Tensor  # (L+1, n) float32: its probability

    @property
    def stop(self) -> int:
        return self.start + self.top_ids.shape[1]


@dataclass(frozen=True)
class Contribution:
    """How much one layer's two blocks changed a token's vector."""

    attention: float  # |attention output| / |residual entering the layer|
    mlp: float  # |MLP output| / |residual entering the MLP (after attention)|


class LensGrid:
    """The logit lens of one text: a row per layer (embeddings first), a column per position.

    Filled block by block (`add`); `computed` says which positions are in. Cells not
    computed yet hold token id -1 and probability 0.
    """

    def __init__(
        self,
        ids: Sequence[int],
        n_rows: int,
        top_k: int,
        answer_ids: Tensor,
        attn_share: Tensor,
        mlp_share: Tensor,
    ) -> None:
        T = len(ids)
        self.ids: tuple[int, ...] = tuple(ids)
        self.n_rows = n_rows  # n_layer + 1
        self.top_ids = torch.full((n_rows, T, top_k), -1, dtype=torch.long)
        self.top_probs = torch.zeros((n_rows, T, top_k))
        self.answer_ids = answer_ids  # (T,) what the final layer predicts at each position (its argmax)
        self.answer_ranks = torch.full((n_rows, T), -1, dtype=torch.long)
        self.answer_probs = torch.zeros((n_rows, T))
        self.attn_share = attn_share  # (L, T)
        self.mlp_share = mlp_share  # (L, T)
        self.computed = torch.zeros(T, dtype=torch.bool)

    @property
    def n_positions(self) -> int:
        return len(self.ids)

    @property
    def n_layers(self) -> int:
        return self.n_rows - 1

    @property
    def complete(self) -> bool:
        return bool(self.computed.all())

    def add(self, block: LensBlock) -> None:
        """Copy a computed block of positions in."""
        cols = slice(block.start, block.stop)
        self.top_ids[:, cols] = block.top_ids
        self.top_probs[:, cols] = block.top_probs
        self.answer_ranks[:, cols] = block.answer_ranks
        self.answer_probs[:, cols] = block.answer_probs
        self.computed[cols] = True

    def top(self, row: int, position: int, k: int | None = None) -> list[tuple[int, float]]:
        """(token id, probability) of the k most probable next tokens at a cell, best first."""
        ids = self.top_ids[row, position, :k].tolist()
        probs = self.top_probs[row, position, :k].tolist()
        return [(i, p) for i, p in zip(ids, probs) if i >= 0]

    def prediction(self, row: int, position: int) -> tuple[int, float] | None:
        """The cell's most probable next token and its probability; None while not computed."""
        if not self.computed[position]:
            return None
        return int(self.top_ids[row, position, 0]), float(self.top_probs[row, position, 0])

    def answer_track(self, position: int) -> list[tuple[int, float]]:
        """(rank, probability) at every row of the token the final layer predicts at `position`."""
        return list(zip(self.answer_ranks[:, position].tolist(), self.answer_probs[:, position].tolist()))

    def answer_layer(self, position: int) -> int | None:
        """The first row from which the final prediction is the top one at every later row (None: not computed)."""
        if not self.computed[position]:
            return None
        ranks = self.answer_ranks[:, position].tolist()
        row = len(ranks) - 1
        while row > 0 and ranks[row - 1] == 0:
            row -= 1
        return row

    def contribution(self, layer: int, position: int) -> Contribution:
        """What layer `layer` (1-based, as the rows) added to the vector at `position`."""
        return Contribution(float(self.attn_share[layer - 1, position]), float(self.mlp_share[layer - 1, position]))


def _ratio(change: Tensor, base: Tensor) -> Tensor:
    """|change| / |base| per position, both (T, D); a zero base gives 0 rather than inf."""
    base_norm = base.norm(dim=-1)
    return torch.where(base_norm > 0, change.norm(dim=-1) / base_norm.clamp_min(1e-12), torch.zeros_like(base_norm))


class LogitLens:
    """One forward pass of a text, ready to be read through the lens block by block.

    Construction runs the model (with capture) and keeps only what the lens needs: the
    residual stream stacked (L+1, T, D), the block contributions, and the final row
    (from the model's own logits). `block()` projects a range of positions; `run()`
    does them all.
    """

    def __init__(self, lm: LanguageModel, ids: Sequence[int], top_k: int = TOP_K) -> None:
        self.lm = lm
        self.ids = tuple(ids)
        self.top_k = min(top_k, lm.config.vocab_size)
        # no logits: the final row is read below with the others (raises ValueError for an empty or too-long prompt)
        out = lm.run(list(ids), capture={"resid_post", "attn_out", "mlp_out"}, logits=False)
        with torch.inference_mode():
            self.residuals = torch.cat(out.residuals, dim=0).float()  # (L+1, T, D)
            L = len(out.attn_outputs)
            attn_share, mlp_share = [], []
            for layer in range(L):
                before = out.residuals[layer][0]  # (T, D): entering the layer
                a, m = out.attn_outputs[layer][0], out.mlp_outputs[layer][0]
                attn_share.append(_ratio(a, before))
                mlp_share.append(_ratio(m, before + a))
            self.attn_share = torch.stack(attn_share) if L else torch.zeros(0, len(ids))  # (L, T)
            self.mlp_share = torch.stack(mlp_share) if L else torch.zeros(0, len(ids))
            # The final row is the model's output (final norm + unembedding of the last residual); its top
            # token is the model's prediction, the target whose rank every other row reports.
            self._final = self._read(self.residuals[-1], None)
            self.answer_ids = self._final[0][:, 0].clone()  # (T,)

    @property
    def n_rows(self) -> int:
        return self.residuals.shape[0]

    @property
    def n_positions(self) -> int:
        return len(self.ids)

    def empty_grid(self) -> LensGrid:
        """A grid with the contributions and final predictions known, no cell computed yet."""
        return LensGrid(self.ids, self.n_rows, self.top_k, self.answer_ids, self.attn_share, self.mlp_share)

    def _read(self, x: Tensor, targets: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Residual vectors x (N, D) read through the lens: top-k ids and probabilities, and the rank and
        probability of a target token per row (N,) (no targets: the top token is the target, rank 0)."""
        model = self.lm.model
        cells = model.final_norm(x.to(device=self.lm.device, dtype=model.final_norm.weight.dtype)).float()
        return read_unembedding(model, cells, self.top_k, None if targets is None else targets.to(cells.device))

    @torch.inference_mode()
    def block(self, start: int, stop: int) -> LensBlock:
        """Positions start..stop-1 at every row: every hidden cell of the block in one batched product."""
        n_hidden = self.n_rows - 1  # rows read through the lens; the last one is the model's output
        n = stop - start
        x = self.residuals[:n_hidden, start:stop].reshape(n_hidden * n, -1)  # (cells, D), row-major by layer
        targets = self.answer_ids[start:stop].repeat(n_hidden)  # (cells,): each cell's final prediction
        hidden = self._read(x, targets) if n_hidden else None
        K = self.top_k

        def rows(i: int, tail: tuple[int, ...]) -> Tensor:
            final = self._final[i][start:stop].reshape(1, n, *tail)
            return final if hidden is None else torch.cat([hidden[i].reshape(n_hidden, n, *tail), final])

        return LensBlock(start, rows(0, (K,)), rows(1, (K,)), rows(2, ()), rows(3, ()))

    def block_ranges(self, first: int | None = None, size: int | None = None) -> list[tuple[int, int]]:
        """(start, stop) of every block of `size` positions (default BLOCK_POSITIONS), the one holding
        position `first` first (a UI shows the selected column soonest), then the others in order."""
        size = size or BLOCK_POSITIONS
        ranges = [(s, min(s + size, self.n_positions)) for s in range(0, self.n_positions, size)]
        if first is not None and 0 <= first < self.n_positions:
            ranges.insert(0, ranges.pop(first // size))
        return ranges

    def blocks(self, first: int | None = None, size: int | None = None) -> Iterator[LensBlock]:
        """Every block of positions, computed as it is asked for (see `block_ranges` for the order)."""
        for start, stop in self.block_ranges(first, size):
            yield self.block(start, stop)

    def run(self, progress: Callable[[int, int], None] | None = None) -> LensGrid:
        """The whole grid. progress(done, total) is called after each block of positions."""
        grid = self.empty_grid()
        for block in self.blocks():
            grid.add(block)
            if progress:
                progress(int(grid.computed.sum()), self.n_positions)
        return grid


def unembedding_slices(model: Transformer, rows: int) -> Iterator[tuple[int, Tensor]]:
    """(first row, float32 rows (<= rows, D)) of the model's unembedding, in order. A packed one is
    unpacked slice by slice into one buffer (each slice is valid until the next is asked for)."""
    head = model.tok_emb if model.lm_head is None else model.lm_head
    if not isinstance(head, PackedWeight):
        weight = model.unembedding
        for first in range(0, weight.shape[0], rows):
            yield first, weight[first : first + rows]
        return
    buffer = torch.empty(rows, head.in_features, dtype=torch.float32)
    offset = 0
    for part in head.parts:
        for first in range(0, part.rows, rows):
            last = min(first + rows, part.rows)
            yield offset + first, part.unpack(first, last, buffer[: last - first])
        offset += part.rows


def read_unembedding(
    model: Transformer, cells: Tensor, top_k: int, targets: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Normed vectors cells (N, D) through the unembedding, slice by slice: (top-k ids (N, K), their
    probabilities, the target's rank (N,) int32 and probability). targets None: the top token, rank 0.

    Ranks count the tokens whose logit beats the target's, taken from the target's own row of the
    unembedding before the walk; the target's probability uses its logit from the walk.
    """
    N = cells.shape[0]
    cap = model.config.final_softcap
    D = cells.shape[1]
    step = max(1, min(SLICE_LOGITS // max(N, 1), SLICE_WEIGHTS // D))  # unembedding rows per slice
    top_logits = cells.new_full((N, 0), float("-inf"))
    top_ids = torch.zeros((N, 0), dtype=torch.long, device=cells.device)
    peak = cells.new_full((N, 1), float("-inf"))  # running max and sum of exp(logit - max): the log-sum-exp
    total = cells.new_zeros((N, 1))
    ranks = torch.zeros(N, dtype=torch.int32, device=cells.device)
    target_logits = cells.new_zeros(N)
    threshold = None
    if targets is not None:
        threshold = _logits(cells, _rows(model, targets), cap, rowwise=True)[:, None]  # (N, 1)
    for first, weight in unembedding_slices(model, step):
        logits = _logits(cells, weight, cap)  # (N, S)
        S = logits.shape[1]
        slice_max = logits.amax(dim=-1, keepdim=True)  # (N, 1)
        if top_logits.shape[1] < top_k:  # the running top-k still filling: every cell merges this slice
            values, ids = logits.topk(min(top_k, S), dim=-1)
            top_logits, keep = torch.cat([top_logits, values], dim=1).topk(min(top_k, top_logits.shape[1] + S), dim=1)
            top_ids = torch.cat([top_ids, ids + first], dim=1).gather(1, keep)
        else:
            # Only cells where this slice beats their k-th best can change their top-k: a max pass over the
            # slice costs a fraction of a top-k pass, and after the first slices most cells have none.
            rows = (slice_max[:, 0] > top_logits[:, -1]).nonzero(as_tuple=True)[0]
            if rows.numel():
                values, ids = logits[rows].topk(min(top_k, S), dim=-1)
                merged, keep = torch.cat([top_logits[rows], values], dim=1).topk(top_k, dim=1)
                top_logits[rows] = merged
                top_ids[rows] = torch.cat([top_ids[rows], ids + first], dim=1).gather(1, keep)
        if targets is not None:
            here = (targets >= first) & (targets < first + S)  # cells whose target is in this slice
            own = logits[here, targets[here] - first]
            target_logits[here] = own
            ranks += (logits > threshold).sum(dim=-1, dtype=torch.int32)
            ranks[here] -= (own > threshold[here, 0]).int()  # never the target itself
        new_peak = torch.maximum(peak, slice_max)
        total = total * (peak - new_peak).exp() + logits.sub_(new_peak).exp_().sum(dim=-1, keepdim=True)
        peak = new_peak
    lse = peak + total.log()  # (N, 1)
    if not torch.isfinite(lse).all():  # a NaN or +inf logit makes it NaN: a grid of "nan%" would say nothing
        raise ModelOutputError()
    if targets is None:
        target_logits = top_logits[:, 0]
    top_probs = (top_logits - lse).exp()
    target_probs = (target_logits[:, None] - lse).exp()[:, 0]
    return top_ids.cpu(), top_probs.float().cpu(), ranks.cpu(), target_probs.float().cpu()


def _logits(cells: Tensor, weight: Tensor, cap: float | None, rowwise: bool = False) -> Tensor:
    """cells (N, D) times unembedding rows weight (S, D): (N, S) logits, or with rowwise (N,): cell i by row i."""
    weight = weight.to(cells.dtype)  # float32 cells; a half-precision model's rows are widened (a no-op for float32)
    logits = (cells * weight).sum(-1) if rowwise else cells @ weight.T
    return torch.tanh(logits / cap) * cap if cap else logits


def _rows(model: Transformer, ids: Tensor) -> Tensor:
    """Rows ids (N,) of the unembedding as float32 (N, D); packed rows are unpacked one by one."""
    head = model.tok_emb if model.lm_head is None else model.lm_head
    if not isinstance(head, PackedWeight):
        return model.unembedding[ids].float()
    out = torch.empty(ids.numel(), head.in_features, dtype=torch.float32)
    offset = 0
    for part in head.parts:
        mine = (ids >= offset) & (ids < offset + part.rows)
        if mine.any():
            out[mine] = part.gather(ids[mine] - offset)
        offset += part.rows
    return out


def logit_lens(lm: LanguageModel, ids: Sequence[int], top_k: int = TOP_K) -> LensGrid:
    """The logit lens of a text: one forward pass, every layer read at every position."""
    return LogitLens(lm, ids, top_k).run()
