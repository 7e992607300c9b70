"""The Embeddings pane: a token's vector, its nearest neighbours, vector arithmetic, a map, and vectors in context.

Two views. "Vocabulary": type a word (its neighbours by cosine similarity), an
expression (king - man + woman) or several words (a map); the list and the PCA map
show the answer, and choosing a neighbour makes it the query. "In context" (F4): the
vector the model holds for a word after each layer, compared between two sentences.

The embedding index (the matrix normalised once) is built on the model thread when
the model is ready; every query is an exclusive worker awaiting the model thread (see
model_thread.py), so a newer query cancels an older one. What it computes and draws
apart from the widgets is in view.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import ContentSwitcher, Input, OptionList, Static

from llmtui.app.display import table_label
from llmtui.app.model_thread import call
from llmtui.app.panes.base import Debounce, Pane, error_line
from llmtui.app.panes.embeddings import view
from llmtui.app.panes.embeddings.context_view import ContextView
from llmtui.app.panes.embeddings.history import History, HistoryEntry
from llmtui.app.panes.embeddings.view import DEFAULT_QUERY, TYPING_DELAY, Answer, ContextAnswer, QueryRequest, View
from llmtui.app.state import ModelState
from llmtui.app.widgets.loading import LoadingNotice
from llmtui.app.widgets.neighbour_list import NeighbourList
from llmtui.app.widgets.safe_input import SafeInput
from llmtui.app.widgets.scatter import ScatterMap
from llmtui.app.widgets.token_choice import TokenChoice

if TYPE_CHECKING:
    from llmtui.app.selection import TokenSelection
    from llmtui.engine.lm import LanguageModel
    from llmtui.engine.studies.embeddings import EmbeddingIndex


class EmbeddingsPane(Pane):
    """Nearest neighbours, vector arithmetic, a PCA map, and a word's vector in context."""

    PANE_ID = "embeddings"
    MESSAGE_LINE = "#emb-message"
    TITLE = "Embeddings"
    SHORT_TITLE = "Emb"
    TYPED = "what you typed"
    TYPE_MEANWHILE = "you can type meanwhile"
    HELP = view.HELP

    BINDINGS = [
        Binding("f2", "toggle_space", "Leading ␣", tooltip="Look bare words up with or without a leading space"),
        Binding("f3", "toggle_inputs", "Inputs", tooltip="Leave an expression's own words out of its neighbours, or list them"),
        Binding("f4", "toggle_view", "Context", tooltip="Switch between the vocabulary and a word's vectors in context"),
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
        self._choice: int | None = None
        self._history = History()
        self._pending_token: int | None = None
        self._typing = Debounce(self, TYPING_DELAY, lambda: self._request(self.query_input.value, submitted=False, record=False))
        self._last_text: str | None = None  # the text of the last request (Input.Changed for it is ignored)
        self._map_neighbours = 0  # how many neighbours the last request put on the map

    # -- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield LoadingNotice(classes="pane-notice")
        with ContentSwitcher(id="emb-views", initial="emb-vocab"):
            with Vertical(id="emb-vocab"):
                query = SafeInput(DEFAULT_QUERY, placeholder="a word, king - man + woman, or cat dog banana car", id="emb-query")
                query.border_title = "Word · expression · list of words"
                yield query
                yield Static(id="emb-used")
                yield TokenChoice(id="emb-choice")
                yield Static(id="emb-message")
                with Horizontal(id="emb-main"):
                    yield NeighbourList(id="emb-neighbours")
                    yield ScatterMap(id="emb-map")
            yield ContextView(id="emb-context")

    def on_mount(self) -> None:
        self.choice_widget.set_tokens(())
        self.scatter.border_title = "Map"
        self.neighbour_list.border_title = "Nearest tokens"

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
    def context_view(self) -> ContextView:
        return self.query_one(ContextView)

    @property
    def answer(self) -> Answer | None:
        """What the vocabulary view shows now."""
        return self._answer

    @property
    def context(self) -> ContextAnswer | None:
        """What the context view shows now."""
        return self.context_view.answer

    @property
    def index(self) -> EmbeddingIndex | None:
        return self._index

    @property
    def ready(self) -> bool:
        return self.lm is not None and self._index is not None

    @property
    def message(self) -> str:
        """The vocabulary view's message line, as text."""
        return self.line_text()

    @property
    def context_message(self) -> str:
        return self.line_text("#emb-ctx-message")

    @property
    def used(self) -> str:
        """The line saying which tokens the query used, as text."""
        return self.line_text("#emb-used")

    def focus_default(self) -> None:
        if self.view == "vocab":
            self.query_input.focus()
        else:
            self.context_view.first_field.focus()

    def set_prompt(self, text: str) -> None:
        """The command line's prompt (--prompt) is the first query: a word, an expression or a list."""
        if text.strip():
            self.query_input.value = text

    # -- the model and the index -------------------------------------------------------------------

    def model_state_changed(self, state: ModelState) -> None:
        super().model_state_changed(state)
        if state.phase == "failed":
            self.say("No model: it could not be loaded.", "error", "#emb-ctx-message")
        elif state.phase == "loading":
            self.say(f"Loading the model… {self.TYPE_MEANWHILE}.", "busy", "#emb-ctx-message")

    def model_ready(self, lm: LanguageModel) -> None:
        self._index = None
        self.say("Preparing the embedding index…", "busy")
        self._build_index(lm)

    @work(exclusive=True, group="emb-index", exit_on_error=False)
    async def _build_index(self, lm: LanguageModel) -> None:
        """Normalise the embedding matrix once per model (a query is then one matrix-vector product)."""
        from llmtui.engine.studies.embeddings import EmbeddingIndex

        with self.reporting():
            self._index_ready(await call(EmbeddingIndex.of, lm))

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
            self.context_view.request(None)

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
        self._typing.cancel()
        self._last_text = text
        if not self.need_model("shown"):
            return
        size = self.scatter.content_region.size
        request = QueryRequest(text, self.leading_space if leading_space is None else leading_space, self.hide_inputs,
                               choice if choice is not None else self._choice,
                               view.map_size_for(size.width or 40, size.height or 12), submitted, record)
        self._map_neighbours = request.map_neighbours
        self._query_worker(request)

    @work(exclusive=True, group="emb-query", exit_on_error=False)
    async def _query_worker(self, request: QueryRequest) -> None:
        from llmtui.engine.studies.embeddings import QueryError

        lm, index = self.lm, self._index
        assert lm is not None and index is not None
        with self.reporting(lambda line: self._failed(request, line, (0, 0))):
            try:
                answer = await call(view.compute_answer, lm.tokenizer, index, request)
            except QueryError as e:
                self._failed(request, error_line(e), (e.start, e.end))
                return
            self._answered(request, answer)

    def _answered(self, request: QueryRequest, answer: Answer) -> None:
        assert self.lm is not None
        self._answer = answer
        if request.record:
            self._history.record(HistoryEntry(request.text, request.leading_space, request.choice))
        tokenizer = self.lm.tokenizer
        if answer.query.kind == "word" and len(answer.query.terms[0].ids) > 1:
            self.choice_widget.set_tokens(
                [table_label(tokenizer.token_text(i)) for i in answer.query.terms[0].ids], answer.choice
            )
        else:
            self.choice_widget.set_tokens(())
        self.query_one("#emb-used", Static).update(view.describe_query(answer, tokenizer, self.hide_inputs))
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
        self.say(view.MAP_HINTS[kind])
        self._fit_map()

    @on(ScatterMap.Resized)
    def _map_resized(self, event: ScatterMap.Resized) -> None:
        self._fit_map()

    def _fit_map(self) -> None:
        """A map that grew or shrank (or was not laid out yet when asked) gets as many neighbours as it can label."""
        answer, size = self._answer, self.scatter.content_region.size
        if answer is None or answer.query.kind == "list" or self.lm is None or not size.width or not size.height:
            return
        if self._typing.pending or answer.text != self.query_input.value:
            return  # the user is typing another query: it will be sized when it is answered
        if view.map_size_for(size.width, size.height) != self._map_neighbours:
            self._request(answer.text, submitted=False, record=False, choice=answer.choice,
                          leading_space=answer.query.leading_space)

    def _failed(self, request: QueryRequest, error: str, span: tuple[int, int]) -> None:
        self.say(error, "error" if request.submitted else "hint")
        start, end = span
        if end > start:  # show where, in what was typed
            self.query_one("#emb-used", Static).update(view.mistake_line(request.text, start, end))

    @property
    def history(self) -> list[str]:
        """The queries answered so far, oldest first (for tests and the palette)."""
        return [e.text for e in self._history.entries]

    # -- vocabulary view: events --------------------------------------------------------------------

    @on(Input.Changed, "#emb-query")
    def _query_changed(self, event: Input.Changed) -> None:
        if event.value == self._last_text:
            return
        self._choice = None
        self._typing.restart()

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
        entry = self._history.step(step)
        if entry is None:
            self.say("Nothing further back." if step < 0 else "Nothing further on.")
            return
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
        first = self.query_input if self.view == "vocab" else self.context_view.first_field
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
            if self.context_view.answer is None and self._index is not None:
                self.context_view.request(None)
            else:
                self.call_after_refresh(self.context_view.fit)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The vocabulary's keys show in the footer only in that view."""
        if action in ("toggle_space", "toggle_inputs", "back", "forward"):
            return self.view == "vocab"
        return True

    # -- export ----------------------------------------------------------------------------

    def export_data(self) -> dict | None:
        """What the view on screen shows: the vocabulary's neighbour list, or the word in context by layer."""
        if self.view == "context":
            answer = self.context_view.answer
            return None if answer is None or self.lm is None else view.export_context(answer, self.lm.tokenizer)
        return None if self._answer is None else view.export_vocab(self._answer)

    def export_table(self) -> tuple[list[str], list[list]] | None:
        exported = self.export_data()
        return None if exported is None else view.export_table(exported)
