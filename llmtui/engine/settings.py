"""The sampling knobs: each described once (`KNOBS`), and their values as one frozen object.

No torch here, so the CLI and UI can import it cheaply. The knob widget, the CLI's
options, the demo files' `knobs` table, the exports and the soak test all read the
descriptions below: a knob's name, range, steps, default and help live only here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any


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


LOGIT_BIAS_LIMIT = 100.0  # OpenAI's logit_bias range: -100 (a ban in effect) to 100
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
    KnobInfo("frequency_penalty", "frequency penalty", float, 0.0, -2.0, 2.0, _seq(-2.0, 2.0, 0.1),
             "OpenAI's frequency penalty: lowers a token's logit by this for every time it was generated; 0 is off.",
             off=0.0),
    KnobInfo("presence_penalty", "presence penalty", float, 0.0, -2.0, 2.0, _seq(-2.0, 2.0, 0.1),
             "OpenAI's presence penalty: lowers a token's logit by this once it was generated at all; 0 is off.",
             off=0.0),
    KnobInfo("typical_p", "typical-p", float, 1.0, 0, 1, _seq(0.05, 1.0, 0.05),
             "Keeps the tokens whose surprise is nearest the entropy, until their mass reaches p; 1 is off.", off=1.0),
    KnobInfo("top_n_sigma", "top-n-sigma", float, 0.0, 0, None, (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0),
             "Keeps tokens whose logit is within n standard deviations of the top one; 0 is off.", off=0.0),
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
    frequency_penalty: float = KNOB["frequency_penalty"].default  # type: ignore[assignment]
    presence_penalty: float = KNOB["presence_penalty"].default  # type: ignore[assignment]
    typical_p: float = KNOB["typical_p"].default  # type: ignore[assignment]
    top_n_sigma: float = KNOB["top_n_sigma"].default  # type: ignore[assignment]
    # Not dials but lists (set by clicking a row of the table, or --logit-bias, --ban, --stop):
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, added to its logit), sorted by id
    banned: tuple[int, ...] = ()  # token ids never drawn, sorted
    stop: tuple[str, ...] = ()  # stop strings: the text ends before the first one that appears

    def __post_init__(self) -> None:
        # Lists from JSON or a demo file become sorted tuples, so equal knobs compare equal and hash.
        object.__setattr__(self, "logit_bias", tuple(sorted((int(i), float(b)) for i, b in dict(self.logit_bias).items())))
        object.__setattr__(self, "banned", tuple(sorted({int(i) for i in self.banned})))
        stop = (self.stop,) if isinstance(self.stop, str) else self.stop  # one string is one stop, not its letters
        object.__setattr__(self, "stop", tuple(str(s) for s in stop))
        problems = [p for knob in KNOBS if (p := knob.problem(getattr(self, knob.name))) is not None]
        if self.top_n_sigma is not None and math.isinf(self.top_n_sigma):
            problems.append(f"top-n-sigma must be finite, got {self.top_n_sigma}")
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

    def changed_words(self) -> str:
        """The knobs changed from their defaults as name=value words (seed and length left out), or "defaults"."""
        default = SamplingSettings().to_json()
        changed = {k: v for k, v in self.to_json().items() if v != default[k] and k not in ("seed", "max_new_tokens")}
        return " ".join(f"{k}={v}" for k, v in changed.items()) or "defaults"

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


def apply_knob_words(base: SamplingSettings, text: str) -> tuple[SamplingSettings, str | None]:
    """`base` changed by knob=value words (a comparison side: `temperature=1.5 top-k=40 model=NAME`), and the
    model named, if any. ValueError says which word is wrong."""
    import shlex

    try:
        words = shlex.split(text)
    except ValueError as err:  # an unclosed quote
        raise ValueError(f"can't read {text!r}: {err}") from None
    knobs = parse_knobs(words, extra=("model",))
    model = knobs.pop("model", None)
    return base.with_(**knobs), model
