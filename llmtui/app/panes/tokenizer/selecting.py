"""The Tokenizer pane's selected token: it follows the editor's cursor while typing, the arrows in the
tokens, and the app's current token chosen in another pane."""

from __future__ import annotations

from textual.widgets import TextArea

from llmtui.app.panes.tokenizer import view
from llmtui.app.panes.tokenizer.encodings import MODEL
from llmtui.app.selection import TokenSelection
from llmtui.app.widgets.token_chips import TokenChips


class SelectingPart:
    """Mixed into TokenizerPane: which token is selected, and the app's current token in and out.

    Named handlers, not `@on`: Textual registers `@on` only on widget classes, and this is a mixin."""

    def on_text_area_selection_changed(self, event: TextArea.SelectionChanged) -> None:
        if event.text_area.id == "tok-text" and self.mode == "text" and self._typing:
            self._select_at_cursor()

    def on_descendant_focus(self, event: object) -> None:
        """The selection follows the editor while it has the focus, the arrows once the tokens have it."""
        self._typing = self.app.focused is self.editor
        if self._typing:
            self._select_at_cursor()
        self.panel.show_detail()

    def _select_at_cursor(self) -> None:
        """Select the token that holds the character before the editor's cursor."""
        tokens = self._shown.get(self.encoding)
        if tokens is None or not tokens.n_tokens:
            return
        cursor = self.editor.document.get_index_from_location(self.editor.cursor_location)
        flat = self.chips.flat_index(self.encoding, view.token_at_cursor(tokens, self.editor.text, cursor))
        if flat is not None:
            self.chips.select(flat)

    def on_token_chips_moved(self, event: TokenChips.Moved) -> None:
        """The user picked one of the model's tokens: it becomes the app's current token (other panes follow)."""
        event.stop()
        tokens = event.section.tokens
        if event.section.key != MODEL or tokens is None:
            return
        self.select_token(tokens.ids, event.index)

    def follow_selection(self, selection: TokenSelection) -> None:
        """A token chosen in another pane: select it here when its text is the one shown.

        An empty editor (or one holding text that came from here, not typed) takes the token's
        text; text the user typed is never replaced.
        """
        if self.lm is None or self.mode != "text":
            return
        try:
            text = self.lm.tokenizer.decode(list(selection.ids))
        except ValueError:  # ids of another vocabulary
            return
        typed = self.editor.text
        if typed and self.followed_in(typed) is None:  # the user's own text: only selected in, never replaced
            self._select_if_same(selection)
            return
        if any(self.lm.tokenizer.is_special(i) for i in selection.ids):
            self.allow_special = True  # a chat from the Generate pane: its template tokens stay whole
        self.encoding = MODEL
        self.put_followed(text, selection)
        self.set_prompt(text)
        self._select_if_same(selection)

    def _select_if_same(self, selection: TokenSelection) -> None:
        """Select the token, and put the editor's cursor just after its text (where typing would select it)."""
        tokens = self._shown.get(MODEL)
        if tokens is None or not selection.same_text(tokens.ids) or self.encoding != MODEL:
            return
        flat = self.chips.flat_index(MODEL, selection.position)
        if flat is not None:
            before = b"".join(tokens.chunks[: selection.position + 1]).decode("utf-8", errors="ignore")
            self.editor.move_cursor(self.editor.document.get_location_from_index(len(before)))
            self.chips.select(flat)

    def advance(self) -> bool:
        """The advance key (presentation mode): the next token."""
        return self.panel.advance()

    def action_open_selected(self) -> None:
        """Open the selected token in the Embeddings pane."""
        self.chips.action_open()
