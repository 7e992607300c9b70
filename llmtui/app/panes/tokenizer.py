"""The Tokenizer pane: text cut into tokens and ids as you type, under several tokenizers, and ids back to text.

Tokenizing is fast (tiktoken, in Rust), so it runs on the UI thread at each keystroke
and the chips widget draws only the lines on screen. OpenAI's encodings may need a
download: they load in thread workers, on first use, and one that cannot be had says
why and what to do while the rest of the pane goes on working.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import TYPE_CHECKING, Literal

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Input, Static, Tab, Tabs, TextArea

from llmtui.app.display import safe
from llmtui.app.messages import ShowTokenInEmbeddings
from llmtui.app.panes.base import MessageKind, Pane
from llmtui.app.selection import TokenSelection
from llmtui.app.state import ModelState
from llmtui.app.widgets.loading import LoadingNotice
from llmtui.app.widgets.safe_input import SafeInput
from llmtui.app.widgets.text_editor import TextEditor
from llmtui.app.widgets.token_chips import ChipSection, TokenChips
from llmtui.engine.tokenizer import tokenizer as tokenizer_module
from llmtui.engine.tokenizer.tokens import Tokenization, from_ids, parse_ids, token_label, tokenize

if TYPE_CHECKING:
    from llmtui.engine.lm import LanguageModel
    from llmtui.engine.tokenizer.tokenizer import Tokenizer

MODEL = "model"
"""The key of the loaded model's own tokenizer (the others are tiktoken's encoding names)."""
ENCODINGS: tuple[str, ...] = (MODEL, *tokenizer_module.OPENAI_ENCODINGS)
OPENAI_LABELS = {"gpt2": "gpt2 (GPT-2)", "cl100k_base": "cl100k (GPT-4)", "o200k_base": "o200k (GPT-4o)"}
MAX_BYTES_SHOWN = 16
MAX_LIVE_CHARS = 50_000
"""Characters tokenized as you type (about 0.13 s per edit at this size); a longer text's tail is kept, not tokenized."""
"""The details line lists a token's bytes up to this many."""

Mode = Literal["text", "ids"]


class TokenizerPane(Pane):
    """Type text and see its tokens and ids; compare tokenizers; paste ids and see their text."""

    PANE_ID = "tokenizer"
    TITLE = "Tokenizer"
    SHORT_TITLE = "Tok"
    HELP = (
        "A model never sees letters: text is cut into tokens (whole words, pieces of words, single bytes) "
        "and each token is an integer id. A leading space belongs to the token, so ' love' and 'love' are "
        "different tokens; · marks a space, ↵ a newline. An emoji or a rare character may take several byte "
        "tokens (<0xF0> ...): the bracket under them shows the character they make together.\n\n"
        "Type above and the tokens follow. F2 switches tokenizer (the model's own, or OpenAI's gpt2, "
        "cl100k, o200k), F3 stacks them all to compare, F4 turns ids back into text, F5 lets typed text "
        "such as <|im_end|> become special tokens. Tab moves to the tokens: arrows pick one, enter opens "
        "it in the Embeddings pane."
    )

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

    class EncodingLoaded(Message, bubble=False):
        """A worker's answer for one OpenAI encoding: its tokenizer, or why there is none."""

        def __init__(self, name: str, tokenizer: Tokenizer | None, reason: str | None) -> None:
            self.name = name
            self.tokenizer = tokenizer
            self.reason = reason
            super().__init__()

    def __init__(self) -> None:
        super().__init__()
        self._tokenizers: dict[str, Tokenizer] = {}
        self._unavailable: dict[str, str] = {}  # encoding -> why it could not be loaded
        self._loading: set[str] = set()
        self._shown: dict[str, Tokenization] = {}  # the tokens on screen, per encoding
        self._decoded = ""
        self._prefilled: str | None = None  # the ids put in the input by F4, until the user edits them
        self._typing = True  # the selection follows the editor's cursor (until the tokens are focused)
        self._tokenized: str | None = None  # the text the shown tokens are of
        self._followed_text: str | None = None  # text put in the editor by follow_selection, not typed

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield LoadingNotice(classes="pane-notice")
        editor = TextEditor(
            id="tok-text",
            soft_wrap=True,
            tab_behavior="focus",
            show_line_numbers=False,
            placeholder="Type or paste text: it is cut into tokens as you type",
        )
        editor.border_title = "Text"
        yield editor
        with Vertical(id="tok-ids-box"):
            ids = SafeInput(id="tok-ids", placeholder="Token ids, e.g. 40, 3047, 27941, 0")
            ids.border_title = "Token ids"
            yield ids
            with VerticalScroll(id="tok-decoded-box") as box:
                box.border_title = "Decoded text"
                box.can_focus = False
                yield Static(id="tok-decoded")
        with Horizontal(id="tok-bar"):
            yield Static("Tokenizer", id="tok-bar-label")
            yield Tabs(*(Tab(self._tab_label(key), id=f"enc-{key}") for key in ENCODINGS), id="tok-encodings")
        yield Static(id="tok-info")
        chips = TokenChips(id="tok-chips")
        chips.border_title = "Tokens"
        chips.border_subtitle = "· space  ↵ newline  → tab  <0xF0> a byte of a character"
        yield chips
        yield Static(id="tok-detail")

    def on_mount(self) -> None:
        self.query_one("#tok-text", TextEditor).after_edit = self._text_edited
        self.query_one("#tok-encodings", Tabs).can_focus = False
        self.query_one("#tok-ids-box").display = False
        self.watch(self.chips, "selected", self._show_detail, init=False)

    @property
    def editor(self) -> TextArea:
        return self.query_one("#tok-text", TextArea)

    @property
    def ids_input(self) -> Input:
        return self.query_one("#tok-ids", Input)

    @property
    def chips(self) -> TokenChips:
        return self.query_one("#tok-chips", TokenChips)

    @property
    def info(self) -> str:
        """The counts line (or the problems with pasted ids), as plain text."""
        return str(self.query_one("#tok-info", Static).render())

    @property
    def detail(self) -> str:
        """The selected token's details, as plain text."""
        return str(self.query_one("#tok-detail", Static).render())

    @property
    def decoded(self) -> str:
        """The text the pasted ids decode to (ids mode)."""
        return self._decoded

    def tokens(self, key: str | None = None) -> Tokenization | None:
        """The tokens shown for an encoding (default: the current one), None if it shows none."""
        return self._shown.get(key or self.encoding)

    def available(self, key: str) -> Tokenizer | None:
        return self._tokenizers.get(key)

    def unavailable_reason(self, key: str) -> str | None:
        return self._unavailable.get(key)

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
        wide = self.app.size.width >= 120
        if key == MODEL:
            label = self._tokenizer_name(key) + (" (the model's)" if wide and self.lm is not None else "")
        else:
            label = OPENAI_LABELS[key] if wide and key in OPENAI_LABELS else key.removesuffix("_base")
        if key in self._loading:
            label += " …"
        elif key in self._unavailable:
            label += " ✗"
        return label

    def on_resize(self) -> None:
        self._update_tabs()

    def _update_tabs(self) -> None:
        for key in ENCODINGS:
            self.query_one(f"#enc-{key}", Tab).label = self._tab_label(key)

    def say(self, text: Text | str, kind: MessageKind = "info", where: str | None = None) -> None:
        """The info line, which may hold up to three lines (problems with pasted ids)."""
        line = self.query_one("#tok-info", Static)
        # One line, except problems with pasted ids (up to three): a fixed height spares the
        # screen a layout pass at every keystroke.
        grows = kind == "error" or line.has_class("-error")
        line.set_class(kind == "error", "-error")
        line.update(text if isinstance(text, Text) else Text(text), layout=grows)

    # -- the model and OpenAI's encodings ----------------------------------------------------

    def model_state_changed(self, state: ModelState) -> None:
        if state.phase != "ready":
            self._refresh()

    def model_ready(self, lm: LanguageModel) -> None:
        self._tokenizers[MODEL] = lm.tokenizer
        self._update_tabs()
        self._refresh()

    def _ensure_loaded(self, key: str) -> None:
        """Start loading an OpenAI encoding, once: a failed one is tried again only when chosen again."""
        if key == MODEL or key in self._tokenizers or key in self._loading or key in self._unavailable:
            return
        self._loading.add(key)
        self._update_tabs()
        self._load_encoding(key)

    @work(thread=True, group="tokenizer-encodings", exit_on_error=False)
    def _load_encoding(self, name: str) -> None:
        """Load one of tiktoken's encodings (a cache read, or a download; seconds when offline)."""
        try:
            tokenizer, reason = tokenizer_module.openai_tokenizer(name)
        except Exception as e:  # a bug or a broken install: said in the pane, never a traceback
            tokenizer, reason = None, f"{name} could not be loaded (internal error: {type(e).__name__}: {e})"
        self.post_message(self.EncodingLoaded(name, tokenizer, reason))

    @on(EncodingLoaded)
    def _encoding_loaded(self, message: EncodingLoaded) -> None:
        self._loading.discard(message.name)
        if message.tokenizer is not None:
            self._tokenizers[message.name] = message.tokenizer
            self._unavailable.pop(message.name, None)
        else:
            self._unavailable[message.name] = message.reason or f"{message.name} could not be loaded"
        self._update_tabs()
        if self.compare or self.encoding == message.name:
            self._refresh()

    def _missing_note(self, key: str) -> Text:
        """Why an encoding shows no tokens, and what to do."""
        if key == MODEL:
            if self.model_state.phase == "failed":
                return Text("No model, so not its tokenizer (see above). OpenAI's tokenizers may still work: "
                            "F2 switches to the next one.")
            return Text("The model's tokenizer comes with the model, which is loading (see above). "
                        "You can type meanwhile; F2 switches to OpenAI's tokenizers.")
        if key in self._loading:
            return Text(f"Loading {key}…" + (" (trying again)" if key in self._unavailable else ""))
        if key in self._unavailable:
            text = Text("Not available: ", style="bold")
            text.append(self._unavailable[key] + ".")
            if not self.compare:
                text.append("\nThe other tokenizers still work: F2 switches to the next one.")
            return text
        return Text(f"{key} is not loaded yet.")

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
        if event.value != self._prefilled:
            self._prefilled = None
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
        self._show_detail(self.chips.selected)

    def _refresh_text(self) -> None:
        self._tokenized = self.editor.text
        # The tokens are made on the UI thread, in the frame of the edit, at ~2.5 s per MB (most of it
        # laying out the chips): past MAX_LIVE_CHARS only the start is tokenized; the editor keeps it all.
        text = self._tokenized[:MAX_LIVE_CHARS]
        keys = ENCODINGS if self.compare else (self.encoding,)
        for key in keys:
            self._ensure_loaded(key)
        previous = self.chips.selected
        if not self.compare:
            tokenizer = self._tokenizers.get(self.encoding)
            if tokenizer is None:
                self.chips.show_message(self._missing_note(self.encoding))
                self.say("")
                return
            tokens = self._shown[self.encoding] = tokenize(tokenizer, text, self.allow_special)
            if not tokens.n_tokens:
                self.chips.show_message(Text(
                    "Type some text above: it is cut into tokens as you type.\n\n"
                    "Try a sentence; ' love' against 'love'; an emoji 🍕; a long rare word; some code; "
                    "another language. F2 shows how another tokenizer cuts the same text.", style="italic"))
            else:
                self.chips.show([ChipSection(self.encoding, None, tokenizer, tokens)], previous)
            self.say(self._counts(tokens, text).append(self._cut_note()))
            self.chips.border_title = f"Tokens · {self._tab_label(self.encoding)}"
        else:
            sections = []
            for key in keys:
                tokenizer = self._tokenizers.get(key)
                title = Text(self._tab_label(key).removesuffix(" …").removesuffix(" ✗"), style="bold")
                if tokenizer is None:
                    sections.append(ChipSection(key, title, note=self._missing_note(key)))
                    continue
                tokens = self._shown[key] = tokenize(tokenizer, text, self.allow_special)
                title.append(f" · {tokens.n_tokens} tokens · {tokens.chars_per_token:.2f} chars/token", style="not bold")
                sections.append(ChipSection(key, title, tokenizer, tokens))
            self.chips.show(sections, previous)
            data = len(text.encode("utf-8", "surrogatepass"))
            self.say(Text(f"Comparing {len(keys)} tokenizers on {len(text)} characters, {data} bytes"
                           + (" · specials on" if self.allow_special else "")).append(self._cut_note()))
            self.chips.border_title = "Tokens · every tokenizer"
        if self._typing and (self.editor.has_focus or previous is None):
            self._select_at_cursor()

    def _cut_note(self) -> Text:
        """' · the first 50,000 of 1,048,576 characters' when the text is longer than the pane tokenizes."""
        n = len(self._tokenized or "")
        if n <= MAX_LIVE_CHARS:
            return Text()
        return Text(f" · tokens of the first {MAX_LIVE_CHARS:,} of {n:,} characters (all kept above)", style="bold")

    def _counts(self, tokens: Tokenization, text: str) -> Text:
        line = Text()
        line.append(f"{tokens.n_tokens}", style="bold")
        line.append(" tokens · ")
        line.append(f"{tokens.n_chars}", style="bold")
        line.append(" characters · ")
        line.append(f"{tokens.n_bytes}", style="bold")
        line.append(" bytes · ")
        line.append(f"{tokens.chars_per_token:.2f}", style="bold")
        line.append(" characters per token")
        if self.allow_special:
            line.append(" · specials on")
        if tokens.dropped:
            shown = ", ".join(f"0x{b:02X}" for b in tokens.dropped[:4])
            line.append(f" · no token for byte {shown}: dropped", style="bold")
        elif not tokens.round_trip:
            line.append(" · decoding the ids does not give this text back exactly", style="bold")
        return line

    def _refresh_ids(self) -> None:
        decoded = self.query_one("#tok-decoded", Static)
        tokenizer = self._tokenizers.get(self.encoding)
        self._ensure_loaded(self.encoding)
        self.chips.border_title = f"Tokens · {self._tab_label(self.encoding)}"
        if tokenizer is None:
            self.chips.show_message(self._missing_note(self.encoding))
            self._decoded = ""
            decoded.update("")
            self.say("")
            return
        parsed = parse_ids(self.ids_input.value, tokenizer, name=self._tokenizer_name(self.encoding))
        tokens, text = from_ids(tokenizer, parsed.ids)
        self._shown[self.encoding] = tokens
        self._decoded = text
        decoded.update(Text(safe(text)) if text else Text("(nothing yet)", style="italic"))
        if parsed.ids:
            self.chips.show([ChipSection(self.encoding, None, tokenizer, tokens)], self.chips.selected)
        else:
            self.chips.show_message(Text("Type or paste token ids above, separated by commas or spaces.", style="italic"))
        if parsed.problems:
            head = Text(f"{len(parsed.problems)} of {parsed.n_items} items are not ids: ", style="bold")
            head.append("; ".join(parsed.problems), style="not bold")
            self.say(head, "error")
        elif parsed.ids:
            self.say(f"{tokens.n_tokens} ids → {tokens.n_chars} characters, {tokens.n_bytes} bytes")
        else:
            self.say("")

    # -- the selected token -----------------------------------------------------------------

    def _select_at_cursor(self) -> None:
        """Select the token that holds the character before the editor's cursor."""
        key = self.encoding
        tokens = self._shown.get(key)
        if tokens is None or not tokens.n_tokens:
            return
        ends = tokens.ends
        text = self.editor.text
        index = self.editor.document.get_index_from_location(self.editor.cursor_location)
        offset = len(text[:index].encode("utf-8", "surrogatepass"))
        token = min(bisect_right(ends, max(0, offset - 1)), tokens.n_tokens - 1)
        flat = self.chips.flat_index(key, token)
        if flat is not None:
            self.chips.select(flat)

    def _show_detail(self, selected: int | None) -> None:
        detail = self.query_one("#tok-detail", Static)
        if selected is None or not self.chips.total:
            detail.update("", layout=False)
            return
        section, index = self.chips.locate(selected)
        tokens = section.tokens
        if tokens is None:
            detail.update("", layout=False)
            return
        token_id, data = tokens.ids[index], tokens.chunks[index]
        line = Text()
        line.append(f"Token {index + 1}/{tokens.n_tokens}", style="bold")
        line.append("  id ")
        line.append(str(token_id), style="bold")
        line.append("  ")
        label = self.chips.chip_label(section.tokenizer, token_id, data)
        line.append(f"“{label}”", style="bold")
        if index in tokens.special:
            line.append("  special token")
        hexes = " ".join(f"{b:02X}" for b in data[:MAX_BYTES_SHOWN]) + (" …" if len(data) > MAX_BYTES_SHOWN else "")
        line.append(f"  {len(data)} byte{'s' if len(data) != 1 else ''}: {hexes}")
        group = tokens.group_of(index)
        if group is not None:
            chars = "".join(t for t, _ in token_label(group.text.encode("utf-8", "surrogatepass")))
            line.append(f"  part of “{chars}” (tokens {group.first + 1}–{group.last + 1})")
        if section.key == MODEL:
            line.append("  · enter: Embeddings" if self.chips.has_focus else "  · tab, enter: Embeddings", style="dim")
        detail.update(line, layout=False)  # its height is fixed

    @on(TokenChips.Opened)
    def _opened(self, event: TokenChips.Opened) -> None:
        event.stop()
        section, index = event.section, event.index
        if section.tokens is None:
            return
        if section.key != MODEL:
            self.notify(
                f"Only the model's own tokens have embeddings; id {section.tokens.ids[index]} is {section.key}'s. "
                "F2 switches to the model's tokenizer.",
                title="Not the model's token",
                severity="warning",
            )
            return
        data = section.tokens.chunks[index]
        self.post_message(ShowTokenInEmbeddings(section.tokens.ids[index], data.decode("utf-8", errors="replace")))

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
        chips = self.chips
        if not chips.total or chips.selected == chips.total - 1:
            return False
        chips.select(0 if chips.selected is None else chips.selected + 1)
        return True

    def action_open_selected(self) -> None:
        """Open the selected token in the Embeddings pane."""
        self.chips.action_open()

    # -- focus: the selection follows the editor while typing, the arrows in the tokens -------

    def on_descendant_focus(self, event: object) -> None:
        focused = self.app.focused
        self._typing = focused is self.editor
        if self._typing:
            self._select_at_cursor()
        self._show_detail(self.chips.selected)

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
        tabs = self.query_one("#tok-encodings", Tabs)
        if tabs.active != f"enc-{key}":
            tabs.active = f"enc-{key}"
        if key in self._unavailable and key not in self._loading:
            self._loading.add(key)  # chosen again: try again (the reason stays shown meanwhile)
            self._update_tabs()
            self._load_encoding(key)
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
                if key in self._unavailable and key not in self._loading:
                    self._loading.add(key)
                    self._load_encoding(key)
            self._update_tabs()
        self._refresh()

    def action_toggle_mode(self) -> None:
        """Switch between text → tokens and ids → text."""
        self.mode = "ids" if self.mode == "text" else "text"

    def watch_mode(self, mode: Mode) -> None:
        ids_box = self.query_one("#tok-ids-box")
        ids_box.display = mode == "ids"
        self.editor.display = mode == "text"
        self.set_class(mode == "ids", "-ids")
        if mode == "ids":
            self.compare = False
            tokens = self._shown.get(self.encoding)
            if tokens is not None and tokens.n_tokens and (not self.ids_input.value or self.ids_input.value == self._prefilled):
                self._prefilled = ", ".join(map(str, tokens.ids))  # the typed text's ids, ready to edit
                self.ids_input.value = self._prefilled
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
        """The token list shown: each token's id, its text and its bytes (hex), under the current tokenizer.

        "text" is all of it; the tokens are those of its first "tokenized_chars" characters (the pane
        tokenizes at most MAX_LIVE_CHARS, and says so).
        """
        tokens = self.tokens()
        if tokens is None:
            return None
        text = self.editor.text if self.mode == "text" else self.decoded
        return {
            "tokenizer": self._tokenizer_name(self.encoding),
            "mode": self.mode,
            "text": text,
            "tokenized_chars": min(len(text), MAX_LIVE_CHARS) if self.mode == "text" else len(text),
            "tokens": [{"id": i, "text": chunk.decode("utf-8", errors="replace"), "bytes": chunk.hex(),
                        "special": n in tokens.special} for n, (i, chunk) in enumerate(zip(tokens.ids, tokens.chunks))],
        }

    def export_table(self) -> tuple[list[str], list[list]] | None:
        exported = self.export_data()
        if exported is None:
            return None
        rows = [[n, t["id"], t["text"], t["bytes"], t["special"]] for n, t in enumerate(exported["tokens"], start=1)]
        return ["#", "id", "text", "bytes", "special"], rows
