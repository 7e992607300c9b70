"""The Tokenizer pane: text cut into tokens and ids as you type, under several tokenizers, and ids back to text.

Tokenizing is fast (tiktoken, in Rust), so it runs on the UI thread at each keystroke
and the chips widget draws only the lines on screen. OpenAI's encodings may need a
download: they load in thread workers, on first use, and one that cannot be had says
why and what to do while the rest of the pane goes on working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import Input, Tabs, TextArea

from llmtui.app.panes.base import MessageKind, Pane, prompt_box
from llmtui.app.panes.tokenizer import view
from llmtui.app.panes.tokenizer.encoding_bar import EncodingBar
from llmtui.app.panes.tokenizer.encodings import ENCODINGS, MODEL
from llmtui.app.panes.tokenizer.ids_box import IdsBox
from llmtui.app.panes.tokenizer.tokens_panel import TokensPanel
from llmtui.app.panes.tokenizer.view import MAX_LIVE_CHARS, Mode
from llmtui.app.selection import TokenSelection
from llmtui.app.state import ModelState
from llmtui.app.widgets.loading import LoadingNotice
from llmtui.app.widgets.text_editor import TextEditor
from llmtui.app.widgets.token_chips import ChipSection, TokenChips
from llmtui.engine.tokenizer.tokens import Tokenization, tokenize

if TYPE_CHECKING:
    from llmtui.engine.lm import LanguageModel
    from llmtui.engine.tokenizer.tokenizer import Tokenizer


class TokenizerPane(Pane):
    """Type text and see its tokens and ids; compare tokenizers; paste ids and see their text."""

    PANE_ID = "tokenizer"
    TITLE = "Tokenizer"
    SHORT_TITLE = "Tok"
    HELP = view.HELP

    BINDINGS = [
        Binding("f2", "next_encoding(1)", "Encoding", tooltip="Show the text under the next tokenizer"),
        Binding("shift+f2", "next_encoding(-1)", "Previous encoding", show=False, tooltip="The previous tokenizer"),
        Binding("f3", "toggle_compare", "Compare", tooltip="Stack every tokenizer's tokens, to compare them"),
        Binding("f4", "toggle_mode", "IDs→text", tooltip="Switch between text → tokens and ids → text"),
        Binding("f5", "toggle_special", "Specials", tooltip="Let typed text like <|im_end|> become special tokens"),
    ]

    encoding: reactive[str] = reactive(MODEL, init=False)
    """The tokenizer shown: "model" or one of tiktoken's OpenAI encodings."""
    compare: reactive[bool] = reactive(False, init=False)
    """Stack every tokenizer's tokens instead of one."""
    mode: reactive[Mode] = reactive("text", init=False)
    """"text": typed text to tokens; "ids": pasted ids to text."""
    allow_special: reactive[bool] = reactive(False, init=False)
    """Whether typed text that spells a special token (<|im_end|>) becomes that token."""

    def __init__(self) -> None:
        super().__init__()
        self._shown: dict[str, Tokenization] = {}  # the tokens on screen, per encoding
        self._typing = True  # the selection follows the editor's cursor (until the tokens are focused)
        self._tokenized: str | None = None  # the text the shown tokens are of
        self._followed_text: str | None = None  # text put in the editor by follow_selection, not typed

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield LoadingNotice(classes="pane-notice")
        yield prompt_box(TextEditor, id="tok-text", title="Text",
                         placeholder="Type or paste text: it is cut into tokens as you type")
        yield IdsBox(id="tok-ids-box")
        yield EncodingBar(id="tok-bar")
        yield TokensPanel()

    def on_mount(self) -> None:
        self.query_one("#tok-text", TextEditor).after_edit = self._text_edited
        self.query_one("#tok-ids-box").display = False

    @property
    def editor(self) -> TextArea:
        return self.query_one("#tok-text", TextArea)

    @property
    def ids_input(self) -> Input:
        return self.ids_box.input

    @property
    def ids_box(self) -> IdsBox:
        return self.query_one(IdsBox)

    @property
    def bar(self) -> EncodingBar:
        return self.query_one(EncodingBar)

    @property
    def chips(self) -> TokenChips:
        return self.query_one("#tok-chips", TokenChips)

    @property
    def panel(self) -> TokensPanel:
        return self.query_one(TokensPanel)

    @property
    def info(self) -> str:
        """The counts line (or the problems with pasted ids), as plain text."""
        return self.line_text("#tok-info")

    @property
    def detail(self) -> str:
        """The selected token's details, as plain text."""
        return self.line_text("#tok-detail")

    @property
    def _loading(self) -> set[str]:
        """The OpenAI encodings loading now."""
        return self.bar.encodings.loading

    @property
    def decoded(self) -> str:
        """The text the pasted ids decode to (ids mode)."""
        return self.ids_box.decoded

    def tokens(self, key: str | None = None) -> Tokenization | None:
        """The tokens shown for an encoding (default: the current one), None if it shows none."""
        return self._shown.get(key or self.encoding)

    def available(self, key: str) -> Tokenizer | None:
        return self.bar.tokenizer(key)

    def unavailable_reason(self, key: str) -> str | None:
        return self.bar.encodings.unavailable.get(key)

    def focus_default(self) -> None:
        (self.ids_input if self.mode == "ids" else self.editor).focus()

    def set_prompt(self, text: str) -> None:
        self.editor.load_text(text)
        self.editor.move_cursor(self.editor.document.end)
        self._refresh()  # at once, not when the editor's Changed message arrives

    def _tokenizer_name(self, key: str) -> str:
        """The tokenizer's name in sentences: the model's name, or the encoding's."""
        if key == MODEL:
            return self.lm.name if self.lm is not None else "the model"
        return key

    def _tab_label(self, key: str) -> str:
        return self.bar.label(key)

    def say(self, text: Text | str, kind: MessageKind = "info", where: str | None = None) -> None:
        """The counts line (see `TokensPanel.say`)."""
        self.panel.say(text, kind)

    # -- the model and OpenAI's encodings ----------------------------------------------------

    def model_state_changed(self, state: ModelState) -> None:
        if state.phase != "ready":
            self._refresh()

    def model_ready(self, lm: LanguageModel) -> None:
        self.bar.set_model(lm.name, lm.tokenizer)
        self._refresh()

    @on(EncodingBar.Loaded)
    def _encoding_loaded(self, message: EncodingBar.Loaded) -> None:
        if self.compare or self.encoding == message.name:
            self._refresh()

    def _missing_note(self, key: str) -> Text:
        return view.missing_note(key, self.bar.encodings, self.model_state.phase == "failed", self.compare)

    # -- keeping the tokens up to date -----------------------------------------------------

    def _text_edited(self) -> None:
        """Called by the editor right after an edit: the tokens change in the same frame as the text."""
        if self.mode == "text":
            self._refresh()

    @on(TextArea.Changed, "#tok-text")
    def _text_changed(self, event: TextArea.Changed) -> None:
        # Edits were handled already (_text_edited); this catches the rest (undo, redo, load_text).
        if self.mode == "text" and self.editor.text != self._tokenized:
            self._refresh()

    @on(TextArea.SelectionChanged, "#tok-text")
    def _cursor_moved(self, event: TextArea.SelectionChanged) -> None:
        if self.mode == "text" and self._typing:
            self._select_at_cursor()

    @on(Input.Changed, "#tok-ids")
    def _ids_changed(self, event: Input.Changed) -> None:
        if self.mode == "ids":
            self._refresh()

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

    # -- the selected token -----------------------------------------------------------------

    def _select_at_cursor(self) -> None:
        """Select the token that holds the character before the editor's cursor."""
        tokens = self._shown.get(self.encoding)
        if tokens is None or not tokens.n_tokens:
            return
        cursor = self.editor.document.get_index_from_location(self.editor.cursor_location)
        flat = self.chips.flat_index(self.encoding, view.token_at_cursor(tokens, self.editor.text, cursor))
        if flat is not None:
            self.chips.select(flat)

    @on(TokenChips.Moved)
    def _moved(self, event: TokenChips.Moved) -> None:
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
        if typed and typed != self._followed_text:
            self._select_if_same(selection)
            return
        if any(self.lm.tokenizer.is_special(i) for i in selection.ids):
            self.allow_special = True  # a chat from the Generate pane: its template tokens stay whole
        self.encoding = MODEL
        self._followed_text = text
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

    # -- focus: the selection follows the editor while typing, the arrows in the tokens -------

    def on_descendant_focus(self, event: object) -> None:
        focused = self.app.focused
        self._typing = focused is self.editor
        if self._typing:
            self._select_at_cursor()
        self.panel.show_detail()

    # -- actions ---------------------------------------------------------------------------

    @on(Tabs.TabActivated, "#tok-encodings")
    def _tab_activated(self, event: Tabs.TabActivated) -> None:
        event.stop()
        if event.tab.id != event.tabs.active:
            # Stale: another tab was made active since (F2 pressed again). Following it switched back,
            # and that switch's own message switched forward again, forever.
            return
        key = (event.tab.id or "").removeprefix("enc-")
        if key in ENCODINGS and key != self.encoding:
            self.encoding = key

    def watch_encoding(self, key: str) -> None:
        self.bar.show(key)
        self.bar.load(key, again=True)  # a failed one chosen again: try again (the reason stays shown meanwhile)
        self._refresh()
        if self.compare:
            flat = self.chips.flat_index(key, 0)
            if flat is not None:
                self.chips.select(flat)

    def action_next_encoding(self, step: int = 1) -> None:
        """Show the text under the next (or previous) tokenizer."""
        self.encoding = ENCODINGS[(ENCODINGS.index(self.encoding) + step) % len(ENCODINGS)]

    def action_toggle_compare(self) -> None:
        """Stack every tokenizer's tokens (or go back to one)."""
        if self.mode == "ids":
            self.mode = "text"
        self.compare = not self.compare

    def watch_compare(self, compare: bool) -> None:
        if compare:
            for key in ENCODINGS:
                self.bar.load(key, again=True)
        self._refresh()

    def action_toggle_mode(self) -> None:
        """Switch between text → tokens and ids → text."""
        self.mode = "ids" if self.mode == "text" else "text"

    def watch_mode(self, mode: Mode) -> None:
        self.ids_box.display = mode == "ids"
        self.editor.display = mode == "text"
        self.set_class(mode == "ids", "-ids")
        if mode == "ids":
            self.compare = False
            tokens = self._shown.get(self.encoding)
            if tokens is not None and tokens.n_tokens:
                self.ids_box.prefill(tokens.ids)
        self._refresh()
        self.focus_default()

    def action_toggle_special(self) -> None:
        """Let typed text that spells a special token become it (or not)."""
        self.allow_special = not self.allow_special
        self.notify(
            "Typed text like <|im_end|> now becomes one special token." if self.allow_special
            else "Typed text like <|im_end|> is now ordinary text, cut into ordinary tokens.",
            title="Special tokens " + ("on" if self.allow_special else "off"),
            timeout=4,
        )

    def watch_allow_special(self, allow: bool) -> None:
        self._refresh()

    def commands(self):  # type: ignore[override]
        yield from super().commands()
        yield (f"{self.TITLE}: open the selected token in Embeddings", "Its vector and nearest neighbours",
               self.action_open_selected)
        for key in ENCODINGS:
            yield (f"{self.TITLE}: show {self._tab_label(key)}", "Tokens under this tokenizer",
                   lambda key=key: setattr(self, "encoding", key))

    # -- export ----------------------------------------------------------------------------

    def export_data(self) -> dict | None:
        """The token list shown (see `view.export_data`)."""
        tokens = self.tokens()
        if tokens is None:
            return None
        text = self.editor.text if self.mode == "text" else self.decoded
        return view.export_data(self._tokenizer_name(self.encoding), self.mode, text, tokens)

    def export_table(self) -> tuple[list[str], list[list]] | None:
        exported = self.export_data()
        return None if exported is None else view.export_table(exported)
