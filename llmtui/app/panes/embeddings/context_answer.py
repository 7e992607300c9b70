"""What the Embeddings pane's context view computes and draws: one word's vector after each layer in two
sentences, compared layer by layer (engine calls run on the model thread), and the lines that describe it.

Apart from view.py (the vocabulary's answers) because the two views share nothing but the help text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text

from llmtui.app.display import table_label

if TYPE_CHECKING:
    from llmtui.engine.lm import LanguageModel
    from llmtui.engine.studies.embeddings import EmbeddingIndex, Neighbour, SentenceVectors
    from llmtui.engine.tokenizer.tokenizer import Tokenizer

DEFAULT_SENTENCES = ("The cat chased the dog", "I pet the cat", "cat")
"""The two sentences and the word the view opens with."""

@dataclass(frozen=True)
class ContextAnswer:
    """Two sentences through the model, the word located in each, compared at every layer."""

    a: SentenceVectors
    b: SentenceVectors
    word: str
    by_layer: tuple[float, ...]
    others: tuple[float, ...] | None
    layer: int
    near_a: tuple[Neighbour, ...]
    near_b: tuple[Neighbour, ...]
    to_tokens_b: tuple[float, ...]


def compute_context(
    lm: LanguageModel,
    index: EmbeddingIndex,
    a_text: str,
    b_text: str,
    word: str,
    layer: int | None,
    cached: tuple[SentenceVectors, SentenceVectors] | None = None,
    k: int = 10,
) -> ContextAnswer:
    """Run both sentences (or reuse `cached`), compare the word's vectors by layer, and read one layer."""
    from llmtui.engine.studies.embeddings import cosine_by_layer, cosine_to_others_by_layer, sentence_vectors

    if cached is None:
        try:
            a = sentence_vectors(lm, a_text, word)
        except ValueError as e:
            raise ValueError(f"Sentence A: {e}") from None
        try:
            b = sentence_vectors(lm, b_text, word)
        except ValueError as e:
            raise ValueError(f"Sentence B: {e}") from None
    else:
        a, b = cached
    others = cosine_to_others_by_layer(a, b)
    layer = a.n_layers // 2 if layer is None else max(0, min(layer, a.n_layers))
    return read_layer(
        lm,
        index,
        ContextAnswer(a, b, word, tuple(cosine_by_layer(a, b)), tuple(others) if others else None, layer, (), (), ()),
        layer,
        k,
    )


def read_layer(
    lm: LanguageModel, index: EmbeddingIndex, answer: ContextAnswer, layer: int, k: int = 10
) -> ContextAnswer:
    """The answer with one layer read: nearest tokens of both vectors, and A's word against each token of B."""
    from llmtui.engine.studies.embeddings import cosine_to_tokens, layer_neighbours

    va, vb = answer.a.word_vector(layer), answer.b.word_vector(layer)
    return ContextAnswer(
        answer.a,
        answer.b,
        answer.word,
        answer.by_layer,
        answer.others,
        layer,
        tuple(layer_neighbours(lm, index, va, k)),
        tuple(layer_neighbours(lm, index, vb, k)),
        tuple(cosine_to_tokens(va, answer.b, layer)),
    )


def sentence_line(name: str, tokenizer: Tokenizer, s: SentenceVectors, sims: Sequence[float] | None = None) -> Text:
    """A sentence as its tokens, the word's tokens highlighted; with `sims`, each token's cosine after it."""
    text = Text(f"{name} ", style="bold")
    for p, token_id in enumerate(s.ids):
        in_word = s.span[0] <= p < s.span[1]
        text.append(table_label(tokenizer.token_text(token_id)), style="reverse bold" if in_word else "")
        if sims is not None:
            text.append(f" {sims[p]:.2f}", style="bold" if in_word else "dim")
        text.append("  " if sims is not None else " ")
    return text


def context_note(layer: int, same: float, word: str) -> str:
    """The context view's message line for the layer shown (`same`: the word's cosine A·B there)."""
    if layer == 0:
        return "Layer 0 is the embedding itself: the same token has the same vector in any sentence."
    if same > 0.9999:
        return f"Identical at layer {layer}: the sentences are the same up to this word, and a causal model only looks back."
    return f"Layer {layer} · after B's tokens: their cosine with A's {word} · ←/→ on the chart"


def export_context(answer: ContextAnswer, tokenizer: Tokenizer) -> dict:
    """The context view's export: the sentences, the word, its cosine A·B at every layer, and the layer's read-outs."""

    def readouts(near: tuple[Neighbour, ...]) -> list[dict]:
        return [{"id": n.id, "text": n.text, "similarity": n.similarity} for n in near]

    return {
        "view": "context",
        "sentence_a": answer.a.text,
        "sentence_b": answer.b.text,
        "word": answer.word,
        "word_tokens_a": [tokenizer.token_text(i) for i in answer.a.ids[answer.a.span[0]:answer.a.span[1]]],
        "layer": answer.layer,
        "by_layer": [
            {"layer": n, "cosine_a_b": same, "cosine_a_others_of_b": answer.others[n] if answer.others else None}
            for n, same in enumerate(answer.by_layer)
        ],
        "next_token_readouts": {"a": readouts(answer.near_a), "b": readouts(answer.near_b)},
    }
