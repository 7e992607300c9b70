"""The Layers pane (the logit lens): what the model would predict next if it stopped after each layer.

A prompt editor, the grid (a row per layer, a column per position, each cell the
token that layer's residual stream predicts, through the final norm and the
unembedding), bars of how much each layer's attention and MLP changed the selected
token's vector, and a side panel: the selected cell's top 10, and the rank and
probability, layer by layer, of the token the model finally predicts there.

The lens is computed in a thread worker (one forward pass, then the projection in
blocks of positions, so that a long prompt fills in as it goes); every message
carries the id of its request, so a stale one never lands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from rich.style import Style
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Static, TextArea
from textual.worker import get_current_worker

from llmtui.app.display import table_label
from llmtui.app.model_thread import run_on_model_thread
from llmtui.app.palette import bar, legend
from llmtui.app.panes.base import Pane
from llmtui.app.selection import TokenSelected, TokenSelection
from llmtui.app.state import ModelState
from llmtui.app.widgets.lens_grid import ATTN_STYLE, MLP_STYLE, Cursor, LensGrid, fit
from llmtui.app.widgets.prob_table import percent
from llmtui.app.widgets.prompt_editor import PromptEditor

if TYPE_CHECKING:
    from llmtui.engine.studies.lens import LensBlock
    from llmtui.engine.studies.lens import LensGrid as LensData
    from llmtui.engine.lm import LanguageModel

EXAMPLE = "The capital of France is"
"""The prompt the pane opens with: its answer forms only in the last layers."""
MAX_TOKENS = 512
"""Longest text the pane reads: a capture keeps every layer's attention map, (layers, heads, T, T)."""
RECOMPUTE_DELAY = 0.4
"""Seconds after the last key press in the prompt before the lens is computed again."""
TOP_N = 10


# -- messages from the worker ----------------------------------------------------------------


@dataclass
class LensStarted(Message, bubble=False):
    """The forward pass is done: the grid's shape, contributions and final row are known."""

    request_id: int
    grid: LensData


@dataclass
class LensBlockReady(Message, bubble=False):
    """A block of positions has been read through the lens at every layer."""

    request_id: int
    block: LensBlock


@dataclass
class LensFailed(Message, bubble=False):
    """No lens for this text: `error` says why (empty, too long, ...)."""

    request_id: int
    error: str
    empty: bool = False


@dataclass
class LensUnchanged(Message, bubble=False):
    """The text's tokens are those already shown: nothing to compute."""

    request_id: int


class LayersPane(Pane):
    """The logit lens: layer × position grid, a selected cell's predictions, and when the answer appears."""

    PANE_ID = "layers"
    TITLE = "Layers"
    SHORT_TITLE = "Layers"
    HELP = (
        "A token's vector passes through every layer; attention and the feed-forward network (MLP) "
        "each add to it (the residual stream), and after the last layer the unembedding turns it into "
        "next-token probabilities. The logit lens reads every layer that way: each cell is the token the "
        "model would predict next if it stopped after that layer (rows: the embeddings, then layers 1, 2, …), "
        "coloured by its probability; a bold cell already holds the model's final answer for that column. "
        "The embeddings row mostly repeats the token itself: SmolLM2 and GPT-2 read and write tokens "
        "with one shared matrix. "
        "The bars beside each layer show how much its attention (purple) and its MLP (teal) changed the selected "
        "token's vector: the length of what the block added over the length of the vector it added to "
        "(a full bar is 50% or more).\n\n"
        'Try "The capital of France is" with the default model: at the last token, " Paris" is thousands of '
        "places down the list until layer 23, about 400th at layer 24, enters the top ten at layer 28, and "
        "becomes the top prediction only at layer 30, the last one.\n\n"
        "Arrows (or a click) select a cell; space steps down one layer; a jumps to the layer where this "
        "column's answer takes the lead; c colours the cells by the final answer's probability instead. "
        "Selecting a token here makes it the app's current token: the other panes follow it."
    )

    BINDINGS = [
        Binding(
            "a",
            "answer_layer",
            "Answer layer",
            tooltip="Jump to the first layer from which this column's final answer stays on top",
        ),
        Binding(
            "c",
            "toggle_colour",
            "Colour by",
            tooltip="Colour cells by their own top probability, or by the final answer's probability",
        ),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._request_id = 0
        self._last_key: tuple[object, ...] | None = None
        self._data: LensData | None = None
        self._pinned: tuple[str, tuple[int, ...]] | None = None  # (text, ids) of a followed selection
        self._pinned_from = ""  # the title of the pane it was selected in
        self._want: Cursor | None = None  # where the cursor goes when the next grid arrives
        self._pending_follow: TokenSelection | None = None
        self._timer: Timer | None = None

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        editor = PromptEditor(
            EXAMPLE,
            id="layers-prompt",
            soft_wrap=True,
            tab_behavior="focus",
            show_line_numbers=False,
            placeholder="Type a prompt: the grid shows what each layer would predict next",
        )
        editor.border_title = "Prompt"
        yield editor
        yield Static(id="layers-message")
        with Horizontal(id="layers-main"):
            grid = LensGrid(id="lens-grid")
            grid.border_title = "Next-token guess after each layer"
            yield grid
            with VerticalScroll(id="lens-side"):
                yield Static(id="lens-cell")
                yield Static(id="lens-answer")

    def on_mount(self) -> None:
        self.watch(self.app, "model_state", self._model_state_changed, init=True)
        self.watch(self.grid, "cursor", lambda _: self._show_side(), init=False)
        self._update_legend()

    @property
    def editor(self) -> TextArea:
        return self.query_one("#layers-prompt", TextArea)

    @property
    def grid(self) -> LensGrid:
        return self.query_one("#lens-grid", LensGrid)

    @property
    def data(self) -> LensData | None:
        """The lens shown (possibly still filling in)."""
        return self._data

    @property
    def message(self) -> str:
        return str(self.query_one("#layers-message", Static).render())

    @property
    def cell_text(self) -> str:
        """The side panel's selected-cell section, as plain text."""
        return str(self.query_one("#lens-cell", Static).render())

    @property
    def answer_text(self) -> str:
        """The side panel's 'when does the answer appear' section, as plain text."""
        return str(self.query_one("#lens-answer", Static).render())

    def focus_default(self) -> None:
        self.grid.focus()

    def set_prompt(self, text: str) -> None:
        self.editor.load_text(text)
        self.editor.move_cursor(self.editor.document.end)

    def _say(self, text: str | Text, kind: Literal["info", "error", "busy"] = "info") -> None:
        line = self.query_one("#layers-message", Static)
        line.update(text if isinstance(text, Text) else Text(text))
        for k in ("info", "error", "busy"):
            line.set_class(k == kind, f"-{k}")

    def _update_legend(self) -> None:
        self.grid.border_subtitle = legend("p top " if self.grid.colour_by == "top" else "p answer ")

    # -- the model -------------------------------------------------------------------------

    def _model_state_changed(self, state: ModelState) -> None:
        if state.phase == "ready":
            return
        kind = "error" if state.phase == "failed" else "placeholder"
        self.grid.set_placeholder(state.describe(), kind)
        if state.phase == "failed":
            self._say("No model: it could not be loaded. Your prompt is kept.", "error")
        else:
            self._say("Loading the model… you can type the prompt meanwhile.", "busy")

    def model_ready(self, lm: LanguageModel) -> None:
        if self._pending_follow is not None:
            selection, self._pending_follow = self._pending_follow, None
            self.follow_selection(selection)
        else:
            self._request()

    # -- computing -------------------------------------------------------------------------

    @on(TextArea.Changed, "#layers-prompt")
    def _prompt_changed(self, event: TextArea.Changed) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(RECOMPUTE_DELAY, self._request)

    def _request(self) -> None:
        """Compute the lens of the editor's text (in a thread), unless it is the one already asked for."""
        if self.lm is None:
            return
        text = self.editor.text
        pinned = self._pinned[1] if self._pinned is not None and self._pinned[0] == text else None
        key = ("ids", pinned) if pinned is not None else ("text", text)
        if key == self._last_key:
            return
        self._last_key = key
        self._request_id += 1
        current = self._data.ids if self._data is not None else None
        self._say("Reading every layer…", "busy")
        self._worker(self._request_id, text, pinned, current, self._want.position if self._want else None)

    @work(thread=True, exclusive=True, group="lens", exit_on_error=False)
    def _worker(
        self,
        request_id: int,
        text: str,
        pinned: tuple[int, ...] | None,
        current: tuple[int, ...] | None,
        focus: int | None,
    ) -> None:
        """Encode, run the model once with capture, then read the lens block by block; only posts messages."""
        from llmtui.engine.studies.lens import LogitLens

        lm = self.lm
        assert lm is not None
        worker = get_current_worker()
        try:
            ids = list(pinned) if pinned is not None else lm.encode(text)
            if not ids:
                self.post_message(LensFailed(request_id, "The prompt is empty: type some text above.", empty=True))
                return
            if len(ids) > MAX_TOKENS:
                raise ValueError(
                    f"the prompt is {len(ids)} tokens; this pane reads at most {MAX_TOKENS} "
                    "(every layer's attention is kept while it runs): shorten it"
                )
            if current is not None and tuple(ids) == current:
                self.post_message(LensUnchanged(request_id))
                return
            lens = run_on_model_thread(LogitLens, lm, ids)  # torch on the app's one model thread
            if worker.is_cancelled:
                return
            self.post_message(LensStarted(request_id, lens.empty_grid()))
            first = focus if focus is not None and 0 <= focus < len(ids) else len(ids) - 1
            for start, stop in lens.block_ranges(first):  # a block at a time: a newer request cancels between them
                if worker.is_cancelled:
                    return
                self.post_message(LensBlockReady(request_id, run_on_model_thread(lens.block, start, stop)))
        except ValueError as e:
            self.post_message(LensFailed(request_id, str(e)[0].upper() + str(e)[1:]))
        except Exception as e:  # a bug: one line in the pane, the app keeps running
            self.post_message(LensFailed(request_id, f"Internal error ({type(e).__name__}: {e})"))

    @on(LensStarted)
    def _started(self, message: LensStarted) -> None:
        if message.request_id != self._request_id or self.lm is None:
            return
        data = message.grid
        self._data = data
        want, self._want = self._want, None
        cursor = None
        if want is not None:
            cursor = Cursor(want.row if want.row >= 0 else data.n_rows - 1, want.position)
        self.grid.show(data, self._token_label, cursor)
        self._say(f"Reading every layer… 0 of {data.n_positions} tokens", "busy")
        self._show_side()

    @on(LensBlockReady)
    def _block_ready(self, message: LensBlockReady) -> None:
        if message.request_id != self._request_id or self._data is None:
            return
        data = self._data
        data.add(message.block)
        self.grid.updated()
        self._show_side()
        done = int(data.computed.sum())
        if data.complete:
            self._say_ready()
        else:
            self._say(f"Reading every layer… {done} of {data.n_positions} tokens", "busy")

    @on(LensFailed)
    def _failed(self, message: LensFailed) -> None:
        if message.request_id != self._request_id:
            return
        self._data = None
        self._want = None
        self.grid.set_placeholder(message.error, "placeholder" if message.empty else "error")
        self._show_side()
        self._say(
            message.error if message.empty else message.error + " Your prompt is kept.",
            "info" if message.empty else "error",
        )

    @on(LensUnchanged)
    def _unchanged(self, message: LensUnchanged) -> None:
        if message.request_id != self._request_id:
            return
        if self._want is not None and self._data is not None:
            self.grid.cursor = Cursor(self.grid.cursor.row, min(self._want.position, self._data.n_positions - 1))
            self._want = None
        self._say_ready()

    def _say_ready(self) -> None:
        data = self._data
        if data is None:
            return
        if self._pinned is not None and self._pinned[1] == data.ids and self.editor.text == self._pinned[0]:
            self._say(
                f"The text of the token selected in {self._pinned_from} (ctrl+z in the prompt brings yours "
                "back) · ←→↑↓ select · a answer · c colour"
            )
            return
        self._say(
            f"{data.n_positions} tokens × {data.n_rows} rows · ←→↑↓ select · space next layer · a answer · c colour"
        )

    # -- showing a cell ----------------------------------------------------------------------

    def _token_label(self, token_id: int) -> str:
        """A token as a safe one-line label: '␣Paris'; a piece of a character shows its bytes."""
        assert self.lm is not None
        tok = self.lm.tokenizer
        text = tok.token_text(token_id)
        return tok.token_display(token_id) if "\ufffd" in text else table_label(text)

    def _layer_name(self, row: int) -> str:
        return "embeddings" if row == 0 else f"layer {row}"

    def _show_side(self) -> None:
        cell_view = self.query_one("#lens-cell", Static)
        answer_view = self.query_one("#lens-answer", Static)
        side = self.query_one("#lens-side", VerticalScroll)
        data = self._data
        if data is None or self.lm is None:
            cell_view.update(Text(""))
            answer_view.update(Text(""))
            side.border_title = ""
            return
        cursor = self.grid.cursor
        row, pos = cursor.row, cursor.position
        width = max(20, cell_view.content_region.width or side.scrollable_content_region.width or 30)
        side.border_title = f"{self._layer_name(row)} · position {pos}"
        cell_view.update(self._cell_text(data, row, pos, width))
        answer_view.update(self._answer_text(data, row, pos, width))

    def _cell_text(self, data: LensData, row: int, pos: int, width: int) -> Text:
        """The answer at this position in one line, then the selected cell's top 10 and what the layer changed."""
        answer = int(data.answer_ids[pos])
        text = Text()
        text.append("Answer: ", style="dim").append(self._token_label(answer), style="bold")
        if not data.computed[pos]:
            return text.append("\n  computing…\n", style="italic dim")
        first = data.answer_layer(pos)
        text.append(f" ({percent(data.answer_probs[-1, pos].item())})\n")
        if first is not None:
            text.append("top from ", style="dim").append(self._layer_name(first), style="bold")
            text.append(" (last)" if first == data.n_rows - 1 else " on", style="dim")
        text.append("\n\n")
        token = self._token_label(data.ids[pos])
        text.append("Next after ", style="dim").append(token, style="bold")
        where = f", at {self._layer_name(row)}:"
        text.append((where if len(token) + len(where) + 11 < width else ":") + "\n", style="dim")
        label_w = max(6, min(14, width - 18))
        bar_w = max(0, width - label_w - 11)
        for n, (token_id, p) in enumerate(data.top(row, pos, TOP_N), start=1):
            text.append(f"{n:>2} ", style="dim")
            text.append(fit(self._token_label(token_id), label_w), style=Style(bold=token_id == answer))
            text.append(percent(p).rjust(7) + " ")
            text.append_text(bar(p, bar_w))
            text.append("\n")
        if row > 0:
            share = data.contribution(row, pos)
            text.append("changed by ", style="dim")
            text.append(f"attention {share.attention:.0%}", style=ATTN_STYLE)
            text.append(", ", style="dim")
            text.append(f"MLP {share.mlp:.0%}", style=MLP_STYLE)
            text.append("\n")
        return text

    def _answer_text(self, data: LensData, row: int, pos: int, width: int) -> Text:
        """The rank and probability of this position's answer at every layer: how early it appears."""
        if not data.computed[pos]:
            return Text()
        text = Text("\n")
        text.append(self._token_label(int(data.answer_ids[pos])), style="bold").append(
            " layer by layer:\n", style="dim"
        )
        bar_w = max(0, width - 20)
        for r, (rank, p) in enumerate(data.answer_track(pos)):
            selected = r == row
            text.append(
                ("▶" if selected else " ") + fit("emb" if r == 0 else f"L{r}", 4), style="bold" if selected else "dim"
            )
            text.append(f"#{rank + 1}".rjust(7), style="bold" if rank == 0 else "")
            text.append(percent(p).rjust(7) + " ")
            text.append_text(bar(p, bar_w))
            text.append("\n")
        return text

    # -- selecting ---------------------------------------------------------------------------

    @on(LensGrid.CellSelected, "#lens-grid")
    def _cell_selected(self, event: LensGrid.CellSelected) -> None:
        """The user picked a cell: its column's token becomes the app's current token."""
        event.stop()
        data = self._data
        if data is not None and event.data is data:  # not a cell of a text the grid no longer shows
            self.post_message(TokenSelected(TokenSelection.at(data.ids, event.cursor.position, self.PANE_ID)))

    def follow_selection(self, selection: TokenSelection) -> None:
        """Show the column of the app's current token; another text is read through the lens first."""
        if self.lm is None:
            self._pending_follow = selection
            return
        data = self._data
        if data is not None and selection.same_text(data.ids):
            self.grid.cursor = Cursor(self.grid.cursor.row, selection.position)
            return
        if len(selection.ids) > MAX_TOKENS:
            self._say(
                f"The current token's text is {len(selection.ids)} tokens; this pane reads at most {MAX_TOKENS}.",
                "error",
            )
            return
        text = self.lm.tokenizer.decode(list(selection.ids))
        self._pinned = (text, selection.ids)
        self._pinned_from = next(
            (p.TITLE for p in self.app.query(Pane) if p.PANE_ID == selection.source), selection.source
        )
        self._want = Cursor(self.grid.cursor.row if data is not None else -1, selection.position)
        if self.editor.text != text:
            # An edit, not load_text: ctrl+z in the prompt brings the user's own text back.
            self.editor.replace(text, (0, 0), self.editor.document.end)
        self._request()

    # -- actions ---------------------------------------------------------------------------

    def action_answer_layer(self) -> None:
        data = self._data
        if data is None:
            return
        row = data.answer_layer(self.grid.cursor.position)
        if row is not None:
            self.grid.cursor = Cursor(row, self.grid.cursor.position)

    def action_toggle_colour(self) -> None:
        self.grid.colour_by = "answer" if self.grid.colour_by == "top" else "top"
        self._update_legend()

    def advance(self) -> bool:
        """The advance key (F8): one layer down the selected column; after the last layer, the next column's first."""
        data = self._data
        if data is None:
            return False
        row, position = self.grid.cursor.row + 1, self.grid.cursor.position
        if row >= data.n_rows:
            row, position = 0, (position + 1) % data.n_positions
        self.grid.cursor = Cursor(row, position)
        return True

    def on_resize(self) -> None:
        self._show_side()

    # -- export ----------------------------------------------------------------------------

    def export_data(self) -> dict | None:
        """The grid: for every layer (embeddings first) and position, the top prediction and its probability."""
        data, lm = self._data, self.lm
        if data is None or lm is None:
            return None
        tok = lm.tokenizer

        def cell(row: int, pos: int) -> dict | None:
            p = data.prediction(row, pos)
            return None if p is None else {"id": p[0], "text": tok.token_text(p[0]), "prob": p[1]}

        return {
            "tokens": [{"id": i, "text": tok.token_text(i)} for i in data.ids],
            "rows": ["emb" if r == 0 else f"L{r}" for r in range(data.n_rows)],
            "grid": [[cell(r, p) for p in range(data.n_positions)] for r in range(data.n_rows)],
            "final_answer": [{"id": int(i), "text": tok.token_text(int(i))} for i in data.answer_ids.tolist()],
            "complete": data.complete,
        }

    def export_table(self) -> tuple[list[str], list[list]] | None:
        exported = self.export_data()
        if exported is None:
            return None
        header = ["layer", *(t["text"] for t in exported["tokens"])]
        rows = [
            [name, *("" if c is None else f"{c['text']} ({c['prob']:.2f})" for c in cells)]
            for name, cells in zip(exported["rows"], exported["grid"])
        ]
        return header, rows
