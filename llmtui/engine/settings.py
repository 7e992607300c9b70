"""The sampling knobs as one frozen object; no torch here, so the CLI and UI can import it cheaply."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

REPETITION_PENALTY_MIN, REPETITION_PENALTY_MAX = 0.01, 100.0
"""Far past any useful penalty either way (the knob's ladder spans 0.8 to 2). Before, nan, inf and 1e-300
were let through and made every probability nan ("probability tensor contains nan": an internal error)."""
OPENAI_PENALTY_LIMIT = 2.0  # frequency and presence penalties: OpenAI accepts -2.0 to 2.0
LOGIT_BIAS_LIMIT = 100.0  # OpenAI's logit_bias range: -100 (a ban in effect) to 100


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
    frequency_penalty: float = 0.0  # OpenAI's: logit minus penalty x times the token was generated; 0 = off
    presence_penalty: float = 0.0  # OpenAI's: logit minus penalty once the token was generated at all; 0 = off
    typical_p: float = 1.0  # locally typical sampling: keep tokens whose surprise is nearest the entropy; 1 = off
    top_n_sigma: float = 0.0  # keep tokens whose logit is within n standard deviations of the top one; 0 = off
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, added to its logit), sorted by id
    banned: tuple[int, ...] = ()  # token ids never drawn, sorted
    stop: tuple[str, ...] = ()  # stop strings: the text ends before the first one that appears

    def __post_init__(self) -> None:
        # Lists from JSON or a demo file become sorted tuples, so equal knobs compare equal and hash.
        object.__setattr__(self, "logit_bias", tuple(sorted((int(i), float(b)) for i, b in dict(self.logit_bias).items())))
        object.__setattr__(self, "banned", tuple(sorted({int(i) for i in self.banned})))
        stop = (self.stop,) if isinstance(self.stop, str) else self.stop  # one string is one stop, not its letters
        object.__setattr__(self, "stop", tuple(str(s) for s in stop))
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
        for name, value in (("frequency", self.frequency_penalty), ("presence", self.presence_penalty)):
            if not -OPENAI_PENALTY_LIMIT <= value <= OPENAI_PENALTY_LIMIT:
                problems.append(f"{name} penalty must be between -2 and 2, got {value}")
        if not 0 <= self.typical_p <= 1:
            problems.append(f"typical-p must be between 0 and 1, got {self.typical_p}")
        if not (math.isfinite(self.top_n_sigma) and self.top_n_sigma >= 0):
            problems.append(f"top-n-sigma must be 0 (off) or more, got {self.top_n_sigma}")
        if any(i < 0 for i in self.banned) or any(i < 0 for i, _ in self.logit_bias):
            problems.append("token ids must be 0 or more")
        if any(not -LOGIT_BIAS_LIMIT <= b <= LOGIT_BIAS_LIMIT for _, b in self.logit_bias):
            problems.append("a logit bias must be between -100 and 100")
        if any(s == "" for s in self.stop):
            problems.append("a stop string can't be empty")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def with_(self, **changes: object) -> SamplingSettings:
        """A copy with some knobs changed (validated)."""
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "logit_bias": [list(p) for p in self.logit_bias], "banned": list(self.banned),
                "stop": list(self.stop)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SamplingSettings:
        """Knobs from `to_json` (or a hand-written subset: the rest take their defaults). Unknown names raise."""
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(data) - known):
            raise ValueError(f"unknown knob(s): {', '.join(unknown)}")
        return cls(**data)


def _ids(text: str) -> tuple[int, ...]:
    return tuple(int(i) for i in text.split(",") if i.strip())


def _bias(text: str) -> tuple[tuple[int, float], ...]:
    pairs = [p.split(":") for p in text.split(",") if p.strip()]
    if any(len(p) != 2 for p in pairs):
        raise ValueError(f"logit_bias is id:bias pairs separated by commas, such as 42:-5,7:2; got {text!r}")
    return tuple((int(i), float(b)) for i, b in pairs)


_READ: dict[str, Any] = {
    "temperature": float, "top_k": int, "top_p": float, "min_p": float, "repetition_penalty": float,
    "max_new_tokens": int, "seed": int, "frequency_penalty": float, "presence_penalty": float, "typical_p": float,
    "top_n_sigma": float, "logit_bias": _bias, "banned": _ids, "stop": str,
}


def parse_knobs(words: list[str], extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Knobs written as name=value words (`temperature=1.2 top-k=40 stop=User: banned=3,7 logit_bias=42:-5`);
    `stop` may repeat. Names in `extra` (such as model) pass through as text. ValueError names the bad word."""
    out: dict[str, Any] = {}
    for word in words:
        name, sep, value = word.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise ValueError(f"{word!r} is not name=value (such as temperature=1.2)")
        if name in extra:
            out[name] = value
            continue
        if name not in _READ:
            raise ValueError(f"unknown knob {name!r} (the knobs are {', '.join(_READ)})")
        try:
            read = _READ[name](value)
        except ValueError:
            raise ValueError(f"{name} can't be {value!r}") from None
        out[name] = out.get("stop", ()) + (read,) if name == "stop" else read
    return out
