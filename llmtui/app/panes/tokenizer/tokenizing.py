"""The Tokenizer pane's tokens kept up to date: what is typed (or the ids pasted) cut again at each change."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Input, TextArea

from llmtui.app.panes.tokenizer import view
from llmtui.app.panes.tokenizer.encoding_bar import EncodingBar
from llmtui.app.panes.tokenizer.encodings import ENCODINGS, MODEL
from llmtui.app.panes.tokenizer.view import MAX_LIVE_CHARS
from llmtui.app.widgets.token_chips import ChipSection
from llmtui.engine.tokenizer.tokens import tokenize


class TokenizingPart:
    """Mixed into TokenizerPane: re-tokenize (or re-decode) on every edit, encoding loaded, or switch.

    Named handlers, not `@on`: Textual registers `@on` only on widget classes, and this is a mixin."""

    def _text_edited(self) -> None:
        """Called by the editor right after an edit: the tokens change in the same frame as the text."""
        if self.mode == "text":
            self._refresh()

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        # Edits were handled already (_text_edited); this catches the rest (undo, redo, load_text).
        if event.text_area.id == "tok-text" and self.mode == "text" and self.editor.text != self._tokenized:
            self._refresh()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "tok-ids" and self.mode == "ids":
            self._refresh()

    def on_encoding_bar_loaded(self, message: EncodingBar.Loaded) -> None:
        if self.compare or self.encoding == message.name:
            self._refresh()

    def _tokenizer_name(self, key: str) -> str:
        """The tokenizer's name in sentences: the model's name, or the encoding's."""
        if key == MODEL:
            return self.lm.name if self.lm is not None else "the model"
        return key

    def _missing_note(self, key: str) -> Text:
        return view.missing_note(key, self.bar.encodings, self.model_state.phase == "failed", self.compare)

    def _refresh(self) -> None:
        """Re-tokenize (or re-decode) what is typed, and redraw the chips, counts and details."""
        if not self.is_mounted:
            return
        self._shown.clear()
        if self.mode == "ids":
            self._refresh_ids()
        else:
            self._refresh_text()
        self.panel.show_detail()

    def _refresh_text(self) -> None:
        self._tokenized = self.editor.text
        # The tokens are made on the UI thread, in the frame of the edit, at ~2.5 s per MB (most of it
        # laying out the chips): past MAX_LIVE_CHARS only the start is tokenized; the editor keeps it all.
        text = self._tokenized[:MAX_LIVE_CHARS]
        keys = ENCODINGS if self.compare else (self.encoding,)
        for key in keys:
            self.bar.load(key)
        previous = self.chips.selected
        self.chips.border_title = "Tokens · " + ("every tokenizer" if self.compare else self._tab_label(self.encoding))
        if self.compare:
            sections = [self._section(key, text, titled=True) for key in keys]
            self.chips.show(sections, previous)
            self.say(view.compare_line(len(keys), text, self.allow_special).append(view.cut_note(len(self._tokenized))))
        else:
            section = self._section(self.encoding, text, titled=False)
            if section.tokens is None:
                self.chips.show_message(section.note or Text())
                self.say("")
                return
            if section.tokens.n_tokens:
                self.chips.show([section], previous)
            else:
                self.chips.show_message(view.EMPTY_TEXT)
            self.say(view.counts_line(section.tokens, self.allow_special).append(view.cut_note(len(self._tokenized))))
        if self._typing and (self.editor.has_focus or previous is None):
            self._select_at_cursor()

    def _section(self, key: str, text: str, titled: bool) -> ChipSection:
        """One tokenizer's tokens of `text` (kept in `_shown`), or the note saying why it has none."""
        tokenizer = self.bar.tokenizer(key)
        title = view.section_title(self._tab_label(key)) if titled else None
        if tokenizer is None:
            return ChipSection(key, title, note=self._missing_note(key))
        tokens = self._shown[key] = tokenize(tokenizer, text, self.allow_special)
        return ChipSection(key, view.section_title(self._tab_label(key), tokens) if titled else None, tokenizer, tokens)

    def _refresh_ids(self) -> None:
        tokenizer = self.bar.tokenizer(self.encoding)
        self.bar.load(self.encoding)
        self.chips.border_title = f"Tokens · {self._tab_label(self.encoding)}"
        if tokenizer is None:
            self.chips.show_message(self._missing_note(self.encoding))
            self.ids_box.clear()
            self.say("")
            return
        parsed, tokens = self.ids_box.decode(tokenizer, self._tokenizer_name(self.encoding))
        self._shown[self.encoding] = tokens
        if parsed.ids:
            self.chips.show([ChipSection(self.encoding, None, tokenizer, tokens)], self.chips.selected)
        else:
            self.chips.show_message(view.EMPTY_IDS)
        self.say(*view.ids_line(parsed, tokens))
