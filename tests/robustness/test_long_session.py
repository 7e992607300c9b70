"""A long session in the Generate pane keeps only what it shows: old sessions, their KV caches and
old footer keys are released, so memory cannot grow with the number of generations.

Counted with weak references and the garbage collector on the tiny model; the memory figure on
the real model is in benchmarks/RESULTS.md (benchmarks/long_session.py).
"""

from __future__ import annotations

import gc
import time
import weakref

import app_fixtures
import pytest
from app_fixtures import finished, make_app, ready, settle
from textual.widgets._footer import FooterKey

from llmtui.app.panes.attention import AttentionPane
from llmtui.app.widgets.prob_table import ProbabilityTable
from llmtui.engine.generation import GenerationSession
from llmtui.engine.model.kv_cache import KVCache
from llmtui.engine.settings import SamplingSettings


GENERATIONS = 30
PROMPTS = ["The capital of France is", "Once upon a time", "Hello [bold]world[/]"]


def live(kind: type) -> list:
    """The objects of exactly this type still reachable (after a full collection)."""
    gc.collect()
    return [o for o in gc.get_objects() if type(o) is kind]


@pytest.fixture
def sessions(monkeypatch) -> list[weakref.ref]:
    """A weak reference to every GenerationSession made during the test."""
    made: list[weakref.ref] = []
    original = GenerationSession.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(weakref.ref(self))

    monkeypatch.setattr(GenerationSession, "__init__", init)
    return made


async def test_old_sessions_and_their_caches_are_released(tiny_lm, sessions):
    """After 30 generations (F5, F6 and F7, forks, chat turns, a clear), only the shown session is alive."""
    settings = SamplingSettings(temperature=0.8, top_k=40, top_p=0.95, max_new_tokens=12)
    app = make_app(tiny_lm, settings=settings)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await ready(pilot)
        footer_keys = []
        for n in range(GENERATIONS):
            chat = n % 10 in (8, 9)
            if chat != pane.chat_mode:
                await pilot.press("ctrl+t")
            pane.set_prompt("Hi there" if chat else PROMPTS[n % len(PROMPTS)])
            await pilot.press("f6" if n % 7 == 3 else "f5")
            await finished(pilot, pane)
            if n % 7 == 3:
                await pilot.press("f7")  # go on from the single step
                await finished(pilot, pane)
            if n % 5 == 2 and len(pane.steps) > 3:
                pane.output.selected = 2
                await pilot.pause()
                pane.query_one(ProbabilityTable).choose(1)  # a fork, which streams on
                await finished(pilot, pane)
            if n == 20:
                await pilot.press("ctrl+n")
                await settle(pilot)
            footer_keys.append(len(live(FooterKey)))
        await settle(pilot)

        assert len(sessions) >= GENERATIONS - 5  # chat turns and F5s each made one
        alive = [ref() for ref in sessions if ref() is not None]
        assert alive == [pane.session]  # every other session was released
        assert live(KVCache) == [pane.session.kv_cache]
        # The footer is rebuilt whenever the bindings change (twice a generation): its old keys go.
        assert max(footer_keys[10:]) <= max(footer_keys[:10]) + 2, footer_keys
        assert all(key.is_attached for key in live(FooterKey))
        # And the shown session's cache holds what it used, not the whole context window.
        cache = pane.session.kv_cache
        assert cache.capacity < tiny_lm.config.context_length
        assert cache.capacity <= len(pane.session.prompt_ids) + settings.max_new_tokens


async def test_clear_releases_the_shown_session(tiny_lm, sessions):
    app = make_app(tiny_lm, prompt=PROMPTS[0], settings=SamplingSettings(temperature=0.8, max_new_tokens=8))
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await ready(pilot)
        for _ in range(3):
            await pilot.press("f5")
            await finished(pilot, pane)
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert pane.session is None and pane.steps == ()
        assert [ref() for ref in sessions if ref() is not None] == []
        # The one cache allowed: the Attention pane's map keeps its text's keys and values, so a
        # continued text captures only its new tokens (bounded: one map, replaced, never grown).
        attention = app.query_one(AttentionPane).attention
        kept = attention.continuation._cache if attention is not None and attention.continuation else None
        assert [c for c in live(KVCache) if c is not kept] == []


def test_the_model_thread_keeps_nothing_of_a_finished_job():
    """Between jobs, the idle model thread must not hold the last job's arguments or result."""
    from llmtui.app.model_thread import model_thread_idle, run_on_model_thread

    class Payload:
        pass

    payload = Payload()
    ref = weakref.ref(payload)
    assert run_on_model_thread(lambda p: p, payload) is payload
    deadline = time.monotonic() + 10
    while not model_thread_idle() and time.monotonic() < deadline:
        time.sleep(0.01)
    del payload
    gc.collect()
    assert ref() is None
