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

    from llmtui.engine.lm import LanguageModel
    from llmtui.engine.remote.client import RemoteModel
    from llmtui.engine.remote.session import Traffic


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
class Throughput(Message):
    """Tokens per second of the running generation, for the status line; None when idle."""

    tokens_per_s: float | None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, Throughput)


# -- a served model (--endpoint) -----------------------------------------------------------


@dataclass
class RemoteConnected(Message, bubble=False):
    """The server answered and serves the model: panes can use it."""

    remote: RemoteModel


@dataclass
class RemoteFailed(Message, bubble=False):
    """The server could not be reached or does not serve the model (one line: why and what to do)."""

    error: str


@dataclass
class RemoteTraffic(Message):
    """How the last request went, for the status line (bubbles up to the app); None: none yet."""

    traffic: Traffic | None


class ReconnectWanted(Message):
    """A pane needs the server and is not attached: the app tries to connect again (bubbles up)."""


class LocalModelWanted(Message):
    """The user asked for a local model beside the server, for the panes that need weights (bubbles up)."""


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
