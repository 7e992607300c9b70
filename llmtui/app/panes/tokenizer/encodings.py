"""The Tokenizer pane's tokenizers: the model's own, and OpenAI's encodings, which load on first use.

Plain state, no widgets: which tokenizers the pane has, which are loading, and why one
could not be had. `load_encoding` runs in a thread worker (a cache read, or a download).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llmtui.engine.tokenizer import tokenizer as tokenizer_module

if TYPE_CHECKING:
    from llmtui.engine.tokenizer.tokenizer import Tokenizer

MODEL = "model"
"""The key of the loaded model's own tokenizer (the others are tiktoken's encoding names)."""
ENCODINGS: tuple[str, ...] = (MODEL, *tokenizer_module.OPENAI_ENCODINGS)


def load_encoding(name: str) -> tuple[Tokenizer | None, str | None]:
    """One of tiktoken's encodings, or None and why (seconds when offline); never raises."""
    try:
        return tokenizer_module.openai_tokenizer(name)
    except Exception as e:  # a bug or a broken install: said in the pane, never a traceback
        return None, f"{name} could not be loaded (internal error: {type(e).__name__}: {e})"


@dataclass
class Encodings:
    """The tokenizers on hand, those loading, and those that could not be loaded (with why)."""

    tokenizers: dict[str, Tokenizer] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    loading: set[str] = field(default_factory=set)

    def start(self, key: str, again: bool = False) -> bool:
        """Mark `key` loading if it should load now: once at first use, or `again` after it failed.

        True: the caller starts the load."""
        if key == MODEL or key in self.tokenizers or key in self.loading:
            return False
        if (key in self.unavailable) != again:
            return False
        self.loading.add(key)
        return True

    def loaded(self, name: str, tokenizer: Tokenizer | None, reason: str | None) -> None:
        """A load's answer: the tokenizer, or why there is none."""
        self.loading.discard(name)
        if tokenizer is not None:
            self.tokenizers[name] = tokenizer
            self.unavailable.pop(name, None)
        else:
            self.unavailable[name] = reason or f"{name} could not be loaded"
