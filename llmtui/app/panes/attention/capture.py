"""The Attention pane's captures: a prompt, a token's text from another pane, or the Generate pane's
text, run once through the model with its attention kept; what the pane shows when one lands or fails."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Sequence

import numpy as np
from textual import work

from llmtui.app.display import count
from llmtui.app.messages import TextWanted
from llmtui.app.model_thread import call
from llmtui.app.panes.attention import view
from llmtui.app.selection import TokenSelection

if TYPE_CHECKING:
    from llmtui.engine.studies.attention import AttentionMap


class CapturePart:
    """Mixed into AttentionPane: one capture at a time, in an exclusive worker awaiting the model thread."""

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

    def action_from_generate(self) -> None:
        """Show the attention of the Generate pane's text: its prompt and the tokens generated so far."""
        self.post_message(TextWanted("generate", self._generated_text))

    def _generated_text(self, ids: tuple[int, ...] | None) -> None:
        if not ids:
            self.say("Nothing generated yet: generate some text in the Generate pane first.", "error")
            return
        self.show_ids(ids, source="the Generate pane's text")

    def _start(self, text: str | None, ids: tuple[int, ...] | None, source: str) -> None:
        self._request += 1  # a partial map of an older request, still on its way, is not shown
        self.say(f"Running the model over {source}…", "busy")
        self._capture(text, ids, source, self._request)

    @work(exclusive=True, group="attention", exit_on_error=False)
    async def _capture(self, text: str | None, ids: tuple[int, ...] | None, source: str, request: int) -> None:
        """One forward pass with capture, on the app's model thread (a newer request cancels this one).

        On the map, the layer shown is drawn as soon as its block has run (a partial map, `AttentionMap.ready`):
        on SmolLM2 the first layer comes in ~1/30 of the capture's time."""
        from llmtui.engine.studies import attention as engine

        lm = self.lm
        assert lm is not None
        loop = asyncio.get_running_loop()
        with self.reporting(self._fail):  # empty or too long (the user's to fix), or a bug
            started = time.perf_counter()
            token_ids = list(ids) if ids is not None else await call(lm.prompt_ids, text or "")  # what the model sees: BOS too
            labels = view.token_labels(lm.tokenizer, token_ids)

            def early(partial: AttentionMap) -> None:  # on the model thread
                loop.call_soon_threadsafe(self._show_early, request, partial, labels, source)

            # the last map's rows and KV cache are reused when the text continues it (typing on, a generation;
            # a partial map keeps no KV cache: nothing is reused from it)
            first = self.showing.layer if self.view == "map" else None  # an overview draws every layer
            attention = await call(engine.capture_attention, lm, token_ids, previous=self.attention, first=first,
                                   early=early)
            self._show(attention, labels, source, time.perf_counter() - started)

    def _show_early(self, request: int, partial: AttentionMap, labels: tuple[str, ...], source: str) -> None:
        """The shown layer of a capture still running (unless a newer request came, or the whole map already)."""
        if request == self._request and self.is_mounted and self.view == "map":
            self._show(partial, labels, source, None)

    def _show(self, attention: AttentionMap, labels: tuple[str, ...], source: str, seconds: float | None) -> None:
        """A map landed: partial (its first layers, the others still running) or whole."""
        self.source = source
        self.showing = self.showing.within(attention.n_layer, attention.n_head)
        shown = self.attention
        if attention.partial is None and shown is not None and shown.partial is not None and shown.ids == attention.ids:
            self.maps.complete(attention, self.showing)  # after its partial map: the cursor stays where it is
        else:
            row, self._pending_row = self._pending_row, None
            row = self.maps.show(attention, labels, self.showing, row)  # on what the token looks at most
            self._cursor_at = (attention.ids, row)  # a new text's first row is not a selection (see _post_selection)
        self._update_nav()
        if attention.partial is not None:
            self.say(f"{count(attention.n_tokens, 'token')} of {source} · layer {self.showing.layer} drawn, "
                     f"layers {attention.ready}–{attention.n_layer - 1} still running…", "busy")
        else:
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
