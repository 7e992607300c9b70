"""Switching model from the command palette: the panes reload; too big or broken keeps the current model."""

from __future__ import annotations

import app_fixtures
from app_fixtures import make_app, ready, settle, wait_for
from test_app_generate import rendered_lines

from llmtui.engine.loading import fetch

SIZE = (100, 30)
GB = 10**9


def palette_titles(app) -> list[str]:
    return [command.title for command in app.get_system_commands(app.screen)]


async def test_switching_reloads_every_pane(tiny_lm, tiny_hf_gpt2_dir):
    app = make_app(tiny_lm, pane="tokenizer")
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert "Switch to Qwen2.5-0.5B-Instruct" in palette_titles(app)
        app.switch_model(str(tiny_hf_gpt2_dir))
        await wait_for(pilot, lambda: app.lm is not tiny_lm and app.model_state.ready, what="the new model")
        await settle(pilot)
        assert app.lm.config.family == "gpt2"
        assert all(pane.lm is app.lm for pane in app.panes)
        tokenizer_pane = app.pane("tokenizer")
        await pilot.press(*"Hi")
        assert tokenizer_pane.tokens().ids == tuple(app.lm.tokenizer.encode("Hi"))
        assert app.lm.name in app.status.model_info


async def test_a_model_too_big_is_refused_before_loading(tiny_lm, monkeypatch):
    monkeypatch.setattr(fetch, "available_memory", lambda: 4 * GB)
    app = make_app(tiny_lm)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        command = next(c for c in app.get_system_commands(app.screen) if c.title == "Switch to Mistral-7B-Instruct-v0.3")
        assert "too big for this machine" in command.help
        command.callback()
        await pilot.pause()
        assert app.lm is tiny_lm and app.model_state.ready and app.model_spec is None
        assert not [w for w in app.workers if w.group == "model" and not w.is_finished]  # nothing started
        assert any("5.1 GB" in str(n.message) for n in app._notifications)


async def test_a_switch_that_fails_keeps_the_current_model(tiny_lm, tmp_path):
    app = make_app(tiny_lm)
    async with app.run_test(size=SIZE) as pilot:
        pane = await ready(pilot)
        app.switch_model(str(tmp_path / "nowhere.gguf"))
        await settle(pilot)
        assert app.lm is tiny_lm and pane.lm is tiny_lm and app.model_state.ready
        assert any("no such file" in str(n.message) for n in app._notifications)


async def test_after_a_failed_switch_the_panes_stop_saying_loading(tiny_lm, tmp_path):
    """The panes said "Loading …" while the switch ran; when it fails they show the kept model as ready again."""
    app = make_app(tiny_lm, pane="generate")
    async with app.run_test(size=SIZE) as pilot:
        pane = await ready(pilot)
        app.switch_model(str(tmp_path / "nowhere.gguf"))
        await wait_for(pilot, lambda: pane.model_state.phase == "loading" or app.model_state.ready, what="the switch")
        await settle(pilot)
        shown = "\n".join(rendered_lines(pane.output)) + str(pane.query_one(pane.MESSAGE_LINE).render())
        assert "Loading" not in shown and "Ready" in shown
