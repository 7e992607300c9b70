"""The Tokenizer pane's row of tokenizer tabs: the model's own and OpenAI's, which it loads on first use.

A load runs in a thread worker (a cache read, or a download; seconds when offline); the
tab says "…" meanwhile and "✗" when the encoding could not be had. `Loaded` bubbles up to
the pane once an answer is in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Static, Tab, Tabs

from llmtui.app.panes.tokenizer import view
from llmtui.app.panes.tokenizer.encodings import ENCODINGS, MODEL, Encodings, load_encoding

if TYPE_CHECKING:
    from llmtui.engine.tokenizer.tokenizer import Tokenizer


class EncodingBar(Horizontal):
    """"Tokenizer" and one tab per encoding; it holds the tokenizers it has and loads the rest."""

    class Loaded(Message):
        """A load's answer for one OpenAI encoding: its tokenizer, or why there is none (in `encodings`)."""

        def __init__(self, name: str, tokenizer: Tokenizer | None, reason: str | None) -> None:
            self.name, self.tokenizer, self.reason = name, tokenizer, reason
            super().__init__()

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.encodings = Encodings()
        self.model_name: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("Tokenizer", id="tok-bar-label")
        yield Tabs(*(Tab(self.label(key), id=f"enc-{key}") for key in ENCODINGS), id="tok-encodings")

    def on_mount(self) -> None:
        self.query_one(Tabs).can_focus = False

    def label(self, key: str) -> str:
        """The tab's label (with the model's name, and the encodings' long names on a wide screen)."""
        return view.tab_label(key, self.encodings, self.model_name, self.app.size.width >= 120)

    def tokenizer(self, key: str) -> Tokenizer | None:
        return self.encodings.tokenizers.get(key)

    def set_model(self, name: str, tokenizer: Tokenizer) -> None:
        self.model_name = name
        self.encodings.tokenizers[MODEL] = tokenizer
        self.relabel()

    def show(self, key: str) -> None:
        """Make `key`'s tab the active one."""
        tabs = self.query_one(Tabs)
        if tabs.active != f"enc-{key}":
            tabs.active = f"enc-{key}"

    def relabel(self) -> None:
        for key in ENCODINGS:
            self.query_one(f"#enc-{key}", Tab).label = self.label(key)

    def on_resize(self) -> None:
        self.relabel()

    def load(self, key: str, again: bool = False) -> None:
        """Start loading an OpenAI encoding at first use (`again`: a failed one, chosen again)."""
        if self.encodings.start(key, again):
            self.relabel()
            self._load_encoding(key)

    @work(thread=True, group="tokenizer-encodings", exit_on_error=False)
    def _load_encoding(self, name: str) -> None:
        self.post_message(self.Loaded(name, *load_encoding(name)))

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        self.encodings.loaded(message.name, message.tokenizer, message.reason)
        self.relabel()  # the message goes on up to the pane
