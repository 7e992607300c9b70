"""The Embeddings pane's vocabulary view: a query (a word, an expression or a list of words), its nearest
tokens and their map.

A query is answered by an exclusive worker awaiting the model thread, so a newer query
cancels an older one; typing waits for a pause. What it computes and the lines it draws
are in view.py; the switches that shape a query (leading space, inputs) are the pane's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, OptionList, Static

from llmtui.app.display import table_label
from llmtui.app.model_thread import call
from llmtui.app.panes.base import Debounce, Pane, error_line
from llmtui.app.panes.embeddings import view
from llmtui.app.panes.embeddings.history import History, HistoryEntry
from llmtui.app.panes.embeddings.view import DEFAULT_QUERY, TYPING_DELAY, Answer, QueryRequest
from llmtui.app.widgets.neighbour_list import NeighbourList
from llmtui.app.widgets.safe_input import SafeInput
from llmtui.app.widgets.scatter import ScatterMap
from llmtui.app.widgets.token_choice import TokenChoice

if TYPE_CHECKING:
    from llmtui.app.panes.embeddings.pane import EmbeddingsPane


class VocabView(Vertical):
    """The query box, the tokens it used, a choice among a word's pieces, the message line, the list and the map."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.answer: Answer | None = None
        """What the view shows now."""
        self.history = History()
        self._choice: int | None = None
        self._typing = Debounce(self, TYPING_DELAY, lambda: self.request(self.query_input.value, submitted=False, record=False))
        self._last_text: str | None = None  # the text of the last request (Input.Changed for it is ignored)
        self._map_neighbours = 0  # how many neighbours the last request put on the map

    def compose(self) -> ComposeResult:
        query = SafeInput(DEFAULT_QUERY, placeholder="a word, king - man + woman, or cat dog banana car", id="emb-query")
        query.border_title = "Word · expression · list of words"
        yield query
        yield Static(id="emb-used")
        yield TokenChoice(id="emb-choice")
        yield Static(id="emb-message")
        with Horizontal(id="emb-main"):
            yield NeighbourList(id="emb-neighbours")
            yield ScatterMap(id="emb-map")

    def on_mount(self) -> None:
        self.choice_widget.set_tokens(())
        self.scatter.border_title = "Map"
        self.neighbour_list.border_title = "Nearest tokens"

    @property
    def pane(self) -> EmbeddingsPane:
        return cast("EmbeddingsPane", self.query_ancestor(Pane))

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

    def set_query_text(self, text: str, choice: int | None = None) -> None:
        """Put a query in the box (not typed: it is answered by the caller, not after a pause)."""
        self._choice = choice
        self._last_text = text
        self.query_input.value = text
        self.query_input.cursor_position = len(text)

    def request(self, text: str, *, submitted: bool, record: bool, choice: int | None = None,
                leading_space: bool | None = None) -> None:
        """Answer `text` (`submitted`: errors loudly, `record`: into the history) with the pane's switches."""
        self._typing.cancel()
        self._last_text = text
        pane = self.pane
        if not pane.need_model("shown"):
            return
        size = self.scatter.content_region.size
        request = QueryRequest(text, pane.leading_space if leading_space is None else leading_space, pane.hide_inputs,
                               choice if choice is not None else self._choice,
                               view.map_size_for(size.width or 40, size.height or 12), submitted, record)
        self._map_neighbours = request.map_neighbours
        self._query_worker(request)

    @work(exclusive=True, group="emb-query", exit_on_error=False)
    async def _query_worker(self, request: QueryRequest) -> None:
        from llmtui.engine.studies.embeddings import QueryError

        pane = self.pane
        lm, index = pane.lm, pane.index
        assert lm is not None and index is not None
        with pane.reporting(lambda line: self._failed(request, line, (0, 0))):
            try:
                answer = await call(view.compute_answer, lm.tokenizer, index, request)
            except QueryError as e:
                self._failed(request, error_line(e), (e.start, e.end))
                return
            self._answered(request, answer)

    def _answered(self, request: QueryRequest, answer: Answer) -> None:
        pane = self.pane
        assert pane.lm is not None
        self.answer = answer
        if request.record:
            self.history.record(HistoryEntry(request.text, request.leading_space, request.choice))
        tokenizer, kind = pane.lm.tokenizer, answer.query.kind
        pieces = answer.query.terms[0].ids if kind == "word" and len(answer.query.terms[0].ids) > 1 else ()
        self.choice_widget.set_tokens([table_label(tokenizer.token_text(i)) for i in pieces], answer.choice if pieces else None)
        self.query_one("#emb-used", Static).update(view.describe_query(answer, tokenizer, pane.hide_inputs))
        self.neighbour_list.show(answer.rows)
        self.neighbour_list.border_title = Text(answer.title)  # a Text: the query's [brackets] are not markup
        index = pane.index
        self.neighbour_list.border_subtitle = f"{len(answer.rows)} of {index.vocab_size:,}" if index and kind != "list" else "cosine"
        self.scatter.points = answer.points
        self.scatter.highlight = answer.rows[0].key if answer.rows else None
        self.scatter.border_title = f"Map · PCA of {len(answer.points)} {'words' if kind == 'list' else 'tokens'}"
        ex = answer.explained
        self.scatter.border_subtitle = f"axes: {ex[0]:.0%} and {ex[1]:.0%} of the variance"
        pane.say(view.MAP_HINTS[kind])
        self._fit_map()

    @on(ScatterMap.Resized)
    def _map_resized(self, event: ScatterMap.Resized) -> None:
        self._fit_map()

    def _fit_map(self) -> None:
        """A map that grew or shrank (or was not laid out yet when asked) gets as many neighbours as it can label."""
        answer, size = self.answer, self.scatter.content_region.size
        if answer is None or answer.query.kind == "list" or self.pane.lm is None or not size.width or not size.height:
            return
        if self._typing.pending or answer.text != self.query_input.value:
            return  # the user is typing another query: it will be sized when it is answered
        if view.map_size_for(size.width, size.height) != self._map_neighbours:
            self.request(answer.text, submitted=False, record=False, choice=answer.choice,
                         leading_space=answer.query.leading_space)

    def _failed(self, request: QueryRequest, error: str, span: tuple[int, int]) -> None:
        self.pane.say(error, "error" if request.submitted else "hint")
        start, end = span
        if end > start:  # show where, in what was typed
            self.query_one("#emb-used", Static).update(view.mistake_line(request.text, start, end))

    def step_history(self, step: int) -> HistoryEntry | None:
        """Back (-1) or forward (1) in the history: the entry there is put in the box, or None at either end."""
        entry = self.history.step(step)
        if entry is not None:
            self.set_query_text(entry.text, entry.choice)
        return entry

    @on(Input.Changed, "#emb-query")
    def _query_changed(self, event: Input.Changed) -> None:
        if event.value == self._last_text:
            return
        self._choice = None
        self._typing.restart()

    @on(Input.Submitted, "#emb-query")
    def _query_submitted(self, event: Input.Submitted) -> None:
        self.request(event.value, submitted=True, record=True)

    @on(TokenChoice.Changed)
    def _choice_changed(self, event: TokenChoice.Changed) -> None:
        self._choice = event.choice
        self.request(self.query_input.value, submitted=True, record=True, choice=event.choice)

    @on(OptionList.OptionHighlighted, "#emb-neighbours")
    def _neighbour_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        rows = self.neighbour_list.rows
        if 0 <= event.option_index < len(rows):
            self.scatter.highlight = rows[event.option_index].key

    @on(OptionList.OptionSelected, "#emb-neighbours")
    def _neighbour_selected(self, event: OptionList.OptionSelected) -> None:
        rows = self.neighbour_list.rows
        if 0 <= event.option_index < len(rows):
            self.set_query_text(rows[event.option_index].query_text)
            self.request(rows[event.option_index].query_text, submitted=True, record=True)
