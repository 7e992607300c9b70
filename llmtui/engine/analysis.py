"""Reading meaning off a model's matrices: nearest neighbours in embedding space."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from llmtui.engine.lm import LanguageModel


@dataclass(frozen=True)
class Neighbour:
    id: int
    text: str
    similarity: float  # cosine similarity, -1..1


class EmbeddingIndex:
    """The embedding matrix normalised once, so a neighbour query is one matrix-vector product."""

    def __init__(self, embeddings: Tensor) -> None:
        self.unit = torch.nn.functional.normalize(embeddings.detach().float(), dim=-1)  # (V, D), rows of length 1

    def vector(self, token_id: int) -> Tensor:
        return self.unit[token_id]

    def nearest(self, query: Tensor, k: int, exclude: set[int] | frozenset[int] = frozenset()) -> list[tuple[int, float]]:
        """The k rows most cosine-similar to query (D,), best first, skipping `exclude`."""
        sims = self.unit @ torch.nn.functional.normalize(query.float().to(self.unit.device), dim=-1)  # (V,)
        values, ids = torch.topk(sims, min(k + len(exclude), sims.numel()))
        pairs = [(int(i), float(v)) for i, v in zip(ids, values) if int(i) not in exclude]
        return pairs[:k]


def neighbours(lm: LanguageModel, index: EmbeddingIndex, token_id: int, k: int = 20) -> list[Neighbour]:
    """The k tokens whose embeddings are closest to token_id's, itself left out."""
    pairs = index.nearest(index.vector(token_id), k, exclude={token_id})
    return [Neighbour(i, lm.tokenizer.token_text(i), s) for i, s in pairs]
