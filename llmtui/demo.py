"""Demo files: a walk-through as a TOML file of steps, parsed and checked here (no UI), run by the app.

A demo is a title and a list of `[[step]]` tables. Each step names a pane and may
give a prompt, knob settings and one action; its caption is shown on screen. Any
mistake is a `DemoError` whose message names the file, the step and the line, so a
speaker editing a copy sees at once what to fix.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from llmtui.engine.settings import SamplingSettings, apply_knob_words

DEMO_DIR = Path(__file__).resolve().parent.parent / "demos"
"""The shipped demos (the repo's demos/ folder)."""

PANE_IDS = ("tokenizer", "embeddings", "attention", "layers", "generate", "train")
KNOB_NAMES = tuple(f.name for f in fields(SamplingSettings))  # stop = ["\n\n"] ends a step's text at a stop string

# Which keys a step may have, per pane (besides pane, caption, prompt).
PANE_KEYS: dict[str, tuple[str, ...]] = {
    "tokenizer": ("encoding",),
    "embeddings": (),
    "attention": ("layer", "head"),
    "layers": (),
    "generate": ("knobs", "generate", "chat", "clear", "compare", "compare_mode"),
    "train": ("mode", "method", "steps", "train", "reset", "chosen", "rejected"),
}
COMMON_KEYS = ("pane", "caption", "prompt")
ENCODING_NAMES = ("model", "gpt2", "cl100k_base", "o200k_base")
"""A Tokenizer step's encodings: the model's own, or one of OpenAI's (the Tokenizer pane's tabs)."""


class DemoError(ValueError):
    """A demo file that cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class DemoStep:
    """One key press of a demo: show `pane`, set it up, say `caption`."""

    number: int  # 1-based, as the error messages and the caption bar count
    pane: str
    caption: str = ""
    prompt: str | None = None
    knobs: dict[str, Any] = field(default_factory=dict)  # Generate: knob name -> value
    generate: int | None = None  # Generate: draw this many tokens (0: show the next-token table only)
    chat: bool | None = None  # Generate: chat mode on or off
    clear: bool = True  # Generate: forget the earlier output first
    compare: str | None = None  # Generate: open Compare with these knob=value words as B (the step's knobs are A)
    compare_mode: str = "same-text"  # Generate: "same-text" (B read on A's tokens) or "free"
    layer: int | None = None  # Attention: layer to show
    head: int | None = None  # Attention: head to show
    encoding: str | None = None  # Tokenizer: "model" (also when not said) or an OpenAI encoding, as o200k_base
    line: int | None = None  # where the step starts in the file
    mode: str | None = None  # Train: teach, pretrain or prefer
    method: str | None = None  # Train: lora or full
    steps: int | None = None  # Train: optimiser steps
    train: bool = False  # Train: the lesson of this step is applied (from the original weights) when it is shown
    reset: bool = False  # Train: the original weights are back from this step on
    chosen: str | None = None  # Train, prefer mode: the answers
    rejected: str | None = None


@dataclass(frozen=True)
class Demo:
    title: str
    steps: tuple[DemoStep, ...]
    source: str
    description: str = ""


def find_demo(name: str) -> Path:
    """A demo by path, or by name in demos/ ('how-llms-work' or 'how-llms-work.toml')."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    for candidate in (DEMO_DIR / name, DEMO_DIR / f"{name}.toml"):
        if candidate.is_file():
            return candidate
    known = ", ".join(sorted(p.stem for p in DEMO_DIR.glob("*.toml"))) or "none"
    raise DemoError(f"no demo file {name!r} (not a file; the shipped demos are: {known})")


def load_demo(name: str) -> Demo:
    """Read and check a demo file (a path or a shipped demo's name)."""
    path = find_demo(name)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DemoError(f"{path}: cannot read it ({e})") from None
    return parse_demo(text, str(path))


def _step_lines(text: str) -> list[int]:
    """The 1-based line of each [[step]] header, in order."""
    return [n for n, line in enumerate(text.splitlines(), start=1) if re.match(r"\s*\[\[\s*step\s*\]\]", line)]


def _key_line(text: str, start: int | None, key: str) -> int | None:
    """The line of `key = ...` inside the step starting at line `start` (None if not found)."""
    if start is None:
        return None
    lines = text.splitlines()
    for n in range(start, len(lines)):  # lines[start] is the line after the header
        line = lines[n]
        if re.match(r"\s*\[", line):
            break
        if re.match(rf"\s*{re.escape(key)}\s*[=.]", line):
            return n + 1
    return start


def _toml_message(text: str, source: str, error: str) -> str:
    """tomllib's error ('Invalid value (at line 3, column 11)' or '... (at end of document)') as 'file: line 3: ...'."""
    m = re.search(r"\s*\(at line (\d+), column (\d+)\)$", error)
    if m:
        return f"{source}: line {m[1]}, column {m[2]}: not valid TOML: {error[: m.start()]}"
    m = re.search(r"\s*\(at end of document\)$", error)
    if m:
        last = max((n for n, line in enumerate(text.splitlines(), start=1) if line.strip()), default=1)
        return f"{source}: line {last} (the end of the file): not valid TOML: {error[: m.start()]}"
    return f"{source}: not valid TOML: {error}"


def parse_demo(text: str, source: str = "<demo>") -> Demo:
    """Parse a demo's TOML text; DemoError (naming the line) when it is malformed or asks for something unknown."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise DemoError(_toml_message(text, source, str(e))) from None
    step_lines = _step_lines(text)

    def fail(message: str, number: int | None = None, key: str | None = None) -> DemoError:
        start = step_lines[number - 1] if number is not None and number - 1 < len(step_lines) else None
        line = _key_line(text, start, key) if key else start
        where = f"step {number}" if number is not None else "top level"
        return DemoError(f"{source}: {where}{f', line {line}' if line else ''}: {message}")

    unknown = set(data) - {"title", "description", "step"}
    if unknown:
        raise fail(f"unknown setting {min(unknown)!r} (a demo has title, description and [[step]] tables)")
    title = data.get("title", Path(source).stem)
    description = data.get("description", "")
    if not isinstance(title, str) or not isinstance(description, str):
        raise fail("title and description must be text")
    raw_steps = data.get("step")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise fail("no steps: add at least one [[step]] table with a pane")
    steps = [_parse_step(raw, number, fail, step_lines) for number, raw in enumerate(raw_steps, start=1)]
    return Demo(title, tuple(steps), source, description)


def _parse_step(raw: dict[str, Any], number: int, fail, step_lines: list[int]) -> DemoStep:
    pane = raw.get("pane")
    if pane is None:
        raise fail(f"says no pane (pane = one of {', '.join(PANE_IDS)})", number)
    if pane not in PANE_IDS:
        raise fail(f"unknown pane {pane!r} (the panes are {', '.join(PANE_IDS)})", number, "pane")
    allowed = COMMON_KEYS + PANE_KEYS[pane]
    for key in raw:
        if key not in allowed:
            extra = f"; on the {pane} pane a step takes {', '.join(allowed)}"
            raise fail(f"unknown setting {key!r}{extra}", number, key)

    def typed(key: str, kind: type | tuple[type, ...], what: str) -> Any:
        value = raw.get(key)
        if value is not None and (not isinstance(value, kind) or (isinstance(value, bool) and kind is int)):
            raise fail(f"{key} must be {what}, got {value!r}", number, key)
        return value

    caption = typed("caption", str, "text") or ""
    prompt = typed("prompt", str, "text")
    generate = typed("generate", int, "a number of tokens")
    if generate is not None and generate < 0:
        raise fail(f"generate must be 0 or more tokens, got {generate}", number, "generate")
    chat = typed("chat", bool, "true or false")
    clear = typed("clear", bool, "true or false")
    layer = typed("layer", int, "a layer number")
    head = typed("head", int, "a head number")
    for key, value in (("layer", layer), ("head", head)):
        if value is not None and value < 0:
            raise fail(f"{key} must be 0 or more, got {value}", number, key)
    encoding = typed("encoding", str, "an encoding name")
    if encoding is not None and encoding not in ENCODING_NAMES:
        raise fail(f"unknown encoding {encoding!r} (the encodings are {', '.join(ENCODING_NAMES)})", number, "encoding")
    knobs = typed("knobs", dict, "a table such as { temperature = 0 }") or {}
    for name in knobs:
        if name not in KNOB_NAMES:
            raise fail(f"unknown knob {name!r} (the knobs are {', '.join(KNOB_NAMES)})", number, "knobs")
    if knobs:
        try:
            SamplingSettings(**knobs)
        except (TypeError, ValueError) as e:
            raise fail(f"bad knobs: {e}", number, "knobs") from None
    compare = typed("compare", str, 'knob=value words for side B, such as "temperature=1.5"')
    if compare is not None:
        try:
            apply_knob_words(SamplingSettings(), compare)
        except ValueError as e:
            raise fail(f"bad compare: {e}", number, "compare") from None
    compare_mode = typed("compare_mode", str, '"same-text" or "free"') or "same-text"
    if compare_mode not in ("same-text", "free"):
        raise fail(f'compare_mode must be "same-text" or "free", got {compare_mode!r}', number, "compare_mode")
    line = step_lines[number - 1] if number - 1 < len(step_lines) else None
    train = _train_keys(raw, number, fail, typed)
    return DemoStep(number, pane, caption, prompt, dict(knobs), generate, chat, True if clear is None else clear,
                    compare, compare_mode, layer, head, encoding, line, **train)


def _train_keys(raw: dict[str, Any], number: int, fail, typed) -> dict[str, Any]:
    """A Train step's settings, checked: mode, method, steps, train or reset, the answers."""
    from llmtui.engine.training.settings import METHODS

    keys = {k: typed(k, str, "text") for k in ("mode", "method", "chosen", "rejected")}
    keys |= {"steps": typed("steps", int, "a number of steps"),
             "train": bool(typed("train", bool, "true or false")), "reset": bool(typed("reset", bool, "true or false"))}
    if keys["mode"] is not None and keys["mode"] not in ("teach", "pretrain", "prefer"):
        raise fail(f"unknown mode {keys['mode']!r} (teach, pretrain or prefer)", number, "mode")
    if keys["method"] is not None and keys["method"] not in METHODS:
        raise fail(f"unknown method {keys['method']!r} ({' or '.join(METHODS)})", number, "method")
    if keys["steps"] is not None and keys["steps"] < 1:
        raise fail(f"steps must be 1 or more, got {keys['steps']}", number, "steps")
    if keys["train"] and keys["reset"]:
        raise fail("a step either trains or resets, not both", number, "reset")
    return keys
