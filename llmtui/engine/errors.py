"""The errors a user can cause: each carries one line saying what went wrong and what to do.

No torch here: the CLI and the tokenizer catch these without loading the model code.
"""

from __future__ import annotations


class ModelLoadError(ValueError):
    """A model could not be loaded: one clear, user-facing line, what went wrong and what to do."""


class DeviceError(ValueError):
    """The requested device can't be used; the message says why and what to do."""


USER_ERRORS: tuple[type[Exception], ...] = (ModelLoadError, DeviceError)
