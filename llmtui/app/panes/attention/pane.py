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
from typing import TYPE_CHECKING, Sequence

import numpy as np
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.timer import Timer
from textual.widgets import ContentSwitcher, Input, Static

from llmtui.app.display import count
from llmtui.app.messages import TextWanted
from llmtui.app.model_thread import call
from llmtui.app.panes.attention import view
from llmtui.app.panes.base import Pane, error_line
from llmtui.app.selection import TokenSelection
from llmtui.app.widgets.head_overview import HeadOverview
from llmtui.app.widgets.heatmap import Heatmap
from llmtui.app.widgets.loading import LoadingNotice
from llmtui.app.widgets.safe_input import SafeInput
from llmtui.app.widgets.weight_bars import WeightBars

if TYPE_CHECKING:
    from llmtui.engine.studies.attention import AttentionMap
    from llmtui.engine.lm import LanguageModel

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
        self.attention: AttentionMap | None = None
        """The shown text's attention (None before the first capture)."""
        self.labels: tuple[str, ...] = ()
        self.layer_index = 0
        self.head_index = 0
        self.average = False
        """Show the mean of the layer's heads instead of one head."""
        self.view: view.View = "map"
        self.source = ""
        """What the shown text is: 'your prompt', "the Generate pane's text"."""
        self.capture_seconds: float | None = None
        """How long the last capture took (model run included)."""
        self._pending_row: int | None = None  # the query row to select when the capture lands (a followed token)
        self._mask = np.zeros((0, 0), dtype=bool)
        self._typing_timer: Timer | None = None
        self._overview_key: tuple[str, int, int] | None = None  # what the overview shows, to skip rebuilding it
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
        with Horizontal(id="att-main"):
            with ContentSwitcher(id="att-views", initial="att-map"):
                yield Heatmap(id="att-map", pool="mass", row_title="query", col_title="key",
                              mask_note="blank: can't look ahead",
                              empty_text="Type a prompt above and press enter.")
                yield HeadOverview(id="att-overview", pool="mass")
            with VerticalScroll(id="att-side"):
                yield WeightBars(id="att-bars")

    def on_mount(self) -> None:
        self._update_nav()

    @property
    def prompt(self) -> Input:
        return self.query_one("#att-prompt", Input)

    @property
    def heatmap(self) -> Heatmap:
        return self.query_one("#att-map", Heatmap)

    @property
    def overview(self) -> HeadOverview:
        return self.query_one("#att-overview", HeadOverview)

    @property
    def bars(self) -> WeightBars:
        return self.query_one("#att-bars", WeightBars)

    @property
    def message(self) -> str:
        """The text of the pane's message line."""
        return str(self.query_one("#att-message", Static).render())

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
        self.layer_index = min(self.layer_index, c.n_layer - 1)
        self.head_index = min(self.head_index, c.n_head - 1)
        self._update_nav()
        if self.prompt.value.strip():
            self._focus_map = self.app.focused is self.prompt  # a prompt from the command line: ready to explore
            self.capture_text(self.prompt.value)
        else:
            self.say(f"Ready · {c.n_layer} layers × {c.n_head} heads · type a prompt and press enter")

    # -- capturing -------------------------------------------------------------------------

    def capture_text(self, text: str) -> None:
        """Compute the attention of a prompt (in a thread); the map shows it when it is ready."""
        if self._typing_timer is not None:
            self._typing_timer.stop()
        if not self._ready():
            return
        if not text.strip():
            self.workers.cancel_group(self, "attention")  # a pending capture is stale now
            self._fail("The prompt is empty: type some text first.")
            return
        self._start(text, None, "your prompt")

    def show_ids(self, ids: Sequence[int], source: str = "the given tokens") -> None:
        """Compute the attention of a sequence of token ids (a generated text); the prompt box is left as it is."""
        if self._ready():
            self._focus_map = True
            self._start(None, tuple(ids), source)

    def follow_selection(self, selection: TokenSelection) -> None:
        """The app's current token (chosen in another pane): its row of attention, in its whole text."""
        if self.attention is not None and self.attention.ids == selection.ids:
            row = selection.position
            self.heatmap.select(row, int(np.argmax(self._matrix()[row])))
            return
        title = selection.source_title or selection.source
        self._pending_row = selection.position
        self.show_ids(selection.ids, source=f"the {title} pane's text")

    def _ready(self) -> bool:
        if self.lm is None:
            if self.model_state.phase == "failed":
                self.say("No model: it could not be loaded. Your prompt is kept.", "error")
            else:
                self.say("The model is still loading; your prompt is kept and runs when it is ready.", "busy")
            return False
        return True

    def _start(self, text: str | None, ids: tuple[int, ...] | None, source: str) -> None:
        self.say(f"Running the model over {source}…", "busy")
        self._capture(text, ids, source)

    @work(exclusive=True, group="attention", exit_on_error=False)
    async def _capture(self, text: str | None, ids: tuple[int, ...] | None, source: str) -> None:
        """One forward pass with capture, on the app's model thread (a newer request cancels this one)."""
        from llmtui.engine.studies import attention as engine

        lm = self.lm
        assert lm is not None
        try:
            started = time.perf_counter()
            token_ids = list(ids) if ids is not None else await call(lm.prompt_ids, text or "")  # what the model sees: BOS too
            # the last map's rows and KV cache are reused when the text continues it (typing on, a generation)
            attention = await call(engine.capture_attention, lm, token_ids, previous=self.attention)
            labels = view.token_labels(lm.tokenizer, token_ids)
        except Exception as e:  # empty or too long (the user's to fix), or a bug: one line, the app keeps running
            self._fail(error_line(e))
            return
        self._show(attention, labels, source, time.perf_counter() - started)

    def _show(self, attention: AttentionMap, labels: tuple[str, ...], source: str, seconds: float) -> None:
        self.attention = attention
        self.labels = labels
        self.source = source
        self.layer_index = min(self.layer_index, attention.n_layer - 1)
        self.head_index = min(self.head_index, attention.n_head - 1)
        T = attention.n_tokens
        self._mask = np.triu(np.ones((T, T), dtype=bool), 1)
        self._overview_key = None
        values = self._matrix()
        row = self._pending_row if self._pending_row is not None and self._pending_row < T else T - 1
        self._pending_row = None
        strongest = int(np.argmax(values[row]))  # open on what the token looks at most (the last one by default)
        self.heatmap.set_matrix(values, self.labels, self.labels, self._mask, cursor=(row, strongest))
        self._cursor_at = (attention.ids, row)  # a new text's first row is not a selection (see _post_selection)
        if self.view != "map":
            self._show_overview()
        self._update_nav()
        self._update_side()
        self.capture_seconds = seconds
        # the layer and head counts are on the nav line: this one fits 80 columns for a short source
        self.say(f"{count(T, 'token')} of {source} · [ ] layer · , . head · arrows pick a cell")
        if self._focus_map or self.app.focused is None:
            self._focus_map = False
            self.focus_default()

    def _fail(self, error: str) -> None:
        """Say what went wrong; the map is emptied so that it never shows another text's attention."""
        self.attention = None
        self.labels = ()
        self.heatmap.clear(error)
        self.overview.clear()
        self._overview_key = None
        self.bars.show(Text(""), [])
        self._update_nav()
        self.say(error, "error")

    # -- showing ---------------------------------------------------------------------------

    def _matrix(self) -> np.ndarray:
        assert self.attention is not None
        return self.attention.matrix(self.layer_index, None if self.average else self.head_index).numpy()

    def _redraw(self) -> None:
        """The layer, head or mode changed: redraw from the captured weights (no model run)."""
        if self.attention is not None:
            self.heatmap.set_values(self._matrix(), self._mask)
            if self.view != "map":
                self._show_overview()
        self._update_nav()
        self._update_side()

    def _head_name(self) -> str:
        if self.attention is None:
            return ""
        return view.head_name(self.attention, self.layer_index, self.head_index, self.average)

    def _update_nav(self) -> None:
        """The line of clickable controls: ◀ layer ▶, ◀ head ▶, average, overviews."""
        nav = self.query_one("#att-nav", Static)
        if self.lm is None:
            nav.update("")
            return
        c, attention = self.lm.config, self.attention
        nav.update(view.nav_line(self.layer_index, self.head_index, attention.n_layer if attention else c.n_layer,
                                 attention.n_head if attention else c.n_head, self.average, self.view))
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

    def _update_side(self) -> None:
        """The side panel: what the selected token attends to, and the head's pattern scores."""
        attention = self.attention
        if attention is None:
            self.bars.show(Text("Select a cell of the map: what its token attends to shows here.", style="dim"), [])
            return
        layer, head = self.layer_index, self.head_index
        if self.view != "map":
            index = self.overview.cursor
            if self.view == "all":
                layer, head = divmod(index, attention.n_head)
            else:
                head = index
        use_mean = self.average and self.view == "map"
        row, col = self.heatmap.cursor
        heading, rows, note = view.side_panel(attention, self.labels, layer, head, use_mean, row, col)
        self.bars.show(heading, rows, note, highlight=col)

    def _show_overview(self) -> None:
        attention = self.attention
        if attention is None:
            self.overview.clear()
            return
        key = (self.view, self.layer_index if self.view == "layer" else -1, id(attention))
        cursor = self.head_index if self.view == "layer" else self.layer_index * attention.n_head + self.head_index
        if key == self._overview_key:
            if self.overview.cursor != cursor:
                self.overview.cursor = cursor
            return
        self._overview_key = key
        layers = [self.layer_index] if self.view == "layer" else list(range(attention.n_layer))
        titles, notes = view.thumbnails(attention, layers, self.view == "layer")
        T = attention.n_tokens
        if self.view == "layer":
            stack = attention.weights[self.layer_index].numpy()  # (n_head, T, T): a view, no copy
            self.overview.set_thumbs(stack, titles, notes, self._mask, cursor=cursor)
        else:
            stack = attention.weights.reshape(-1, T, T).numpy()  # every head of every layer, a view
            self.overview.set_thumbs(stack, titles, notes, self._mask, columns=attention.n_head,
                                     row_labels=[f"L{n}" for n in layers], cursor=cursor)

    # -- widgets' messages -----------------------------------------------------------------

    @on(Heatmap.CursorMoved, "#att-map")
    def _cursor_moved(self, event: Heatmap.CursorMoved) -> None:
        event.stop()
        self._update_side()
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

    @on(WeightBars.Chosen, "#att-bars")
    def _key_chosen(self, event: WeightBars.Chosen) -> None:
        event.stop()
        row, _ = self.heatmap.cursor
        self.heatmap.select(row, event.index)

    @on(HeadOverview.Highlighted, "#att-overview")
    def _head_highlighted(self, event: HeadOverview.Highlighted) -> None:
        event.stop()
        self._update_side()

    @on(HeadOverview.Opened, "#att-overview")
    def _head_opened(self, event: HeadOverview.Opened) -> None:
        event.stop()
        if self.attention is None:
            return
        shown = self.attention.n_head * (self.attention.n_layer if self.view == "all" else 1)
        if self.view not in ("layer", "all") or event.count != shown or not 0 <= event.index < shown:
            return  # a choice among thumbnails shown before (another view or text), still queued
        if self.view == "all":
            self.layer_index, self.head_index = divmod(event.index, self.attention.n_head)
        else:
            self.head_index = event.index
        self.average = False
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
        if self._typing_timer is not None:
            self._typing_timer.stop()
        if event.value.strip():
            self._typing_timer = self.set_timer(TYPING_DELAY, lambda: self.capture_text(self.prompt.value))

    # -- actions ---------------------------------------------------------------------------

    def _need_attention(self) -> bool:
        if self.attention is None:
            self.say("Nothing to show yet: type a prompt and press enter.", "error")
            return False
        return True

    def action_layer(self, delta: int) -> None:
        """The previous or next layer; at the first or last one, say so and stay."""
        if not self._need_attention():
            return
        assert self.attention is not None
        new = self.layer_index + delta
        if not 0 <= new < self.attention.n_layer:
            self.say(f"Layer {self.layer_index} is the {'first' if delta < 0 else 'last'} layer "
                      f"(layers 0–{self.attention.n_layer - 1}).")
            return
        self.layer_index = new
        self._redraw()
        self.say(f"Showing {self._head_name()}.")

    def action_head(self, delta: int) -> None:
        """The previous or next head (from the mean: back to one head); at either end, say so and stay."""
        if not self._need_attention():
            return
        assert self.attention is not None
        if self.average:
            self.average = False
        else:
            new = self.head_index + delta
            if not 0 <= new < self.attention.n_head:
                self.say(f"Head {self.head_index} is the {'first' if delta < 0 else 'last'} head "
                          f"(heads 0–{self.attention.n_head - 1}).")
                return
            self.head_index = new
        self._redraw()
        self.say(f"Showing {self._head_name()}.")

    def action_toggle_average(self) -> None:
        if not self._need_attention():
            return
        self.average = not self.average
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
        self.view = which
        switcher = self.query_one("#att-views", ContentSwitcher)
        self.set_class(which != "map", "-overview")
        if which == "map":
            switcher.current = "att-map"
            self._redraw()
            self.heatmap.focus()
        else:
            self._show_overview()
            switcher.current = "att-overview"
            self._update_nav()
            self._update_side()
            self.overview.focus()

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
        self.layer_index, self.head_index, self.average = max(0, layer), max(0, head), False
        if self.attention is not None:
            self.layer_index = min(self.layer_index, self.attention.n_layer - 1)
            self.head_index = min(self.head_index, self.attention.n_head - 1)
            if self.view != "map":
                self._set_view("map")
            self._redraw()
            self.say(f"Showing {self._head_name()}.")

    def advance(self) -> bool:
        """The advance key: the next head; after a layer's last head, the next layer's first."""
        if self.attention is None:
            return False
        n = self.layer_index * self.attention.n_head + (0 if self.average else self.head_index + 1)
        n %= self.attention.n_layer * self.attention.n_head
        self.show_head(*divmod(n, self.attention.n_head))
        return True

    def export_data(self) -> dict | None:
        """The map shown: its tokens and its weights (row i: how much token i attends to each token)."""
        if self.attention is None:
            return None
        return view.export_data(self.attention, self.labels, self.source, self.layer_index, self.head_index,
                                self.average, self.shown_weights)

    def export_table(self) -> tuple[list[str], list[list]] | None:
        return None if self.attention is None else view.export_table(self.labels, self.shown_weights)
