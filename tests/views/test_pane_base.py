"""What every pane shares (llmtui/app/panes/base.py): a worker's failure as one line, the no-model line,
the typing pause. No app: the pane's `say` is recorded instead of drawn."""

from __future__ import annotations

import asyncio

import pytest

from llmtui.app.panes.base import Debounce, Pane
from llmtui.app.state import ModelState


class RecordingPane(Pane):
    PANE_ID = "recording"
    TITLE = SHORT_TITLE = HELP = "Recording"

    def __init__(self) -> None:
        super().__init__()
        self.said: list[tuple[str, str, str | None]] = []

    def say(self, text, kind="info", where=None) -> None:  # type: ignore[override]
        self.said.append((str(text), kind, where))


def test_a_failure_inside_reporting_ends_the_block_as_one_capitalised_line():
    pane = RecordingPane()
    with pane.reporting(where="#other"):
        raise ValueError("the prompt is empty")
    with pane.reporting():
        raise KeyError("x")
    assert pane.said == [("The prompt is empty", "error", "#other"),
                         ("Internal error (KeyError: 'x')", "error", None)]


def test_a_pane_can_take_the_line_itself_and_a_cancellation_is_not_a_failure():
    pane = RecordingPane()
    lines = []
    with pane.reporting(lines.append):
        raise ValueError("too long")
    assert lines == ["Too long"] and pane.said == []
    with pytest.raises(asyncio.CancelledError), pane.reporting():  # a newer request cancelled the worker
        raise asyncio.CancelledError
    assert pane.said == []


def test_without_a_model_the_pane_says_what_is_kept_and_when_it_runs():
    pane = RecordingPane()
    assert not pane.need_model("shown", "#line")
    pane.set_model(ModelState(phase="failed", error="no file"))
    assert not pane.need_model()
    pane.TYPED = "what you typed"
    assert not pane.need_model()
    assert pane.said == [
        ("The model is still loading; your prompt is kept and shown when it is ready.", "busy", "#line"),
        ("No model: it could not be loaded. Your prompt is kept.", "error", None),  # from set_model
        ("No model: it could not be loaded. Your prompt is kept.", "error", None),
        ("No model: it could not be loaded. What you typed is kept.", "error", None),
    ]


def test_a_pane_words_its_own_promise_and_where_the_error_shows():
    """Generate runs nothing by itself once the model is ready, and shows the load's error in its output."""
    from llmtui.app.panes.generate.pane import GeneratePane

    pane = RecordingPane()
    pane.WHEN_LOADED, pane.SEE_WHY = GeneratePane.WHEN_LOADED, GeneratePane.SEE_WHY
    assert not pane.need_model()
    pane.set_model(ModelState(phase="failed", error="no file"))  # the state's line names no place
    assert not pane.need_model()
    assert pane.said == [
        ("The model is still loading; your prompt is kept. Press the key again when it is ready.", "busy", None),
        ("No model: it could not be loaded. Your prompt is kept.", "error", None),
        ("No model: it could not be loaded (see the output). Your prompt is kept.", "error", None),
    ]


def test_a_followed_text_stands_for_its_selection_until_the_user_edits_it():
    from llmtui.app.selection import TokenSelection

    pane = RecordingPane()
    assert pane.followed_in("") is None and pane.followed_in("Hello") is None  # nothing followed yet
    selection = TokenSelection.at((5, 6, 7), 1, "generate")
    pane.put_followed("Hello there", selection)
    assert pane.followed_in("Hello there") == selection
    assert pane.followed_in("Hello there!") is None  # typed on: the user's own text now
    later = TokenSelection.at((8,), 0, "layers")
    pane.put_followed("Hi", later)
    assert pane.followed_in("Hello there") is None and pane.followed_in("Hi") == later
    ready = ModelState("ready", "m", "ready", 1.0)
    pane.set_model(ready, lm := object())  # type: ignore[arg-type]
    pane.put_followed("Hi", later)
    pane.set_model(ready, lm)  # type: ignore[arg-type]  # the same model (new weights keep the vocabulary)
    assert pane.followed_in("Hi") == later
    pane.set_model(ready, object())  # type: ignore[arg-type]  # another model: the followed ids mean nothing there
    assert pane.followed_in("Hi") is None


class FakeTimer:
    def __init__(self, callback) -> None:
        self.callback, self.stopped = callback, False

    def stop(self) -> None:
        self.stopped = True


class FakeOwner:
    def __init__(self) -> None:
        self.timers: list[FakeTimer] = []

    def set_timer(self, delay, callback) -> FakeTimer:
        self.timers.append(FakeTimer(callback))
        return self.timers[-1]


def test_a_debounced_call_waits_for_the_last_restart_and_can_be_dropped():
    owner, calls = FakeOwner(), []
    typing = Debounce(owner, 0.25, lambda: calls.append(len(owner.timers)))  # type: ignore[arg-type]
    typing.restart()
    typing.restart()
    assert typing.pending and [t.stopped for t in owner.timers] == [True, False]
    owner.timers[-1].callback()
    assert calls == [2] and not typing.pending
    typing.restart()
    typing.cancel()
    assert owner.timers[-1].stopped and not typing.pending and calls == [2]
