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

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import ContentSwitcher, Input

from llmtui.app.model_thread import call
from llmtui.app.panes.base import Pane
from llmtui.app.panes.embeddings import view
from llmtui.app.panes.embeddings.context_view import ContextView
from llmtui.app.panes.embeddings.context_answer import ContextAnswer, export_context
from llmtui.app.panes.embeddings.view import Answer, View
from llmtui.app.panes.embeddings.vocab_view import VocabView
from llmtui.app.state import ModelState
from llmtui.app.widgets.loading import LoadingNotice
from llmtui.app.widgets.neighbour_list import NeighbourList
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
        self._pending_token: int | None = None

    # -- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield LoadingNotice(classes="pane-notice")
        with ContentSwitcher(id="emb-views", initial="emb-vocab"):
            yield VocabView(id="emb-vocab")
            yield ContextView(id="emb-context")

    @property
    def vocab_view(self) -> VocabView:
        return self.query_one(VocabView)

    @property
    def query_input(self) -> Input:
        return self.vocab_view.query_input

    @property
    def neighbour_list(self) -> NeighbourList:
        return self.vocab_view.neighbour_list

    @property
    def scatter(self) -> ScatterMap:
        return self.vocab_view.scatter

    @property
    def choice_widget(self) -> TokenChoice:
        return self.vocab_view.choice_widget

    @property
    def context_view(self) -> ContextView:
        return self.query_one(ContextView)

    @property
    def answer(self) -> Answer | None:
        """What the vocabulary view shows now."""
        return self.vocab_view.answer

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
            self.vocab_view.request(self.query_input.value, submitted=False, record=True)
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

        self.vocab_view.set_query_text(token_query_text(self.lm.tokenizer, token_id, self.leading_space))
        self.vocab_view.request(self.query_input.value, submitted=True, record=True)

    def follow_selection(self, selection: TokenSelection) -> None:
        """A token selected in another pane becomes the query (the app sends each selection once: a query typed here stays)."""
        self.show_token(selection.token_id)

    @property
    def history(self) -> list[str]:
        """The queries answered so far, oldest first (for tests and the palette)."""
        return [e.text for e in self.vocab_view.history.entries]

    # -- the vocabulary view's switches and history ----------------------------------------------------

    def action_back(self) -> None:
        """The previous query in the history."""
        self._step_history(-1)

    def action_forward(self) -> None:
        """The next query in the history (after going back)."""
        self._step_history(1)

    def _step_history(self, step: int) -> None:
        if self.view != "vocab":
            return
        entry = self.vocab_view.step_history(step)
        if entry is None:
            self.say("Nothing further back." if step < 0 else "Nothing further on.")
            return
        self.set_reactive(EmbeddingsPane.leading_space, entry.leading_space)
        self.vocab_view.request(entry.text, submitted=True, record=False, choice=entry.choice)

    def action_toggle_space(self) -> None:
        """Look bare words up with or without a leading space."""
        self.leading_space = not self.leading_space

    def watch_leading_space(self, value: bool) -> None:
        if self.view == "vocab":
            self.vocab_view.request(self.query_input.value, submitted=True, record=True)

    def action_toggle_inputs(self) -> None:
        """An expression's own words: left out of its neighbours, or listed."""
        self.hide_inputs = not self.hide_inputs

    def watch_hide_inputs(self, value: bool) -> None:
        self.vocab_view.request(self.query_input.value, submitted=True, record=False)

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
            return None if answer is None or self.lm is None else export_context(answer, self.lm.tokenizer)
        answer = self.vocab_view.answer
        return None if answer is None else view.export_vocab(answer)

    def export_table(self) -> tuple[list[str], list[list]] | None:
        exported = self.export_data()
        return None if exported is None else view.export_table(exported)
