"""Messages of the served-model panes: the connection, and a remote run's steps (posted from its thread)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from llmtui.engine.generation import Step
    from llmtui.engine.remote.client import RemoteModel
    from llmtui.engine.remote.session import Traffic


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
    """How the last request went, for the status line (bubbles up to the app)."""

    traffic: Traffic


@dataclass
class RemoteSteps(Message, bubble=False):
    """A remote run's steps so far (a snapshot: the session stays with the worker's thread)."""

    run: int
    steps: tuple[Step, ...]
    ended: bool = False
    error: str | None = None  # how the run ended, when it did not end well
    finish_reason: str | None = None
    notes: tuple[str, ...] = ()

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RemoteSteps) and not message.ended and message.run == self.run


class ReconnectWanted(Message):
    """A pane needs the server and is not attached: the app tries to connect again (bubbles up)."""


class LocalModelWanted(Message):
    """The user asked for a local model beside the server, for the panes that need weights (bubbles up)."""
