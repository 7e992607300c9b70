"""Generation as a session of steps: the loop that turns next-token probabilities into text.

Each `step()` computes the distribution of the next token (one forward pass of
one token, thanks to the KV cache), draws a token, and returns a `Step` record
holding everything a UI or the CLI shows: the token, its probability, and the top
candidates with raw and adjusted probabilities and the knob that cut each one.
`settings` is read at every step, so a knob turned mid-stream applies from the next
token. `fork()` rewinds to an earlier step and forces another candidate there.
"""

from __future__ import annotations

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

    id: int
    text: str
    raw_prob: float  # what the model gave it
    prob: float  # after the knobs; 0 when cut
    cut_by: str | None  # "top-k", "top-p", "min-p", "greedy", or None when it could be drawn

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "text": self.text, "raw_prob": self.raw_prob, "prob": self.prob, "cut_by": self.cut_by}


@dataclass(frozen=True)
class Step:
    """One generated token and the choice it came from."""

    index: int  # 0 for the first generated token
    position: int  # its position in the whole sequence (prompt included)
    token_id: int
    text: str  # the token's own text (a partial UTF-8 character shows as U+FFFD)
    raw_prob: float  # the model's probability for it
    prob: float  # its probability after the knobs (what it was drawn with)
    candidates: tuple[Candidate, ...]  # the top candidates by raw probability, chosen token included
    settings: SamplingSettings
    forced: bool = False  # chosen by the user (a fork), not drawn

    def to_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            "position": self.position,
            "token": {"id": self.token_id, "text": self.text},
            "raw_prob": self.raw_prob,
            "prob": self.prob,
            "forced": self.forced,
            "candidates": [c.to_json() for c in self.candidates],
        }


def candidates(lm: LanguageModel, dist: Distribution, n: int, include: int | None = None) -> tuple[Candidate, ...]:
    """The n most probable tokens under the raw distribution, plus `include` if it is not among them."""
    top = torch.topk(dist.raw, min(n, dist.raw.numel())).indices.tolist()
    if include is not None and include not in top:
        top.append(include)
    raw, final = dist.raw[top].tolist(), dist.final[top].tolist()
    return tuple(
        Candidate(i, lm.tokenizer.token_text(i), r, f, dist.cut_reason(i)) for i, r, f in zip(top, raw, final)
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
        """The generated text, decoded as a whole so multi-token characters come out right."""
        return self.lm.tokenizer.decode(self.generated_ids)

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
        return distribution(self._logits(), settings or self.settings, self.ids)

    def step(self) -> Step | None:
        """Draw and append one token; None when the session has finished."""
        if self.finished:
            return None
        settings = self.settings
        dist = distribution(self._logits(), settings, self.ids)
        token = sample(dist, self.generator)
        return self._append(dist, token, settings, forced=False)

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
        dist = distribution(self._logits(), settings, self.ids)
        return self._append(dist, token_id, settings, forced=True)

    def _append(self, dist: Distribution, token: int, settings: SamplingSettings, *, forced: bool) -> Step:
        step = Step(
            index=len(self.steps),
            position=self.context_used,
            token_id=token,
            text=self.lm.tokenizer.token_text(token),
            raw_prob=float(dist.raw[token]),
            prob=float(dist.final[token]),
            candidates=candidates(self.lm, dist, self.top_n, include=token),
            settings=settings,
            forced=forced,
        )
        self.steps.append(step)
        return step

    def __iter__(self) -> Iterator[Step]:
        while (step := self.step()) is not None:
            yield step
