"""The --precision modes by name, and the check of a name (no torch here: the CLI checks before loading).

What each mode computes is in llmtui/engine/model/precision.py.
"""

from __future__ import annotations

from llmtui.engine.errors import DeviceError

PRECISIONS = ("exact", "bf16", "int8", "int4")


class PrecisionError(DeviceError):
    """An unknown --precision value: one line naming the known ones."""


def check_precision(value: str) -> str:
    """The mode named by value (case and spaces ignored), or PrecisionError."""
    name = value.strip().lower()
    if name not in PRECISIONS:
        shown = value.encode("unicode_escape").decode("ascii")[:40]  # one line whatever was typed
        raise PrecisionError(f"unknown precision '{shown}': use one of {', '.join(PRECISIONS)}")
    return name
