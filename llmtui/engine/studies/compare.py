"""Two sides, A and B, on one prompt and one seed: two settings of one model, or two models, token by token.

Modes:

- *free*: each side samples its own continuation (same seed, so two equal sides write the same text);
- *same text*: A samples, and B is run on A's tokens (teacher forcing), so at every position both
  next-token distributions are over the same context: the honest way to compare two models or settings;
- *branches*: two texts already written after the prompt (two branches of the tree): their shared
  beginning is the context of both, and from where they part each side is read on its own tokens, each
  token under the knobs it was drawn with (`Comparison.of_branches`).

Per position: KL(A||B) and total variation between the two distributions the sides draw from (after
their knobs), each side's probability of the token taken, and each side's top candidates. The summary
adds mean KL, the positions where the most probable token differs, and the per-token log-likelihood
of the text under each side (perplexity A vs B).

Two sides on one model share the prompt's prefill; in same-text mode they share every forward pass
(only the knobs differ, so B's distribution is A's logits under B's knobs).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import torch

from llmtui.engine.generation import GenerationSession, Step, make_step
from llmtui.engine.sampling import Distribution
from llmtui.engine.settings import SamplingSettings

if TYPE_CHECKING:
    from llmtui.engine.lm import LanguageModel

MODES = ("same-text", "free")
"""The modes a user switches between; "branches" (two given texts) is made by `Comparison.of_branches`."""
BRANCHES = "branches"


@dataclass(frozen=True)
class Side:
    """One column of a comparison: a model and its knobs."""

    lm: LanguageModel
    settings: SamplingSettings
    label: str = ""


def kl_divergence(p: torch.Tensor, q: torch.Tensor) -> float:
    """KL(p||q) in nats: the sum over p > 0 of p log(p/q); infinite where q is 0 and p is not (B cut what A may draw)."""
    p, q = p.detach().cpu().double(), q.detach().cpu().double()
    support = p > 0
    if (q[support] == 0).any():
        return math.inf
    return max(0.0, float((p[support] * (p[support].log() - q[support].log())).sum()))


def total_variation(p: torch.Tensor, q: torch.Tensor) -> float:
    """Half the L1 distance: the most probability the two distributions can disagree on, 0 to 1."""
    return float(0.5 * (p.detach().cpu().double() - q.detach().cpu().double()).abs().sum())


def _number(x: float | None) -> float | None:
    """JSON has no infinity: an infinite divergence is written as null (the summary lists those positions)."""
    return x if x is None or math.isfinite(x) else None


@dataclass(frozen=True)
class Position:
    """One position of the comparison. A side that has ended (free mode) is None there."""

    index: int  # 0 for the first generated token
    a: Step | None  # A's token and its candidates
    b: Step | None  # B's token (A's, in same-text mode: then `b.prob` is B's probability of A's token)
    kl: float | None  # KL(A||B) of the two distributions drawn from; inf when B cut a token A could draw
    tv: float | None  # total variation between them
    top1_a: int | None  # the most probable token after each side's knobs
    top1_b: int | None

    @property
    def top1_differs(self) -> bool:
        return self.top1_a is not None and self.top1_b is not None and self.top1_a != self.top1_b

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "kl": _number(self.kl), "tv": self.tv,
                "top1": {"a": self.top1_a, "b": self.top1_b, "differs": self.top1_differs},
                "a": self.a.to_json() if self.a else None, "b": self.b.to_json() if self.b else None}


@dataclass(frozen=True)
class SideSummary:
    """How likely one side found the text it is measured on (its own in free mode, A's in same-text mode)."""

    tokens: int
    log_likelihood: float  # sum of log p after the side's knobs; -inf if the knobs cut a token of the text
    raw_log_likelihood: float  # sum of log p under the model alone

    @property
    def perplexity(self) -> float:
        return math.exp(-self.log_likelihood / self.tokens) if self.tokens else math.nan

    @property
    def raw_perplexity(self) -> float:
        return math.exp(-self.raw_log_likelihood / self.tokens) if self.tokens else math.nan

    def to_json(self) -> dict[str, Any]:
        per_token = self.log_likelihood / self.tokens if self.tokens else None
        raw_per_token = self.raw_log_likelihood / self.tokens if self.tokens else None
        return {"tokens": self.tokens, "log_likelihood": _number(self.log_likelihood),
                "log_likelihood_per_token": _number(per_token), "perplexity": _number(self.perplexity),
                "raw_log_likelihood": self.raw_log_likelihood, "raw_log_likelihood_per_token": raw_per_token,
                "raw_perplexity": _number(self.raw_perplexity)}


def _log(p: float) -> float:
    return math.log(p) if p > 0 else -math.inf


def side_summary(steps: Sequence[Step]) -> SideSummary:
    return SideSummary(len(steps), sum(_log(s.prob) for s in steps), sum(_log(s.raw_prob) for s in steps))


@dataclass(frozen=True)
class Summary:
    compared: int  # positions where both sides have a distribution
    mean_kl: float | None  # None when nothing was compared
    max_kl: float | None
    mean_tv: float | None
    top1_disagreements: tuple[int, ...]  # indices where the most probable tokens differ
    infinite_kl: tuple[int, ...]  # indices where B cut a token A could draw
    a: SideSummary
    b: SideSummary

    def describe(self) -> str:
        """One line: divergence, where the top-1 differs, each side's perplexity (after its knobs, and the model's)."""
        def number(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.3g}"

        where = ", ".join(map(str, self.top1_disagreements[:12])) + (" …" if len(self.top1_disagreements) > 12 else "")
        return (f"mean KL {number(self.mean_kl)} nats (max {number(self.max_kl)}), mean TV {number(self.mean_tv)}; "
                f"top-1 differs at {len(self.top1_disagreements)} of {self.compared} positions"
                f"{f' ({where})' if where else ''}; perplexity A {number(self.a.perplexity)} vs B "
                f"{number(self.b.perplexity)} (model alone: {number(self.a.raw_perplexity)} vs "
                f"{number(self.b.raw_perplexity)})")

    def to_json(self) -> dict[str, Any]:
        return {"compared": self.compared, "mean_kl": _number(self.mean_kl), "max_kl": _number(self.max_kl),
                "mean_tv": self.mean_tv, "top1_disagreements": len(self.top1_disagreements),
                "top1_disagreement_positions": list(self.top1_disagreements),
                "infinite_kl_positions": list(self.infinite_kl), "a": self.a.to_json(), "b": self.b.to_json()}


def summarise(positions: Sequence[Position]) -> Summary:
    both = [p for p in positions if p.kl is not None]
    kls = [p.kl for p in both if p.kl is not None]
    tvs = [p.tv for p in both if p.tv is not None]
    return Summary(
        compared=len(both),
        mean_kl=sum(kls) / len(kls) if kls else None,
        max_kl=max(kls) if kls else None,
        mean_tv=sum(tvs) / len(tvs) if tvs else None,
        top1_disagreements=tuple(p.index for p in positions if p.top1_differs),
        infinite_kl=tuple(p.index for p in both if p.kl == math.inf),
        a=side_summary([p.a for p in positions if p.a]),
        b=side_summary([p.b for p in positions if p.b]),
    )


def check_same_vocabulary(a: LanguageModel, b: LanguageModel) -> None:
    """Divergences need one vocabulary: the same size and the same token at every id checked."""
    if a is b:
        return
    size = a.config.vocab_size
    if b.config.vocab_size != size:
        raise ValueError(f"{a.name} has {size} tokens and {b.name} {b.config.vocab_size}: "
                         "a comparison needs two models with one tokenizer")
    probe = range(0, a.tokenizer.vocab_size, max(1, a.tokenizer.vocab_size // 512))
    if any(a.tokenizer.token_text(i) != b.tokenizer.token_text(i) for i in probe):
        raise ValueError(f"{a.name} and {b.name} number their tokens differently: "
                         "a comparison needs two models with one tokenizer")


class Comparison:
    """A and B run together on one prompt, one `step()` (one position) at a time."""

    def __init__(self, prompt_ids: Sequence[int], a: Side, b: Side, *, mode: str = "same-text", top_n: int = 10,
                 texts: tuple[Sequence[Step], Sequence[Step]] | None = None) -> None:
        if mode not in MODES and not (mode == BRANCHES and texts is not None):
            raise ValueError(f"unknown comparison mode {mode!r}: use {' or '.join(MODES)}")
        check_same_vocabulary(a.lm, b.lm)
        self.texts = texts  # branches mode: the steps each side is read on
        # One seed for both sides: two equal sides then draw the same tokens.
        self.seed = a.settings.seed if a.settings.seed is not None else int.from_bytes(os.urandom(4), "little")
        self.a, self.b, self.mode = a, b, mode
        self.session_a = GenerationSession(a.lm, prompt_ids, a.settings.with_(seed=self.seed), top_n=top_n)
        # Same text on one model: B's distribution is A's logits under B's knobs, no forward pass of its own.
        self.shared_forward = mode == "same-text" and a.lm is b.lm
        self.session_b: GenerationSession | None = None
        if not self.shared_forward:
            self.session_b = GenerationSession(b.lm, prompt_ids, b.settings.with_(seed=self.seed), top_n=top_n)
            if a.lm is b.lm:
                self.session_b.share_prefill(self.session_a)
        self.positions: list[Position] = []
        self.shared = 0  # branches mode: tokens both texts have before they part (the rest is compared)

    @classmethod
    def of_branches(cls, lm: LanguageModel, prompt_ids: Sequence[int], a: Sequence[Step], b: Sequence[Step], *,
                    labels: tuple[str, str] = ("A", "B"), top_n: int = 10) -> Comparison:
        """Two branches of one prompt (each its steps from the first generated token), compared from where they
        part; `shared` holds how many tokens they have in common before that."""
        shared = next((i for i, (x, y) in enumerate(zip(a, b)) if x.token_id != y.token_id), min(len(a), len(b)))
        context = [*prompt_ids, *(s.token_id for s in a[:shared])]
        rest_a, rest_b = a[shared:], b[shared:]
        if not rest_a and not rest_b:
            raise ValueError("the two branches are the same text: mark two different ones")
        # A side's knobs (shown and exported): those its first token after the fork was drawn with (a branch
        # that ends at the fork has none of its own: the other's).
        def side(rest: Sequence[Step], other: Sequence[Step], label: str) -> Side:
            return Side(lm, (rest or other)[0].settings, label)

        comparison = cls(context, side(rest_a, rest_b, labels[0]), side(rest_b, rest_a, labels[1]), mode=BRANCHES,
                         top_n=top_n, texts=(rest_a, rest_b))
        comparison.shared = shared
        return comparison

    @property
    def finished(self) -> bool:
        if self.texts is not None:
            return all(len(s.steps) >= len(t) for s, t in zip(self._sessions, self.texts))
        if self.mode == "free":
            assert self.session_b is not None
            return self.session_a.finished and self.session_b.finished
        # Teacher-forced B has no end of its own but its context window.
        b_full = self.session_b is not None and self.session_b.context_used >= self.b.lm.config.context_length
        return self.session_a.finished or b_full

    def step(self) -> Position | None:
        """Compare one more position; None when done."""
        if self.finished:
            return None
        if self.texts is not None:
            drawn_a, drawn_b = (self._read(s, t) for s, t in zip(self._sessions, self.texts))
        elif self.mode == "free":
            drawn_a, drawn_b = self.session_a.step_with_distribution(), self._session_b.step_with_distribution()
        elif self.shared_forward:
            dist_b = self.session_a.distribution(self.b.settings)  # before A's step: the same context, cached logits
            drawn_a = self.session_a.step_with_distribution()
            assert drawn_a is not None
            step_a = drawn_a[0]
            step_b = make_step(self.b.lm, dist_b, step_a.token_id, index=step_a.index, position=step_a.position,
                               settings=self.b.settings, top_n=self.session_a.top_n, forced=True)
            drawn_b = (step_b, dist_b)
        else:
            drawn_a = self.session_a.step_with_distribution()
            assert drawn_a is not None
            drawn_b = self._session_b.force(drawn_a[0].token_id)
        position = _position(len(self.positions), drawn_a, drawn_b)
        self.positions.append(position)
        return position

    @property
    def _session_b(self) -> GenerationSession:
        assert self.session_b is not None
        return self.session_b

    @property
    def _sessions(self) -> tuple[GenerationSession, GenerationSession]:
        return self.session_a, self._session_b

    @staticmethod
    def _read(session: GenerationSession, text: Sequence[Step]) -> tuple[Step, Distribution] | None:
        """The next token of a given text, read under the knobs it was drawn with; None past its end."""
        if len(session.steps) >= len(text):
            return None
        step = text[len(session.steps)]
        session.settings = step.settings
        return session.force(step.token_id)

    def __iter__(self) -> Iterator[Position]:
        while (position := self.step()) is not None:
            yield position

    def summary(self) -> Summary:
        return summarise(self.positions)

    @property
    def text_a(self) -> str:
        return self.session_a.text

    @property
    def text_b(self) -> str:
        """B's own text in free and branches modes; in same-text mode, A's text (the one B was measured on)."""
        return self.session_a.text if self.session_b is None or self.mode == "same-text" else self.session_b.text

    def to_json(self) -> dict[str, Any]:
        def side(s: Side) -> dict[str, Any]:
            return {"label": s.label, "model": s.lm.name, "compute": s.lm.compute,
                    "settings": s.settings.with_(seed=self.seed).to_json()}

        return {"mode": self.mode, "seed": self.seed, "prompt_ids": self.session_a.prompt_ids, "shared": self.shared,
                "a": {**side(self.a), "text": self.text_a,
                      "finish_reason": self.session_a.finish_reason if self.mode != BRANCHES else None},
                "b": {**side(self.b), "text": self.text_b,
                      "finish_reason": self.session_b.finish_reason if self.mode == "free" and self.session_b
                      else None},
                "positions": [p.to_json() for p in self.positions], "summary": self.summary().to_json()}


def _position(index: int, a: tuple[Step, Distribution] | None, b: tuple[Step, Distribution] | None) -> Position:
    return Position(
        index=index,
        a=a[0] if a else None,
        b=b[0] if b else None,
        kl=kl_divergence(a[1].final, b[1].final) if a and b else None,
        tv=total_variation(a[1].final, b[1].final) if a and b else None,
        top1_a=int(a[1].final.argmax()) if a else None,
        top1_b=int(b[1].final.argmax()) if b else None,
    )
