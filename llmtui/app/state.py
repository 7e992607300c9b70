"""The app's shared state: where the model is in its life (loading, ready, failed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class ModelState:
    """What every pane shows until the model is ready: a loading message, or why loading failed."""

    phase: Literal["loading", "ready", "failed"] = "loading"
    spec: str = ""  # what was asked for (catalogue name, path, repo id)
    message: str = "starting"  # the loader's current stage
    fraction: float = 0.0
    error: str | None = None  # one line: what went wrong and what to do

    @property
    def ready(self) -> bool:
        return self.phase == "ready"

    def describe(self) -> str:
        """One line for a pane's placeholder."""
        if self.phase == "failed":
            return f"The model could not be loaded: {self.error}"
        if self.phase == "ready":
            return "Model ready."
        return f"Loading {self.spec}: {self.message} ({self.fraction:.0%})…"


def human_count(n: int) -> str:
    """A parameter count as people write it: 134515008 -> '135M', 1235814400 -> '1.2B'.

    >>> human_count(134_515_008), human_count(1_235_814_400), human_count(52_000)
    ('135M', '1.2B', '52K')
    """
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= size:
            value = n / size
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
    return str(n)
