"""One token selected for the whole app: the text it is in, its position, and the pane that chose it.

A pane posts `TokenSelected` when the user selects a token; the app keeps the
selection (shown in the status line) and calls `Pane.follow_selection` on the pane
the user switches to, which shows that token its own way (its attention row, its
embedding neighbours, its layer predictions, its probability table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from textual.message import Message

from llmtui.app.display import table_label

if TYPE_CHECKING:
    from llmtui.engine.tokenizer.tokenizer import Tokenizer


@dataclass(frozen=True)
class TokenSelection:
    """The app's current token: `ids[position]` (== token_id) in the text `ids`, chosen in pane `source`."""

    ids: tuple[int, ...]
    position: int
    token_id: int
    source: str  # the PANE_ID of the pane where the user selected it
    source_title: str = field(default="", compare=False)  # that pane's TITLE, for the panes that say where it came from

    def __post_init__(self) -> None:
        if not 0 <= self.position < len(self.ids):
            raise ValueError(f"position {self.position} is outside a text of {len(self.ids)} tokens")
        if self.ids[self.position] != self.token_id:
            raise ValueError(f"token {self.token_id} is not the one at position {self.position}")

    @classmethod
    def at(cls, ids: Sequence[int], position: int, source: str, source_title: str = "") -> TokenSelection:
        """The token at `position` of `ids`."""
        ids = tuple(int(i) for i in ids)
        return cls(ids, position, ids[position] if 0 <= position < len(ids) else -1, source, source_title)

    def same_text(self, ids: Sequence[int]) -> bool:
        """Whether the selection is in this very token sequence."""
        return tuple(ids) == self.ids

    def describe(self, tokenizer: Tokenizer | None, source_title: str | None = None) -> str:
        """One line for the status line: '␣Paris (7042) at position 5 · Generate' (positions count from 0)."""
        label = str(self.token_id)
        if tokenizer is not None:
            try:
                text = tokenizer.token_text(self.token_id)
                shown = tokenizer.token_display(self.token_id) if "\ufffd" in text else table_label(text)
                label = f"{shown} ({self.token_id})"  # a piece of a character shows its bytes
            except ValueError:  # an id from another vocabulary
                pass
        return f"{label} at position {self.position} · {source_title or self.source_title or self.source}"


class TokenSelected(Message):
    """A pane's user selected a token; it bubbles up to the app, which makes it the current token."""

    def __init__(self, selection: TokenSelection) -> None:
        self.selection = selection
        super().__init__()
