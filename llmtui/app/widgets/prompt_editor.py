"""The prompt editor: a TextArea whose F-keys are left to the pane (F6 steps, F7 goes on)."""

from __future__ import annotations

from textual.binding import Binding
from textual.widgets import TextArea

_PANE_KEYS = {"f5", "f6", "f7"}


class PromptEditor(TextArea, inherit_bindings=False):
    """A soft-wrapped TextArea for prompts; tab moves focus on, F5-F7 belong to the Generate pane."""

    BINDINGS = [
        b for b in TextArea.BINDINGS
        if isinstance(b, Binding) and not set(b.key.split(",")) & _PANE_KEYS
    ]
