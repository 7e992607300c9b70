"""The errors a user can cause: each carries one line saying what went wrong and what to do.

No torch here: the CLI and the tokenizer catch these without loading the model code.
"""

from __future__ import annotations

from llmtui.engine.text import escape_controls


class ModelLoadError(ValueError):
    """A model could not be loaded: one clear, user-facing line, what went wrong and what to do.

    Messages quote names read from the file (tensor names, metadata values); a damaged file
    can put newlines or terminal escapes in those, so they are escaped here: always one line.
    """

    def __init__(self, message: str) -> None:
        super().__init__(escape_controls(message, keep=""))


class ModelOutputError(ValueError):
    """The model's output is unusable (NaN or infinite logits): its weights are damaged, though finite."""

    def __init__(self, what: str = "output") -> None:
        super().__init__(
            f"the model's {what} holds NaN or infinity: its weights are damaged (finite, but so large they "
            "overflow) — download the model file again"
        )


class DeviceError(ValueError):
    """The requested device can't be used; the message says why and what to do."""


class RemoteError(ValueError):
    """A served model (--endpoint) could not answer: one line saying what happened and what to do.

    Messages quote what the server sent, which may hold anything: escaped and cut to one short line."""

    def __init__(self, message: str) -> None:
        message = escape_controls(message, keep="")
        super().__init__(message if len(message) <= 300 else message[:299] + "…")


USER_ERRORS: tuple[type[Exception], ...] = (ModelLoadError, ModelOutputError, DeviceError, RemoteError)
