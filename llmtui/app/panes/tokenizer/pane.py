"""The Tokenizer pane: text cut into tokens and ids as you type, under several tokenizers, and ids back to text.

Tokenizing is fast (tiktoken, in Rust), so it runs on the UI thread at each keystroke
and the chips widget draws only the lines on screen. OpenAI's encodings may need a
download: they load in thread workers, on first use, and one that cannot be had says
why and what to do while the rest of the pane goes on working.

This module lays the pane out and holds its keys, switches and exports; parts mixed into
the class, each in its own module, keep the tokens up to date (tokenizing.py) and the
selected token (selecting.py).
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
from llmtui.app.panes.tokenizer.selecting import SelectingPart
from llmtui.app.panes.tokenizer.tokenizing import TokenizingPart
from llmtui.app.panes.tokenizer.tokens_panel import TokensPanel
from llmtui.app.panes.tokenizer.view import Mode
from llmtui.app.state import ModelState
from llmtui.app.widgets.loading import LoadingNotice
from llmtui.app.widgets.text_editor import TextEditor
from llmtui.app.widgets.token_chips import TokenChips
from llmtui.engine.tokenizer.tokens import Tokenization

if TYPE_CHECKING:
    from llmtui.engine.lm import LanguageModel
    from llmtui.engine.tokenizer.tokenizer import Tokenizer


class TokenizerPane(TokenizingPart, SelectingPart, Pane):
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

    def _tab_label(self, key: str) -> str:
        return self.bar.label(key)

    def say(self, text: Text | str, kind: MessageKind = "info", where: str | None = None) -> None:
        """The counts line (see `TokensPanel.say`)."""
        self.panel.say(text, kind)

    # -- the model -------------------------------------------------------------------------

    def model_state_changed(self, state: ModelState) -> None:
        if state.phase != "ready":
            self._refresh()

    def model_ready(self, lm: LanguageModel) -> None:
        self.bar.set_model(lm.name, lm.tokenizer)
        self._refresh()

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
