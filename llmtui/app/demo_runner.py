"""Runs a demo (llmtui/demo.py) in the app: each advance shows a step's pane, sets it up and shows its caption.

Steps drive the panes as a user does: the data the app hands down (set_prompt, the
knobs), the actions the pane's keys run (generate, clear, chat, enter) and show_head. A
step that needs the model waits for it: the runner retries until the pane is ready,
and a retry for a step the user has already left is dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Input, Static

from llmtui.app.display import safe
from llmtui.demo import Demo, DemoStep
from llmtui.engine.text import escape_controls

if TYPE_CHECKING:
    from llmtui.app.app import LLMTuiApp
    from llmtui.app.panes.base import Pane

RETRY_S = 0.2
"""How often a step that waits for the model tries again (seconds)."""


class DemoBar(Static):
    """The caption of the demo's step and, in presentation mode, the keys: always on screen when either is on."""

    def show(self, demo: Demo | None, step: DemoStep | None, present: bool) -> None:
        text = Text()
        keys = "F8 advance · F9 presentation off · ctrl+s export · F1 help" if present else ""
        if demo is not None and step is not None:
            last = step.number == len(demo.steps)
            # A demo file's text may hold controls (TOML's "\u001b"): escaped, as any text shown.
            text.append(f"{escape_controls(demo.title, keep='')} · step {step.number}/{len(demo.steps)}", style="bold")
            text.append(" · " + ("last step (F8: the pane's own)" if last else "F8 next") + " · shift+F8 back")
            if present:
                text.append(" · F9 · ctrl+s export")
            text.append("\n")
            text.append(safe(step.caption))  # Text.append: a caption's '[' is shown as typed, never read as markup
        elif keys:
            text.append(keys, style="bold")
        self.update(text)
        self.display = bool(text)


class DemoRunner:
    """Where the app is in a demo; `next()` and `previous()` move and apply a step."""

    def __init__(self, app: LLMTuiApp, demo: Demo) -> None:
        self.app = app
        self.demo = demo
        self.index = -1  # no step shown yet
        self._applied = 0  # bumped per applied step: a pending retry of an older one is dropped
        self._lesson_applied: DemoStep | None = None  # the Train step whose lesson the weights hold

    @property
    def step(self) -> DemoStep | None:
        return self.demo.steps[self.index] if 0 <= self.index < len(self.demo.steps) else None

    @property
    def at_end(self) -> bool:
        return self.index >= len(self.demo.steps) - 1

    def next(self) -> bool:
        """Show the next step; False at the end."""
        if self.at_end:
            return False
        self.index += 1
        self.apply()
        return True

    def previous(self) -> bool:
        """Show the step before; False at the first."""
        if self.index <= 0:
            return False
        self.index -= 1
        self.apply()
        return True

    def apply(self) -> None:
        step = self.step
        if step is None:
            return
        self._applied += 1
        from llmtui.app.screens.compare.screen import CompareScreen

        if isinstance(self.app.screen, CompareScreen):  # a step's comparison closes when the demo moves on
            self.app.screen.dismiss(None)
        self.app.action_show_pane(step.pane)
        self.app.refresh_demo_bar()
        self._set_up(step, self._applied)

    def _set_up(self, step: DemoStep, applied: int) -> None:
        if applied != self._applied:
            return  # the user moved on
        pane: Pane = self.app.pane(step.pane)
        if pane.ready and not self._weights_as_forwards():
            self.app.set_timer(RETRY_S, lambda: self._set_up(step, applied))
            return
        if not pane.ready:
            if step.prompt is not None:
                pane.set_prompt(step.prompt)  # shown at once; computed when the model is ready
            self.app.set_timer(RETRY_S, lambda: self._set_up(step, applied))
            return
        getattr(self, f"_set_up_{step.pane}")(pane, step)

    # -- the weights: a step sees the model as it was when reached forwards ---------------------

    def _lesson(self) -> DemoStep | None:
        """The Train step whose lesson holds at the current step (None: the original weights)."""
        for step in reversed(self.demo.steps[: self.index + 1]):
            if step.pane == "train" and (step.train or step.reset):
                return step if step.train else None
        return None

    @property
    def weights_ready(self) -> bool:
        """Whether the model holds the weights of the current step (no lesson or reset still to run)."""
        return self._lesson() is self._lesson_applied and not getattr(self.app.pane("train"), "running", False)

    def _weights_as_forwards(self) -> bool:
        """Train or reset so that the weights are those this step had going forwards; False while that runs.

        A lesson is applied from the original weights with its fixed seed, so the same step always
        leaves the same weights, whichever way it was reached (shift+F8 over a lesson undoes it).
        """
        lesson, train = self._lesson(), self.app.pane("train")
        if getattr(train, "running", False):
            return False
        if lesson is self._lesson_applied:
            return True
        if train.tuned:
            train.action_original()
            self._lesson_applied = None
            return False
        if lesson is not None:
            train.configure(lesson.mode or "teach", lesson.method or "lora", lesson.steps, lesson.chosen, lesson.rejected)
            if lesson.prompt is not None:
                train.set_prompt(lesson.prompt)
            train.start_new()
        self._lesson_applied = lesson
        return lesson is None

    # -- one method per pane ---------------------------------------------------------------

    def _set_up_train(self, pane, step: DemoStep) -> None:
        pane.configure(step.mode or "teach", step.method or "lora", step.steps, step.chosen, step.rejected)
        if step.prompt is not None:
            pane.set_prompt(step.prompt)

    def _set_up_tokenizer(self, pane, step: DemoStep) -> None:
        pane.compare = False
        pane.encoding = step.encoding or "model"  # not said: the model's, so a step back restores it
        if step.prompt is not None:
            pane.set_prompt(step.prompt)

    def _set_up_embeddings(self, pane, step: DemoStep) -> None:
        if step.prompt is not None:
            pane.set_prompt(step.prompt)
            field: Input = pane.query_input
            self.app.call_later(field.action_submit)  # as if the user pressed enter: computed and kept in the history

    def _set_up_attention(self, pane, step: DemoStep) -> None:
        if step.layer is not None or step.head is not None:
            pane.show_head(step.layer if step.layer is not None else pane.layer_index,
                           step.head if step.head is not None else pane.head_index)
        if step.prompt is not None:
            pane.set_prompt(step.prompt)
            pane.capture_text(step.prompt)

    def _set_up_layers(self, pane, step: DemoStep) -> None:
        if step.prompt is not None:
            pane.set_prompt(step.prompt)

    def _set_up_generate(self, pane, step: DemoStep) -> None:
        from llmtui.engine.settings import SamplingSettings

        if step.clear and pane.session is not None:
            pane.action_clear()
        if pane.chat_mode != bool(step.chat):
            pane.action_toggle_chat()  # not said: off, so a step back from a chat step leaves chat
        knobs = dict(step.knobs)
        if step.generate:
            knobs["max_new_tokens"] = step.generate
        if knobs:
            pane.settings = SamplingSettings(**knobs)  # the knobs not named take their defaults: a step is repeatable
        if step.prompt is not None:
            pane.set_prompt(step.prompt)
        if step.generate:
            pane.action_generate()
        if step.compare is not None:
            pane.action_compare(step.compare, step.compare_mode)
