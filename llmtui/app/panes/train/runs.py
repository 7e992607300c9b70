"""From the Train pane's fields to an engine run: the part of the pane that runs off the UI thread.

`new_run` is called on the model thread (it reads the model, and pretraining reads the
standard library first); nothing here touches a widget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from llmtui.engine.training.settings import PreferSettings, PretrainSettings, TeachSettings

if TYPE_CHECKING:
    from llmtui.engine.lm import LanguageModel
    from llmtui.engine.training.loop import TrainingRun
    from llmtui.engine.training.tuning import Tuning


@dataclass(frozen=True)
class RunRequest:
    """What the fields said when F5 was pressed."""

    mode: str
    method: str
    steps: int
    lr: float
    text: str  # teach: sentences with | between; pretrain: a file (empty: the stdlib); prefer: the prompt
    chosen: str = ""
    rejected: str = ""


def new_run(request: RunRequest, lm: LanguageModel | None, tuning: Tuning | None) -> TrainingRun:
    """The run a request asks for; ValueError (one line) for bad settings, text or memory."""
    r = request
    if r.mode == "pretrain":
        from llmtui.engine.training.corpus import read_documents
        from llmtui.engine.training.pretrain import PretrainRun

        return PretrainRun(read_documents(r.text.strip() or None), PretrainSettings(steps=r.steps, lr=r.lr))
    if r.mode == "teach":
        from llmtui.engine.training.teach import TeachRun

        settings = TeachSettings(steps=r.steps, lr=r.lr, method=r.method)
        return TeachRun(lm, [t.strip() for t in r.text.split("|")], settings, tuning=tuning)
    from llmtui.engine.training.prefer import PreferRun

    settings = PreferSettings(steps=r.steps, lr=r.lr, method=r.method)
    return PreferRun(lm, r.text, r.chosen, r.rejected, settings, tuning=tuning)


def side_effect_rows(run: TrainingRun) -> list[list[str]]:
    """Teach: each watched prompt's top token before and after; other modes: none."""
    if run.mode != "teach":
        return []
    from llmtui.engine.training.teach import before_after_table

    return before_after_table(run.side_effects())[1]
