"""The Generate pane's knobs: turning one, typing a value, the seed keys, stop strings and bans.

`settings` (the pane's reactive) is replaced whole on every change; a running
generation reads it before its next token.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from llmtui.app.panes.base import error_line
from llmtui.app.screens.value_input import ValueInputScreen
from llmtui.app.widgets.knob import KNOBS, Knob
from llmtui.engine.settings import SamplingSettings


BIAS_STEP = 2.0
"""What + and - on a row of the table add to that token's logit: e^2, about 7 times its odds."""


def check_settings(settings: SamplingSettings, name: str, value: Any) -> SamplingSettings:
    """The settings with one knob changed, or ValueError saying why not."""
    return settings.with_(**{name: value})


class KnobsPart:
    """Mixed into GeneratePane: the knobs row and what changes the settings."""

    def on_knob_changed(self, event: Knob.Changed) -> None:
        event.stop()
        name = event.knob.spec.name
        try:
            new = check_settings(self.settings, name, event.value)
        except ValueError as e:
            event.knob.value = getattr(self.settings, name)
            self.say(str(e), "error")
            return
        self.settings = new
        if self.running:
            note = "the seed applies to the next generation" if name == "seed" else "applies from the next token"
            self.say(f"{event.knob.text}: {note}", "busy")
            self._note_until = time.monotonic() + 2.0
        else:
            if name == "seed":
                self.say(f"{event.knob.text}: applies to the next generation")
                return
            if name == "max_new_tokens":
                self.say(f"{event.knob.text}: the most this text may have (F7 goes on up to it)")
                return
            self.say(f"{event.knob.text}: the table shows the next token under the new knobs")
            if self._steps and self.output.selected != len(self._steps):
                self.output.allow_next(True)
                self.output.selected = len(self._steps)

    def on_knob_ask_value(self, event: Knob.AskValue) -> None:
        event.stop()
        knob = event.knob
        spec = knob.spec

        def check(text: str) -> Any:
            value = spec.read(text)
            check_settings(self.settings, spec.name, value)
            return value

        def done(result: tuple[Any] | None) -> None:
            if result is not None:
                knob.set_by_user(result[0])

        self.app.push_screen(ValueInputScreen(spec.label, spec.show(knob.value), check, spec.help), done)

    def set_knob(self, name: str, value: Any) -> None:
        """Set one knob as a user would (validated; an invalid value leaves a message)."""
        self.knob(name).set_by_user(value)

    def watch_settings(self, settings: SamplingSettings) -> None:
        for spec in KNOBS:
            self.knob(spec.name).value = getattr(settings, spec.name)
        if self._run is not None and not self._run.ended:
            self._run.settings = settings  # the worker reads it before its next token
        else:
            self._request_preview()

    def action_reset_knobs(self) -> None:
        self.settings = SamplingSettings()
        self.say("Knobs reset to their defaults.")

    def action_fix_seed(self) -> None:
        if self._last_seed is not None:
            self.set_knob("seed", self._last_seed)

    def action_random_seed(self) -> None:
        self.set_knob("seed", None)

    def on_key(self, event: Any) -> None:
        focused = self.app.focused
        if isinstance(focused, Knob) and focused.spec.name == "seed" and event.key in ("r", "f"):
            event.stop()
            self.action_random_seed() if event.key == "r" else self.action_fix_seed()

    def action_stop_strings(self) -> None:
        """Stop strings, written as words (quote one with spaces): the text ends before the first that appears."""
        import shlex

        def check(text: str) -> tuple[str, ...]:
            try:
                words = tuple(shlex.split(text))
            except ValueError as e:
                raise ValueError(f"can't read that: {e}") from None
            self.settings.with_(stop=words)
            return words

        def done(result: tuple[Any] | None) -> None:
            if result is not None:
                self.settings = self.settings.with_(stop=result[0])
                self.say(f"Stop strings: {', '.join(map(repr, result[0]))}" if result[0] else "No stop strings.")

        current = " ".join(shlex.quote(s) for s in self.settings.stop)
        self.app.push_screen(ValueInputScreen("stop strings", current, check,
                                              "Words such as \"User:\" '\\n\\n'; the text ends before the first."), done)

    def _highlighted(self, what: str, key: str) -> tuple[int, str] | None:
        """The table's highlighted token, or None (saying how to pick one) when the table is not where the user is."""
        if not self._local_only(what):  # the request to a server carries no logit bias
            return None
        if self.app.focused is not self.table:
            self.say(f"{what} from the table: tab to it, pick a row, then {key}.")
            return None
        return self.table.highlighted_token()

    def action_bias(self, direction: int) -> None:
        """Raise (+) or lower (-) the highlighted token's logit by BIAS_STEP more: the logit-bias stage, from the next token."""
        token = self._highlighted("Bias a token", "+ or -")
        if token is None:
            return
        token_id, text = token
        biases = dict(self.settings.logit_bias)
        bias = round(biases.get(token_id, 0.0) + direction * BIAS_STEP, 6)
        biases[token_id] = bias
        try:
            self.settings = check_settings(self.settings, "logit_bias", tuple((i, b) for i, b in biases.items() if b))
        except ValueError as e:  # past OpenAI's range of ±100
            self.say(error_line(e), "error")
            return
        now = f"its logit {bias:+g}" if bias else "no bias"
        self.say(f"{self._label(token_id, text)}: {now}; it applies from the next token "
                 f"({len(self.settings.logit_bias)} biased).")

    def action_ban(self) -> None:
        """Ban the table's highlighted token (or lift its ban): the logit-bias stage cuts it from the next token on."""
        token = self._highlighted("Ban a token", "x")
        if token is None:
            return
        token_id, text = token
        banned = set(self.settings.banned) ^ {token_id}
        self.settings = self.settings.with_(banned=tuple(banned))
        what = "Banned" if token_id in banned else "Unbanned"
        self.say(f"{what} {self._label(token_id, text)}: it applies from the next token ({len(banned)} banned).")

    def _knob_commands(self) -> Iterator[tuple[str, str, Callable[[], object]]]:
        """Command-palette entries for each knob (up, down, set) and the seed."""
        for spec in KNOBS:
            for direction, word in ((1, "up"), (-1, "down")):
                yield (f"{self.TITLE}: {spec.label} {word}", spec.help,
                       lambda spec=spec, d=direction: self.knob(spec.name).turn(d))
            yield (f"{self.TITLE}: set {spec.label}…", spec.help,
                   lambda spec=spec: self.knob(spec.name).action_ask())
        yield (f"{self.TITLE}: greedy (temperature 0)", "Always take the most probable token",
               lambda: self.set_knob("temperature", 0.0))
        yield (f"{self.TITLE}: random seed", "A fresh seed for every generation", self.action_random_seed)
        yield (f"{self.TITLE}: fix the last seed", "Repeat the last generation's draws", self.action_fix_seed)
