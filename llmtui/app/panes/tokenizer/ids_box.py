"""The Tokenizer pane's ids → text box (F4): the ids typed or pasted, and the text they decode to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Input, Static

from llmtui.app.display import safe
from llmtui.app.widgets.safe_input import SafeInput
from llmtui.engine.tokenizer.tokens import ParsedIds, Tokenization, from_ids, parse_ids

if TYPE_CHECKING:
    from llmtui.engine.tokenizer.tokenizer import Tokenizer


class IdsBox(Vertical):
    """An input for token ids over the text they decode to; its Input.Changed goes on up to the pane."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.decoded = ""
        """The text the ids decode to."""
        self._prefilled: str | None = None  # the ids put in the input by F4, until the user edits them

    def compose(self) -> ComposeResult:
        ids = SafeInput(id="tok-ids", placeholder="Token ids, e.g. 40, 3047, 27941, 0")
        ids.border_title = "Token ids"
        yield ids
        with VerticalScroll(id="tok-decoded-box") as box:
            box.border_title = "Decoded text"
            box.can_focus = False
            yield Static(id="tok-decoded")

    @property
    def input(self) -> Input:
        return self.query_one("#tok-ids", Input)

    def prefill(self, ids: Sequence[int]) -> None:
        """The typed text's ids, ready to edit, unless the user typed ids of their own."""
        if not self.input.value or self.input.value == self._prefilled:
            self._prefilled = ", ".join(map(str, ids))
            self.input.value = self._prefilled

    def decode(self, tokenizer: Tokenizer, name: str) -> tuple[ParsedIds, Tokenization]:
        """Read the ids typed (`name`: the tokenizer's, in messages) and show their text."""
        parsed = parse_ids(self.input.value, tokenizer, name=name)
        tokens, self.decoded = from_ids(tokenizer, parsed.ids)
        text = self.decoded
        self.query_one("#tok-decoded", Static).update(Text(safe(text)) if text else Text("(nothing yet)", style="italic"))
        return parsed, tokens

    def clear(self) -> None:
        """No tokenizer to decode with: no text."""
        self.decoded = ""
        self.query_one("#tok-decoded", Static).update("")

    @on(Input.Changed, "#tok-ids")
    def _edited(self, event: Input.Changed) -> None:
        if event.value != self._prefilled:
            self._prefilled = None
