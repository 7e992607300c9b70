"""The Generate pane on the real default model (SmolLM2-135M-Instruct): the same text as the CLI, and chat."""

from __future__ import annotations

import json

import app_fixtures
import pytest
from app_fixtures import finished, make_app, ready

from llmtui.cli import main
from llmtui.engine.settings import SamplingSettings


pytestmark = pytest.mark.default_model

PROMPT = "The capital of France is"


def cli_json(capsys, *args: str) -> dict:
    assert main(["generate", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


async def test_a_greedy_run_gives_the_same_text_as_the_cli(default_lm, capsys):
    cli = cli_json(capsys, PROMPT, "--temperature", "0", "--max-new-tokens", "24")
    app = make_app(default_lm, prompt=PROMPT, settings=SamplingSettings(temperature=0, max_new_tokens=24))
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await ready(pilot)
        table = pane.table
        assert table.view.preview and table.view.candidates[0].text == " Paris"  # before generating
        await pilot.press("f5")
        await finished(pilot, pane)
        assert [s.token_id for s in pane.steps] == [s["token"]["id"] for s in cli["steps"]]
        assert pane.session.text == cli["text"]
        assert cli["text"].startswith(" Paris")
        assert pane.output.plain_text.startswith(PROMPT + " Paris")
        # the table of the first step holds the candidates the CLI recorded
        pane.output.selected = 0
        await pilot.pause()
        first = cli["steps"][0]["candidates"]
        assert [c.id for c in table.view.candidates] == [c["id"] for c in first]
        assert [round(c.raw_prob, 5) for c in table.view.candidates] == [round(c["raw_prob"], 5) for c in first]
        assert 0.5 < table.view.candidates[0].raw_prob < 0.95


async def test_chat_mode_shows_the_template_and_a_reply(default_lm, capsys):
    question = "What is the capital of France?"
    cli = cli_json(capsys, question, "--chat", "--temperature", "0", "--max-new-tokens", "40")
    app = make_app(default_lm, settings=SamplingSettings(temperature=0, max_new_tokens=40))
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await ready(pilot)
        await pilot.press("ctrl+t")
        await pilot.press(*question)
        await pilot.press("f5")
        await finished(pilot, pane)
        raw = default_lm.chat_prompt(question)
        assert "<|im_start|>user\n" + question + "<|im_end|>" in raw
        assert pane.output.plain_text.startswith(raw)  # the exact text the model continues, specials included
        assert pane.session.prompt_ids == cli["prompt_ids"]
        assert [s.token_id for s in pane.steps] == [s["token"]["id"] for s in cli["steps"]]
        assert "Paris" in pane.session.text
        specials = [p.text for p in pane.output._prompt if p.role == "special"]
        assert specials[:2] == ["<|im_start|>", "<|im_end|>"]
