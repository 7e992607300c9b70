"""The Attention pane: which earlier tokens each token looks at, for every layer and head.

A prompt is run once, on the model thread, with its attention captured (every layer and
head at once); moving to another layer or head then only redraws. The heatmap's rows
are the tokens that look (queries), its columns the tokens looked at (keys); the
blank upper triangle is the causal mask. An overview draws every head of a layer (or
of the model) small, each labelled with the pattern it follows most, and the side
panel lists what the selected token attends to, strongest first.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Sequence

import numpy as np
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Input, Static

from llmtui.app.display import count
from llmtui.app.messages import TextWanted
from llmtui.app.model_thread import call
from llmtui.app.panes.attention import view
from llmtui.app.panes.attention.maps import AttentionMaps
from llmtui.app.panes.base import Debounce, Pane
from llmtui.app.selection import TokenSelection
from llmtui.app.widgets.head_overview import HeadOverview
from llmtui.app.widgets.heatmap import Heatmap
from llmtui.app.widgets.loading import LoadingNotice
from llmtui.app.widgets.safe_input import SafeInput
from llmtui.app.widgets.weight_bars import WeightBars

if TYPE_CHECKING:
    from llmtui.engine.lm import LanguageModel
    from llmtui.engine.studies.attention import AttentionMap

TYPING_DELAY = 0.5
"""Seconds after the last key press in the prompt before its attention is computed."""


class AttentionPane(Pane):
    """A prompt's attention weights: a heatmap per layer and head, overviews, and what a token attends to."""

    PANE_ID = "attention"
    MESSAGE_LINE = "#att-message"
    TITLE = "Attention"
    SHORT_TITLE = "Attn"
    HELP = view.HELP

    BINDINGS = [
        # the nav line shows these four keys next to its arrows: the footer keeps its room for the others
        Binding("left_square_bracket", "layer(-1)", "Previous layer", key_display="[", show=False),
        Binding("right_square_bracket", "layer(1)", "Next layer", key_display="]", show=False),
        Binding("comma", "head(-1)", "Previous head", key_display=",", show=False),
        Binding("full_stop", "head(1)", "Next head", key_display=".", show=False),
        Binding("a", "toggle_average", "Average", tooltip="The mean of the layer's heads, or one head"),
        Binding("o", "overview('layer')", "Heads", tooltip="Every head of this layer, small"),
        Binding("O", "overview('all')", "All layers", tooltip="Every head of every layer, small"),
        Binding("g", "from_generate", "From Generate", tooltip="The Generate pane's text: prompt and generated tokens"),
        Binding("escape", "back", "", show=False, tooltip="From an overview back to the map"),
    ]

    def help_keys(self) -> list[tuple[str, str]]:
        """The pane's keys as they are typed ('[' rather than its key name), then the map's and the overview's."""
        return [(b.key_display or b.key, b.description) for b in self._bindings_for_help() if b.description] \
            + view.MORE_KEYS

    def __init__(self) -> None:
        super().__init__()
        self.showing = view.Showing()
        """The layer and head shown (or the layer's mean), on the map or in an overview."""
        self.source = ""
        """What the shown text is: 'your prompt', "the Generate pane's text"."""
        self.capture_seconds: float | None = None
        """How long the last capture took (model run included)."""
        self._pending_row: int | None = None  # the query row to select when the capture lands (a followed token)
        self._typing = Debounce(self, TYPING_DELAY, lambda: self.capture_text(self.prompt.value))
        self._focus_map = False  # move the focus to the map when the capture lands (enter was pressed)
        self._cursor_at: tuple[tuple[int, ...] | None, int] = (None, -1)  # (text, row) at the last cursor move

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield LoadingNotice(classes="pane-notice")
        with Horizontal(id="att-top"):
            yield Static("Prompt ›", id="att-prompt-label")
            yield SafeInput(id="att-prompt", placeholder="Type a prompt and press enter to see its attention")
        yield Static(id="att-nav")
        yield Static(id="att-message")
        yield AttentionMaps(id="att-main")

    def on_mount(self) -> None:
        self._update_nav()

    @property
    def prompt(self) -> Input:
        return self.query_one("#att-prompt", Input)

    @property
    def maps(self) -> AttentionMaps:
        return self.query_one(AttentionMaps)

    @property
    def heatmap(self) -> Heatmap:
        return self.maps.heatmap

    @property
    def overview(self) -> HeadOverview:
        return self.maps.overview

    @property
    def bars(self) -> WeightBars:
        return self.maps.bars

    @property
    def attention(self) -> AttentionMap | None:
        """The shown text's attention (None before the first capture)."""
        return self.maps.attention

    @property
    def labels(self) -> tuple[str, ...]:
        return self.maps.labels

    @property
    def layer_index(self) -> int:
        return self.showing.layer

    @property
    def head_index(self) -> int:
        return self.showing.head

    @property
    def average(self) -> bool:
        """Whether the map shows the mean of the layer's heads instead of one head."""
        return self.showing.average

    @property
    def view(self) -> view.View:
        return self.showing.view

    @property
    def message(self) -> str:
        """The text of the pane's message line."""
        return self.line_text()

    @property
    def shown_weights(self) -> np.ndarray:
        """The (T, T) weights on the map now: one head's, or the layer's mean."""
        return self.heatmap.values

    def focus_default(self) -> None:
        if self.attention is None:
            self.prompt.focus()
        elif self.view == "map":
            self.heatmap.focus()
        else:
            self.overview.focus()

    def set_prompt(self, text: str) -> None:
        self.prompt.value = text
        self.prompt.cursor_position = len(text)

    # -- the model -------------------------------------------------------------------------

    def model_ready(self, lm: LanguageModel) -> None:
        c = lm.config
        self.showing = self.showing.within(c.n_layer, c.n_head)
        self._update_nav()
        if self.prompt.value.strip():
            self._focus_map = self.app.focused is self.prompt  # a prompt from the command line: ready to explore
            self.capture_text(self.prompt.value)
        else:
            self.say(f"Ready · {c.n_layer} layers × {c.n_head} heads · type a prompt and press enter")

    # -- capturing -------------------------------------------------------------------------

    def capture_text(self, text: str) -> None:
        """Compute the attention of a prompt (in a thread); the map shows it when it is ready."""
        self._typing.cancel()
        if not self.need_model():
            return
        if not text.strip():
            self.workers.cancel_group(self, "attention")  # a pending capture is stale now
            self._fail("The prompt is empty: type some text first.")
            return
        self._start(text, None, "your prompt")

    def show_ids(self, ids: Sequence[int], source: str = "the given tokens") -> None:
        """Compute the attention of a sequence of token ids (a generated text); the prompt box is left as it is."""
        if self.need_model():
            self._focus_map = True
            self._start(None, tuple(ids), source)

    def follow_selection(self, selection: TokenSelection) -> None:
        """The app's current token (chosen in another pane): its row of attention, in its whole text."""
        if self.attention is not None and self.attention.ids == selection.ids:
            row = selection.position
            self.heatmap.select(row, int(np.argmax(self.maps.matrix(self.showing)[row])))
            return
        title = selection.source_title or selection.source
        self._pending_row = selection.position
        self.show_ids(selection.ids, source=f"the {title} pane's text")

    def _start(self, text: str | None, ids: tuple[int, ...] | None, source: str) -> None:
        self.say(f"Running the model over {source}…", "busy")
        self._capture(text, ids, source)

    @work(exclusive=True, group="attention", exit_on_error=False)
    async def _capture(self, text: str | None, ids: tuple[int, ...] | None, source: str) -> None:
        """One forward pass with capture, on the app's model thread (a newer request cancels this one)."""
        from llmtui.engine.studies import attention as engine

        lm = self.lm
        assert lm is not None
        with self.reporting(self._fail):  # empty or too long (the user's to fix), or a bug
            started = time.perf_counter()
            token_ids = list(ids) if ids is not None else await call(lm.prompt_ids, text or "")  # what the model sees: BOS too
            # the last map's rows and KV cache are reused when the text continues it (typing on, a generation)
            attention = await call(engine.capture_attention, lm, token_ids, previous=self.attention)
            labels = view.token_labels(lm.tokenizer, token_ids)
            self._show(attention, labels, source, time.perf_counter() - started)

    def _show(self, attention: AttentionMap, labels: tuple[str, ...], source: str, seconds: float) -> None:
        self.source = source
        self.showing = self.showing.within(attention.n_layer, attention.n_head)
        row, self._pending_row = self._pending_row, None
        row = self.maps.show(attention, labels, self.showing, row)  # on what the token looks at most
        self._cursor_at = (attention.ids, row)  # a new text's first row is not a selection (see _post_selection)
        self._update_nav()
        self.capture_seconds = seconds
        # the layer and head counts are on the nav line: this one fits 80 columns for a short source
        self.say(f"{count(attention.n_tokens, 'token')} of {source} · [ ] layer · , . head · arrows pick a cell")
        if self._focus_map or self.app.focused is None:
            self._focus_map = False
            self.focus_default()

    def _fail(self, error: str) -> None:
        """Say what went wrong; the map is emptied so that it never shows another text's attention."""
        self.maps.clear(error)
        self._update_nav()
        self.say(error, "error")

    def _redraw(self) -> None:
        """The layer, head or mode changed: redraw from the captured weights (no model run)."""
        self.maps.redraw(self.showing)
        self._update_nav()

    def _head_name(self) -> str:
        if self.attention is None:
            return ""
        return view.head_name(self.attention, self.showing.layer, self.showing.head, self.showing.average)

    def _update_nav(self) -> None:
        """The line of clickable controls: ◀ layer ▶, ◀ head ▶, average, overviews."""
        nav = self.query_one("#att-nav", Static)
        if self.lm is None:
            nav.update("")
            return
        c, attention = self.lm.config, self.attention
        s = self.showing
        nav.update(view.nav_line(s.layer, s.head, attention.n_layer if attention else c.n_layer,
                                 attention.n_head if attention else c.n_head, s.average, s.view))
        self.heatmap.border_title = self._head_name() if attention else "Attention"
        if attention is not None:
            what = "every head of every layer" if self.view == "all" else f"layer {self.layer_index}: every head"
            self.overview.border_title = f"{what} · {count(attention.n_tokens, 'token')} · enter or a click opens one"

    @on(events.Click, "#att-nav")
    async def _nav_clicked(self, event: events.Click) -> None:
        action = event.style.meta.get("nav")
        if action:
            event.stop()
            await self.run_action(action)

    # -- widgets' messages -----------------------------------------------------------------

    @on(Heatmap.CursorMoved, "#att-map")
    def _cursor_moved(self, event: Heatmap.CursorMoved) -> None:
        event.stop()
        self.maps.update_side(self.showing)
        if (event.row, event.col) == self.heatmap.cursor:  # else a stale move, on a text shown before this one
            self._post_selection(event.row)

    def _post_selection(self, row: int) -> None:
        """The cursor moved to another query token of the same text: make it the app's current token.

        A new text's first cursor and a token followed from another pane are not the user's choice here:
        the first changes the text, the second is already the app's token.
        """
        ids = self.attention.ids if self.attention is not None else None
        moved = ids is not None and ids == self._cursor_at[0] and row != self._cursor_at[1] and 0 <= row < len(ids)
        self._cursor_at = (ids, row)
        if moved and ids is not None:
            self.select_token(ids, row)

    @on(HeadOverview.Highlighted, "#att-overview")
    def _head_highlighted(self, event: HeadOverview.Highlighted) -> None:
        event.stop()
        self.maps.update_side(self.showing)

    @on(HeadOverview.Opened, "#att-overview")
    def _head_opened(self, event: HeadOverview.Opened) -> None:
        event.stop()
        if self.attention is None:
            return
        shown = self.attention.n_head * (self.attention.n_layer if self.view == "all" else 1)
        if self.view not in ("layer", "all") or event.count != shown or not 0 <= event.index < shown:
            return  # a choice among thumbnails shown before (another view or text), still queued
        layer, head = self.showing.overview_head(event.index, self.attention.n_head)
        self.showing = replace(self.showing, layer=layer, head=head, average=False)
        self._set_view("map")
        self.say(f"Opened {self._head_name()}.")

    @on(Input.Submitted, "#att-prompt")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._focus_map = True
        self.capture_text(event.value)

    @on(Input.Changed, "#att-prompt")
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        if self.lm is None:
            return
        self._typing.cancel()
        if event.value.strip():
            self._typing.restart()

    # -- actions ---------------------------------------------------------------------------

    def _need_attention(self) -> bool:
        if self.attention is None:
            self.say("Nothing to show yet: type a prompt and press enter.", "error")
            return False
        return True

    def action_layer(self, delta: int) -> None:
        """The previous or next layer; at the first or last one, say so and stay."""
        if self._need_attention():
            assert self.attention is not None
            self._step(*view.step_layer(self.showing, delta, self.attention.n_layer))

    def action_head(self, delta: int) -> None:
        """The previous or next head (from the mean: back to one head); at either end, say so and stay."""
        if self._need_attention():
            assert self.attention is not None
            self._step(*view.step_head(self.showing, delta, self.attention.n_head))

    def _step(self, showing: view.Showing, why_not: str | None) -> None:
        if why_not is not None:
            self.say(why_not)
            return
        self.showing = showing
        self._redraw()
        self.say(f"Showing {self._head_name()}.")

    def action_toggle_average(self) -> None:
        if not self._need_attention():
            return
        self.showing = replace(self.showing, average=not self.showing.average)
        if self.view != "map":
            self._set_view("map")
        else:
            self._redraw()
        self.say(f"Showing {self._head_name()}.")

    def action_overview(self, which: view.View) -> None:
        """Every head of the layer (or of the model) small; the same key again goes back to the map."""
        if not self._need_attention():
            return
        self._set_view("map" if self.view == which else which)
        if self.view != "map":
            self.say("Arrows move, enter or a click opens a head · escape goes back to the map.")

    def action_back(self) -> None:
        """From an overview back to the map; from the prompt box back to the map."""
        if self.view != "map":
            self._set_view("map")
        elif self.app.focused is self.prompt and self.attention is not None:
            self.heatmap.focus()

    def _set_view(self, which: view.View) -> None:
        self.showing = replace(self.showing, view=which)
        self.set_class(which != "map", "-overview")
        self.maps.switch(self.showing)
        self._update_nav()

    def action_from_generate(self) -> None:
        """Show the attention of the Generate pane's text: its prompt and the tokens generated so far."""
        self.post_message(TextWanted("generate", self._generated_text))

    def _generated_text(self, ids: tuple[int, ...] | None) -> None:
        if not ids:
            self.say("Nothing generated yet: generate some text in the Generate pane first.", "error")
            return
        self.show_ids(ids, source="the Generate pane's text")

    # -- presentation, demos and export ----------------------------------------------------

    def show_head(self, layer: int, head: int) -> None:
        """Show one head (for demos); kept within the model's layers and heads."""
        self.showing = replace(self.showing, layer=max(0, layer), head=max(0, head), average=False)
        if self.attention is not None:
            self.showing = self.showing.within(self.attention.n_layer, self.attention.n_head)
            if self.view != "map":
                self._set_view("map")
            self._redraw()
            self.say(f"Showing {self._head_name()}.")

    def advance(self) -> bool:
        """The advance key: the next head; after a layer's last head, the next layer's first."""
        if self.attention is None:
            return False
        self.show_head(*view.next_head(self.showing, self.attention.n_layer, self.attention.n_head))
        return True

    def export_data(self) -> dict | None:
        """The map shown: its tokens and its weights (row i: how much token i attends to each token)."""
        if self.attention is None:
            return None
        s = self.showing
        return view.export_data(self.attention, self.labels, self.source, s.layer, s.head, s.average, self.shown_weights)

    def export_table(self) -> tuple[list[str], list[list]] | None:
        return None if self.attention is None else view.export_table(self.labels, self.shown_weights)
