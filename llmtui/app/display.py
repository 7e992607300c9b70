"""What each token looks like on screen: safe text for the prompt, the output and the table.

Model and user text may hold Rich markup, ANSI escapes or control characters; all of
it is shown literally. Text goes into `rich.text.Text` objects (never parsed as
markup) and control characters are escaped by `escape_controls`. A character cut
across several byte tokens (an emoji) is shown once, on the token that completes it.

    >>> table_label(" Paris"), table_label("\\n"), table_label("[b]x")
    ('␣Paris', '\\\\n', '[b]x')
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmtui.engine.text import escape_controls

if TYPE_CHECKING:
    from llmtui.engine.generation import Step
    from llmtui.engine.tokenizer.tokenizer import Tokenizer

TAB = "    "


def safe(text: str) -> str:
    """Text to show in a flowing paragraph: newlines kept, tabs as spaces, other controls escaped."""
    return escape_controls(text, keep="\n\t").replace("\t", TAB)


def count(n: int, noun: str) -> str:
    """'1 token', '2 tokens', '1,024 tokens': a number with its noun, singular for one.

    >>> count(1, "token"), count(1024, "token")
    ('1 token', '1,024 tokens')
    """
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def table_label(text: str) -> str:
    """A token as a one-line label: spaces as '␣' (they belong to the token), controls escaped."""
    return escape_controls(text, keep="").replace(" ", "␣")


@dataclass(frozen=True)
class PromptPiece:
    """A stretch of prompt text: plain text, or one special token of a chat template."""

    text: str
    special: bool


def prompt_pieces(tokenizer: Tokenizer, ids: Sequence[int]) -> list[PromptPiece]:
    """The prompt as the model sees it: runs of plain tokens decoded together, specials on their own."""
    pieces: list[PromptPiece] = []
    run: list[int] = []

    def flush() -> None:
        if run:
            pieces.append(PromptPiece(safe(tokenizer.decode(run)), special=False))
            run.clear()

    for i in ids:
        if tokenizer.is_special(i):
            flush()
            pieces.append(PromptPiece(safe(tokenizer.token_text(i)), special=True))
        else:
            run.append(i)
    flush()
    return pieces


def kept_prefix(new: Sequence[object], old: Sequence[object]) -> int:
    """How many leading items of `new` are the very objects `old` starts with (steps never change, so a
    stream or a fork keeps what was built for them)."""
    keep, most = 0, min(len(new), len(old))
    while keep < most and new[keep] is old[keep]:
        keep += 1
    return keep


class StepTexts:
    """Display text of each generated step, decoded incrementally as UTF-8.

    A step gets the characters its bytes complete: the first tokens of a
    multi-byte character show nothing, the last shows the whole character.
    Steps are records that never change, so a new list sharing a prefix with the
    old one (a stream, a fork) only decodes what is new.
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self._steps: list[Step] = []
        self._texts: list[str] = []
        self._states: list[tuple[bytes, int]] = []

    def update(self, steps: Sequence[Step]) -> list[str]:
        keep = kept_prefix(steps, self._steps)
        del self._steps[keep:], self._texts[keep:], self._states[keep:]
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        if keep:
            decoder.setstate(self._states[keep - 1])
        for step in steps[keep:]:
            if self.tokenizer.is_special(step.token_id):
                text = decoder.decode(b"", final=True) + step.text
                decoder.reset()
            else:
                text = decoder.decode(self.tokenizer.token_bytes(step.token_id))
            self._steps.append(step)
            self._texts.append(safe(text))
            self._states.append(decoder.getstate())
        return list(self._texts)

    def is_special(self, index: int) -> bool:
        return self.tokenizer.is_special(self._steps[index].token_id)
