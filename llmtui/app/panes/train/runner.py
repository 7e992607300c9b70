"""The Train pane's runs as they happen: F5 starts or resumes one, Escape stops it, F7 puts the original weights
back, F3 saves a pretrained model and opens it; an exclusive worker awaits each step on the model service."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.widgets import Input

from llmtui.app.messages import OpenModel, WeightsChanged
from llmtui.app.model_thread import call
from llmtui.app.panes.train import view
from llmtui.app.panes.train.runs import RunRequest, new_run, side_effect_rows

if TYPE_CHECKING:
    from llmtui.engine.training.loop import TrainingRun, TrainStep
    from llmtui.engine.training.tuning import Tuning


class RunnerPart:
    """Mixed into TrainPane: a run's start, steps, stop and end, and the weights it leaves."""

    def action_stop(self) -> None:
        if self.run is not None and self.running:
            self.run.stop()
            self.say("Stopping after this step…", "busy")

    def action_train(self) -> None:
        if self.running:
            return
        if self.mode != "pretrain" and self.lm is None:
            self.say("The model is still loading; press F5 again when it is ready.", "busy")
            return
        if self.run is not None and not self.run.finished and self.run.mode == self.mode:
            self._start(self.run)  # resume
            return
        try:
            steps = int(self.query_one("#train-steps", Input).value)
            lr = float(self.query_one("#train-lr", Input).value)
        except ValueError:
            self.say("Steps must be a whole number and lr a number.", "error")
            return
        self.history, self.effects = [], []
        self._start(None, steps, lr)

    def action_original(self) -> None:
        if not self._idle():
            return
        if self.tuning is None or not self.tuning.active:
            self.say("The model already has its original weights.")
            return
        self.running = True
        self.say("Putting the original weights back…", "busy")
        self._reset(self.tuning)

    @work(exclusive=True, group="train", exit_on_error=False)
    async def _reset(self, tuning: Tuning) -> None:
        await call(tuning.reset)  # a copy back into place (or the adapters taken out): a fraction of a second
        self.running = False
        self._original_back()

    def _original_back(self) -> None:
        self.tuning, self.run, self.history, self.effects = None, None, [], []
        self.post_message(WeightsChanged(""))
        self._show_mode()
        self._draw()
        self.say("Original weights back, bit for bit: every pane uses them again.")

    def action_save_open(self) -> None:
        if self.running or self.run is None or self.run.mode != "pretrain" or not self.run.done:
            self.say("Pretrain a tiny model first (F6 to pretrain, F5), then F3 saves and opens it.", "error")
            return
        folder = self.export_dir / f"tiny-model-step{self.run.done}"
        self.say(f"Saving to {folder}…", "busy")
        self._save(self.run, folder)

    @work(exclusive=True, group="train", exit_on_error=False)
    async def _save(self, run: TrainingRun, folder: Path) -> None:
        try:
            await call(run.save, folder)
        except OSError as err:
            self.say(f"Could not save to {folder}: {err.strerror or err}", "error")
            return
        self.post_message(OpenModel(str(folder)))

    # -- the run, in a worker ------------------------------------------------------------------------

    def _start(self, run: TrainingRun | None, steps: int = 0, lr: float = 0.0) -> None:
        self.running = True
        field = self.query_one("#train-text", Input).value
        starting = "Reading this Python's docstrings…" if self.mode == "pretrain" and not field.strip() else "Starting…"
        self.say(starting if run is None else "Resuming…", "busy")
        request = RunRequest(self.mode, self.method, steps, lr, field, self.query_one("#train-chosen", Input).value,
                             self.query_one("#train-rejected", Input).value)  # fmt: skip
        self._work(run, request)

    @work(exclusive=True, group="train", exit_on_error=False)
    async def _work(self, run: TrainingRun | None, request: RunRequest) -> None:
        with self.reporting(self._run_failed):  # settings, text or memory (ValueError), or a bug
            if run is None:
                run = await call(new_run, request, self.lm, self.tuning)
            self.run = run
            if getattr(run, "tuning", None) is not None and run.tuning is not self.tuning:
                self.tuning = run.tuning  # the model is trainable now: the mode line says how much
                self._show_mode()
            records = run.steps()
            while (record := await call(next, records, None)) is not None:
                self.history.append(record)
                self._say_progress(record, "")
                self._draw()
            self._run_ended(run, await call(side_effect_rows, run))

    def _run_failed(self, error: str) -> None:
        self.running = False
        self.say(error, "error")

    def _say_progress(self, record: TrainStep, state: str) -> None:
        self.say(view.progress_line(record, state, self.size.width), "busy" if self.running else "info")

    def _run_ended(self, run: TrainingRun, effects: list[list[str]]) -> None:
        self.running = False
        self.effects = effects
        if self.history:
            self._say_progress(self.history[-1], "" if run.finished else "stopped: F5 resumes")
        self._draw()
        if run.mode != "pretrain" and self.tuned:
            self.post_message(WeightsChanged(view.tuned_label(self.tuning.method, self.tuning.rank, len(self.history))))
