"""The sampling knobs: each described once (`KNOBS`), and their values as one frozen object.

No torch here, so the CLI and UI can import it cheaply. The knob widget, the CLI's
options, the demo files' `knobs` table, the exports and the soak test all read the
descriptions below: a knob's name, range, steps, default and help live only here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


def _seq(start: float, stop: float, step: float) -> tuple[float, ...]:
    n = round((stop - start) / step)
    return tuple(round(start + i * step, 4) for i in range(n + 1))


@dataclass(frozen=True)
class KnobInfo:
    """One sampling knob: the SamplingSettings field it sets, its range, its steps, its default and its help."""

    name: str  # the SamplingSettings field, the demo files' key; the CLI option is --name-with-dashes
    words: str  # how a sentence names it: "top-k", "repetition penalty"
    kind: type  # int or float (the seed: an int, or None for a fresh random one)
    default: float | int | None
    minimum: float | None  # None: no bound
    maximum: float | None
    steps: tuple[float | int | None, ...]  # increasing values the knob widget's -/+ keys step through
    help: str  # one sentence: what it does, and which value is off
    off: float | int | None = None  # the value that turns it off, where one does

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def problem(self, value: float | int | None) -> str | None:
        """Why `value` is out of range (None when it is fine); refuses nan and inf, which no comparison holds."""
        if value is None or self.minimum is None:
            return None
        if self.maximum is None:
            if not value >= self.minimum:
                off = " (off)" if self.off == self.minimum else ""
                return f"{self.words} must be {self.minimum:g}{off} or more, got {value}"
        elif not self.minimum <= value <= self.maximum:
            return f"{self.words} must be between {self.minimum:g} and {self.maximum:g}, got {value}"
        return None


REPETITION_PENALTY_MIN, REPETITION_PENALTY_MAX = 0.01, 100.0
"""Far past any useful penalty either way (the knob's steps span 0.8 to 2). Before, nan, inf and 1e-300
were let through and made every probability nan ("probability tensor contains nan": an internal error)."""

KNOBS: tuple[KnobInfo, ...] = (
    KnobInfo("temperature", "temperature", float, 0.7, 0, 100, _seq(0.0, 2.0, 0.1) + (2.5, 3.0, 5.0),
             "Divides the logits before the softmax: below 1 sharpens, above 1 flattens; 0 is greedy.", off=None),
    KnobInfo("top_k", "top-k", int, 0, 0, None, (0, 1, 2, 3, 5, 10, 20, 40, 50, 100, 200, 500, 1000),
             "Keeps only the k most probable tokens; off (0) keeps all.", off=0),
    KnobInfo("top_p", "top-p", float, 1.0, 0, 1, _seq(0.05, 1.0, 0.05),
             "Keeps the smallest set of most probable tokens whose probabilities add up to p; 1 is off.", off=1.0),
    KnobInfo("min_p", "min-p", float, 0.0, 0, 1,
             (0.0, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0),
             "Keeps tokens at least min-p times as probable as the top one; 0 is off.", off=0.0),
    KnobInfo("max_new_tokens", "max new tokens", int, 128, 0, None,
             (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096), "How many tokens to generate at most."),
    KnobInfo("repetition_penalty", "repetition penalty", float, 1.0, REPETITION_PENALTY_MIN, REPETITION_PENALTY_MAX,
             _seq(0.8, 2.0, 0.05),
             "Repetition penalty: above 1 makes tokens already in the text less likely; 1 is off.", off=1.0),
    KnobInfo("seed", "seed", int, None, None, None, (None, *range(10)),
             "Fixes the random draws so a generation can be repeated; random (the default) draws a fresh seed each time."),
)
"""Every knob, in the order the Generate pane shows them."""

KNOB = {knob.name: knob for knob in KNOBS}


@dataclass(frozen=True)
class SamplingSettings:
    """The knobs' values (see KNOBS). Replace the whole object to change them (it is frozen)."""

    temperature: float = KNOB["temperature"].default  # type: ignore[assignment]
    top_k: int = KNOB["top_k"].default  # type: ignore[assignment]
    top_p: float = KNOB["top_p"].default  # type: ignore[assignment]
    min_p: float = KNOB["min_p"].default  # type: ignore[assignment]
    repetition_penalty: float = KNOB["repetition_penalty"].default  # type: ignore[assignment]
    max_new_tokens: int = KNOB["max_new_tokens"].default  # type: ignore[assignment]
    seed: int | None = KNOB["seed"].default  # type: ignore[assignment]

    def __post_init__(self) -> None:
        problems = [p for knob in KNOBS if (p := knob.problem(getattr(self, knob.name))) is not None]
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def with_(self, **changes: object) -> SamplingSettings:
        """A copy with some knobs changed (validated)."""
        return replace(self, **changes)
