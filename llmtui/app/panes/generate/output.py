"""The Generate pane's output and table: the tokens coloured by probability, the context used, the selected
step's table, and the app's current token (selected here, or followed from another pane)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from llmtui.app.display import kept_prefix
from llmtui.app.palette import legend
from llmtui.app.panes.generate import view
from llmtui.app.widgets.token_text import TokenText

if TYPE_CHECKING:
    from llmtui.app.panes.generate.backend import Backend
    from llmtui.app.selection import TokenSelection
    from llmtui.app.widgets.token_text import Piece
    from llmtui.engine.generation import Step


class OutputPieces:
    """The output's pieces, each step's built once: steps never change, so while tokens stream only the new
    ones are coloured (a fork keeps the pieces of the steps before it). The output widget then lays out
    only the pieces that extend the ones it has (TokenText.set_content)."""

    def __init__(self) -> None:
        self._steps: list[Step] = []
        self._pieces: list[Piece] = []
        self._key: tuple[Backend, bool] | None = None

    def of(self, steps: Sequence[Step], backend: Backend, by_model: bool) -> list[Piece]:
        """The pieces of `steps` (a new list; the pieces of steps seen before are the same objects)."""
        if self._key != (backend, by_model):
            self._steps, self._pieces, self._key = [], [], (backend, by_model)
        keep = kept_prefix(steps, self._steps)
        del self._steps[keep:], self._pieces[keep:]
        self._steps.extend(steps[keep:])
        self._pieces.extend(view.output_pieces(steps[keep:], backend.texts(steps, keep), by_model, first=keep))
        return list(self._pieces)


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
        window = self.backend.window if self.backend is not None else None
        if window is None or not used:  # a served model's window is the server's business: not shown
            self.output.set_title("Output")
            return
        full = " · full" if used >= window else ""
        self.output.set_title(f"Output · context {used:,} / {window:,}{full}")

    def _show_idle_output(self) -> None:
        if not self._steps and not self._prompt_pieces:
            if self.chat_mode:
                self.output.set_placeholder("Chat mode: type a message as the user; F5 sends it.\n"
                                            "The output shows the exact text the model continues, template tokens included.")
            else:
                self.output.set_placeholder("Type a prompt above. The table shows the next token's probabilities; "
                                            "F5 generates, F6 adds one token at a time.")

    def _render_output(self) -> None:
        if self.backend is None:
            return
        self._show_context()
        if not self._steps and not self._prompt_pieces:
            self._show_idle_output()
            return
        pieces = self._output_pieces.of(self._steps, self.backend, self.colour_by == "model")
        self.output.set_content(self._prompt_pieces, pieces, len(self._steps))

    def on_token_text_selected(self, event: TokenText.Selected) -> None:
        """The user picked a generated token: it becomes the app's current token (in the whole text)."""
        # a served model's token ids are its server's, not a local model's: they are not the app's current token
        if event.index is not None and 0 <= event.index < len(self._steps) and self.backend and not self.backend.served:
            ids = [*self._prompt_ids, *(s.token_id for s in self._steps)]
            self.select_token(ids, len(self._prompt_ids) + event.index)

    def shown_ids(self) -> tuple[int, ...] | None:
        """The session's text: its prompt and the tokens generated so far (None before the first run)."""
        if self._session is None or self.backend is None or self.backend.served:
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
        assert self.backend is not None
        return self.backend.label(token_id, text)

    def _refresh_table(self) -> None:
        selected = self.output.selected
        steps = self._steps
        index = selected if selected is not None else len(steps) - 1
        if 0 <= index < len(steps):
            assert self.backend is not None
            self.table.show(self.backend.step_view(steps[index], len(steps)))
            if self.backend.served and not self.running and (note := view.undecided_note(steps[index])):
                self.say(note)  # why some rows of a served model's table show '?'
        elif not self.running:
            self.table.show(self._preview)
