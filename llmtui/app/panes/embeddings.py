"""The Embeddings pane: a token's vector, its nearest neighbours, vector arithmetic, a map, and vectors in context.

Two views. "Vocabulary": type a word (its neighbours by cosine similarity), an
expression (king - man + woman) or several words (a map); the list and the PCA map
show the answer, and choosing a neighbour makes it the query. "In context" (F4): the
vector the model holds for a word after each layer, compared between two sentences.

The embedding index (the matrix normalised once) is built in a thread worker when
the model is ready. Every query runs in a thread worker too, its torch work handed to
the app's model thread (see model_thread.py); answers carry the id of their request,
so a stale one never lands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import ContentSwitcher, Input, Label, OptionList, Static

from llmtui.app.display import table_label
from llmtui.app.model_thread import call
from llmtui.app.panes.base import Pane, error_line
from llmtui.app.state import ModelState
from llmtui.app.widgets.layer_chart import LayerChart
from llmtui.app.widgets.loading import LoadingNotice
from llmtui.app.widgets.neighbour_list import NeighbourColumns, NeighbourList, NeighbourRow
from llmtui.app.widgets.safe_input import SafeInput
from llmtui.app.widgets.scatter import MapPoint, ScatterMap, shorten
from llmtui.app.widgets.token_choice import TokenChoice
from llmtui.engine.text import escape_controls

if TYPE_CHECKING:
    from llmtui.app.selection import TokenSelection
    from llmtui.engine.studies.embeddings import EmbeddingIndex, Neighbour, Query, SentenceVectors, Term
    from llmtui.engine.lm import LanguageModel
    from llmtui.engine.tokenizer.tokenizer import Tokenizer

LIST_SIZE = 30
CONTEXT_CHARS = 60
"""Characters shown either side of a mistake in what was typed."""
"""Neighbours in the list (the issue asks for at least 20)."""
TYPING_DELAY = 0.25
"""Seconds after the last key press before a query is answered as you type."""
DEFAULT_QUERY = "dog"
DEFAULT_SENTENCES = ("The cat chased the dog", "I pet the cat", "cat")

View = Literal["vocab", "context"]


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


@dataclass(frozen=True)
class _HistoryEntry:
    text: str
    leading_space: bool
    choice: int | None


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


class EmbeddingsPane(Pane):
    """Nearest neighbours, vector arithmetic, a PCA map, and a word's vector in context."""

    PANE_ID = "embeddings"
    MESSAGE_LINE = "#emb-message"
    TITLE = "Embeddings"
    SHORT_TITLE = "Emb"
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

    BINDINGS = [
        Binding("f2", "toggle_space", "Leading ␣", tooltip="Look bare words up with or without a leading space"),
        Binding(
            "f3",
            "toggle_inputs",
            "Inputs",
            tooltip="Leave an expression's own words out of its neighbours, or list them",
        ),
        Binding(
            "f4", "toggle_view", "Context", tooltip="Switch between the vocabulary and a word's vectors in context"
        ),
        Binding("alt+left,ctrl+b", "back", "Back", tooltip="The previous query"),
        Binding("alt+right,ctrl+f", "forward", "Forward", show=False, tooltip="The next query (after going back)"),
        Binding("down", "focus_down", show=False),
        Binding("up", "focus_up", show=False),
    ]

    leading_space: reactive[bool] = reactive(True, init=False)
    """Bare words are looked up with a leading space (" dog")."""
    hide_inputs: reactive[bool] = reactive(True, init=False)
    """An expression's own tokens are left out of its neighbours (as word2vec tools do)."""
    view: reactive[View] = reactive("vocab", init=False)
    """Which view shows: the vocabulary, or a word in context."""

    def __init__(self) -> None:
        super().__init__()
        self._index: EmbeddingIndex | None = None
        self._answer: Answer | None = None
        self._ctx_answer: ContextAnswer | None = None
        self._choice: int | None = None
        self._history: list[_HistoryEntry] = []
        self._history_pos = -1
        self._pending_token: int | None = None
        self._typing_timer: Timer | None = None
        self._context_timer: Timer | None = None
        self._last_text: str | None = None  # the text of the last request (Input.Changed for it is ignored)
        self._map_neighbours = 0  # how many neighbours the last request put on the map

    # -- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield LoadingNotice(classes="pane-notice")
        with ContentSwitcher(id="emb-views", initial="emb-vocab"):
            with Vertical(id="emb-vocab"):
                query = SafeInput(
                    DEFAULT_QUERY, placeholder="a word, king - man + woman, or cat dog banana car", id="emb-query"
                )
                query.border_title = "Word · expression · list of words"
                yield query
                yield Static(id="emb-used")
                yield TokenChoice(id="emb-choice")
                yield Static(id="emb-message")
                with Horizontal(id="emb-main"):
                    yield NeighbourList(id="emb-neighbours")
                    yield ScatterMap(id="emb-map")
            with Vertical(id="emb-context"):
                a, b, word = DEFAULT_SENTENCES
                with Horizontal(classes="emb-row"):
                    yield Label("Sentence A", classes="emb-label")
                    yield SafeInput(a, id="emb-sentence-a", compact=True, select_on_focus=False)
                with Horizontal(classes="emb-row"):
                    yield Label("Sentence B", classes="emb-label")
                    yield SafeInput(b, id="emb-sentence-b", compact=True, select_on_focus=False)
                with Horizontal(classes="emb-row"):
                    yield Label("Word", classes="emb-label")
                    yield SafeInput(word, id="emb-word", compact=True, select_on_focus=False)
                    yield Static("  a word of both sentences · tab: chart", id="emb-word-hint")
                yield Static(id="emb-ctx-message")
                yield Static(id="emb-ctx-tokens")
                with Horizontal(id="emb-ctx-main"):
                    yield LayerChart(id="emb-layers")
                    yield NeighbourColumns(id="emb-ctx-neighbours")

    def on_mount(self) -> None:
        self.choice_widget.set_tokens(())
        self.scatter.border_title = "Map"
        self.neighbour_list.border_title = "Nearest tokens"
        self.query_one("#emb-layers", LayerChart).border_title = "Cosine by layer"
        self.query_one("#emb-ctx-neighbours", NeighbourColumns).border_title = "Nearest tokens"

    @property
    def query_input(self) -> Input:
        return self.query_one("#emb-query", Input)

    @property
    def neighbour_list(self) -> NeighbourList:
        return self.query_one("#emb-neighbours", NeighbourList)

    @property
    def scatter(self) -> ScatterMap:
        return self.query_one("#emb-map", ScatterMap)

    @property
    def choice_widget(self) -> TokenChoice:
        return self.query_one("#emb-choice", TokenChoice)

    @property
    def chart(self) -> LayerChart:
        return self.query_one("#emb-layers", LayerChart)

    @property
    def answer(self) -> Answer | None:
        """What the vocabulary view shows now."""
        return self._answer

    @property
    def context(self) -> ContextAnswer | None:
        """What the context view shows now."""
        return self._ctx_answer

    @property
    def index(self) -> EmbeddingIndex | None:
        return self._index

    @property
    def ready(self) -> bool:
        return self.lm is not None and self._index is not None

    @property
    def message(self) -> str:
        """The vocabulary view's message line, as text."""
        return str(self.query_one("#emb-message", Static).render())

    @property
    def context_message(self) -> str:
        return str(self.query_one("#emb-ctx-message", Static).render())

    @property
    def used(self) -> str:
        """The line saying which tokens the query used, as text."""
        return str(self.query_one("#emb-used", Static).render())

    def focus_default(self) -> None:
        if self.view == "vocab":
            self.query_input.focus()
        else:
            self.query_one("#emb-sentence-a", Input).focus()

    def set_prompt(self, text: str) -> None:
        """The command line's prompt (--prompt) is the first query: a word, an expression or a list."""
        if text.strip():
            self.query_input.value = text

    # -- the model and the index -------------------------------------------------------------------

    def model_state_changed(self, state: ModelState) -> None:
        if state.phase == "failed":
            self.say("No model: it could not be loaded. What you typed is kept.", "error")
            self.say("No model: it could not be loaded.", "error", "#emb-ctx-message")
        elif state.phase == "loading":
            self.say("Loading the model… you can type meanwhile.", "busy")
            self.say("Loading the model… you can type meanwhile.", "busy", "#emb-ctx-message")

    def model_ready(self, lm: LanguageModel) -> None:
        self._index = None
        self.say("Preparing the embedding index…", "busy")
        self._build_index(lm)

    @work(exclusive=True, group="emb-index", exit_on_error=False)
    async def _build_index(self, lm: LanguageModel) -> None:
        """Normalise the embedding matrix once per model (a query is then one matrix-vector product)."""
        from llmtui.engine.studies.embeddings import EmbeddingIndex

        try:
            index = await call(EmbeddingIndex.of, lm)
        except Exception as e:  # a bug: one line, the app keeps running
            self.say(error_line(e), "error")
            return
        self._index_ready(index)

    def _index_ready(self, index: EmbeddingIndex) -> None:
        self._index = index
        self.say(
            f"Ready · {index.vocab_size:,} tokens of {index.unit.shape[1]} numbers each · "
            "enter: show · down: the list"
        )
        if self._pending_token is not None:
            token, self._pending_token = self._pending_token, None
            self.show_token(token)
        else:
            self._request(self.query_input.value, submitted=False, record=True)
        if self.view == "context":  # else it waits until the view is first shown (two forward passes)
            self._request_context(None)

    def _ready(self, where: str = "#emb-message") -> bool:
        if self.lm is None or self._index is None:
            if self.model_state.phase == "failed":
                self.say("No model: it could not be loaded. What you typed is kept.", "error", where)
            else:
                self.say(
                    "The model is still loading; what you typed is kept and shown when it is ready.", "busy", where
                )
            return False
        return True

    # -- the vocabulary view: requests and answers ---------------------------------------------------

    def show_token(self, token_id: int) -> None:
        """Make one token the query (from another pane). Waits for the model if it is still loading."""
        self.view = "vocab"
        if self.lm is None or self._index is None:
            self._pending_token = token_id
            self.say(f"The model is still loading: token #{token_id} will show when it is ready.", "busy")
            return
        if not 0 <= token_id < self._index.vocab_size:
            self.say(f"There is no token #{token_id}: ids run from 0 to {self._index.vocab_size - 1}.", "error")
            return
        from llmtui.engine.studies.embeddings import token_query_text

        self._set_query_text(token_query_text(self.lm.tokenizer, token_id, self.leading_space))
        self._choice = None
        self._request(self.query_input.value, submitted=True, record=True)

    def follow_selection(self, selection: TokenSelection) -> None:
        """A token selected in another pane becomes the query (the app sends each selection once: a query typed here stays)."""
        self.show_token(selection.token_id)

    def _set_query_text(self, text: str) -> None:
        self._last_text = text
        self.query_input.value = text
        self.query_input.cursor_position = len(text)

    def _request(
        self, text: str, *, submitted: bool, record: bool, choice: int | None = None, leading_space: bool | None = None
    ) -> None:
        if self._typing_timer is not None:
            self._typing_timer.stop()
            self._typing_timer = None
        self._last_text = text
        if not self._ready():
            return
        size = self.scatter.content_region.size
        request = QueryRequest(
            text,
            self.leading_space if leading_space is None else leading_space,
            self.hide_inputs,
            choice if choice is not None else self._choice,
            map_size_for(size.width or 40, size.height or 12),
            submitted,
            record,
        )
        self._map_neighbours = request.map_neighbours
        self._query_worker(request)

    @work(exclusive=True, group="emb-query", exit_on_error=False)
    async def _query_worker(self, request: QueryRequest) -> None:
        from llmtui.engine.studies.embeddings import QueryError

        lm, index = self.lm, self._index
        assert lm is not None and index is not None
        try:
            answer = await call(compute_answer, lm.tokenizer, index, request)
        except QueryError as e:
            self._failed(request, error_line(e), (e.start, e.end))
            return
        except Exception as e:  # the user's to fix (ValueError), or a bug: one line, the app keeps running
            self._failed(request, error_line(e), (0, 0))
            return
        self._answered(request, answer)

    def _answered(self, request: QueryRequest, answer: Answer) -> None:
        assert self.lm is not None
        self._answer = answer
        if request.record:
            self._record(_HistoryEntry(request.text, request.leading_space, request.choice))
        tokenizer = self.lm.tokenizer
        if answer.query.kind == "word" and len(answer.query.terms[0].ids) > 1:
            self.choice_widget.set_tokens(
                [table_label(tokenizer.token_text(i)) for i in answer.query.terms[0].ids], answer.choice
            )
        else:
            self.choice_widget.set_tokens(())
        self.query_one("#emb-used", Static).update(describe_query(answer, tokenizer, self.hide_inputs))
        kind = answer.query.kind
        self.neighbour_list.show(answer.rows)
        self.neighbour_list.border_title = Text(answer.title)  # a Text: the query's [brackets] are not markup
        self.neighbour_list.border_subtitle = (
            f"{len(answer.rows)} of {self._index.vocab_size:,}" if self._index and kind != "list" else "cosine"
        )
        self.scatter.points = answer.points
        self.scatter.highlight = answer.rows[0].key if answer.rows else None
        self.scatter.border_title = f"Map · PCA of {len(answer.points)} {'words' if kind == 'list' else 'tokens'}"
        ex = answer.explained
        self.scatter.border_subtitle = f"axes: {ex[0]:.0%} and {ex[1]:.0%} of the variance"
        hints = {
            "word": "enter on a token: make it the query · alt+left: back",
            "expression": "the sum of the words' unit vectors, signed · ✚ on the map",
            "list": "sorted by similarity to the first word · enter: its neighbours",
        }
        self.say(hints[kind])
        self._fit_map()

    @on(ScatterMap.Resized)
    def _map_resized(self, event: ScatterMap.Resized) -> None:
        self._fit_map()

    def _fit_map(self) -> None:
        """A map that grew or shrank (or was not laid out yet when asked) gets as many neighbours as it can label."""
        answer, size = self._answer, self.scatter.content_region.size
        if answer is None or answer.query.kind == "list" or self.lm is None or not size.width or not size.height:
            return
        if self._typing_timer is not None or answer.text != self.query_input.value:
            return  # the user is typing another query: it will be sized when it is answered
        if map_size_for(size.width, size.height) != self._map_neighbours:
            self._request(
                answer.text,
                submitted=False,
                record=False,
                choice=answer.choice,
                leading_space=answer.query.leading_space,
            )

    def _failed(self, request: QueryRequest, error: str, span: tuple[int, int]) -> None:
        self.say(error, "error" if request.submitted else "hint")
        start, end = span
        if end > start:  # show where, in what was typed
            text = request.text
            used = Text("In what you typed: ")
            # Around the mistake only (a pasted megabyte would make this line thousands of lines long).
            before, after = text[max(0, start - CONTEXT_CHARS):start], text[end:end + CONTEXT_CHARS]
            used.append(("…" if start > CONTEXT_CHARS else "") + escape_controls(before, keep=""))
            used.append(escape_controls(text[start:end][:CONTEXT_CHARS * 2], keep=""), style="reverse")
            used.append(escape_controls(after, keep="") + ("…" if end + CONTEXT_CHARS < len(text) else ""))
            self.query_one("#emb-used", Static).update(used)

    def _record(self, entry: _HistoryEntry) -> None:
        if 0 <= self._history_pos < len(self._history) and self._history[self._history_pos] == entry:
            return
        del self._history[self._history_pos + 1 :]
        self._history.append(entry)
        self._history_pos = len(self._history) - 1

    @property
    def history(self) -> list[str]:
        """The queries answered so far, oldest first (for tests and the palette)."""
        return [e.text for e in self._history]

    # -- vocabulary view: events --------------------------------------------------------------------

    @on(Input.Changed, "#emb-query")
    def _query_changed(self, event: Input.Changed) -> None:
        if event.value == self._last_text:
            return
        self._choice = None
        if self._typing_timer is not None:
            self._typing_timer.stop()
        self._typing_timer = self.set_timer(
            TYPING_DELAY, lambda: self._request(event.value, submitted=False, record=False)
        )

    @on(Input.Submitted, "#emb-query")
    def _query_submitted(self, event: Input.Submitted) -> None:
        self._request(event.value, submitted=True, record=True)

    @on(TokenChoice.Changed)
    def _choice_changed(self, event: TokenChoice.Changed) -> None:
        self._choice = event.choice
        self._request(self.query_input.value, submitted=True, record=True, choice=event.choice)

    @on(OptionList.OptionHighlighted, "#emb-neighbours")
    def _neighbour_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        rows = self.neighbour_list.rows
        if 0 <= event.option_index < len(rows):
            self.scatter.highlight = rows[event.option_index].key

    @on(OptionList.OptionSelected, "#emb-neighbours")
    def _neighbour_selected(self, event: OptionList.OptionSelected) -> None:
        rows = self.neighbour_list.rows
        if not 0 <= event.option_index < len(rows):
            return
        self._choice = None
        self._set_query_text(rows[event.option_index].query_text)
        self._request(rows[event.option_index].query_text, submitted=True, record=True)

    def action_back(self) -> None:
        """The previous query in the history."""
        self._step_history(-1)

    def action_forward(self) -> None:
        """The next query in the history (after going back)."""
        self._step_history(1)

    def _step_history(self, step: int) -> None:
        if self.view != "vocab":
            return
        pos = self._history_pos + step
        if not 0 <= pos < len(self._history):
            self.say("Nothing further back." if step < 0 else "Nothing further on.")
            return
        self._history_pos = pos
        entry = self._history[pos]
        self._choice = entry.choice
        self.set_reactive(EmbeddingsPane.leading_space, entry.leading_space)
        self._set_query_text(entry.text)
        self._request(entry.text, submitted=True, record=False, choice=entry.choice)

    def action_toggle_space(self) -> None:
        """Look bare words up with or without a leading space."""
        self.leading_space = not self.leading_space

    def watch_leading_space(self, value: bool) -> None:
        if self.view == "vocab":
            self._request(self.query_input.value, submitted=True, record=True)

    def action_toggle_inputs(self) -> None:
        """An expression's own words: left out of its neighbours, or listed."""
        self.hide_inputs = not self.hide_inputs

    def watch_hide_inputs(self, value: bool) -> None:
        self._request(self.query_input.value, submitted=True, record=False)

    def action_focus_down(self) -> None:
        self.screen.focus_next()

    def action_focus_up(self) -> None:
        first = self.query_input if self.view == "vocab" else self.query_one("#emb-sentence-a", Input)
        if self.app.focused is not first:  # the first field stays put rather than wrapping round
            self.screen.focus_previous()

    # -- the context view ----------------------------------------------------------------------------

    def action_toggle_view(self) -> None:
        """Switch between the vocabulary and a word in context."""
        self.view = "context" if self.view == "vocab" else "vocab"

    def watch_view(self, view: View) -> None:
        self.query_one("#emb-views", ContentSwitcher).current = f"emb-{view}"
        self.focus_default()
        self.refresh_bindings()
        if view == "context":
            if self._ctx_answer is None and self._index is not None:
                self._request_context(None)
            else:
                self.call_after_refresh(self._fit_context)

    def _context_rows(self) -> int:
        """How many nearest tokens the context view's panel has room for."""
        height = self.query_one("#emb-ctx-neighbours", NeighbourColumns).content_region.height or 11
        return max(5, min(30, height - 1))

    def _fit_context(self) -> None:
        """The context answer was computed while hidden: read its layer again for the panel's real height."""
        answer = self._ctx_answer
        if answer is not None and len(answer.near_a) != self._context_rows() and self._context_timer is None:
            self._request_context(answer.layer)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The vocabulary's keys show in the footer only in that view."""
        if action in ("toggle_space", "toggle_inputs", "back", "forward"):
            return self.view == "vocab"
        return True

    def _context_inputs(self) -> tuple[str, str, str]:
        return (
            self.query_one("#emb-sentence-a", Input).value,
            self.query_one("#emb-sentence-b", Input).value,
            self.query_one("#emb-word", Input).value,
        )

    def _request_context(self, layer: int | None) -> None:
        if self._context_timer is not None:
            self._context_timer.stop()
            self._context_timer = None
        if not self._ready("#emb-ctx-message"):
            return
        a, b, word = self._context_inputs()
        cached = None
        if self._ctx_answer is not None and (
            self._ctx_answer.a.text,
            self._ctx_answer.b.text,
            self._ctx_answer.word,
        ) == (a, b, word):
            cached = (self._ctx_answer.a, self._ctx_answer.b)
        if cached is None:
            self.say("Running both sentences through the model…", "busy", "#emb-ctx-message")
        self._context_worker(
            a,
            b,
            word,
            layer if layer is not None else (self._ctx_answer.layer if self._ctx_answer is not None else None),
            cached,
            self._context_rows(),
        )

    @work(exclusive=True, group="emb-context", exit_on_error=False)
    async def _context_worker(
        self,
        a: str,
        b: str,
        word: str,
        layer: int | None,
        cached: tuple[SentenceVectors, SentenceVectors] | None,
        k: int,
    ) -> None:
        lm, index = self.lm, self._index
        assert lm is not None and index is not None
        try:
            answer = await call(compute_context, lm, index, a, b, word, layer, cached, k)
        except Exception as e:  # the user's to fix (ValueError), or a bug: one line, the app keeps running
            self.say(error_line(e), "error", "#emb-ctx-message")
            return
        self._context_answered(answer)

    def _context_answered(self, answer: ContextAnswer) -> None:
        assert self.lm is not None
        self._ctx_answer = answer
        tokenizer = self.lm.tokenizer
        layer = answer.layer
        self.chart.show(answer.by_layer, answer.others, layer)
        same = answer.by_layer[layer]
        word = table_label(tokenizer.decode(answer.a.ids[answer.a.span[0] : answer.a.span[1]]))
        self.chart.border_title = Text(f"{word} A·B · layer {layer}: {same:.2f}")  # the word literally
        self.chart.border_subtitle = f"muted: other words of B ({answer.others[layer]:.2f})" if answer.others else ""
        lines = sentence_line("A", tokenizer, answer.a)
        lines.append("\n")
        lines.append_text(sentence_line("B", tokenizer, answer.b, answer.to_tokens_b))
        self.query_one("#emb-ctx-tokens", Static).update(lines)
        near = self.query_one("#emb-ctx-neighbours", NeighbourColumns)
        near.border_title = f"Nearest tokens · layer {layer}"
        near.border_subtitle = "through the final norm"
        near.show(
            [
                (f"A: {word}", [(table_label(n.text), n.similarity) for n in answer.near_a]),
                (f"B: {word}", [(table_label(n.text), n.similarity) for n in answer.near_b]),
            ]
        )
        if layer == 0:
            note = "Layer 0 is the embedding itself: the same token has the same vector in any sentence."
        elif same > 0.9999:
            note = (
                f"Identical at layer {layer}: the sentences are the same up to this word, and a causal model "
                "only looks back."
            )
        else:
            note = f"Layer {layer} · after B's tokens: their cosine with A's {word} · ←/→ on the chart"
        self.say(note, "info", "#emb-ctx-message")
        self.call_after_refresh(self._fit_context)

    @on(Input.Changed, "#emb-sentence-a, #emb-sentence-b, #emb-word")
    def _context_changed(self, event: Input.Changed) -> None:
        if self._context_timer is not None:
            self._context_timer.stop()
        self._context_timer = self.set_timer(TYPING_DELAY * 2, lambda: self._request_context(None))

    @on(Input.Submitted, "#emb-sentence-a, #emb-sentence-b, #emb-word")
    def _context_submitted(self, event: Input.Submitted) -> None:
        self._request_context(None)

    @on(LayerChart.Selected)
    def _layer_selected(self, event: LayerChart.Selected) -> None:
        self._request_context(event.layer)

    # -- export ----------------------------------------------------------------------------

    def export_data(self) -> dict | None:
        """The vocabulary view's neighbour list (the query, and each row's token and cosine similarity)."""
        answer = self._answer
        if answer is None:
            return None
        return {
            "query": answer.text,
            "title": answer.title,
            "neighbours": [
                {
                    "id": row.key if row.key is not None and row.key >= 0 else None,
                    "label": row.label,
                    "similarity": row.similarity,
                    "note": row.note,
                }
                for row in answer.rows
            ],
        }

    def export_table(self) -> tuple[list[str], list[list]] | None:
        exported = self.export_data()
        if exported is None:
            return None
        rows = [
            [n, r["id"], r["label"], r["similarity"], r["note"]] for n, r in enumerate(exported["neighbours"], start=1)
        ]
        return ["rank", "id", "token", "similarity", "note"], rows
