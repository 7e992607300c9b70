"""The Train pane (key 6): teach the loaded model, pretrain a tiny one, or prefer an answer.

Layout, modes and keys: view.py draws the lines, runs.py builds a run from the fields, runner.py
runs it (a part mixed into the pane), llmtui/engine/training computes. A run is a generator of
step records; an exclusive worker awaits one step at a time on the model service (`call`), so
the UI never waits, the other panes' model calls fit between steps, and Escape stops the run
before its next step (F5 resumes it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Input, Static

from llmtui.app.panes.base import Pane
from llmtui.app.panes.train import view
from llmtui.app.panes.train.runner import RunnerPart
from llmtui.app.widgets.safe_input import SafeInput
from llmtui.engine.training.settings import PreferSettings, PretrainSettings, TeachSettings

if TYPE_CHECKING:
    from llmtui.engine.lm import LanguageModel
    from llmtui.engine.training.loop import TrainingRun, TrainStep
    from llmtui.engine.training.tuning import Tuning

SAMPLES_SHOWN = 6


class TrainPane(RunnerPart, Pane):
    """Watch a model learn: loss and probabilities live, side effects after, one key back to the original."""

    PANE_ID = "train"
    MESSAGE_LINE = "#train-progress"
    TITLE = "Train"
    SHORT_TITLE = "Train"
    HELP = view.HELP

    DEFAULT_CSS = """
    #train-mode { height: 1; padding: 0 1; }
    #train-text, #train-chosen, #train-rejected {
        height: 3; border: round $primary 50%; padding: 0 1;
        &:focus { border: round $primary; }
    }
    #train-answers { height: 3; }
    #train-chosen, #train-rejected { width: 1fr; }
    #train-knobs { height: 1; padding: 0 1; }
    #train-knobs .train-label { width: auto; padding: 0 1 0 0; color: $text-muted; }
    #train-knobs Input { width: 12; height: 1; border: none; padding: 0; margin: 0 2 0 0; }
    #train-progress {
        height: 1; padding: 0 1; color: $text-muted;
        &.-busy { color: $text-accent; }
        &.-error { color: $text-error; text-style: bold; }
    }
    #train-body { height: 1fr; padding: 0 1; border: round $primary 50%; }
    #train-chart, #train-table { height: auto; }
    #train-table { margin: 1 0 0 0; }
    """

    BINDINGS = [
        Binding("f5", "train", "Train", tooltip="Start a run, or resume a stopped one"),
        Binding("escape", "stop", "Stop", tooltip="Stop after the current step (F5 resumes)"),
        Binding("f6", "next_mode", "Mode", tooltip="teach → pretrain → prefer"),
        Binding("f4", "toggle_method", "LoRA/full", tooltip="LoRA adapters or every weight"),
        Binding("f7", "original", "Original weights", tooltip="Put the model's original weights back, bit for bit"),
        Binding("f3", "save_open", "Save+open", tooltip="Pretrain: save the tiny model and open it in every pane"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.mode = "teach"
        self.method = TeachSettings().method
        self.run: TrainingRun | None = None
        self.tuning: Tuning | None = None
        self.history: list[TrainStep] = []
        self.effects: list[list[str]] = []
        self.running = False

    def compose(self) -> ComposeResult:
        yield Static(id="train-mode")
        yield SafeInput(value="The capital of France is Lyon.", id="train-text", placeholder="sentences to teach, | between")
        with Horizontal(id="train-answers"):
            yield SafeInput(value=" Lyon.", id="train-chosen", placeholder="chosen answer")
            yield SafeInput(value=" Paris.", id="train-rejected", placeholder="rejected answer")
        with Horizontal(id="train-knobs"):
            yield Static("steps", classes="train-label")
            yield SafeInput(id="train-steps", type="integer")
            yield Static("lr", classes="train-label")
            yield SafeInput(id="train-lr", type="number")
        yield Static(id="train-progress")
        with VerticalScroll(id="train-body"):
            yield Static(id="train-chart")
            yield Static(id="train-table")

    def on_mount(self) -> None:
        self._set_knobs()
        self._show_mode()

    # -- state to screen ------------------------------------------------------------------------

    def _show_mode(self) -> None:
        trained = self.tuning.trained_numbers if self.tuned else None
        total = self.tuning.model_numbers if self.tuned else None
        rank = TeachSettings().rank
        memory = self.tuning.memory_bytes if self.tuned else None
        self.query_one("#train-mode", Static).update(view.settings_line(self.mode, self.method, rank, trained, total, memory))
        text = self.query_one("#train-text", Input)
        text.placeholder = {"teach": "sentences to teach, | between", "pretrain": "a text file (empty: the stdlib's docstrings)",
                            "prefer": "the prompt"}[self.mode]  # fmt: skip
        self.query_one("#train-answers").display = self.mode == "prefer"
        if not self.running:
            self.say(view.MODE_HELP[self.mode])
        if not self.history:
            self._draw()

    def _set_knobs(self, steps: int | None = None) -> None:
        """Steps and learning rate: the mode's defaults (a new mode's, or a demo step's)."""
        defaults = self._defaults()
        self.query_one("#train-steps", Input).value = str(steps or defaults.steps)
        self.query_one("#train-lr", Input).value = str(defaults.lr)

    def _defaults(self) -> TeachSettings | PretrainSettings | PreferSettings:
        return {"teach": TeachSettings(), "pretrain": PretrainSettings(), "prefer": PreferSettings()}[self.mode]

    def _draw(self) -> None:
        from llmtui.engine.training.pretrain import UNIFORM_LOSS

        width = max(20, self.size.width - 2)
        uniform = UNIFORM_LOSS if self.history and self.history[0].mode == "pretrain" else None
        chart = view.chart_lines(view.series_of(self.history, uniform), width)
        self.query_one("#train-chart", Static).update(
            Text("\n").join(chart) if chart else Text(view.WHAT_YOU_WILL_SEE[self.mode], style="dim"))
        table = view.effects_table(self.effects) if self.effects else view.samples_text(self.history, SAMPLES_SHOWN)
        self.query_one("#train-table", Static).update(table)

    # -- what the demo runner and --prompt set -----------------------------------------------------

    def set_prompt(self, text: str) -> None:
        self.query_one("#train-text", Input).value = text

    def configure(self, mode: str | None = None, method: str | None = None, steps: int | None = None,
                  chosen: str | None = None, rejected: str | None = None) -> None:
        """Set what a demo step names; steps and lr it does not name take the mode's defaults."""
        if (mode or self.mode, method or self.method) != (self.mode, self.method):
            self.mode, self.method = mode or self.mode, method or self.method
            self.run = None
            self._show_mode()
        self._set_knobs(steps)
        for key, value in (("chosen", chosen), ("rejected", rejected)):
            if value is not None:
                self.query_one(f"#train-{key}", Input).value = value

    @property
    def tuned(self) -> bool:
        return self.tuning is not None and self.tuning.active

    def start_new(self) -> None:
        """A new run with the fields as they are (not a resume of a stopped one)."""
        self.run = None
        self.action_train()

    # -- actions --------------------------------------------------------------------------------

    def _idle(self) -> bool:
        """No run under way; else say so (a mode, method or the weights can't change mid-run)."""
        if self.running:
            self.say("Stop the run first (Escape).", "error")
        return not self.running

    def action_next_mode(self) -> None:
        if not self._idle():
            return
        self.mode = view.MODES[(view.MODES.index(self.mode) + 1) % len(view.MODES)]
        self.run = None
        self._set_knobs()  # steps and lr typed for one mode make no sense in another
        self._show_mode()

    def action_toggle_method(self) -> None:
        if not self._idle():
            return
        self.method = "full" if self.method == "lora" else "lora"
        self.run = None  # a paused run keeps its own method: the next F5 starts a new one
        self._show_mode()

    def model_ready(self, lm: LanguageModel) -> None:
        if self.tuning is not None and self.tuning.model is not lm.model:
            self.tuning, self.run = None, None  # another model was opened: the old one's tuning went with it
        self._show_mode()

    # -- export ----------------------------------------------------------------------------------

    def export_data(self) -> dict | None:
        if not self.history:
            return None
        return {"mode": self.history[0].mode, "steps": [r.to_json() for r in self.history],
                "side_effects": [dict(zip(("prompt", "before", "after"), row)) for row in self.effects]}

    def export_table(self) -> tuple[list[str], list[list]] | None:
        if self.effects:
            return ["prompt", "before", "after"], [list(row) for row in self.effects]
        if self.history:
            return ["step", "loss"], [[r.step, r.loss] for r in self.history]
        return None
