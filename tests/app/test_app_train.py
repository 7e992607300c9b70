"""The Train pane driven with Pilot: teach, stop and resume, the tuned mark and the way back, prefer, pretrain, refusal."""

from __future__ import annotations

import pytest
import torch
from app_fixtures import make_app, press_now, settle, wait_for

from llmtui.app.panes.generate import GeneratePane
from llmtui.app.panes.train import TrainPane
from llmtui.engine.lm import LanguageModel
from llmtui.engine.training.settings import PretrainSettings

PROMPT = "The capital of France is"


@pytest.fixture
def fresh_lm(tiny_hf_llama_dir) -> LanguageModel:
    """A model of its own per test: training changes the weights."""
    return LanguageModel.load(str(tiny_hf_llama_dir))


def progress(pane: TrainPane) -> str:
    return str(pane.query_one("#train-progress").render())


def logits(lm: LanguageModel) -> torch.Tensor:
    with torch.no_grad():
        return lm.model(torch.tensor([lm.encode(PROMPT)])).logits


async def open_train(pilot, steps: int, lr: float = 0.01) -> TrainPane:
    pane = pilot.app.query_one(TrainPane)
    await wait_for(pilot, lambda: pane.lm is not None, what="the model")
    await settle(pilot)
    pane.query_one("#train-steps").value = str(steps)
    pane.query_one("#train-lr").value = str(lr)
    pane.focus_main()
    return pane


async def until_idle(pilot, pane: TrainPane, timeout: float = 60.0) -> None:
    await wait_for(pilot, lambda: not pane.running, timeout, what="the run to end")
    await settle(pilot, timeout)


async def test_teaching_shows_each_step_marks_the_model_tuned_and_f7_restores_it(fresh_lm):
    before = logits(fresh_lm)
    app = make_app(fresh_lm, pane="train")
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_train(pilot, steps=4)
        generate = app.query_one(GeneratePane)
        readies = []
        generate.model_ready = lambda lm: readies.append(lm)  # the other panes are told to compute again
        await pilot.press("f5")
        await until_idle(pilot, pane)
        assert [r.step for r in pane.history] == [1, 2, 3, 4]
        line = progress(pane)
        assert "step 4/4" in line and "steps/s" in line
        assert "TUNED" in app.status.tuned and "LoRA" in app.status.tuned
        assert readies == [fresh_lm]
        assert not torch.equal(logits(fresh_lm), before)
        chart = str(pane.query_one("#train-chart").render())
        assert "loss" in chart and "p(" in chart
        assert "The capital of Italy is" in str(pane.query_one("#train-table").render())  # side effects
        assert pane.export_table()[0] == ["prompt", "before", "after"]
        await pilot.press("f7")
        await until_idle(pilot, pane)
        assert app.status.tuned == ""
        assert torch.equal(logits(fresh_lm), before)  # bit for bit
        assert len(readies) == 2


async def test_escape_stops_within_one_step_and_f5_resumes(fresh_lm):
    app = make_app(fresh_lm, pane="train")
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_train(pilot, steps=400, lr=1e-4)
        await press_now(pilot, "f5")
        await wait_for(pilot, lambda: len(pane.history) >= 2, 30, what="two steps")
        stop, at_stop = pane.action_stop, []
        pane.action_stop = lambda: (at_stop.append(pane.run.done), stop())  # steps done when the key is handled
        await press_now(pilot, "escape")
        await until_idle(pilot, pane)
        assert pane.run.done <= at_stop[0] + 1 < 400  # the step under way finishes, no more
        assert "stopped" in progress(pane)
        stopped_at = pane.run.done
        await press_now(pilot, "f5")  # resume: the same run goes on
        await wait_for(pilot, lambda: pane.run.done >= stopped_at + 2, 30, what="two more steps")
        assert app.is_running and pane.running  # the UI answers while it trains
        await press_now(pilot, "2")  # switch pane mid-run: the UI thread is free
        await wait_for(pilot, lambda: app.current_pane.PANE_ID == "embeddings", 5, what="the pane switch")
        assert pane.running
        pane.run.stop()
        await until_idle(pilot, pane)
        assert [r.step for r in pane.history] == list(range(1, pane.run.done + 1))


async def test_full_fine_tuning_that_would_not_fit_is_refused_in_one_line(fresh_lm, monkeypatch):
    from llmtui.engine.training import tuning

    monkeypatch.setattr(tuning, "available_bytes", lambda: 1_000_000)
    app = make_app(fresh_lm, pane="train")
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_train(pilot, steps=3)
        await pilot.press("f4")
        assert pane.method == "full"
        await pilot.press("f5")
        await until_idle(pilot, pane)
        assert "needs about" in progress(pane) and "LoRA" in progress(pane)
        assert pane.query_one("#train-progress").has_class("-error")
        assert app.status.tuned == "" and not pane.history


async def test_prefer_mode_draws_the_margin(fresh_lm):
    app = make_app(fresh_lm, pane="train")
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_train(pilot, steps=3)
        await pilot.press("f6", "f6")
        assert pane.mode == "prefer" and pane.query_one("#train-answers").display
        pane.set_prompt(PROMPT)
        pane.query_one("#train-steps").value = "3"
        await pilot.press("f5")
        await until_idle(pilot, pane)
        assert [r.margin is not None for r in pane.history] == [True] * 3
        assert "margin" in str(pane.query_one("#train-chart").render())
        assert "TUNED" in app.status.tuned


async def test_pretrain_then_f3_saves_and_opens_the_tiny_model_in_every_pane(fresh_lm, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(f"Return the value of item {i}; the list is read from the file." for i in range(80)))
    app = make_app(fresh_lm, pane="train", export_dir=tmp_path / "out")
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_train(pilot, steps=2, lr=0.003)
        await pilot.press("f6")
        assert pane.mode == "pretrain"
        pane.set_prompt(str(corpus))
        pane.query_one("#train-steps").value = "2"
        await pilot.press("f5")
        await until_idle(pilot, pane, 120)
        assert pane.history[-1].sample is not None and pane.history[0].held_out_loss is not None
        await pilot.press("f3")
        await wait_for(pilot, lambda: app.lm is not fresh_lm and app.lm is not None, 60, what="the tiny model")
        assert app.lm.config.vocab_size == 257 and (tmp_path / "out" / "tiny-model-step2" / "model.safetensors").is_file()
        await settle(pilot, 60)
        assert app.query_one(GeneratePane).lm is app.lm


def test_train_pane_at_80x24(snap_compare, tiny_lm):
    """The idle pane: modes, the lesson's sentence, steps and lr, what F5 does (no timings: they vary)."""
    app = make_app(tiny_lm, pane="train", theme="dark")

    async def run_before(pilot) -> None:
        await wait_for(pilot, lambda: app.query_one(TrainPane).lm is not None, what="the model")
        await settle(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


async def test_f4_keeps_the_typed_steps_and_f6_takes_the_next_modes_defaults(fresh_lm):
    app = make_app(fresh_lm, pane="train")
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await open_train(pilot, steps=7, lr=0.002)
        await pilot.press("f4")
        assert (pane.method, pane.query_one("#train-steps").value, pane.query_one("#train-lr").value) == ("full", "7", "0.002")
        await pilot.press("f6")
        assert pane.mode == "pretrain" and pane.query_one("#train-steps").value == str(PretrainSettings().steps)
