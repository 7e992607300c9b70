"""The Layers pane (the logit lens): what the model would predict next if it stopped after each layer.

A prompt editor, the grid (a row per layer, a column per position, each cell the
token that layer's residual stream predicts, through the final norm and the
unembedding), bars of how much each layer's attention and MLP changed the selected
token's vector, and a side panel: the selected cell's top 10, and the rank and
probability, layer by layer, of the token the model finally predicts there.

The lens is computed on the model thread by an exclusive worker (one forward pass,
then the projection in blocks of positions, so that a long prompt fills in as it
goes); a newer request cancels the older worker, so a stale block never lands.

This module lays the pane out, reads the lens and follows the app's current token; the
grid's cursor (the side panel, the column picked, the keys that move it) is cursor.py's part.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Static, TextArea

from llmtui.app.model_thread import call
from llmtui.app.panes.base import Debounce, Pane, prompt_box
from llmtui.app.panes.layers.cursor import CursorPart
from llmtui.app.panes.layers import view
from llmtui.app.selection import TokenSelection
from llmtui.app.state import ModelState
from llmtui.app.widgets.lens_grid import Cursor, LensGrid
from llmtui.app.widgets.prompt_editor import PromptEditor

if TYPE_CHECKING:
    from llmtui.engine.studies.lens import LensBlock
    from llmtui.engine.studies.lens import LensGrid as LensData
    from llmtui.engine.lm import LanguageModel

EXAMPLE = "The capital of France is"
"""The prompt the pane opens with: its answer forms only in the last layers."""
MAX_TOKENS = 512
"""Longest text the pane reads. The lens captures only the residual stream and the blocks' outputs (not the
attention maps), but reads the model's logits at every position, (T, vocabulary): 100 MB at 512 tokens of
SmolLM2, and a float copy."""
RECOMPUTE_DELAY = 0.4
"""Seconds after the last key press in the prompt before the lens is computed again."""


class LayersPane(CursorPart, Pane):
    """The logit lens: layer × position grid, a selected cell's predictions, and when the answer appears."""

    PANE_ID = "layers"
    TITLE = "Layers"
    SHORT_TITLE = "Layers"
    MESSAGE_LINE = "#layers-message"
    HELP = view.HELP

    BINDINGS = [
        Binding("a", "answer_layer", "Answer layer",
                tooltip="Jump to the first layer from which this column's final answer stays on top"),
        Binding("c", "toggle_colour", "Colour by",
                tooltip="Colour cells by their own top probability, or by the final answer's probability"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._last_key: tuple[object, ...] | None = None
        self._data: LensData | None = None
        self._want: Cursor | None = None  # where the cursor goes when the next grid arrives
        self._pending_follow: TokenSelection | None = None
        self._typing = Debounce(self, RECOMPUTE_DELAY, self._request)

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield prompt_box(PromptEditor, EXAMPLE, id="layers-prompt", title="Prompt",
                         placeholder="Type a prompt: the grid shows what each layer would predict next")
        yield Static(id="layers-message")
        with Horizontal(id="layers-main"):
            grid = LensGrid(id="lens-grid")
            grid.border_title = "Next-token guess after each layer"
            yield grid
            with VerticalScroll(id="lens-side"):
                yield Static(id="lens-cell")
                yield Static(id="lens-answer")

    def on_mount(self) -> None:
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
    def cell_text(self) -> str:
        """The side panel's selected-cell section, as plain text."""
        return self.line_text("#lens-cell")

    @property
    def answer_text(self) -> str:
        """The side panel's 'when does the answer appear' section, as plain text."""
        return self.line_text("#lens-answer")

    def focus_default(self) -> None:
        self.grid.focus()

    def set_prompt(self, text: str) -> None:
        self.editor.load_text(text)
        self.editor.move_cursor(self.editor.document.end)

    # -- the model -------------------------------------------------------------------------

    def model_state_changed(self, state: ModelState) -> None:
        if state.phase == "ready":
            return
        self.grid.set_placeholder(state.describe(), "error" if state.phase == "failed" else "placeholder")
        super().model_state_changed(state)

    def model_ready(self, lm: LanguageModel) -> None:
        # Another model, or new weights (training): the text shown is read again, on the cell looked at.
        if self._data is not None:
            self._want = self._want or self.grid.cursor
        self._data, self._last_key = None, None
        if self._pending_follow is not None:
            selection, self._pending_follow = self._pending_follow, None
            self.follow_selection(selection)
        else:
            self._request()

    # -- computing -------------------------------------------------------------------------

    @on(TextArea.Changed, "#layers-prompt")
    def _prompt_changed(self, event: TextArea.Changed) -> None:
        self._typing.restart()

    def _request(self) -> None:
        """Compute the lens of the editor's text (in a thread), unless it is the one already asked for."""
        if self.lm is None:
            return
        text = self.editor.text
        followed = self.followed_in(text)
        pinned = followed.ids if followed is not None else None  # read as they were selected, not re-encoded
        key = ("ids", pinned) if pinned is not None else ("text", text)
        if key == self._last_key:
            return
        self._last_key = key
        current = self._data.ids if self._data is not None else None
        self.say("Reading every layer…", "busy")
        self._read_lens(text, pinned, current, self._want.position if self._want else None)

    @work(exclusive=True, group="lens", exit_on_error=False)
    async def _read_lens(
        self, text: str, pinned: tuple[int, ...] | None, current: tuple[int, ...] | None, focus: int | None
    ) -> None:
        """Encode, run the model once with capture, then read the lens block by block (a newer request
        cancels this worker between blocks)."""
        from llmtui.engine.studies.lens import LogitLens

        lm = self.lm
        assert lm is not None
        with self.reporting(self._failed):  # the user's to fix (ValueError), or a bug
            ids = list(pinned) if pinned is not None else await call(lm.prompt_ids, text)  # what the model sees: BOS too
            if not ids:
                self._failed("The prompt is empty: type some text above.", empty=True)
                return
            if len(ids) > MAX_TOKENS:
                raise ValueError(
                    f"the prompt is {len(ids)} tokens; this pane reads at most {MAX_TOKENS} "
                    "(it keeps every position's next-token scores while it runs): shorten it"
                )
            if current is not None and tuple(ids) == current:
                self._unchanged()
                return
            lens = await call(LogitLens, lm, ids)
            self._started(await call(lens.empty_grid))
            first = focus if focus is not None and 0 <= focus < len(ids) else len(ids) - 1
            for start, stop in lens.block_ranges(first):
                self._block_ready(await call(lens.block, start, stop))

    def _started(self, data: LensData) -> None:
        self._data = data
        want, self._want = self._want, None
        cursor = None
        if want is not None:
            cursor = Cursor(want.row if want.row >= 0 else data.n_rows - 1, want.position)
        self.grid.show(data, self._token_label, cursor)
        self.say(view.progress_line(data), "busy")
        self._show_side()

    def _block_ready(self, block: LensBlock) -> None:
        data = self._data
        assert data is not None
        data.add(block)
        self.grid.updated()
        self._show_side()
        if data.complete:
            self._say_ready()
        else:
            self.say(view.progress_line(data), "busy")

    def _failed(self, error: str, empty: bool = False) -> None:
        self._data = None
        self._want = None
        self.grid.set_placeholder(error, "placeholder" if empty else "error")
        self._show_side()
        self.say(error if empty else error + " Your prompt is kept.", "info" if empty else "error")

    def _unchanged(self) -> None:
        if self._want is not None and self._data is not None:
            self.grid.cursor = Cursor(self.grid.cursor.row, min(self._want.position, self._data.n_positions - 1))
            self._want = None
        self._say_ready()

    def _say_ready(self) -> None:
        data = self._data
        if data is None:
            return
        followed = self.followed_in(self.editor.text)
        pinned = followed is not None and followed.ids == data.ids
        self.say(view.ready_line(data, (followed.source_title or followed.source) if pinned else None))

    # -- following the app's token -------------------------------------------------------------

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
            self.say(
                f"The current token's text is {len(selection.ids)} tokens; this pane reads at most {MAX_TOKENS}.",
                "error",
            )
            return
        text = self.lm.tokenizer.decode(list(selection.ids))
        self.put_followed(text, selection)
        self._want = Cursor(self.grid.cursor.row if data is not None else -1, selection.position)
        if self.editor.text != text:
            # An edit, not load_text: ctrl+z in the prompt brings the user's own text back.
            self.editor.replace(text, (0, 0), self.editor.document.end)
        self._request()

    # -- export ----------------------------------------------------------------------------

    def export_data(self) -> dict | None:
        """The grid: for every layer (embeddings first) and position, the top prediction and its probability."""
        if self._data is None or self.lm is None:
            return None
        return view.export_data(self._data, self.lm.tokenizer)

    def export_table(self) -> tuple[list[str], list[list]] | None:
        exported = self.export_data()
        return None if exported is None else view.export_table(exported)
