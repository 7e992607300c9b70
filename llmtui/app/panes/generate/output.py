"""The Generate pane's output and table: the tokens coloured by probability, the context used, the selected
step's table, and the app's current token (selected here, or followed from another pane)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.style import Style

from llmtui.app.palette import legend, prob_style
from llmtui.app.panes.generate import view
from llmtui.app.widgets.token_text import Piece, TokenText

if TYPE_CHECKING:
    from llmtui.app.selection import TokenSelection


class OutputPart:
    """Mixed into GeneratePane: drawing the output and the table from the shown steps."""

    def _update_legend(self) -> None:
        self.output.border_subtitle = legend("model p " if self.colour_by == "model" else "knobs p ")

    @property
    def context_used(self) -> int:
        """Tokens of the context window the shown text takes: the prompt (as encoded) and the generated tokens."""
        if self._session is not None:
            return len(self._prompt_ids) + len(self._steps)
        return self._preview_len

    def _show_context(self) -> None:
        """The output's title says how much of the context window the text uses (always in view)."""
        used = self.context_used
        if self.lm is None or not used:
            self.output.border_title = "Output"
            return
        window = self.lm.config.context_length
        full = " · full" if used >= window else ""
        self.output.border_title = f"Output · context {used:,} / {window:,}{full}"

    def _show_idle_output(self) -> None:
        if not self._steps and not self._prompt_pieces:
            if self.chat_mode:
                self.output.set_placeholder("Chat mode: type a message as the user; F5 sends it.\n"
                                            "The output shows the exact text the model continues, template tokens included.")
            else:
                self.output.set_placeholder("Type a prompt above. The table shows the next token's probabilities; "
                                            "F5 generates, F6 adds one token at a time.")

    def _render_output(self) -> None:
        if self._texts is None:
            return
        self._show_context()
        if not self._steps and not self._prompt_pieces:
            self._show_idle_output()
            return
        texts = self._texts.update(self._steps)
        by_model = self.colour_by == "model"
        pieces = []
        for i, (step, text) in enumerate(zip(self._steps, texts)):
            style = prob_style(step.raw_prob if by_model else step.prob)
            if step.forced:
                style += Style(underline=True, italic=True)
            if self._texts.is_special(i):
                style += Style(bold=True)
            pieces.append(Piece(text.replace("\n", "↵\n"), style, i))
        self.output.set_content(self._prompt_pieces, pieces, len(self._steps))

    def on_token_text_selected(self, event: TokenText.Selected) -> None:
        """The user picked a generated token: it becomes the app's current token (in the whole text)."""
        if event.index is not None and 0 <= event.index < len(self._steps):
            ids = [*self._prompt_ids, *(s.token_id for s in self._steps)]
            self.select_token(ids, len(self._prompt_ids) + event.index)

    def shown_ids(self) -> tuple[int, ...] | None:
        """The session's text: its prompt and the tokens generated so far (None before the first run)."""
        if self._session is None:
            return None
        return (*self._session.prompt_ids, *(step.token_id for step in self._steps))

    def _reselect(self) -> None:
        """After a fork, the app's current token (picked here) is the new text's token at its position, not the old one."""
        selection = self.selection  # the app's, handed down
        ids = (*self._prompt_ids, *(s.token_id for s in self._steps))
        if (selection is not None and selection.source == self.PANE_ID and selection.position < len(ids)
                and ids[: selection.position + 1] != tuple(selection.ids[: selection.position + 1])):
            self.select_token(ids, selection.position)

    def follow_selection(self, selection: TokenSelection) -> None:
        """The app's current token, when it is one of the shown steps: select it, its table shows."""
        ids = (*self._prompt_ids, *(s.token_id for s in self._steps))
        n_prompt = len(self._prompt_ids)
        # the selection's text may be an earlier state of this one (Attention or Layers took it mid-generation)
        if self._steps and ids[: len(selection.ids)] == selection.ids and n_prompt <= selection.position < len(ids):
            self.output.selected = selection.position - n_prompt

    def _selection_changed(self, index: int | None) -> None:
        """The output's cursor moved (by the user or by the pane): show that step's table."""
        self._refresh_table()
        if index is not None and index >= len(self._steps):
            self._request_preview()

    def _label(self, token_id: int, text: str) -> str:
        assert self.lm is not None
        return view.token_label(self.lm.tokenizer, token_id, text)

    def _refresh_table(self) -> None:
        selected = self.output.selected
        steps = self._steps
        index = selected if selected is not None else len(steps) - 1
        if 0 <= index < len(steps):
            assert self.lm is not None
            self.table.show(view.step_view(self.lm.tokenizer, steps[index], len(steps)))
        elif not self.running:
            self.table.show(self._preview)
