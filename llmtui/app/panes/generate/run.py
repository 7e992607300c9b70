"""A Generate run's request and state, apart from the pane: what to encode, and how far the run has got.

A run moves one way: running (the worker draws tokens; a knob turned replaces its
settings, read before each step; more step presses raise its limit) → stopping (the
user pressed stop: the token being computed still lands) → ended (the worker returned,
or was cancelled by a newer run).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from llmtui.engine.chat import Chat, Turn

if TYPE_CHECKING:
    from llmtui.engine.generation import GenerationSession
    from llmtui.engine.lm import LanguageModel
    from llmtui.engine.settings import SamplingSettings

RunKind = Literal["generate", "step", "continue", "fork", "force", "type"]

TOP_N = 10
"""Candidates per step in the table (the drawn token is added when it is not among them)."""


@dataclass(frozen=True)
class PromptRequest:
    """What to encode: plain text, or one chat turn after the earlier ones."""

    text: str
    chat: bool = False
    history: tuple[tuple[str, str], ...] = ()  # (user, assistant) turns before this one
    system: str | None = None  # the chat's system prompt; None: the template's own

    def encode(self, lm: LanguageModel) -> list[int]:
        if self.chat:
            return Chat(self.system, [Turn(u, a) for u, a in self.history]).prompt_ids(lm, self.text)
        return lm.prompt_ids(self.text)  # BOS first where the model's tokenizer adds one


@dataclass
class Run:
    """One run of the worker. A knob turned replaces `settings` (read before each step); stop keys set `stop`."""

    kind: RunKind
    settings: SamplingSettings
    prompt: PromptRequest
    session: GenerationSession | None = None  # set by the worker when it creates the session
    limit: int | None = None  # steps to take; None: until the session finishes (the UI may raise it)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    ended: bool = False
    produced: int = 0  # tokens this run has drawn so far (counted by whichever thread draws them)
    rate: float | None = None  # tokens per second so far
    halt: bool = False  # the worker was cancelled: the model thread's loop stops after its step
    first_at: float = 0.0  # when the first token was drawn (perf_counter)
    note: str | None = None  # said after the run's end line: what a fork to typed text could not do

    @property
    def state(self) -> Literal["running", "stopping", "ended"]:
        return "ended" if self.ended else "stopping" if self.stop.is_set() else "running"

    @property
    def wanted(self) -> int | None:
        """Steps still to take before the limit (None: no limit)."""
        return None if self.limit is None else self.limit - self.produced

    @property
    def should_pause(self) -> bool:
        """Whether the next step must wait: stop pressed, the worker cancelled, or the limit reached."""
        return self.halt or self.stop.is_set() or (self.limit is not None and self.produced >= self.limit)

    def count_step(self) -> None:
        """One more token drawn: the count, and the rate from the first token to this one (the prefill left out)."""
        self.produced += 1
        now = time.perf_counter()
        if self.produced == 1:
            self.first_at = now
        else:
            self.rate = (self.produced - 1) / (now - self.first_at)

    @property
    def pending(self) -> int:
        """Step presses not served yet: a run that paused at its limit starts another for them."""
        return (self.limit or 0) - self.produced


def check_fits(request: PromptRequest, n_tokens: int, window: int) -> None:
    """ValueError, saying what to do, when a prompt leaves no room in the context window for one token."""
    if n_tokens < window:
        return
    if request.chat and request.history:
        raise ValueError(f"the chat so far and this message are {n_tokens:,} tokens; the model's context window holds "
                         f"{window:,}: ctrl+n clears the chat (your message is kept)")
    what = "message" if request.chat else "prompt"
    full = ", no room for one more token" if n_tokens == window else ""
    raise ValueError(f"the {what} is {n_tokens:,} tokens; the model's context window holds {window:,}{full}: "
                     f"shorten it (it is kept)")


def typed_fork(texts: Sequence[str], index: int, typed: str) -> tuple[int, str]:
    """Where a fork to `typed` text at step `index` really starts, and what is left to force: the steps from
    `index` whose texts begin the typed text are kept as drawn (their probabilities stay the model's choices).

    >>> typed_fork([" Paris", ".", " It"], 0, " Paris, the city")
    (1, ', the city')
    """
    at = index
    while at < len(texts) and texts[at] and typed.startswith(texts[at]):
        typed = typed[len(texts[at]):]
        at += 1
    return at, typed
