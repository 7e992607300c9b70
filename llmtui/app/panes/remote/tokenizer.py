"""The Tokenizer pane on a served model: the server's own /tokenize cuts the text (vLLM, llama.cpp), else the
model's tokenizer files found here (--tokenizer PATH, a folder of the model's name, the Hugging Face cache)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.timer import Timer
from textual.widgets import Static, TextArea

from llmtui.app.messages import RemoteConnected, RemoteFailed
from llmtui.app.panes.base import Pane, prompt_box
from llmtui.app.panes.remote.view import token_chips
from llmtui.app.widgets.prompt_editor import PromptEditor

if TYPE_CHECKING:
    from llmtui.app.state import ModelState

DELAY = 0.3  # seconds after the last key before the text goes to the server
MAX_CHARS = 50_000  # as the local pane: longer text is tokenized up to here, and says so


class RemoteTokenizerPane(Pane):
    """The text cut into the served model's tokens, with their ids."""

    PANE_ID = "tokenizer"
    TITLE = "Tokenizer"
    SHORT_TITLE = "Tok"
    MESSAGE_LINE = "#tok-message"
    HELP = ("A model reads tokens, not letters. Type text: the served model's own tokenizer (the server's "
            "/tokenize route, else its tokenizer files found here) cuts it, and each token shows with its id.")

    def __init__(self) -> None:
        super().__init__()
        self.remote = None
        self.tokenizer = None  # a ServedTokenizer, once connected
        self._timer: Timer | None = None
        self.pairs: list[tuple[int, str]] = []

    def compose(self) -> ComposeResult:
        yield prompt_box(PromptEditor, id="tok-input", title="Text", placeholder="Type text to tokenize")
        yield Static(id="tok-message")
        with VerticalScroll(id="tok-chips-scroll") as chips:
            chips.border_title = "Tokens"
            yield Static(id="tok-chips")

    @property
    def ready(self) -> bool:
        return self.remote is not None

    def set_prompt(self, text: str) -> None:
        self.query_one("#tok-input", TextArea).load_text(text)

    def model_state_changed(self, state: ModelState) -> None:
        """A local model opened beside the server (o in a weights pane) is none of this pane's business."""

    def on_remote_connected(self, message: RemoteConnected) -> None:
        from llmtui.engine.remote.tokenizing import ServedTokenizer

        self.remote = message.remote
        self.tokenizer = ServedTokenizer(message.remote, message.remote.endpoint.tokenizer)
        self.query_one("#tok-chips-scroll").border_title = f"Tokens · {message.remote.model or 'served model'}"
        self._tokenize()

    def on_remote_failed(self, message: RemoteFailed) -> None:
        self.say(message.error, "error")

    @on(TextArea.Changed, "#tok-input")
    def _changed(self, event: TextArea.Changed) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(DELAY, self._tokenize)

    def _tokenize(self) -> None:
        if self.remote is not None:
            self._worker(self.query_one("#tok-input", TextArea).text)

    @work(exclusive=True, group="remote-tokenize", exit_on_error=False)
    async def _worker(self, text: str) -> None:
        """Newer text cancels the older request's wait (exclusive); the HTTP call runs in a thread."""
        import asyncio

        from llmtui.engine.errors import RemoteError

        cut = text[:MAX_CHARS]
        try:
            pairs = await asyncio.to_thread(self.tokenizer.tokenize, cut) if cut else []
        except RemoteError as e:
            self.say(str(e), "error")
            return
        except Exception as e:  # a bug: one line, the app keeps running
            self.say(f"internal error ({type(e).__name__}: {e})", "error")
            return
        self.pairs = pairs
        self.query_one("#tok-chips", Static).update(token_chips(pairs))
        more = f" (the first {MAX_CHARS:,})" if len(text) > MAX_CHARS else ""
        self.say(f"{len(pairs)} tokens, {len(cut):,} characters{more} · cut by {self.tokenizer.source}")

    def export_data(self) -> dict | None:
        return {"tokenizer": self.tokenizer.source if self.tokenizer else None,
                "tokens": [{"id": i, "text": t} for i, t in self.pairs]}
