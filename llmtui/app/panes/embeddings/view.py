"""What the Embeddings pane computes and draws, apart from its widgets: the answers to a query (engine calls
and formatting, run on the model thread), the lines that describe them, the help and the exports' table.
The context view's answers are in context_answer.py.

Plain functions and dataclasses: they take the tokenizer, the embedding index and a request, and
return what the list, the map and the chart show.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from rich.text import Text

from llmtui.app.display import table_label
from llmtui.app.widgets.neighbour_list import NeighbourRow
from llmtui.app.widgets.scatter import MapPoint, shorten
from llmtui.engine.text import escape_controls

if TYPE_CHECKING:
    from llmtui.engine.studies.embeddings import EmbeddingIndex, Query, Term
    from llmtui.engine.tokenizer.tokenizer import Tokenizer

LIST_SIZE = 30
"""Neighbours in the list (the issue asks for at least 20)."""
CONTEXT_CHARS = 60
"""Characters shown either side of a mistake in what was typed."""
TYPING_DELAY = 0.25
"""Seconds after the last key press before a query is answered as you type."""
DEFAULT_QUERY = "dog"

HELP = (
    "Each token id picks a row of a learned matrix: a vector (576 numbers for SmolLM2). Tokens used alike get "
    "similar vectors, measured by cosine similarity: ' dog' lies near ' dogs', ' puppy' and ' cat'. Type a word to "
    "see its nearest tokens and a map (PCA: the two directions along which the points differ most); an expression "
    "such as king - man + woman adds and subtracts vectors; several words (cat dog banana car) are mapped together.\n\n"
    "A bare word is looked up with a leading space (' dog', as inside a sentence; BPE keeps the space with the word): "
    'F2 switches that, "dog" in quotes is exact text and #2767 a token id. Down or tab moves to the list; enter on '
    "a token makes it the query, alt+left (ctrl+b) steps back. F3 shows or hides an expression's own words.\n\n"
    "F4 shows a word in context: its vector after each layer (the residual stream), compared by cosine between two "
    "sentences. The chart's muted part is what any two words of those sentences share; left/right on the chart "
    "picks a layer. A causal model only looks back, so the vectors are identical while the sentences are."
)
"""The help screen's text (F1)."""

View = Literal["vocab", "context"]

MAP_HINTS = {
    "word": "enter on a token: make it the query · alt+left: back",
    "expression": "the sum of the words' unit vectors, signed · ✚ on the map",
    "list": "sorted by similarity to the first word · enter: its neighbours",
}
"""The message line under an answer, by the kind of query."""


def map_size_for(width: int, height: int) -> int:
    """How many neighbours the map can label legibly in a width x height area."""
    return max(6, min(15, (width * height) // 55))


# -- what a worker computes (plain data, built off the UI thread) -----------------------------------


@dataclass(frozen=True)
class Answer:
    """A query's answer as the pane shows it: the parsed query, the list's rows and the map's points."""

    text: str
    query: Query
    choice: int | None
    rows: tuple[NeighbourRow, ...]
    points: tuple[MapPoint, ...]
    explained: tuple[float, float]
    title: str  # the list's title: "Nearest to ␣dog"


@dataclass(frozen=True)
class QueryRequest:
    """What the vocabulary view asks its worker: the typed text and the switches that shape the answer."""

    text: str
    leading_space: bool
    hide_inputs: bool
    choice: int | None
    map_neighbours: int
    submitted: bool  # enter (or a choice): errors are shown loudly; typing: quietly
    record: bool  # add to the history once answered


def term_label(term: Term, tokenizer: Tokenizer, choice: int | None = None) -> str:
    """A term as a label: its one token ('␣dog'), its pieces joined by '·', or the chosen piece."""
    if choice is not None and len(term.ids) > 1:
        return table_label(tokenizer.token_text(term.ids[choice]))
    return "·".join(table_label(tokenizer.token_text(i)) for i in term.ids)


def expression_label(query: Query) -> str:
    """An expression as one short label, as typed: 'king−man+woman'."""
    out = ""
    for n, t in enumerate(query.terms):
        if n or t.sign < 0:
            out += "−" if t.sign < 0 else "+"
        out += t.source
    return escape_controls(out, keep="")


def compute_answer(tokenizer: Tokenizer, index: EmbeddingIndex, request: QueryRequest) -> Answer:
    """Everything the vocabulary view shows for one request (engine calls and formatting only)."""
    from llmtui.engine.studies.embeddings import (
        cosine,
        map_vectors,
        parse_query,
        query_neighbours,
        term_vector,
        token_query_text,
    )

    query = parse_query(request.text, tokenizer, request.leading_space)
    if query.kind == "list":
        first = term_vector(index, query.terms[0].ids)
        members = sorted(
            ((cosine(first, term_vector(index, t.ids)), n, t) for n, t in enumerate(query.terms)),
            key=lambda x: (-x[0], x[1]),
        )
        keys = {n: (t.ids[0] if len(t.ids) == 1 else -1 - n) for n, t in enumerate(query.terms)}
        rows = tuple(
            NeighbourRow(
                keys[n],
                term_label(t, tokenizer),
                s,
                "first" if n == 0 else ("mean" if len(t.ids) > 1 else ""),
                t.source,
            )
            for s, n, t in members
        )
        projection = map_vectors(index, [t.ids for t in query.terms])
        points = tuple(
            MapPoint(term_label(t, tokenizer), x, y, "word", keys[n])
            for n, (t, (x, y)) in enumerate(zip(query.terms, projection.xy))
        )
        title = f"Similarity to {term_label(query.terms[0], tokenizer)}"
        return Answer(request.text, query, None, rows, points, projection.explained, title)

    choice = request.choice if query.kind == "word" and len(query.terms[0].ids) > 1 else None
    result = query_neighbours(tokenizer, index, query, LIST_SIZE, choice, request.hide_inputs)
    inputs = query.input_ids
    rows = tuple(
        NeighbourRow(
            n.id,
            table_label(n.text),
            n.similarity,
            "input" if n.id in inputs else "",
            token_query_text(tokenizer, n.id, request.leading_space),
        )
        for n in result.neighbours
    )
    shown = [n for n in result.neighbours if n.id not in inputs][: request.map_neighbours]
    if query.kind == "word":
        term = query.terms[0]
        label = term_label(term, tokenizer, choice) + (" (mean)" if choice is None and len(term.ids) > 1 else "")
        key = term.ids[choice] if choice is not None else (term.ids[0] if len(term.ids) == 1 else -1)
        projection = map_vectors(index, [[n.id] for n in shown], extra=[result.vector])
        points = tuple(
            MapPoint(table_label(n.text), x, y, "neighbour", n.id) for n, (x, y) in zip(shown, projection.xy)
        )
        points += (MapPoint(label, *projection.xy[-1], "query", key),)
        title = f"Nearest to {label}"
    else:
        projection = map_vectors(index, [t.ids for t in query.terms] + [[n.id] for n in shown], extra=[result.vector])
        xy = projection.xy
        points = tuple(
            MapPoint(
                ("−" if t.sign < 0 else "") + term_label(t, tokenizer),
                *xy[n],
                "input",
                t.ids[0] if len(t.ids) == 1 else -1 - n,
            )
            for n, t in enumerate(query.terms)
        )
        points += tuple(
            MapPoint(table_label(n.text), *xy[len(query.terms) + k], "neighbour", n.id) for k, n in enumerate(shown)
        )
        points += (MapPoint(shorten(expression_label(query), 16), *xy[-1], "result", None),)
        title = f"Nearest to {shorten(expression_label(query), 24)}"
    return Answer(request.text, query, choice, rows, points, projection.explained, title)


def describe_query(answer: Answer, tokenizer: Tokenizer, hide_inputs: bool) -> Text:
    """Which tokens the answer used, exactly, and the other spacing on offer."""
    query = answer.query
    text = Text()

    def token(term: Term, choice: int | None = None) -> None:
        text.append(term_label(term, tokenizer, choice), style="bold")
        ids = term.ids if choice is None else (term.ids[choice],)
        text.append(" #" + ",".join(map(str, ids)), style="dim")

    if query.kind == "word":
        term = query.terms[0]
        if len(term.ids) == 1:
            text.append("Token ")
            token(term)
        else:
            text.append(f"{len(term.ids)} tokens: ")
            token(term)
            text.append(" · using " + ("their mean" if answer.choice is None else "one of them (picked below)"))
    elif query.kind == "expression":
        for n, term in enumerate(query.terms):
            if n or term.sign < 0:
                text.append(" − " if term.sign < 0 else " + ")
            token(term)
            if len(term.ids) > 1:
                text.append(" (mean)", style="dim")
        text.append(" · inputs " + ("left out (F3)" if hide_inputs else "listed (F3)"))
    else:
        text.append(f"{len(query.terms)} words: ")
        for n, term in enumerate(query.terms):
            if n:
                text.append("  ")
            text.append(term_label(term, tokenizer), style="bold")
            if len(term.ids) > 1:
                text.append(" (mean)", style="dim")
    words = [t for t in query.terms if t.kind == "word"]
    if words:
        spacing = "without the space" if query.leading_space else "with a leading space"
        if query.kind == "word":
            alt = words[0]
            alt_label = "·".join(table_label(tokenizer.token_text(i)) for i in alt.alt_ids)
            count = "" if len(alt.alt_ids) == 1 else f" ({len(alt.alt_ids)} tokens)"
            text.append(f" · {spacing}: ")
            text.append(alt_label, style="bold")
            if len(alt.alt_ids) == 1:
                text.append(f" #{alt.alt_ids[0]}", style="dim")
            text.append(f"{count} (F2)")
        else:
            text.append(f" · F2: words {spacing}")
    return text


def mistake_line(text: str, start: int, end: int) -> Text:
    """Where a query went wrong, in what was typed: the span reversed, with a little either side (a pasted
    megabyte would make this line thousands of lines long)."""
    line = Text("In what you typed: ")
    before, after = text[max(0, start - CONTEXT_CHARS):start], text[end:end + CONTEXT_CHARS]
    line.append(("…" if start > CONTEXT_CHARS else "") + escape_controls(before, keep=""))
    line.append(escape_controls(text[start:end][:CONTEXT_CHARS * 2], keep=""), style="reverse")
    line.append(escape_controls(after, keep="") + ("…" if end + CONTEXT_CHARS < len(text) else ""))
    return line


def export_vocab(answer: Answer) -> dict:
    """The vocabulary view's export: the query and its neighbour list."""
    return {
        "view": "vocab",
        "query": answer.text,
        "title": answer.title,
        "neighbours": [
            {"id": row.key if row.key is not None and row.key >= 0 else None, "label": row.label,
             "similarity": row.similarity, "note": row.note}
            for row in answer.rows
        ],
    }


def export_table(exported: dict) -> tuple[list[str], list[list]]:
    """Either export as a table: the context view's chart (a row per layer), or the neighbour list."""
    if exported["view"] == "context":
        rows = [[r["layer"], r["cosine_a_b"], r["cosine_a_others_of_b"]] for r in exported["by_layer"]]
        return ["layer", "cosine A·B", "cosine A·other words of B"], rows
    rows = [[n, r["id"], r["label"], r["similarity"], r["note"]] for n, r in enumerate(exported["neighbours"], start=1)]
    return ["rank", "id", "token", "similarity", "note"], rows
