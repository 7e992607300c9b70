"""Reading meaning off a model's matrices: neighbours, vector arithmetic, PCA maps, vectors in context.

Every token id picks a row of the embedding matrix. `EmbeddingIndex` normalises those
rows once, so a neighbour query is one matrix-vector product; cosine similarity is
then a plain dot product. A query is typed as text and parsed here:

    >>> [t.source for t in _lex("king - man + woman")]
    ['king', '-', 'man', '+', 'woman']

A bare word is looked up with a leading space by default (" king", as a word appears
inside a sentence, where BPE keeps the space with it); `"king"` in double quotes is
the exact text, and `#4197` names a token by id.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor

from llmtui.engine.errors import ModelOutputError

if TYPE_CHECKING:
    from llmtui.engine.lm import LanguageModel
    from llmtui.engine.tokenizer.tokenizer import Tokenizer


@dataclass(frozen=True)
class Neighbour:
    id: int
    text: str
    similarity: float  # cosine similarity, -1..1


class EmbeddingIndex:
    """The embedding matrix normalised once, so a neighbour query is one matrix-vector product."""

    def __init__(self, embeddings: Tensor) -> None:
        self.unit = torch.nn.functional.normalize(embeddings.detach().float(), dim=-1)  # (V, D), rows of length 1

    @classmethod
    def of(cls, lm: LanguageModel) -> EmbeddingIndex:
        """The index of a model's token embeddings (its input matrix)."""
        return cls(lm.model.tok_emb.weight)

    @property
    def vocab_size(self) -> int:
        return self.unit.shape[0]

    def vector(self, token_id: int) -> Tensor:
        return self.unit[token_id]

    def similarities(self, query: Tensor) -> Tensor:
        """Cosine similarity of query (D,) with every token, (V,)."""
        return self.unit @ torch.nn.functional.normalize(query.float().to(self.unit.device), dim=-1)

    def nearest(
        self, query: Tensor, k: int, exclude: set[int] | frozenset[int] = frozenset()
    ) -> list[tuple[int, float]]:
        """The k rows most cosine-similar to query (D,), best first, skipping `exclude`."""
        sims = self.similarities(query)
        values, ids = torch.topk(sims, min(k + len(exclude), sims.numel()))
        pairs = [(int(i), float(v)) for i, v in zip(ids, values) if int(i) not in exclude]
        return pairs[:k]


def neighbours(lm: LanguageModel, index: EmbeddingIndex, token_id: int, k: int = 20) -> list[Neighbour]:
    """The k tokens whose embeddings are closest to token_id's, itself left out."""
    pairs = index.nearest(index.vector(token_id), k, exclude={token_id})
    return [Neighbour(i, lm.tokenizer.token_text(i), s) for i, s in pairs]


def nearest_tokens(
    tokenizer: Tokenizer, index: EmbeddingIndex, query: Tensor, k: int, exclude: frozenset[int] = frozenset()
) -> list[Neighbour]:
    """The k tokens nearest a vector (D,), best first, as records."""
    return [Neighbour(i, tokenizer.token_text(i), s) for i, s in index.nearest(query, k, exclude)]


# --- queries: a word, an expression, a list ------------------------------------------------------

MAX_TERMS = 60
"""A map of more words than this would be unreadable on a terminal."""

TermKind = Literal["word", "exact", "id"]
QueryKind = Literal["word", "expression", "list"]


class QueryError(ValueError):
    """A query that cannot be read; the message says what is wrong and how to write it."""

    def __init__(self, message: str, start: int = 0, end: int = 0) -> None:
        super().__init__(message)
        self.start, self.end = start, end  # where in the typed text (characters)


@dataclass(frozen=True)
class _Lexeme:
    kind: Literal["word", "exact", "id", "+", "-"]
    source: str  # as typed, quotes included
    value: str  # the word, the text between the quotes, or the id's digits
    start: int
    end: int


_MINUS = "-−–"  # ASCII hyphen-minus, the minus sign and an en dash (pasted from a document)
_SIGNS = "+" + _MINUS
_ID = re.compile(r"#\d+")


def _lex(text: str) -> list[_Lexeme]:
    """Split a query into words, "exact text", #ids and signs; QueryError for an unclosed quote."""
    out: list[_Lexeme] = []
    pos = 0
    while pos < len(text):
        ch = text[pos]
        if ch.isspace():
            pos += 1
        elif ch in _SIGNS:
            sign = "+" if ch == "+" else "-"
            out.append(_Lexeme(sign, ch, sign, pos, pos + 1))  # type: ignore[arg-type]
            pos += 1
        elif ch == '"':
            close = text.find('"', pos + 1)
            if close < 0:
                raise QueryError(f'the quote at character {pos + 1} is not closed: write "text"', pos, len(text))
            out.append(_Lexeme("exact", text[pos : close + 1], text[pos + 1 : close], pos, close + 1))
            pos = close + 1
        else:
            end = pos
            while end < len(text) and not text[end].isspace() and text[end] not in _SIGNS + '"':
                end += 1
            source = text[pos:end]
            kind = "id" if _ID.fullmatch(source) else "word"
            out.append(_Lexeme(kind, source, source.lstrip("#") if kind == "id" else source, pos, end))  # type: ignore[arg-type]
            pos = end
    return out


@dataclass(frozen=True)
class Term:
    """One thing the user named: the text looked up, its tokens, and (for a bare word) the other spacing."""

    sign: int  # +1, or -1 after a minus
    source: str  # as typed
    kind: TermKind
    text: str  # the text that was encoded (a bare word with its leading space when that is on)
    ids: tuple[int, ...]
    alt_text: str | None = None  # a bare word: the same word with the other spacing
    alt_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Query:
    """A parsed query: one word (its neighbours), an expression (king - man + woman) or a list (a map)."""

    kind: QueryKind
    terms: tuple[Term, ...]
    leading_space: bool

    @property
    def input_ids(self) -> frozenset[int]:
        """Every token the query names: left out of the neighbours when the user asks."""
        return frozenset(i for t in self.terms for i in t.ids)


EMPTY_QUERY = "Type a word (dog), an expression (king - man + woman) or several words for a map (cat dog banana)."


def parse_query(text: str, tokenizer: Tokenizer, leading_space: bool = True, max_terms: int = MAX_TERMS) -> Query:
    """A query from what the user typed, or QueryError saying what is wrong.

    Words separated by spaces are a list; `+` and `-` make an expression. Each bare
    word is encoded with a leading space when `leading_space` (" king"), as typed
    otherwise; `"text"` is encoded exactly; `#id` is one token by its id.
    """
    lexemes = _lex(text)
    if not lexemes:
        raise QueryError("The query is empty. " + EMPTY_QUERY)
    signed = any(x.kind in ("+", "-") for x in lexemes)
    terms: list[Term] = []
    sign: _Lexeme | None = None
    for i, x in enumerate(lexemes):
        if x.kind in ("+", "-"):
            if sign is not None:
                raise QueryError(
                    f"two signs in a row ('{sign.source} {x.source}'): put a word between them, "
                    "as in king - man + woman",
                    sign.start,
                    x.end,
                )
            sign = x
            continue
        if signed and terms and sign is None:
            prev = lexemes[i - 1]
            raise QueryError(
                f"'{prev.source} {x.source}' needs + or - between the words of an expression "
                "(or leave the signs out to map a list of words)",
                prev.start,
                x.end,
            )
        terms.append(_term(x, -1 if sign is not None and sign.kind == "-" else 1, tokenizer, leading_space))
        sign = None
    if sign is not None:
        where = "on its own" if not terms else "at the end"
        raise QueryError(
            f"'{sign.source}' {where} needs a word after it, as in king - man + woman", sign.start, sign.end
        )
    if len(terms) > max_terms:
        raise QueryError(f"{len(terms)} words: a map holds at most {max_terms}", 0, len(text))
    if signed:
        return Query("expression", tuple(terms), leading_space)
    seen: dict[tuple[int, ...], Term] = {}
    for t in terms:  # the same token twice is one point
        seen.setdefault(t.ids, t)
    unique = tuple(seen.values())
    return Query("word" if len(unique) == 1 else "list", unique, leading_space)


def _term(x: _Lexeme, sign: int, tokenizer: Tokenizer, leading_space: bool) -> Term:
    if x.kind == "id":
        token_id = int(x.value)
        if not 0 <= token_id < tokenizer.vocab_size:
            raise QueryError(
                f"there is no token {x.source}: ids run from 0 to {tokenizer.vocab_size - 1}", x.start, x.end
            )
        return Term(sign, x.source, "id", tokenizer.token_text(token_id), (token_id,))
    if x.kind == "exact":
        if not x.value:
            raise QueryError('empty quotes: put the exact text of a token between them, as in " dog"', x.start, x.end)
        ids = tuple(tokenizer.encode(x.value))
        if not ids:
            raise QueryError(f"{x.source} gives no tokens (its characters are not in the vocabulary)", x.start, x.end)
        return Term(sign, x.source, "exact", x.value, ids)
    text, alt = (" " + x.value, x.value) if leading_space else (x.value, " " + x.value)
    ids = tuple(tokenizer.encode(text))
    if not ids:
        raise QueryError(f"'{x.source}' gives no tokens (its characters are not in the vocabulary)", x.start, x.end)
    return Term(sign, x.source, "word", text, ids, alt, tuple(tokenizer.encode(alt)))


def token_query_text(tokenizer: Tokenizer, token_id: int, leading_space: bool = True) -> str:
    """What to type to get exactly this token back from `parse_query`: a word, "exact text" or #id.

    On the default model, with leading spaces on: 2767 (" dog") -> 'dog', 22676 ("dog") -> '"dog"'.
    """
    text = tokenizer.token_text(token_id)
    candidates = []
    if not text.isprintable() or text.isspace():  # control characters, newlines: not something to type
        return f"#{token_id}"
    word = text[1:] if leading_space and text.startswith(" ") else (text if not leading_space else None)
    if word:
        candidates.append(word)
    if '"' not in text:
        candidates.append(f'"{text}"')
    for candidate in candidates:
        try:
            query = parse_query(candidate, tokenizer, leading_space)
        except QueryError:
            continue
        if query.kind == "word" and query.terms[0].ids == (token_id,):
            return candidate
    return f"#{token_id}"


# --- vectors of queries --------------------------------------------------------------------------


def term_vector(index: EmbeddingIndex, ids: Sequence[int]) -> Tensor:
    """The unit vector of a term: its token's row, or the normalised mean of its tokens' rows."""
    rows = index.unit[list(ids)]  # (n, D)
    return torch.nn.functional.normalize(rows.mean(dim=0), dim=-1)


def query_vector(index: EmbeddingIndex, query: Query, choice: int | None = None) -> Tensor:
    """The vector a word or expression stands for (D,).

    A word: its token, or with several tokens the one at `choice` (None: their mean).
    An expression: the sum of its terms' unit vectors, signed (3CosAdd, as word2vec does).
    """
    if query.kind == "list":
        raise ValueError("a list of words has no single vector; it is drawn as a map")
    if query.kind == "word":
        ids = query.terms[0].ids
        if choice is not None:
            if not 0 <= choice < len(ids):
                raise ValueError(f"token {choice} of {len(ids)}")
            return index.vector(ids[choice])
        return term_vector(index, ids)
    return torch.stack([t.sign * term_vector(index, t.ids) for t in query.terms]).sum(dim=0)


@dataclass(frozen=True)
class NeighbourResult:
    """The answer to a word or an expression: the vector it used and its nearest tokens."""

    query: Query
    choice: int | None  # a word of several tokens: which one (None: the mean)
    neighbours: tuple[Neighbour, ...]
    excluded: frozenset[int]  # tokens left out of the list (the inputs, when asked)
    vector: Tensor = field(repr=False, compare=False)  # the query's vector (D,)


def query_neighbours(
    tokenizer: Tokenizer,
    index: EmbeddingIndex,
    query: Query,
    k: int = 30,
    choice: int | None = None,
    hide_inputs: bool = True,
) -> NeighbourResult:
    """The k tokens nearest a word or an expression; `hide_inputs` leaves out the tokens it names."""
    vector = query_vector(index, query, choice)
    excluded = query.input_ids if hide_inputs else frozenset()
    return NeighbourResult(
        query, choice, tuple(nearest_tokens(tokenizer, index, vector, k, excluded)), excluded, vector
    )


# --- a map: PCA to two dimensions ----------------------------------------------------------------


@dataclass(frozen=True)
class Projection:
    """Points projected on the first two principal components of their own set."""

    xy: tuple[tuple[float, float], ...]
    explained: tuple[float, float]  # share of the set's variance along each axis, 0..1


def pca_2d(vectors: Tensor) -> Projection:
    """Project N vectors (N, D) onto their two main directions of variation.

    Exact PCA through the N x N Gram matrix of the centred vectors: its top eigenvectors,
    scaled by the square roots of their eigenvalues, are the coordinates. N is small (a
    map's points), so this costs far less than an SVD of the N x D matrix, and unlike a
    randomised PCA it gives the same map every time. Each axis's sign is fixed too (its
    largest coordinate positive).
    """
    x = vectors.detach().double()
    n = x.shape[0]
    if n == 0:
        return Projection((), (0.0, 0.0))
    x = x - x.mean(dim=0, keepdim=True)
    gram = x @ x.T  # (N, N)
    values, vecs = torch.linalg.eigh(gram)  # ascending
    values = values.clamp(min=0.0)
    total = float(values.sum())
    coords = torch.zeros(n, 2, dtype=torch.float64)
    explained = [0.0, 0.0]
    for j in range(min(2, n)):
        value = values[n - 1 - j]
        if total <= 0 or value <= total * 1e-12:  # no variation left along this axis
            continue
        axis = vecs[:, n - 1 - j] * value.sqrt()
        coords[:, j] = -axis if axis[axis.abs().argmax()] < 0 else axis
        explained[j] = float(value) / total
    return Projection(tuple((float(a), float(b)) for a, b in coords.tolist()), (explained[0], explained[1]))


def map_vectors(index: EmbeddingIndex, token_sets: Sequence[Sequence[int]], extra: Sequence[Tensor] = ()) -> Projection:
    """PCA of the tokens' unit vectors (a set of several tokens: their mean), then of `extra` vectors."""
    n = len(token_sets) + len(extra)
    if not n:
        return Projection((), (0.0, 0.0))
    rows = torch.empty(n, index.unit.shape[1], dtype=index.unit.dtype)
    singles = [k for k, ids in enumerate(token_sets) if len(ids) == 1]
    if singles:  # most sets are one token: gather their rows at once (a map is many small ops otherwise)
        rows[singles] = index.unit[[token_sets[k][0] for k in singles]]
    for k, ids in enumerate(token_sets):
        if len(ids) != 1:
            rows[k] = term_vector(index, ids)
    for k, v in enumerate(extra):
        rows[len(token_sets) + k] = torch.nn.functional.normalize(v.float(), dim=-1)
    return pca_2d(rows)


# --- vectors in context: the residual stream ----------------------------------------------------


@dataclass(frozen=True)
class SentenceVectors:
    """A sentence run through the model: its tokens and every position's vector after every layer."""

    text: str
    ids: tuple[int, ...]
    residuals: Tensor = field(repr=False, compare=False)  # (n_layer + 1, T, D): layer 0 is the embeddings
    span: tuple[int, int]  # the word's tokens, start..end (exclusive)

    @property
    def position(self) -> int:
        """The word's last token: there the model has read the whole word."""
        return self.span[1] - 1

    @property
    def n_layers(self) -> int:
        return self.residuals.shape[0] - 1

    def word_vector(self, layer: int) -> Tensor:
        return self.residuals[layer, self.position]


def locate_word(tokenizer: Tokenizer, ids: Sequence[int], word: str) -> tuple[int, int]:
    """Where a word's tokens first occur in ids: " word" (inside a sentence) or "word" (at its start).

    ValueError when neither occurs, naming the sentence's tokens.
    """
    word = word.strip()
    if not word:
        raise ValueError("the word is empty: type a word of both sentences")
    for text in (" " + word, word):
        target = tokenizer.encode(text)
        for start in range(len(ids) - len(target) + 1):
            if target and list(ids[start : start + len(target)]) == target:
                return start, start + len(target)
    pieces = " | ".join(tokenizer.token_text(i).replace("\n", "\\n") for i in ids)
    raise ValueError(f"'{word}' is not a word of this sentence (its tokens: {pieces})")


def sentence_vectors(lm: LanguageModel, sentence: str, word: str) -> SentenceVectors:
    """Run a sentence (one forward pass, internals captured) and find the word in it; ValueError if absent,
    ModelOutputError (a ValueError) if damaged weights overflow."""
    if not sentence.strip():
        raise ValueError("the sentence is empty")
    ids = lm.prompt_ids(sentence)  # as the model reads it, BOS first where it has one
    span = locate_word(lm.tokenizer, ids, word)
    # attn_weights too, though only the residuals are shown: it takes the spelled-out softmax, where a
    # query·key that overflows gives NaN that the check below sees; fused attention on the CPU turned
    # the same overflow into finite garbage (a sentence is short: the maps cost little).
    out = lm.run(ids, capture={"resid_post", "attn_weights"})
    residuals = torch.stack([r[0] for r in out.residuals]).detach().float()  # (L+1, T, D)
    if not torch.isfinite(residuals).all():  # every cosine would read "nan"
        raise ModelOutputError("hidden state")
    return SentenceVectors(sentence, tuple(ids), residuals, span)


def cosine(a: Tensor, b: Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1))


def cosine_by_layer(a: SentenceVectors, b: SentenceVectors) -> list[float]:
    """Cosine of the word's vector in a and in b, after each layer (index 0: the embeddings)."""
    va, vb = a.residuals[:, a.position], b.residuals[:, b.position]  # (L+1, D)
    return torch.nn.functional.cosine_similarity(va, vb, dim=-1).tolist()


def cosine_to_others_by_layer(a: SentenceVectors, b: SentenceVectors) -> list[float] | None:
    """For comparison: the mean cosine of a's word with b's other tokens, per layer (None: b has no others)."""
    others = [p for p in range(len(b.ids)) if not b.span[0] <= p < b.span[1]]
    if not others:
        return None
    va = a.residuals[:, a.position].unsqueeze(1)  # (L+1, 1, D)
    sims = torch.nn.functional.cosine_similarity(va, b.residuals[:, others], dim=-1)  # (L+1, n)
    return sims.mean(dim=1).tolist()


def cosine_to_tokens(vector: Tensor, sentence: SentenceVectors, layer: int) -> list[float]:
    """Cosine of a vector with each token's vector of a sentence after one layer."""
    return torch.nn.functional.cosine_similarity(vector.unsqueeze(0), sentence.residuals[layer], dim=-1).tolist()


def layer_neighbours(lm: LanguageModel, index: EmbeddingIndex, vector: Tensor, k: int = 10) -> list[Neighbour]:
    """The tokens nearest a residual-stream vector, read through the final norm as the model reads its last layer.

    Layer 0 is the token's own embedding, so its nearest token is itself; in later
    layers the vector drifts towards what the model will predict next (the logit lens).
    """
    with torch.inference_mode():
        normed = lm.model.final_norm(vector.to(lm.device).unsqueeze(0))[0]
    return nearest_tokens(lm.tokenizer, index, normed, k)
