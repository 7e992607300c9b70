"""Generation as a session of steps: the loop that turns next-token probabilities into text.

Each `step()` computes the distribution of the next token (one forward pass of
one token, thanks to the KV cache), draws a token, and returns a `Step` record
holding everything a UI or the CLI shows: the token, its probability, and the top
candidates with raw and adjusted probabilities and the knob that cut each one.
`settings` is read at every step, so a knob turned mid-stream applies from the next
token. `fork()` rewinds to an earlier step and forces another candidate there. A stop
string (`settings.stop`) ends the run as soon as the text holds it, and `text` ends
before it, as OpenAI's `stop` does.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Sequence

import torch

from llmtui.engine.sampling import Distribution, SamplingSettings, distribution, make_generator, sample

if TYPE_CHECKING:
    from llmtui.engine.lm import LanguageModel
    from llmtui.engine.model.kv_cache import KVCache


@dataclass(frozen=True)
class Candidate:
    """One possible next token at a step."""

    id: int  # below 0: a served model's token whose id the server did not send
    text: str
    raw_prob: float  # what the model gave it
    prob: float | None  # after the knobs; 0 when cut; None when a served model's unlisted tail leaves it open
    cut_by: str | None  # a stage of sampling.CUT_STAGES, "greedy", "?" (undecided: remote/judge.py), or None when it could be drawn

    def to_json(self) -> dict[str, object]:
        return {"id": self.id if self.id >= 0 else None, "text": self.text, "raw_prob": self.raw_prob,
                "prob": self.prob, "cut_by": self.cut_by}


@dataclass(frozen=True)
class Step:
    """One generated token and the choice it came from."""

    index: int  # 0 for the first generated token
    position: int  # its position in the whole sequence (prompt included)
    token_id: int
    text: str  # the token's own text (a partial UTF-8 character shows as U+FFFD)
    raw_prob: float  # the model's probability for it; nan: a text a server could not score (remote/session.py)
    prob: float | None  # its probability after the knobs (what it was drawn with); None: not decidable (served model)
    candidates: tuple[Candidate, ...]  # the top candidates by raw probability, chosen token included
    settings: SamplingSettings
    forced: bool = False  # chosen by the user (a fork), not drawn
    unlisted: float | None = None  # a served model's: the probability left to the tokens it did not list

    def to_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            "position": self.position,
            "token": {"id": self.token_id if self.token_id >= 0 else None, "text": self.text},
            "raw_prob": None if math.isnan(self.raw_prob) else self.raw_prob,  # nan: a served model's unscored text
            "prob": self.prob,
            "forced": self.forced,
            "candidates": [c.to_json() for c in self.candidates],
            **({"unlisted": self.unlisted} if self.unlisted is not None else {}),
        }


def candidates(lm: LanguageModel, dist: Distribution, n: int, include: int | None = None) -> tuple[Candidate, ...]:
    """The n most probable tokens under the raw distribution, plus `include` if it is not among them."""
    top = torch.topk(dist.raw, min(n, dist.raw.numel())).indices.tolist()
    if include is not None and include not in top:
        top.append(include)
    raw, final = dist.raw[top].tolist(), dist.final[top].tolist()
    return tuple(
        Candidate(i, lm.tokenizer.token_text(i), r, f, cut)
        for i, r, f, cut in zip(top, raw, final, dist.cut_reasons(top))
    )


def make_step(
    lm: LanguageModel, dist: Distribution, token: int, *, index: int, position: int, settings: SamplingSettings,
    top_n: int, forced: bool,
) -> Step:
    """The record of taking `token` from `dist` (drawn, or forced by a fork or a teacher-forced comparison)."""
    return Step(
        index=index,
        position=position,
        token_id=token,
        text=lm.tokenizer.token_text(token),
        raw_prob=float(dist.raw[token]),
        prob=float(dist.final[token]),
        candidates=candidates(lm, dist, top_n, include=token),
        settings=settings,
        forced=forced,
    )


class GenerationSession:
    """A prompt and the tokens generated after it, one `step()` at a time.

    Finished when the model emits a stop token, max_new_tokens is reached, or the
    context window is full; `finish_reason` then says which.
    """

    def __init__(
        self,
        lm: LanguageModel,
        prompt_ids: Sequence[int],
        settings: SamplingSettings,
        *,
        top_n: int = 10,
        stop_ids: Sequence[int] | None = None,
    ) -> None:
        if not prompt_ids:
            raise ValueError("the prompt is empty: type some text first")
        context = lm.config.context_length
        if len(prompt_ids) >= context:
            raise ValueError(f"the prompt is {len(prompt_ids)} tokens; the model's context window holds {context}")
        self.lm = lm
        self.prompt_ids = list(prompt_ids)
        self.settings = settings  # read at every step: replace it to turn a knob mid-stream
        self.top_n = top_n
        self.stop_ids = set(stop_ids if stop_ids is not None else lm.stop_ids)
        self.seed = settings.seed if settings.seed is not None else int.from_bytes(os.urandom(4), "little")
        self.generator = make_generator(self.seed)
        self.steps: list[Step] = []
        # Room for what this generation asks for; the cache grows if a knob or "go on" asks for more.
        self._cache = lm.model.new_cache(initial=len(self.prompt_ids) + settings.max_new_tokens)
        self._fed = 0  # tokens of self.ids whose keys/values are in the cache
        self._next_logits: torch.Tensor | None = None

    @property
    def ids(self) -> list[int]:
        return self.prompt_ids + [s.token_id for s in self.steps]

    @property
    def generated_ids(self) -> list[int]:
        return [s.token_id for s in self.steps]

    @property
    def text(self) -> str:
        """The generated text, decoded as a whole so multi-token characters come out right; when a stop string
        ended the run, the text before it."""
        text = self.lm.tokenizer.decode(self.generated_ids)
        if self.finish_reason == "stop string":
            text = text[: min(i for s in self.settings.stop if (i := text.find(s)) >= 0)]
        return text

    def _ends_in_stop_string(self) -> bool:
        """Whether the last token completed a stop string. Only the tail is decoded (a run is checked after every
        token): a string of n characters spans at most 4n byte tokens, plus one for a character cut at the start."""
        stops = self.settings.stop
        if not stops or not self.steps:
            return False
        tail = self.lm.tokenizer.decode(self.generated_ids[-(4 * max(map(len, stops)) + 1) :])
        return any(s in tail for s in stops)

    @property
    def kv_cache(self) -> KVCache:
        """The keys and values computed so far (read it; the session writes it)."""
        return self._cache

    @property
    def context_used(self) -> int:
        return len(self.prompt_ids) + len(self.steps)

    @property
    def finish_reason(self) -> str | None:
        if self.steps and self.steps[-1].token_id in self.stop_ids:
            return "stop token"
        if self._ends_in_stop_string():
            return "stop string"
        if self.context_used >= self.lm.config.context_length:
            return "context window full"  # before max new tokens: raising that knob would not help
        if len(self.steps) >= self.settings.max_new_tokens:
            return "max new tokens"
        return None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def _logits(self) -> torch.Tensor:
        """Logits for the next position, feeding the cache whatever it has not seen yet."""
        ids = self.ids
        kept = self.lm.model.reusable_cache(self._fed, len(ids))
        if kept < self._fed:  # a longrope model passing its original context: feed everything again
            self._cache.truncate(kept)
            self._fed = kept
        if self._next_logits is None or self._fed < len(ids):
            new = torch.tensor([ids[self._fed :]], device=self.lm.device)
            with torch.inference_mode():
                out = self.lm.model(new, self._cache, last_only=True)
            self._fed = len(ids)
            self._next_logits = out.logits[0, -1]
        return self._next_logits

    def distribution(self, settings: SamplingSettings | None = None) -> Distribution:
        """The next token's distribution under the given (default: current) knobs."""
        return distribution(self._logits(), settings or self.settings, self.ids, self.generated_ids)

    def step(self) -> Step | None:
        """Draw and append one token; None when the session has finished."""
        drawn = self.step_with_distribution()
        return drawn[0] if drawn else None

    def step_with_distribution(self) -> tuple[Step, Distribution] | None:
        """As `step`, with the distribution the token was drawn from (a comparison measures it)."""
        if self.finished:
            return None
        settings = self.settings
        dist = distribution(self._logits(), settings, self.ids, self.generated_ids)
        token = sample(dist, self.generator)
        return self._append(dist, token, settings, forced=False), dist

    def fork(self, index: int, token_id: int) -> Step:
        """Drop step `index` and everything after it, then take `token_id` there instead."""
        if not 0 <= index < len(self.steps):
            raise IndexError(f"no step {index}: the session has {len(self.steps)} steps")
        if not 0 <= token_id < self.lm.config.vocab_size:
            raise ValueError(f"token id {token_id} is outside the vocabulary (0..{self.lm.config.vocab_size - 1})")
        settings = self.steps[index].settings
        del self.steps[index:]
        # Rewind one position further and refeed the last kept token to get its logits back.
        keep = len(self.ids) - 1
        self._cache.truncate(min(keep, self._cache.length))
        self._fed = min(keep, self._fed)
        self._next_logits = None
        dist = distribution(self._logits(), settings, self.ids, self.generated_ids)
        return self._append(dist, token_id, settings, forced=True)

    def force(self, token_id: int) -> tuple[Step, Distribution]:
        """Take `token_id` next instead of drawing (teacher forcing); its step, and the distribution it was read from."""
        if not 0 <= token_id < self.lm.config.vocab_size:
            raise ValueError(f"token id {token_id} is outside the vocabulary (0..{self.lm.config.vocab_size - 1})")
        dist = self.distribution()
        return self._append(dist, token_id, self.settings, forced=True), dist

    def restore(self, steps: Sequence[Step]) -> None:
        """Put back steps recorded on this prompt earlier (a reopened branch) to continue or fork them.

        The cache keeps what the old and the new text share; the rest is fed in one pass at the next step."""
        old, self.steps = self.ids, list(steps)
        shared = next((i for i, (x, y) in enumerate(zip(old, self.ids)) if x != y), min(len(old), len(self.ids)))
        keep = min(shared, self._fed, len(self.ids) - 1)  # refeed at least the last token, for its logits
        self._cache.truncate(min(keep, self._cache.length))
        self._fed, self._next_logits = keep, None

    def share_prefill(self, other: GenerationSession) -> None:
        """Start from another fresh session's prompt prefill (same model, same prompt) instead of computing it."""
        if other.lm is not self.lm or other.prompt_ids != self.prompt_ids or other.steps or self.steps:
            raise ValueError("only two fresh sessions of one model on one prompt can share a prefill")
        logits = other._logits()
        self._cache.copy_prefix_from(other._cache, len(self.prompt_ids))
        self._fed, self._next_logits = len(self.prompt_ids), logits

    def _append(self, dist: Distribution, token: int, settings: SamplingSettings, *, forced: bool) -> Step:
        step = make_step(self.lm, dist, token, index=len(self.steps), position=self.context_used, settings=settings,
                         top_n=self.top_n, forced=forced)
        self.steps.append(step)
        return step

    def __iter__(self) -> Iterator[Step]:
        while (step := self.step()) is not None:
            yield step
