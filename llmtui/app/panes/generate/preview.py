"""The Generate pane's next-token preview: the table of the token that would come next, before any run.

Computed PREVIEW_DELAY seconds after the last key press, in an exclusive worker (a newer
preview or a run cancels it at its await).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work

from llmtui.app.model_thread import call
from llmtui.app.panes.generate import view
from llmtui.app.panes.generate.run import TOP_N, PromptRequest, check_fits

if TYPE_CHECKING:
    from textual.widgets import TextArea

    from llmtui.engine.generation import Candidate, GenerationSession
    from llmtui.engine.settings import SamplingSettings

PREVIEW_DELAY = 0.3
"""Seconds after the last key press in the prompt before the next-token preview is computed."""


class PreviewPart:
    """Mixed into GeneratePane: the preview table of the next token."""

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        if event.text_area.id == "prompt" and self._session is None and self.lm is not None:
            self._preview_pause.restart()

    def _request_preview(self) -> None:
        """Compute the next token's distribution under the current knobs (in a thread)."""
        if self.lm is None or self.running:
            return
        if self._session is not None:
            self._preview_worker(self._session, None, self.settings)
            return
        request = PromptRequest(self.editor.text, chat=self.chat_mode, system=self.system_prompt)
        if not request.text.strip() and not self.chat_mode:
            self._preview = self._preview_for = None
            self._prompt_pieces = []
            self._preview_len = 0
            self._show_context()
            self.table.show(None)
            self.workers.cancel_group(self, "preview")
            self._show_idle_output()
            return
        self._preview_worker(None, request, self.settings)

    @work(exclusive=True, group="preview", exit_on_error=False)
    async def _preview_worker(self, session: GenerationSession | None, request: PromptRequest | None,
                              settings: SamplingSettings) -> None:
        from llmtui.engine.generation import candidates
        from llmtui.engine.sampling import distribution

        lm = self.lm
        assert lm is not None

        def next_token(ids: list[int]) -> tuple:
            if session is not None:
                return candidates(lm, session.distribution(settings), TOP_N), len(session.steps), list(session.prompt_ids)
            logits = lm.run(ids, capture=False).logits[0, -1]
            return candidates(lm, distribution(logits, settings, ids), TOP_N), 0, ids

        with self.reporting(self._preview_failed):  # the user's to fix (ValueError), or a bug
            ids: list[int] = []
            if session is None:
                assert request is not None
                ids = await call(request.encode, lm)
                if not ids:
                    raise ValueError("the prompt is empty: type some text first")
                check_fits(request, len(ids), lm.config.context_length)
            cands, position, ids = await call(next_token, ids)
            if not self.running:
                self._show_preview(position, cands, settings, tuple(ids), request)

    def _show_preview(self, position: int, cands: tuple[Candidate, ...], settings: SamplingSettings,
                      prompt_ids: tuple[int, ...], request: PromptRequest | None) -> None:
        """The distribution of the token that would come next, under the given knobs (request: the prompt
        it is for; None: the session's text)."""
        assert self.lm is not None
        self._preview = view.preview_view(self.lm.tokenizer, position, cands, settings)
        self._preview_for = request
        if self._session is None:  # show the prompt as the model will see it
            self._preview_len = len(prompt_ids)
            self._prompt_pieces = self.backend.prompt_pieces(list(prompt_ids))
            self._render_output()
            self.output.allow_next(True)
            self.output.selected = 0
        self._refresh_table()

    def _preview_failed(self, error: str) -> None:
        self._preview = self._preview_for = None
        if self._session is None:
            self._preview_len = 0
            self._show_context()
        self.table.show(None)
        self.say(error, "error")
