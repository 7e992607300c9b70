"""A sampling knob: a small focusable widget showing `− name value +`.

Keys: left/right or -/+ step through the knob's ladder of values, enter asks for an
exact value. Mouse: click − or +, or turn the scroll wheel over it. Every change
posts `Knob.Changed`; the owner validates it (and may set the value back).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from llmtui.engine.settings import KNOB, KnobInfo


def _fmt_float(value: float) -> str:
    return f"{value:.2f}"


@dataclass(frozen=True)
class KnobSpec:
    """How the widget shows a knob described in `llmtui.engine.settings.KNOBS`: its label and its text form."""

    info: KnobInfo  # the name, range, steps, default and help
    label: str
    show: Callable[[Any], str] = _fmt_float
    parse: Callable[[str], Any] = float
    open_ended: bool = False  # + past the ladder's end adds one (the seed)
    short: str = ""  # the label where the full one does not fit: distinct from its neighbours' ("k", "p")
    keys: str = ""  # the widget's own keys, added to the help

    @property
    def name(self) -> str:
        """The SamplingSettings field."""
        return self.info.name

    @property
    def ladder(self) -> tuple[Any, ...]:
        """Increasing values the -/+ keys step through."""
        return self.info.steps

    @property
    def help(self) -> str:
        return self.info.help + (f" ({self.keys})" if self.keys else "")

    def neighbour(self, value: Any, direction: int) -> Any:
        """The next value up (+1) or down (-1) the ladder from `value` (which may lie between rungs)."""
        if value is None:  # only the seed: "random" sits below every number
            return self.ladder[1] if direction > 0 and len(self.ladder) > 1 else None
        numbers = [v for v in self.ladder if v is not None]
        if direction > 0:
            i = bisect.bisect_right(numbers, value)
            if i < len(numbers):
                return numbers[i]
            return value + 1 if self.open_ended else value
        if self.open_ended and value > numbers[-1]:
            return value - 1
        i = bisect.bisect_left(numbers, value) - 1
        if i >= 0:
            return numbers[i]
        if None in self.ladder:
            return None
        return value


def _show_int_off(value: int) -> str:
    return "off" if value == 0 else str(value)


def _show_p(value: float) -> str:
    return f"{value:.2f}"


def _show_seed(value: int | None) -> str:
    return "random" if value is None else str(value)


def _parse_seed(text: str) -> int | None:
    text = text.strip().lower()
    if text in ("", "random", "r", "none"):
        return None
    return int(text)


def _parse_int(text: str) -> int:
    text = text.strip().lower()
    return 0 if text == "off" else int(text)


KNOBS: tuple[KnobSpec, ...] = (
    KnobSpec(KNOB["temperature"], "temperature", short="temp"),
    KnobSpec(KNOB["top_k"], "top-k", show=_show_int_off, parse=_parse_int, short="k"),
    KnobSpec(KNOB["top_p"], "top-p", show=_show_p, short="p"),
    KnobSpec(KNOB["min_p"], "min-p", show=_show_p, short="min"),
    KnobSpec(KNOB["max_new_tokens"], "max tokens", show=str, parse=int, short="max"),
    KnobSpec(KNOB["repetition_penalty"], "repeat", short="rep"),
    KnobSpec(KNOB["seed"], "seed", show=_show_seed, parse=_parse_seed, open_ended=True,
             keys="r: random, f: fix the last seed used"),
)
"""The widget's knobs, in the order of `KNOBS` in llmtui.engine.settings."""

KNOB_BY_NAME = {spec.name: spec for spec in KNOBS}


class Knob(Widget, can_focus=True):
    """One knob: `− label value +`."""

    DEFAULT_CSS = """
    Knob {
        width: 1fr;
        height: 1;
        padding: 0 0;
        & > .knob--label { color: $text-muted; }
        & > .knob--value { color: $text; text-style: bold; }
        & > .knob--button { color: $text-accent; text-style: bold; }
        &:focus { background: $block-cursor-background; }
        &:focus > .knob--label { color: $block-cursor-foreground; }
        &:focus > .knob--value { color: $block-cursor-foreground; }
        &:focus > .knob--button { color: $block-cursor-foreground; }
        &:hover { background: $boost; }
    }
    """

    COMPONENT_CLASSES = {"knob--label", "knob--value", "knob--button"}

    BINDINGS = [
        Binding("left,minus,down", "turn(-1)", "Less", show=False),
        Binding("right,plus,equals_sign,up", "turn(1)", "More", show=False),
        Binding("enter", "ask", "Type a value", show=False),
    ]

    value: reactive[Any] = reactive(None, layout=True)
    """The value shown; set it to move the knob without posting Changed."""

    class Changed(Message):
        """The user turned the knob."""

        def __init__(self, knob: Knob, value: Any) -> None:
            self.knob = knob
            self.value = value
            super().__init__()

        @property
        def control(self) -> Knob:
            return self.knob

    class AskValue(Message):
        """The user asked to type an exact value."""

        def __init__(self, knob: Knob) -> None:
            self.knob = knob
            super().__init__()

        @property
        def control(self) -> Knob:
            return self.knob

    def __init__(self, spec: KnobSpec, value: Any, *, id: str | None = None) -> None:
        super().__init__(id=id or f"knob-{spec.name.replace('_', '-')}")
        self.spec = spec
        self.set_reactive(Knob.value, value)
        self.tooltip = spec.help

    @property
    def text(self) -> str:
        """The knob as plain text: 'temperature 0.70'."""
        return f"{self.spec.label} {self.spec.show(self.value)}"

    def render(self) -> Text:
        """`− label    value +` filling the knob's width (the label shortened when it must)."""
        button = self.get_component_rich_style("knob--button")
        label, value = self.spec.label, self.spec.show(self.value)
        width = self.content_region.width or len(label) + len(value) + 5
        fill = width - len(label) - len(value) - 4
        if fill < 1 and self.spec.short:  # "top-k" and "top-p" cut to one letter would both read "t"
            label = self.spec.short
            fill = width - len(label) - len(value) - 4
        if fill < 1:
            label = label[: max(1, len(label) + fill - 1)]
            fill = 1
        text = Text(no_wrap=True, overflow="crop")
        text.append("−", style=button + Style(meta={"turn": -1}))
        text.append(" " + label, style=self.get_component_rich_style("knob--label"))
        text.append(" " * fill)
        text.append(value, style=self.get_component_rich_style("knob--value"))
        text.append(" ")
        text.append("+", style=button + Style(meta={"turn": 1}))
        return text

    def turn(self, direction: int) -> None:
        """Move one rung up or down, as a user would."""
        new = self.spec.neighbour(self.value, direction)
        if new != self.value:
            self.value = new
            self.post_message(self.Changed(self, new))

    def set_by_user(self, value: Any) -> None:
        """Set an exact value, as a user would (posts Changed)."""
        self.value = value
        self.post_message(self.Changed(self, value))

    def action_turn(self, direction: int) -> None:
        self.turn(direction)

    def action_ask(self) -> None:
        self.post_message(self.AskValue(self))

    def on_click(self, event: events.Click) -> None:
        direction = event.style.meta.get("turn")
        if direction:
            event.stop()
            self.turn(direction)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        self.turn(1)

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        self.turn(-1)
