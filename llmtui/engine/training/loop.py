"""The step loop every mode shares, and the record each step yields.

A run's `steps()` generator does one optimiser step per `next()`, so whoever drives it
decides where the work happens (the CLI's loop, the app's model thread) and can stop
between any two steps: `stop()` ends the generator before its next step, and calling
`steps()` again resumes where it stopped (pause and resume).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import ClassVar

import torch


@dataclass(frozen=True)
class TrainStep:
    """One optimiser step, as the pane, the CLI's --json and the demo see it."""

    mode: str  # "teach", "pretrain" or "prefer"
    step: int  # 1-based
    steps: int  # steps planned
    loss: float
    probs: dict[str, float] = field(default_factory=dict)  # teach: target tokens' probabilities after this step
    margin: float | None = None  # prefer: log p(chosen) - log p(rejected), after this step
    held_out_loss: float | None = None  # pretrain: on the held-out text, every eval_every steps
    sample: str | None = None  # pretrain: a few generated characters, every sample_every steps
    tokens: int = 0  # tokens trained on in this step
    seconds: float = 0.0  # this step's wall time
    steps_per_s: float = 0.0  # over the run so far
    tokens_per_s: float = 0.0
    eta_s: float = 0.0  # seconds left at the current rate

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


class TrainingRun:
    """Base of the three modes: counts steps, times them, and stops on request."""

    mode: ClassVar[str]

    def __init__(self, steps: int) -> None:
        if steps < 1:
            raise ValueError(f"steps must be at least 1, got {steps}")
        self.total = steps
        self.done = 0
        self.elapsed = 0.0
        self.tokens_seen = 0
        self.history: list[TrainStep] = []
        self._stop = threading.Event()

    @property
    def finished(self) -> bool:
        return self.done >= self.total

    def stop(self) -> None:
        """End `steps()` before its next step (safe from another thread)."""
        self._stop.set()

    def steps(self) -> Iterator[TrainStep]:
        """One record per step until the planned steps are done or stop() is called."""
        self._stop.clear()
        while not self.finished and not self._stop.is_set():
            start = time.perf_counter()
            with torch.enable_grad():
                record = self._step()
            seconds = time.perf_counter() - start
            self.done += 1
            self.elapsed += seconds
            self.tokens_seen += record.tokens
            rate = self.done / self.elapsed if self.elapsed > 0 else math.inf
            record = replace(
                record, step=self.done, steps=self.total, seconds=seconds, steps_per_s=rate,
                tokens_per_s=self.tokens_seen / self.elapsed if self.elapsed > 0 else 0.0,
                eta_s=(self.total - self.done) / rate if rate > 0 else 0.0,
            )
            self.history.append(record)
            yield record

    def _step(self) -> TrainStep:
        """One optimiser step; step counts and timings are filled in by steps()."""
        raise NotImplementedError


def clip_and_step(optimizer: torch.optim.Optimizer, parameters: list[torch.nn.Parameter], max_norm: float = 1.0) -> None:
    """Clip the gradient's norm (one bad batch can't throw the weights far), step, clear gradients."""
    torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def token_log_probs(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """log p(ids[t+1] | ids[..t]) for each position: logits (T, V), ids (T,) -> (T-1,)."""
    return torch.log_softmax(at_least_float32(logits[:-1]), dim=-1).gather(-1, ids[1:, None])[:, 0]


def at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """Half-precision logits widened for the loss; float64 ones (gradient checks) kept as they are."""
    return t.to(torch.promote_types(t.dtype, torch.float32))
