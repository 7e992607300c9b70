"""Two sides, A and B, on a served model: what studies/compare.py does locally, from listed top-N candidates.

- *free*: each side streams its own continuation (one seed for both);
- *same text*: B reads A's text. On one model B's distributions are A's listed raw candidates under
  B's knobs (no request: the server's logprobs are the model's, before any knob); on another
  served model (model=NAME) the server scores A's text for B (scoring.py).

A server lists only the top N, so the distribution a side draws from is known in full only where
the knobs surely cut the unlisted tail (judge.py decides it), or, at temperature 1 with no knob,
known on the listed with the tail's total. KL(A||B) and total variation are computed over the
listed tokens the sides share plus one outcome "everything else": coarser outcomes can only lose
divergence, so these are lower bounds, exact where one side has nothing outside the shared tokens.
Where a side's probabilities after the knobs are not known at all (temperature != 1 and the tail
kept), there is no number.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from llmtui.engine.errors import RemoteError
from llmtui.engine.generation import Step
from llmtui.engine.remote.client import RemoteModel
from llmtui.engine.remote.judge import beyond_the_list, draws_from_raw
from llmtui.engine.remote.scoring import score_text
from llmtui.engine.remote.session import Listed, RemoteSession, step_record
from llmtui.engine.settings import SamplingSettings

MODES = ("same-text", "free")
def drawn_from(step: Step) -> tuple[dict[str, float], float] | None:
    """The distribution a step was drawn from, as far as it is known: probability per listed token text, and the
    probability of everything unlisted (0 when the knobs surely cut it). None where the knobs leave it open."""
    if draws_from_raw(step.settings):
        return _by_text((c.text, c.raw_prob) for c in step.candidates), step.unlisted or 0.0
    if all(c.prob is not None for c in step.candidates):  # judge.py gives them only where the tail is surely cut
        return _by_text((c.text, c.prob) for c in step.candidates), 0.0  # type: ignore[misc]
    return None


def _by_text(pairs) -> dict[str, float]:  # noqa: ANN001 (an iterable of (text, probability))
    """Keyed by text: a side's ids are the server's or stand-ins per step, its texts are the same on both sides."""
    out: dict[str, float] = {}
    for text, p in pairs:
        out[text] = out.get(text, 0.0) + p
    return out


@dataclass(frozen=True)
class Divergence:
    kl: float | None  # KL(A||B) in nats; inf where B cuts what A may draw; None where a side's probabilities are open
    tv: float | None  # total variation, 0 to 1
    exact: bool  # False: lower bounds (an unknown tail lumped into one outcome)

    @property
    def kind(self) -> str:
        return "unknown" if self.kl is None else "value" if self.exact else "lower bound"


def divergence(a: Step, b: Step) -> Divergence:
    """KL(A||B) and total variation between the distributions two steps were drawn from."""
    known_a, known_b = drawn_from(a), drawn_from(b)
    if known_a is None or known_b is None:
        return Divergence(None, None, False)
    (pa, tail_a), (pb, tail_b) = known_a, known_b
    if tail_a == 0 and tail_b == 0:  # both known in full: an unlisted token has probability 0 on either side
        outcomes = sorted(set(pa) | set(pb))
        return Divergence(*_kl_tv([pa.get(x, 0.0) for x in outcomes], [pb.get(x, 0.0) for x in outcomes]), True)
    shared = sorted(set(pa) & set(pb))
    cells_a = [pa[x] for x in shared] + [max(0.0, 1.0 - math.fsum(pa[x] for x in shared))]
    cells_b = [pb[x] for x in shared] + [max(0.0, 1.0 - math.fsum(pb[x] for x in shared))]
    # Lumping loses nothing where one side puts no probability on anything outside the shared tokens.
    exact = any(tail == 0 and all(p[x] == 0 for x in p if x not in shared) for p, tail in ((pa, tail_a), (pb, tail_b)))
    return Divergence(*_kl_tv(cells_a, cells_b), exact)


def _kl_tv(p: Sequence[float], q: Sequence[float]) -> tuple[float, float]:
    kl = 0.0
    for x, y in zip(p, q):
        if x > 1e-15:
            if y <= 0:
                kl = math.inf
                break
            kl += x * math.log(x / y)
    return max(0.0, kl), 0.5 * math.fsum(abs(x - y) for x, y in zip(p, q))


def top1(step: Step) -> str | None:
    """The most probable token after the knobs: the top listed one (temperature and the cuts keep it)."""
    if beyond_the_list(step.settings):
        return None
    return max(step.candidates, key=lambda c: c.raw_prob).text if step.candidates else None


@dataclass(frozen=True)
class RemotePosition:
    index: int
    a: Step | None
    b: Step | None  # in same-text mode B's view of A's token
    divergence: Divergence

    @property
    def top1_differs(self) -> bool:
        t_a, t_b = (top1(self.a) if self.a else None), (top1(self.b) if self.b else None)
        return t_a is not None and t_b is not None and t_a != t_b

    def to_json(self) -> dict[str, Any]:
        d = self.divergence
        return {"index": self.index, "kl": d.kl if d.kl is None or math.isfinite(d.kl) else None,
                "kl_infinite": d.kl == math.inf, "tv": d.tv, "divergence": d.kind, "top1_differs": self.top1_differs,
                "a": self.a.to_json() if self.a else None, "b": self.b.to_json() if self.b else None}


def _rejudged(step: Step, settings: SamplingSettings) -> Step:
    """The same listed raw candidates under other knobs: B's view of A's token on the same model."""
    def listed(text: str, p: float, token_id: int) -> Listed:
        return Listed(text, math.log(p) if p > 0 else -math.inf, token_id if token_id >= 0 else None)

    top = [listed(c.text, c.raw_prob, c.id) for c in step.candidates]
    return step_record(step.index, step.position, listed(step.text, step.raw_prob, step.token_id), top, settings,
                       forced=True)


def paired(steps_a: Sequence[Step], steps_b: Sequence[Step], first: int = 0) -> list[RemotePosition]:
    """Positions side by side from index `first`, with their divergence where both sides have a step."""
    n = max(len(steps_a), len(steps_b))
    return [RemotePosition(first + i, steps_a[i] if i < len(steps_a) else None, steps_b[i] if i < len(steps_b) else None,
                           divergence(steps_a[i], steps_b[i]) if i < min(len(steps_a), len(steps_b))
                           else Divergence(None, None, False))
            for i in range(n)]


def compare_branches(a: Sequence[Step], b: Sequence[Step]) -> tuple[int, list[RemotePosition]]:
    """Two branches of one served prompt, from where they part: (tokens they share, the positions after).

    Each step is compared as received (its top-N table from its own context; no request): at the
    fork both read one context, after it each its own text. ValueError when the texts are the same."""
    shared = next((i for i, (x, y) in enumerate(zip(a, b)) if x.text != y.text), min(len(a), len(b)))
    if shared == len(a) and shared == len(b):
        raise ValueError("the two branches are the same text: mark two different ones")
    return shared, paired(a[shared:], b[shared:], shared)


def summarize(positions: Sequence[RemotePosition]) -> dict[str, Any]:
    """Counts of exact, bounded and unknown divergences, their means, top-1 differences, raw perplexities."""
    exact = [p.divergence.kl for p in positions if p.divergence.kind == "value"]
    bounds = [p.divergence.kl for p in positions if p.divergence.kind == "lower bound"]

    def mean(xs: list) -> float | None:  # over the finite ones: the infinite are listed apart
        finite = [x for x in xs if math.isfinite(x)]
        return math.fsum(finite) / len(finite) if finite else None

    def raw_perplexity(steps: list[Step]) -> float | None:
        logs = [math.log(s.raw_prob) for s in steps if s.raw_prob > 0]
        return math.exp(-math.fsum(logs) / len(logs)) if logs and len(logs) == len(steps) else None

    return {"positions": len(positions), "kl_values": len(exact), "kl_lower_bounds": len(bounds),
            "kl_unknown": sum(p.divergence.kind == "unknown" and p.a is not None and p.b is not None
                          for p in positions),
            "one_side_ended": sum(p.a is None or p.b is None for p in positions),
            "mean_kl": mean(exact), "mean_kl_lower_bound": mean(bounds),
            "infinite_kl_positions": [p.index for p in positions if p.divergence.kl == math.inf],
            "top1_differs_at": [p.index for p in positions if p.top1_differs],
            "raw_perplexity_a": raw_perplexity([p.a for p in positions if p.a]),
            "raw_perplexity_b": raw_perplexity([p.b for p in positions if p.b])}


def describe(positions: Sequence[RemotePosition]) -> str:
    """The summary in one line, saying where the unlisted tail makes KL a bound, or leaves it unknown."""
    s = summarize(positions)

    def number(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.3g}"

    parts = [f"KL(A||B) exact at {s['kl_values']} of {s['positions']} positions (mean {number(s['mean_kl'])} nats)"]
    if s["infinite_kl_positions"]:
        parts.append(f"infinite at {len(s['infinite_kl_positions'])} (B cuts what A may draw; left out of the means)")
    if s["kl_lower_bounds"]:
        parts.append(f"a lower bound at {s['kl_lower_bounds']} (mean ≥ {number(s['mean_kl_lower_bound'])}: "
                     "the unlisted tail lumped into one outcome)")
    if s["kl_unknown"]:
        parts.append(f"unknown at {s['kl_unknown']} (the knobs' probabilities depend on the unlisted tail)")
    if s["one_side_ended"]:
        parts.append(f"one side ended before the other at {s['one_side_ended']}")
    parts.append(f"top-1 differs at {len(s['top1_differs_at'])}")
    parts.append(f"raw perplexity A {number(s['raw_perplexity_a'])} vs B {number(s['raw_perplexity_b'])}")
    return "; ".join(parts)


class RemoteComparison:
    """A and B on a served model (or two served by one endpoint), run in full by `run()`."""

    def __init__(self, prompt: str, a: tuple[RemoteModel, SamplingSettings], b: tuple[RemoteModel, SamplingSettings],
                 *, mode: str = "same-text", top_n: int = 10, chat: bool = False) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown comparison mode {mode!r}: use {' or '.join(MODES)}")
        (self.model_a, settings_a), (self.model_b, settings_b) = a, b
        # one seed for both sides (servers that honour it then draw the same text for two equal sides)
        self.seed = settings_a.seed if settings_a.seed is not None else int.from_bytes(os.urandom(4), "little")
        self.settings_a, self.settings_b = settings_a.with_(seed=self.seed), settings_b.with_(seed=self.seed)
        if chat and mode == "same-text" and self.model_b.model != self.model_a.model:
            raise RemoteError("same text on another served model needs a plain prompt (the chat template is the "
                              "server's): drop --chat or use --mode free")
        self.prompt, self.mode, self.top_n, self.chat = prompt, mode, top_n, chat
        self.session_a = RemoteSession(self.model_a, prompt, self.settings_a, top_n=top_n, chat=chat)
        self.session_b: RemoteSession | None = None
        self.positions: list[RemotePosition] = []

    def run(self, progress: Callable[[str, int], None] | None = None,
            stop: threading.Event | None = None) -> list[RemotePosition]:
        """Stream A (and B in free mode), then pair the positions. RemoteError, one line, on a fault: then
        `positions` pairs what was received before it (a dropped stream's tokens are kept).

        progress(side, tokens) is called after each streamed token (on the calling thread); `stop` set ends
        the streams early (their connections closed), keeping what came."""
        steps_b: list[Step] = []
        try:
            self._stream(self.session_a, "A", progress, stop)
            if stop is not None and stop.is_set():
                pass  # stopped: B reads nothing more (in same text on one model it is A's tables, below)
            elif self.mode == "free":
                self.session_b = RemoteSession(self.model_b, self.prompt, self.settings_b, top_n=self.top_n,
                                               chat=self.chat)
                self._stream(self.session_b, "B", progress, stop)
            elif self.model_b.model != self.model_a.model and self.session_a.steps:
                scored = score_text(self.model_b, self.prompt, self.session_a.text, self.settings_b, self.top_n)
                if [s.text for s in scored] != [s.text for s in self.session_a.steps]:
                    raise RemoteError(f"{self.model_b.model} cut A's text into other tokens than {self.model_a.model}: "
                                      "same-text needs one tokenizer (try --mode free)")
                steps_b = scored
        finally:
            steps_a = list(self.session_a.steps)
            if self.session_b is not None:
                steps_b = list(self.session_b.steps)
            elif self.mode == "same-text" and self.model_b.model == self.model_a.model:
                steps_b = [_rejudged(s, self.settings_b) for s in steps_a]
            self.positions = paired(steps_a, steps_b)
        return self.positions

    @staticmethod
    def _stream(session: RemoteSession, side: str, progress: Callable[[str, int], None] | None,
                stop: threading.Event | None) -> None:
        steps = session.stream()
        try:
            for n, _ in enumerate(steps, 1):
                if progress is not None:
                    progress(side, n)
                if stop is not None and stop.is_set():
                    break
        finally:
            steps.close()  # type: ignore[attr-defined]  # its connection, when stopped early

    @property
    def text_b(self) -> str:
        return self.session_b.text if self.session_b else self.session_a.text

    def summary(self) -> dict[str, Any]:
        return summarize(self.positions)

    def describe(self) -> str:
        return describe(self.positions)

    def to_json(self) -> dict[str, Any]:
        def side(model: RemoteModel, settings: SamplingSettings, text: str, session: RemoteSession | None) -> dict:
            return {"endpoint": model.endpoint.url, "model": model.model, "settings": settings.to_json(), "text": text,
                    "finish_reason": session.finish_reason if session else None}

        return {"mode": self.mode, "seed": self.seed, "prompt": self.prompt,
                "a": side(self.model_a, self.settings_a, self.session_a.text, self.session_a),
                "b": side(self.model_b, self.settings_b, self.text_b, self.session_b),
                "positions": [p.to_json() for p in self.positions], "summary": self.summary()}
