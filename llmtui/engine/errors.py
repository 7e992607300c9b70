"""The errors a user can cause: each carries one line saying what went wrong and what to do."""

from __future__ import annotations

from llmtui.engine.lm import DeviceError
from llmtui.engine.loading import ModelLoadError

USER_ERRORS: tuple[type[Exception], ...] = (ModelLoadError, DeviceError)

__all__ = ["USER_ERRORS", "DeviceError", "ModelLoadError"]
