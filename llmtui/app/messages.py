"""Messages between workers, panes and the app shell: small dataclasses, safe to post from a thread.

Data flows one way: a worker computes engine records (steps, candidates) and posts
them; the handler on the UI thread updates widgets. Messages that stream at a high
rate replace an older one still queued (`can_replace`), so a slow screen only ever
draws the newest state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from collections.abc import Callable

    from llmtui.engine.generation import Candidate, Step
    from llmtui.engine.lm import LanguageModel
    from llmtui.engine.settings import SamplingSettings


# -- the model -----------------------------------------------------------------------------


@dataclass
class ModelLoadProgress(Message, bubble=False):
    """The loading worker's progress: what it is doing and how far (0..1) into it."""

    message: str
    fraction: float

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ModelLoadProgress)


@dataclass
class ModelLoaded(Message, bubble=False):
    """The loading worker finished: the model is ready to use."""

    lm: LanguageModel


@dataclass
class ModelLoadFailed(Message, bubble=False):
    """The loading worker failed; `error` is one line saying what went wrong and what to do."""

    error: str


# -- generation ----------------------------------------------------------------------------


@dataclass
class GenerationUpdate(Message, bubble=False):
    """A run's steps so far (all of them: a newer update replaces an older queued one)."""

    run_id: int
    steps: tuple[Step, ...]
    tokens_per_s: float | None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, GenerationUpdate) and message.run_id == self.run_id


@dataclass
class GenerationEnded(Message, bubble=False):
    """A run stopped: finished ("stop token", "max new tokens", ...), "stopped" by the user, or failed."""

    run_id: int
    steps: tuple[Step, ...]
    reason: str
    error: str | None
    tokens_per_s: float | None


@dataclass
class NextTokenPreview(Message, bubble=False):
    """The distribution of the token that would come next, under the given knobs."""

    preview_id: int
    position: int  # index the next step would have
    candidates: tuple[Candidate, ...]
    settings: SamplingSettings
    prompt_ids: tuple[int, ...]  # the prompt the preview continues

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, NextTokenPreview)


@dataclass
class PreviewFailed(Message, bubble=False):
    """The preview could not be computed (an empty prompt, one too long, ...)."""

    preview_id: int
    error: str


@dataclass
class Throughput(Message):
    """Tokens per second of the running generation, for the status line; None when idle."""

    tokens_per_s: float | None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, Throughput)


# -- between panes -------------------------------------------------------------------------


@dataclass
class ShowTokenInEmbeddings(Message):
    """Open one of the model's tokens in the Embeddings pane (sent by the Tokenizer pane, handled by the app).

    The app switches to the Embeddings pane and calls its `show_token(token_id)` if it has one.
    """

    token_id: int
    text: str


@dataclass
class TextWanted(Message):
    """A pane asks for the text another pane shows, as token ids (Attention asks for Generate's).

    The app answers by calling `reply` with that pane's `shown_ids()` (None: it shows none yet):
    panes never query each other.
    """

    pane_id: str
    reply: Callable[[tuple[int, ...] | None], None]


# -- training -------------------------------------------------------------------------------


@dataclass
class WeightsChanged(Message):
    """A pane trained the loaded model's weights (or put the original ones back): `tuned` is the status line's mark, '' when original."""

    tuned: str


@dataclass
class OpenModel(Message):
    """A pane asks the app to load another model (a folder it saved) for every pane."""

    spec: str
