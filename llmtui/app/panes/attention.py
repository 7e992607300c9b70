"""The Attention pane: which earlier tokens each token looks at, for every layer and head.

A prompt is run once, in a thread, with its attention captured (every layer and
head at once); moving to another layer or head then only redraws. The heatmap's rows
are the tokens that look (queries), its columns the tokens looked at (keys); the
blank upper triangle is the causal mask. An overview draws every head of a layer (or
of the model) small, each labelled with the pattern it follows most, and the side
panel lists what the selected token attends to, strongest first.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Sequence

import numpy as np
from rich.style import Style
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.css.query import NoMatches
from textual.message import Message
from textual.timer import Timer
from textual.widgets import ContentSwitcher, Input, Static

from llmtui.app.display import table_label
from llmtui.app.model_thread import run_on_model_thread
from llmtui.app.panes.base import Pane
from llmtui.app.selection import TokenSelected, TokenSelection
from llmtui.app.state import ModelState
from llmtui.app.widgets.head_overview import HeadOverview
from llmtui.app.widgets.heatmap import Heatmap
from llmtui.app.widgets.loading import LoadingNotice
from llmtui.app.widgets.safe_input import SafeInput
from llmtui.app.widgets.weight_bars import WeightBars, WeightRow, weight_bar

if TYPE_CHECKING:
    from llmtui.engine.studies.attention import AttentionMap
    from llmtui.engine.lm import LanguageModel

View = Literal["map", "layer", "all"]

TYPING_DELAY = 0.5
"""Seconds after the last key press in the prompt before its attention is computed."""
TOP_KEYS = 12
"""Keys listed for the selected token (the strongest)."""
SHORT = {"previous": "prev", "first": "first", "self": "self", "same": "same"}
"""Pattern names short enough for a thumbnail's title."""
PATTERN_NAMES = {"previous": "previous token", "first": "first token", "self": "itself", "same": "same token"}


# -- messages from the capture worker ----------------------------------------------------------


@dataclass
class AttentionReady(Message, bubble=False):
    """The worker captured the attention of a text."""

    request: int
    attention: AttentionMap
    labels: tuple[str, ...]  # each token as a safe one-line label
    source: str  # what the text is: 'your prompt', "the Generate pane's text"
    seconds: float


@dataclass
class AttentionFailed(Message, bubble=False):
    """The text could not be captured: empty, too long, or a bug (one line)."""

    request: int
    error: str


def token_labels(lm: LanguageModel, ids: Sequence[int]) -> tuple[str, ...]:
    """Each token as a one-line label: spaces as '␣', controls escaped, a piece of a character as its bytes."""
    tok = lm.tokenizer
    out = []
    for i in ids:
        text = tok.token_text(i)
        out.append(tok.token_display(i) if "\ufffd" in text else table_label(text))
    return tuple(out)


class AttentionPane(Pane):
    """A prompt's attention weights: a heatmap per layer and head, overviews, and what a token attends to."""

    PANE_ID = "attention"
    TITLE = "Attention"
    SHORT_TITLE = "Attn"
    HELP = (
        "In every layer, each attention head lets a token weigh the tokens before it: a row of the map is one "
        "token (the query), its cells how much it looks at each earlier token (the keys). A row sums to 1 and "
        "never looks ahead, hence the blank upper triangle. Heads specialise: the previous token, the first "
        "token, the same word earlier; the overview labels each head with the pattern it follows most.\n\n"
        "Type a prompt and press enter. [ and ] change the layer, , and . the head (both count from 0, as "
        "`llmtui attention --layer --head` does); a averages the heads of the layer. The arrows (or a click) "
        "select a cell: the side panel lists what that token attends to, strongest first. + and - zoom; a long "
        "text scrolls, and zoomed out the whole map is shown with blocks of tokens pooled. o shows every head "
        "of the layer small, O every head of the model: enter or a click opens one. g shows the text of the "
        "Generate pane (prompt and generated tokens)."
    )

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
        keys = [(b.key_display or b.key, b.description) for b in self._bindings_for_help() if b.description]
        return keys + [
            ("arrows, click", "Select a cell: a token (row) and a token it looks at (column)"),
            ("+ -", "Zoom in (bigger cells, scrolling) and out (down to the whole map)"),
            ("pgup pgdn home end", "Move a page up or down, to the row's first or last cell"),
            ("enter, click", "In an overview: open the highlighted head"),
            ("escape", "From an overview back to the map"),
        ]

    def __init__(self) -> None:
        super().__init__()
        self.attention: AttentionMap | None = None
        """The shown text's attention (None before the first capture)."""
        self.labels: tuple[str, ...] = ()
        self.layer_index = 0
        self.head_index = 0
        self.average = False
        """Show the mean of the layer's heads instead of one head."""
        self.view: View = "map"
        self.source = ""
        """What the shown text is: 'your prompt', "the Generate pane's text"."""
        self.capture_seconds: float | None = None
        """How long the last capture took (model run included)."""
        self._pending_row: int | None = None  # the query row to select when the capture lands (a followed token)
        self._mask = np.zeros((0, 0), dtype=bool)
        self._request = 0
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
        self.watch(self.app, "model_state", self._model_state_changed, init=True)
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

    def _say(self, text: str | Text, kind: Literal["info", "error", "busy"] = "info") -> None:
        line = self.query_one("#att-message", Static)
        line.update(text if isinstance(text, Text) else Text(text))
        for k in ("info", "error", "busy"):
            line.set_class(k == kind, f"-{k}")

    # -- the model -------------------------------------------------------------------------

    def _model_state_changed(self, state: ModelState) -> None:
        if state.phase == "failed":
            self._say("No model: it could not be loaded. Your prompt is kept.", "error")
        elif state.phase == "loading":
            self._say("Loading the model… you can type the prompt meanwhile.", "busy")

    def model_ready(self, lm: LanguageModel) -> None:
        c = lm.config
        self.layer_index = min(self.layer_index, c.n_layer - 1)
        self.head_index = min(self.head_index, c.n_head - 1)
        self._update_nav()
        if self.prompt.value.strip():
            self._focus_map = self.app.focused is self.prompt  # a prompt from the command line: ready to explore
            self.capture_text(self.prompt.value)
        else:
            self._say(f"Ready · {c.n_layer} layers × {c.n_head} heads · type a prompt and press enter")

    # -- capturing -------------------------------------------------------------------------

    def capture_text(self, text: str) -> None:
        """Compute the attention of a prompt (in a thread); the map shows it when it is ready."""
        if self._typing_timer is not None:
            self._typing_timer.stop()
        if not self._ready():
            return
        if not text.strip():
            self._request += 1  # a pending capture is stale now
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
        try:
            title = self.app.pane(selection.source).TITLE  # type: ignore[attr-defined]
        except NoMatches:  # no such pane: say where it came from plainly
            title = selection.source
        self._pending_row = selection.position
        self.show_ids(selection.ids, source=f"the {title} pane's text")

    def _ready(self) -> bool:
        if self.lm is None:
            state: ModelState = self.app.model_state  # type: ignore[attr-defined]
            if state.phase == "failed":
                self._say("No model: it could not be loaded. Your prompt is kept.", "error")
            else:
                self._say("The model is still loading; your prompt is kept and runs when it is ready.", "busy")
            return False
        return True

    def _start(self, text: str | None, ids: tuple[int, ...] | None, source: str) -> None:
        self._request += 1
        self._say(f"Running the model over {source}…", "busy")
        self._capture_worker(self._request, text, ids, source)

    @work(thread=True, exclusive=True, group="attention", exit_on_error=False)
    def _capture_worker(self, request: int, text: str | None, ids: tuple[int, ...] | None, source: str) -> None:
        """One forward pass with capture, on the app's model thread; this thread only posts messages."""
        from llmtui.engine.studies import attention as engine

        lm = self.lm
        assert lm is not None
        try:
            started = time.perf_counter()
            token_ids = list(ids) if ids is not None else lm.encode(text or "")
            attention = run_on_model_thread(engine.capture_attention, lm, token_ids)
            labels = token_labels(lm, token_ids)
            self.post_message(AttentionReady(request, attention, labels, source, time.perf_counter() - started))
        except ValueError as e:  # empty, too long: the user's to fix
            self.post_message(AttentionFailed(request, str(e)))
        except Exception as e:  # a bug: one line, the app keeps running
            self.post_message(AttentionFailed(request, f"internal error ({type(e).__name__}: {e})"))

    @on(AttentionReady)
    def _on_ready(self, message: AttentionReady) -> None:
        if message.request != self._request:
            return  # stale: a newer request was made
        attention = message.attention
        self.attention = attention
        self.labels = message.labels
        self.source = message.source
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
        self.capture_seconds = message.seconds
        # the layer and head counts are on the nav line: this one fits 80 columns for a short source
        self._say(f"{T} tokens of {message.source} · [ ] layer · , . head · arrows pick a cell")
        if self._focus_map or self.app.focused is None:
            self._focus_map = False
            self.focus_default()

    @on(AttentionFailed)
    def _on_failed(self, message: AttentionFailed) -> None:
        if message.request != self._request:
            return
        self._fail(message.error[0].upper() + message.error[1:])

    def _fail(self, error: str) -> None:
        """Say what went wrong; the map is emptied so that it never shows another text's attention."""
        self.attention = None
        self.labels = ()
        self.heatmap.clear(error)
        self.overview.clear()
        self._overview_key = None
        self.bars.show(Text(""), [])
        self._update_nav()
        self._say(error, "error")

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
        if self.average:
            return f"layer {self.layer_index} · mean of its {self.attention.n_head} heads"
        name = f"layer {self.layer_index} · head {self.head_index}"
        label = self.attention.scores.label(self.layer_index, self.head_index)
        if label is not None:
            name += f" · {label[0]}-token head {label[1]:.2f}" if label[0] in ("previous", "first") else \
                f" · {label[0]} {label[1]:.2f}"
        return name

    def _update_nav(self) -> None:
        """The line of clickable controls: ◀ layer ▶, ◀ head ▶, average, overviews."""
        nav = self.query_one("#att-nav", Static)
        if self.lm is None:
            nav.update("")
            return
        c = self.lm.config
        n_layer = self.attention.n_layer if self.attention else c.n_layer
        n_head = self.attention.n_head if self.attention else c.n_head
        button = Style(bold=True)

        def click(action: str) -> Style:
            return Style(meta={"nav": action})

        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("[◀", style=button + click("layer(-1)"))
        text.append(f" layer {self.layer_index} ", style=click("layer(1)"))
        text.append("▶]", style=button + click("layer(1)"))
        text.append(f" 0–{n_layer - 1}   ", style="dim")
        text.append(",◀", style=button + click("head(-1)"))
        text.append(" mean " if self.average else f" head {self.head_index} ", style=click("head(1)"))
        text.append("▶.", style=button + click("head(1)"))
        text.append(f" 0–{n_head - 1}   ", style="dim")
        for label, action, on_ in (("a mean", "toggle_average", self.average),
                                   ("o heads", "overview('layer')", self.view == "layer"),
                                   ("O all", "overview('all')", self.view == "all")):
            look = Style(reverse=True, bold=True) if on_ else Style(underline=True)
            text.append(f" {label} ", style=look + click(action))
            text.append(" ")
        nav.update(text)
        self.heatmap.border_title = self._head_name() if self.attention else "Attention"
        if self.attention is not None:
            n = self.attention.n_tokens
            what = "every head of every layer" if self.view == "all" else f"layer {self.layer_index}: every head"
            self.overview.border_title = f"{what} · {n} tokens · enter or a click opens one"

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
        heading = Text()
        heading.append(f"query {row} ", style="bold")
        heading.append(f" {self.labels[row]} ", style="bold reverse")
        heading.append(" looks at", style="bold")
        where = f"mean of layer {layer}" if use_mean else f"layer {layer} head {head}"
        heading.append(f"\n{where}, strongest first:", style="dim")
        keys = attention.top_keys(layer, None if use_mean else head, row, TOP_KEYS)
        rows = [WeightRow(j, self.labels[j], w) for j, w in keys]
        note = Text()
        shown = sum(w for _, w in keys)
        if row + 1 > len(keys):
            note.append(f"  … {row + 1 - len(keys)} more keys share {1 - shown:.1%}\n", style="dim")
        if col <= row:
            weight = float(attention.matrix(layer, None if use_mean else head)[row, col])
            note.append(f"key {col} ", style="bold")
            note.append(f" {self.labels[col]} ", style="reverse")
            note.append(f": {weight:.1%}\n")
        else:
            note.append(f"key {col} comes later: token {row} can't look at it\n", style="dim")
        if not use_mean:
            note.append(f"\nlayer {layer} head {head} looks at\n", style="bold")
            for name, score in attention.scores.of(layer, head).items():
                note.append(f" {PATTERN_NAMES[name]:<15}")
                if math.isnan(score):
                    note.append("   —  (too short)\n", style="dim")
                else:
                    note.append(f"{score:6.2f} ")
                    note.append_text(weight_bar(score, 8))
                    note.append("\n")
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
        titles, notes = [], []
        for layer in layers:
            for head in range(attention.n_head):
                label = attention.scores.label(layer, head)
                notes.append(f"{SHORT[label[0]]} {label[1]:.2f}".replace("0.", ".") if label else "")
                titles.append(f"head {head}" if self.view == "layer" else f"{head}")
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
        current: TokenSelection | None = getattr(self.app, "selection", None)
        if moved and ids is not None and not (current is not None and current.same_text(ids) and current.position == row):
            self.post_message(TokenSelected(TokenSelection.at(ids, row, self.PANE_ID)))

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
        self._say(f"Opened {self._head_name()}.")

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
            self._say("Nothing to show yet: type a prompt and press enter.", "error")
            return False
        return True

    def action_layer(self, delta: int) -> None:
        """The previous or next layer; at the first or last one, say so and stay."""
        if not self._need_attention():
            return
        assert self.attention is not None
        new = self.layer_index + delta
        if not 0 <= new < self.attention.n_layer:
            self._say(f"Layer {self.layer_index} is the {'first' if delta < 0 else 'last'} layer "
                      f"(layers 0–{self.attention.n_layer - 1}).")
            return
        self.layer_index = new
        self._redraw()
        self._say(f"Showing {self._head_name()}.")

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
                self._say(f"Head {self.head_index} is the {'first' if delta < 0 else 'last'} head "
                          f"(heads 0–{self.attention.n_head - 1}).")
                return
            self.head_index = new
        self._redraw()
        self._say(f"Showing {self._head_name()}.")

    def action_toggle_average(self) -> None:
        if not self._need_attention():
            return
        self.average = not self.average
        if self.view != "map":
            self._set_view("map")
        else:
            self._redraw()
        self._say(f"Showing {self._head_name()}.")

    def action_overview(self, which: View) -> None:
        """Every head of the layer (or of the model) small; the same key again goes back to the map."""
        if not self._need_attention():
            return
        self._set_view("map" if self.view == which else which)
        if self.view != "map":
            self._say("Arrows move, enter or a click opens a head · escape goes back to the map.")

    def action_back(self) -> None:
        """From an overview back to the map; from the prompt box back to the map."""
        if self.view != "map":
            self._set_view("map")
        elif self.app.focused is self.prompt and self.attention is not None:
            self.heatmap.focus()

    def _set_view(self, view: View) -> None:
        self.view = view
        switcher = self.query_one("#att-views", ContentSwitcher)
        self.set_class(view != "map", "-overview")
        if view == "map":
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
        from llmtui.app.panes.generate import GeneratePane

        panes = list(self.app.query(GeneratePane))
        session = panes[0].session if panes else None
        if session is None:
            self._say("Nothing generated yet: generate some text in the Generate pane first.", "error")
            return
        ids = list(session.prompt_ids) + [step.token_id for step in panes[0].steps]
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
            self._say(f"Showing {self._head_name()}.")

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
        return {
            "source": self.source,
            "layer": self.layer_index,
            "head": None if self.average else self.head_index,
            "mean_of_heads": self.average,
            "tokens": [{"id": i, "label": label} for i, label in zip(self.attention.ids, self.labels)],
            "weights": self.shown_weights.tolist(),
        }

    def export_table(self) -> tuple[list[str], list[list]] | None:
        if self.attention is None:
            return None
        labels = list(self.labels)
        return ["query \\ key", *labels], [[label, *row] for label, row in zip(labels, self.shown_weights.tolist())]
