"""The sampling knobs as one frozen object; no torch here, so the CLI and UI can import it cheaply."""

from __future__ import annotations

from dataclasses import dataclass, replace

REPETITION_PENALTY_MIN, REPETITION_PENALTY_MAX = 0.01, 100.0
"""Far past any useful penalty either way (the knob's ladder spans 0.8 to 2). Before, nan, inf and 1e-300
were let through and made every probability nan ("probability tensor contains nan": an internal error)."""


@dataclass(frozen=True)
class SamplingSettings:
    """The knobs. Replace the whole object to change them (it is frozen)."""

    temperature: float = 0.7  # 0 means greedy: always the most probable token
    top_k: int = 0  # keep the k most probable tokens; 0 = off
    top_p: float = 1.0  # keep the smallest set whose probability adds up to p; 1 = off
    min_p: float = 0.0  # keep tokens at least min_p times as probable as the top one; 0 = off
    repetition_penalty: float = 1.0  # > 1 makes tokens already in the text less likely; 1 = off
    max_new_tokens: int = 128
    seed: int | None = None  # None: a fresh random seed per generation

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.temperature <= 100:
            problems.append(f"temperature must be between 0 and 100, got {self.temperature}")
        if self.top_k < 0:
            problems.append(f"top-k must be 0 (off) or more, got {self.top_k}")
        if not 0 <= self.top_p <= 1:
            problems.append(f"top-p must be between 0 and 1, got {self.top_p}")
        if not 0 <= self.min_p <= 1:
            problems.append(f"min-p must be between 0 and 1, got {self.min_p}")
        if not REPETITION_PENALTY_MIN <= self.repetition_penalty <= REPETITION_PENALTY_MAX:  # refuses nan, inf
            problems.append(f"repetition penalty must be between {REPETITION_PENALTY_MIN:g} and "
                            f"{REPETITION_PENALTY_MAX:g}, got {self.repetition_penalty}")
        if self.max_new_tokens < 0:
            problems.append(f"max new tokens must be 0 or more, got {self.max_new_tokens}")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def with_(self, **changes: object) -> SamplingSettings:
        """A copy with some knobs changed (validated)."""
        return replace(self, **changes)
