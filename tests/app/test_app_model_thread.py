"""All of the app's torch work happens on one thread (see llmtui/app/model_thread.py for why)."""

from __future__ import annotations

import threading

import app_fixtures
import pytest
from app_fixtures import finished, greedy, make_app, press_now, ready

from llmtui.app.model_thread import (
    model_thread_idle,
    on_model_thread,
    run_on_model_thread,
)



def test_calls_run_on_one_thread_and_raise_where_they_were_made():
    names = {run_on_model_thread(lambda: threading.current_thread().name) for _ in range(5)}
    assert names == {"llmtui-model"}
    assert run_on_model_thread(lambda a, b=0: a + b, 2, b=3) == 5
    with pytest.raises(ValueError, match="bad knob"):
        run_on_model_thread(lambda: (_ for _ in ()).throw(ValueError("bad knob")))
    assert run_on_model_thread(lambda: run_on_model_thread(on_model_thread))  # nested: no deadlock


def test_idle_only_when_nothing_is_queued_or_running():
    """model_thread_idle (what the soak test waits for) is False while a job runs, True after, errors included."""
    started, release = threading.Event(), threading.Event()

    def job() -> None:
        started.set()
        release.wait(5)

    caller = threading.Thread(target=run_on_model_thread, args=(job,))
    caller.start()
    assert started.wait(5)
    assert not model_thread_idle()
    release.set()
    caller.join(5)
    assert model_thread_idle()
    with pytest.raises(ValueError):
        run_on_model_thread(lambda: (_ for _ in ()).throw(ValueError("bad knob")))
    assert model_thread_idle()


async def test_the_generate_pane_runs_the_model_on_the_model_thread(tiny_lm, monkeypatch):
    app = make_app(tiny_lm, prompt="The capital of France is", settings=greedy(max_new_tokens=6))
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await ready(pilot)
        threads: set[str] = set()
        forward = tiny_lm.model.forward

        def recording(*args, **kwargs):
            threads.add(threading.current_thread().name)
            return forward(*args, **kwargs)

        monkeypatch.setattr(tiny_lm.model, "forward", recording)
        await pilot.press("f5")
        await finished(pilot, pane)
        pane.set_knob("temperature", 1.0)  # a preview of the next token
        await finished(pilot, pane)
        assert len(pane.steps) == 6
        assert threads == {"llmtui-model"}


async def test_an_ended_app_thaws_what_it_froze(tiny_lm):
    """The app freezes what it has loaded (fewer GC pauses mid-stream) and thaws it when it ends:
    a frozen object is never collected, so every app a process ran would stay in memory."""
    import gc

    app = make_app(tiny_lm)
    async with app.run_test() as pilot:
        pane = await ready(pilot)
        await pilot.press("f5")
        await finished(pilot, pane)
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


async def test_a_generation_takes_its_steps_in_one_job_and_yields_to_a_job_queued_behind_it(tiny_lm, slow_steps):
    """The steps of a run go one after another on the model thread (no wait for the event loop between
    tokens), yet a capture or a preview asked for mid-stream runs before the stream ends, not after it."""
    from llmtui.app.model_thread import call

    slow_steps(0.01)
    app = make_app(tiny_lm, prompt="The capital of France is", settings=greedy(max_new_tokens=100))
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await ready(pilot)
        await press_now(pilot, "f5")
        await app_fixtures.wait_for(pilot, lambda: len(pane.steps) >= 5, what="a few tokens")
        produced_when_it_ran = await call(lambda: pane.run.produced)
        assert produced_when_it_ran < 100 and pane.running  # it ran mid-stream
        await finished(pilot, pane)
        assert len(pane.steps) == 100  # and the stream went on to its end


async def test_a_cancelled_run_stops_taking_steps_on_the_model_thread(tiny_lm, slow_steps):
    """The model thread's run of steps reads the run's state before each step: cancelled (a newer run
    replaced it, the pane went), it stops after the step under way instead of generating to the end."""
    slow_steps(0.01)
    app = make_app(tiny_lm, prompt="The capital of France is", settings=greedy(max_new_tokens=100))
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await ready(pilot)
        await press_now(pilot, "f5")
        await app_fixtures.wait_for(pilot, lambda: pane.run is not None and pane.run.produced >= 3, what="tokens")
        run = pane.run
        pane.workers.cancel_group(pane, "generation")
        await app_fixtures.wait_for(pilot, model_thread_idle, what="the model thread to be idle")
        stopped_at = run.produced
        await pilot.pause(0.2)
        assert run.halt and run.produced == stopped_at < 100
