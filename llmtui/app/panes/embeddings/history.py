"""The Embeddings pane's query history (alt+left, alt+right): plain state, no widgets."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HistoryEntry:
    text: str
    leading_space: bool
    choice: int | None


class History:
    """The queries answered, oldest first, and where back and forward stand among them (as a browser's)."""

    def __init__(self) -> None:
        self.entries: list[HistoryEntry] = []
        self.position = -1

    def record(self, entry: HistoryEntry) -> None:
        """A new query: it drops what lay ahead of the current one (a repeat of the current one is not added)."""
        if 0 <= self.position < len(self.entries) and self.entries[self.position] == entry:
            return
        del self.entries[self.position + 1 :]
        self.entries.append(entry)
        self.position = len(self.entries) - 1

    def step(self, step: int) -> HistoryEntry | None:
        """Go back (-1) or forward (1): the entry there, or None at either end (nothing moves)."""
        position = self.position + step
        if not 0 <= position < len(self.entries):
            return None
        self.position = position
        return self.entries[position]
