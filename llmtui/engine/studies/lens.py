"""The logit lens: what the model would predict next if it stopped after each layer.

The residual stream after a layer is read the way the last one is: through the final
norm and the unembedding, then a softmax. One forward pass (with capture) gives the
residuals of every layer at every position; they are stacked to (L+1, T, D) and
projected to the vocabulary in batched matrix products, a chunk of cells at a time,
so that a long prompt never holds all (L+1) x T x V probabilities at once: each
chunk leaves only its top-k per cell and the rank and probability of the token the
final layer predicts.

The last row is the model's own output (its logits), so it equals the model's
prediction by construction.

    lens = LogitLens(lm, lm.encode("The capital of France is"))
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

if TYPE_CHECKING:
    from llmtui.engine.lm import LanguageModel

TOP_K = 10
"""Predictions kept per cell."""
CHUNK_CELLS = 128
"""Cells projected to the vocabulary in one matrix product: 128 x 49,152 floats = 25 MB for SmolLM2, small
enough that the passes over the logits that follow (top-k, rank, exp) find them in the CPU's cache."""
BLOCK_POSITIONS = 64
"""Positions per block when a caller wants the grid in pieces (a long prompt fills in as it goes)."""


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
        out = lm.run(list(ids), capture={"resid_post", "attn_out", "mlp_out"})  # raises ValueError for an empty or too-long prompt
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
            # The final row is the model's real output: its logits, not a recomputation.
            final = out.logits[0].float()  # (T, V)
            self.answer_ids = final.argmax(dim=-1)  # (T,)
            self._final = self._read(final, self.answer_ids)

    @property
    def n_rows(self) -> int:
        return self.residuals.shape[0]

    @property
    def n_positions(self) -> int:
        return len(self.ids)

    def empty_grid(self) -> LensGrid:
        """A grid with the contributions and final predictions known, no cell computed yet."""
        return LensGrid(self.ids, self.n_rows, self.top_k, self.answer_ids, self.attn_share, self.mlp_share)

    def _read(self, logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """From logits (N, V) and a target per row (N,): top-k ids and probabilities, the target's rank and probability.

        The softmax is never materialised: probabilities are exp(logit - logsumexp), and
        the logsumexp is taken last, in place, once the logits have been read.
        """
        top_logits, top_ids = logits.topk(self.top_k, dim=-1)  # (N, K)
        target_logits = logits.gather(-1, targets[:, None])  # (N, 1)
        ranks = (logits > target_logits).sum(dim=-1, dtype=torch.int32)  # (N,): how many tokens beat the target
        peak = top_logits[:, :1]  # (N, 1): the max, for a stable exp
        lse = peak + logits.sub_(peak).exp_().sum(dim=-1, keepdim=True).log()  # (N, 1); logits overwritten
        if not torch.isfinite(lse).all():  # a NaN or +inf logit makes it NaN: a grid of "nan%" would say nothing
            raise ModelOutputError()
        top_probs = (top_logits - lse).exp()
        target_probs = (target_logits - lse).exp()[:, 0]
        return top_ids.cpu(), top_probs.float().cpu(), ranks.cpu(), target_probs.float().cpu()

    @torch.inference_mode()
    def block(self, start: int, stop: int) -> LensBlock:
        """Positions start..stop-1 at every row, projected in chunks of about CHUNK_CELLS cells."""
        model, device = self.lm.model, self.lm.device
        n_hidden = self.n_rows - 1  # rows read through the lens; the last one is the model's output
        n = stop - start
        x = self.residuals[:n_hidden, start:stop].reshape(n_hidden * n, -1)  # (cells, D), row-major by layer
        targets = self.answer_ids[start:stop].repeat(n_hidden)  # (cells,): each cell's final prediction
        parts: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
        for s in range(0, x.shape[0], CHUNK_CELLS):
            chunk = x[s : s + CHUNK_CELLS].to(device=device, dtype=model.unembedding.dtype)
            logits = model.unembed(chunk).float()  # (chunk, V): final norm + unembedding, one matrix product
            parts.append(self._read(logits, targets[s : s + CHUNK_CELLS].to(device)))
        K = self.top_k

        def rows(i: int, tail: tuple[int, ...]) -> Tensor:
            hidden = torch.cat([p[i] for p in parts]).reshape(n_hidden, n, *tail) if parts else None
            final = self._final[i][start:stop].reshape(1, n, *tail)
            return final if hidden is None else torch.cat([hidden, final])

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


def logit_lens(lm: LanguageModel, ids: Sequence[int], top_k: int = TOP_K) -> LensGrid:
    """The logit lens of a text: one forward pass, every layer read at every position."""
    return LogitLens(lm, ids, top_k).run()
