"""Generation on a served model: the same Step records as the local engine, from a streamed completion.

The server draws the tokens; its `logprobs` list the top candidates at each step. judge.py
decides what the knobs would cut among them. Stepping and forking send the text so far as
the prompt (the server keeps no session), so a fork re-tokenizes its prefix: the server may
cut that text into other tokens than it generated (rare at word boundaries, possible inside words).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Iterator, Sequence

from llmtui.engine.errors import RemoteError
from llmtui.engine.generation import Candidate, Step
from llmtui.engine.remote import transport
from llmtui.engine.remote.client import RemoteModel
from llmtui.engine.remote.judge import judge, unlisted_mass
from llmtui.engine.settings import SamplingSettings
from llmtui.engine.text import without_lone_surrogates

MAX_LOGPROBS = 20  # what OpenAI's API and vLLM's default allow; llama.cpp allows more


@dataclass(frozen=True)
class Listed:
    """One token as a server's logprobs describe it."""

    text: str
    logprob: float
    id: int | None  # servers that send text only (the legacy completions format) give no id


@dataclass(frozen=True)
class Traffic:
    """How the last request went: for the status line."""

    latency_s: float  # from sending the request to the first token
    tokens: int
    seconds: float  # from the first token to the last

    @property
    def tokens_per_s(self) -> float | None:
        return (self.tokens - 1) / self.seconds if self.tokens > 1 and self.seconds > 0 else None


def chat_messages(text: str, history: Sequence[tuple[str, str]] = (), system: str | None = None) -> list[dict[str, str]]:
    """The conversation a chat request sends: the system prompt (when set), each earlier turn's user message and
    the reply as it was received, then the new message. None sends no system message: the server's template decides."""
    messages = [{"role": "system", "content": system}] if system is not None else []
    for user, assistant in history:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return messages + [{"role": "user", "content": text}]


def request_body(model: RemoteModel, prompt: str, settings: SamplingSettings, max_tokens: int, top_n: int,
                 chat: bool, messages: list[dict[str, str]] | None = None) -> dict[str, object]:
    """The completion request: every knob sent explicitly, since servers' defaults differ (llama.cpp's top-k is 40).

    A chat sends `messages` (default: `prompt` as the one user message)."""
    s = settings
    body: dict[str, object] = {
        "max_tokens": max_tokens,
        "temperature": s.temperature,
        "top_p": s.top_p,
        "top_k": s.top_k,  # 0 = off for llama.cpp and vLLM
        "min_p": s.min_p,
        "stream": True,
    }
    body["repetition_penalty"] = s.repetition_penalty  # vLLM, SGLang
    body["repeat_penalty"] = s.repetition_penalty  # llama.cpp (llama-cpp-python's server defaults to 1.1)
    if s.seed is not None:
        body["seed"] = s.seed
    if model.model:
        body["model"] = model.model
    if chat:
        body.update(messages=messages or chat_messages(prompt), logprobs=True, top_logprobs=top_n)
    else:
        body.update(prompt=prompt, logprobs=top_n)
    return body


def listed_tokens(choice: dict) -> list[tuple[Listed, list[Listed]]]:
    """(token, its top candidates) for each token in one streamed choice, in either logprobs format.

    The legacy completions format: {"tokens": [...], "token_logprobs": [...], "top_logprobs": [{text: lp}]}.
    The chat format (also llama-server's completions): {"content": [{"token", "logprob", "id"?, "top_logprobs": [...]}]}.
    """
    lp = choice.get("logprobs")
    if not isinstance(lp, dict):
        return []
    out = []
    if isinstance(lp.get("content"), list):
        for entry in lp["content"]:
            top = [_listed(c) for c in entry.get("top_logprobs") or []]
            out.append((_listed(entry), top))
        return out
    tokens, lps, tops = lp.get("tokens"), lp.get("token_logprobs"), lp.get("top_logprobs")
    if not (isinstance(tokens, list) and isinstance(lps, list) and isinstance(tops, list)):
        raise RemoteError("the server's logprobs are in a shape llmtui does not know")
    for text, logprob, top in zip(tokens, lps, tops):
        if not isinstance(top, dict):
            raise RemoteError("the server's top_logprobs are in a shape llmtui does not know")
        out.append((Listed(_text(text), _finite(logprob), None), [Listed(_text(t), _finite(v), None) for t, v in top.items()]))
    return out


def _listed(entry: object) -> Listed:
    if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
        raise RemoteError("the server's logprobs list a token without its text")
    token_id = entry.get("id")
    return Listed(_text(entry["token"]), _finite(entry.get("logprob")), token_id if isinstance(token_id, int) else None)


def _text(token: object) -> str:
    """A token's text as sent, but printable: a lone surrogate (JSON can carry one) becomes U+FFFD."""
    return without_lone_surrogates(str(token))


def _finite(logprob: object) -> float:
    """A log-probability as a number; -inf (a probability of 0) is allowed, nan and +inf and text are not."""
    if isinstance(logprob, (int, float)) and not math.isnan(logprob) and logprob <= 1e-6:
        return float(logprob)
    if logprob is None:
        return -math.inf  # vLLM sends null for a token whose probability underflowed
    raise RemoteError(f"the server sent a log-probability that is not one: {logprob!r:.40}")


def step_record(index: int, position: int, drawn: Listed, top: list[Listed], settings: SamplingSettings,
                *, forced: bool = False) -> Step:
    """A Step from one listed token. Tokens without ids get negative ids, one per distinct text (never shown)."""
    ids: dict[str, int] = {}

    def id_of(t: Listed) -> int:
        return t.id if t.id is not None else ids.setdefault(t.text, -1 - len(ids))

    listed = [(id_of(t), t.text, math.exp(t.logprob)) for t in top]
    unlisted = unlisted_mass([p for _, _, p in listed])
    drawn_id = id_of(drawn)
    if drawn_id not in {i for i, _, _ in listed}:  # drawn from beyond the top N: list it too
        listed.append((drawn_id, drawn.text, math.exp(drawn.logprob)))
    candidates = judge(listed, settings)
    mine = next(c for c in candidates if c.id == drawn_id)
    return Step(index=index, position=position, token_id=drawn_id, text=drawn.text, raw_prob=mine.raw_prob,
                prob=mine.prob, candidates=candidates, settings=settings, forced=forced, unlisted=unlisted)


class RemoteSession:
    """A prompt and the tokens a served model generated after it; mirrors GenerationSession."""

    def __init__(self, model: RemoteModel, prompt: str, settings: SamplingSettings, *, top_n: int = MAX_LOGPROBS,
                 chat: bool = False, history: Sequence[tuple[str, str]] = (), system: str | None = None) -> None:
        """A chat (`chat`) sends `prompt` as the user's message after `history`'s (user, assistant) turns and
        the `system` prompt; the server applies its own chat template."""
        if not prompt.strip():
            raise ValueError("the prompt is empty: type some text first")
        if not 1 <= top_n <= MAX_LOGPROBS:
            raise ValueError(f"a server lists 1 to {MAX_LOGPROBS} candidates per token, not {top_n}")
        self.model = model
        self.prompt = prompt
        self.settings = settings  # read at every request
        self.top_n = top_n
        self.chat = chat
        self.messages = chat_messages(prompt, history, system) if chat else None
        self.steps: list[Step] = []
        self.stopped: str | None = None  # why the server stopped, or where the stream broke
        self.notes: list[str] = []  # said once each: fewer candidates than asked, ...
        self.traffic: Traffic | None = None
        self._reason: object = None  # the server's finish_reason for the last request
        self.prompt_tokens = self._count_prompt_tokens()

    def _count_prompt_tokens(self) -> int | None:
        if self.chat:
            return None  # the chat template's tokens are the server's business
        try:
            return len(self.model.tokenize(self.prompt))
        except RemoteError:
            return None

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.steps)

    @property
    def finish_reason(self) -> str | None:
        if self.stopped:
            return self.stopped
        if len(self.steps) >= self.settings.max_new_tokens:
            return "max new tokens"
        return None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def stream(self, max_tokens: int | None = None) -> Iterator[Step]:
        """Steps as the server streams them, from where the text stands (so after a dropped stream it goes on).

        A stream that breaks off keeps what came and raises StreamDropped saying where it stopped."""
        if self.stopped and self.stopped.startswith("dropped"):
            self.stopped = None  # going on after a drop
        if self.finished:
            return
        if self.steps and self.chat:
            raise RemoteError("a served chat reply can't be continued or stepped: llmtui sends plain prompts for that")
        left = self.settings.max_new_tokens - len(self.steps)
        n = left if max_tokens is None else min(left, max_tokens)
        settings = self.settings
        route = "/v1/chat/completions" if self.chat else "/v1/completions"
        body = request_body(self.model, self.prompt + self.text, settings, n, self.top_n, self.chat, self.messages)
        sent, first, got = time.perf_counter(), None, 0
        self._reason = None
        try:
            for event in transport.stream_events(self.model.endpoint, route, body):
                for step in self._steps_of(event, settings):
                    first = first or time.perf_counter()
                    got += 1
                    self.traffic = Traffic(first - sent, got, time.perf_counter() - first)
                    yield step
        except transport.StreamDropped as e:
            self.stopped = f"dropped after {len(self.steps)} tokens"
            raise transport.StreamDropped(f"{e}; kept {len(self.steps)} tokens") from None
        if self._reason is None and got < n:  # [DONE] without a reason, short of what was asked
            self.stopped = f"dropped after {len(self.steps)} tokens"
            raise transport.StreamDropped(
                f"{self.model.endpoint.url} ended the stream after {got} of {n} tokens without saying why "
                f"(llama-cpp-python's server does when another request interrupts it); kept {len(self.steps)} tokens")
        if self._reason == "stop":
            self.stopped = "stop token"
        elif self._reason == "length" and got < n:
            self.stopped = "context window full"  # the server's: it stopped short of the tokens asked for
        elif self._reason not in (None, "length"):
            self.stopped = str(self._reason)[:40]

    def step(self) -> Step | None:
        """One more token (a request for one token, sent with the text so far)."""
        for step in self.stream(max_tokens=1):
            return step
        return None

    def fork(self, index: int, candidate: Candidate) -> Step:
        """Drop step `index` and everything after it and take `candidate` (one of that step's listed) there."""
        if not 0 <= index < len(self.steps):
            raise IndexError(f"no step {index}: the session has {len(self.steps)} steps")
        if self.chat:
            raise RemoteError("a served chat reply can't be forked: llmtui sends plain prompts for that")
        old = self.steps[index]
        if candidate not in old.candidates:
            raise ValueError(f"{candidate.text!r} is not among step {index}'s listed candidates")
        del self.steps[index:]
        self.stopped = None
        step = Step(index=index, position=old.position, token_id=candidate.id, text=candidate.text,
                    raw_prob=candidate.raw_prob, prob=candidate.prob, candidates=old.candidates,
                    settings=old.settings, forced=True, unlisted=old.unlisted)
        self.steps.append(step)
        return step

    def force_text(self, text: str, at: int | None = None) -> list[Step]:
        """Make `text` the text from step `at` on (default: the end), each token a forced step with the server's
        probabilities (a fork to a typed text). The steps from `at` are dropped once the text is scored.

        CannotScore (a RemoteError), one line, where the server can't score a given text (scoring.py)."""
        from llmtui.engine.remote.scoring import score_text  # scoring builds on this module's records

        at = self._fork_point(at)
        kept = "".join(s.text for s in self.steps[:at])
        steps = score_text(self.model, self.prompt + kept, text, self.settings, self.top_n, first_index=at) if text else []
        del self.steps[at:]
        self.steps.extend(steps)
        self.stopped = None
        return steps

    def append_unscored(self, text: str, at: int | None = None) -> Step | None:
        """Make `text` the text from step `at` on without its probabilities: one forced step holding the whole text
        (the server can't score it, force_text said so), so the next request goes on from it."""
        at = self._fork_point(at)
        del self.steps[at:]
        self.stopped = None
        if not text:
            return None
        start = self.prompt_tokens if self.prompt_tokens is not None else 0
        step = Step(index=at, position=start + at, token_id=-1, text=text, raw_prob=math.nan, prob=None,
                    candidates=(), settings=self.settings, forced=True, unlisted=None)
        self.steps.append(step)
        return step

    def _fork_point(self, at: int | None) -> int:
        if self.chat:
            raise RemoteError("a served chat reply can't be forked: llmtui sends plain prompts for that")
        at = len(self.steps) if at is None else at
        if not 0 <= at <= len(self.steps):
            raise IndexError(f"no step {at}: the session has {len(self.steps)} steps")
        return at

    def _steps_of(self, event: dict, settings: SamplingSettings) -> Iterator[Step]:
        choices = event.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise RemoteError(f"{self.model.endpoint.url} streamed an event without choices")
        choice = choices[0]
        text = choice.get("text") if not self.chat else (choice.get("delta") or {}).get("content")
        tokens = listed_tokens(choice)
        if text and not tokens:
            raise RemoteError(f"{self.model.endpoint.url} sent text without logprobs: it ignores them "
                              "(vLLM: raise --max-logprobs; llama.cpp: a build with logprobs support)")
        for drawn, top in tokens:
            if len(top) < self.top_n and not self.notes:
                # short: it follows a run's end line on an 80-column message line
                self.notes.append(f"only {len(top)} of {self.top_n} candidates listed")
            start = self.prompt_tokens if self.prompt_tokens is not None else 0
            step = step_record(len(self.steps), start + len(self.steps), drawn, top, settings)
            self.steps.append(step)
            yield step
        self._reason = choice.get("finish_reason") or self._reason
