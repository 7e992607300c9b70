"""A fixed seed gives the same text in the app and the CLI, run after run, when sampling (not only greedy).

The app's Generate pane (its seed knob set by typing it, as a user would) and `llmtui generate
--seed N --json` (in this process, and in a fresh one) run the same model folder with the same
prompt and knobs; every drawn token must match. A different seed must give a different text, so
the knobs really sample.
"""

from __future__ import annotations

import json
import subprocess
import sys

import app_fixtures
import pytest
from app_fixtures import finished, make_app, ready

from llmtui.cli import main
from llmtui.engine.lm import DEFAULT_MODEL, LanguageModel
from llmtui.engine.settings import SamplingSettings


PROMPT = "The capital of France is"
KNOBS = SamplingSettings(temperature=0.8, top_k=40, top_p=0.9, repetition_penalty=1.1, max_new_tokens=30)
CLI_KNOBS = ["--temperature", "0.8", "--top-k", "40", "--top-p", "0.9", "--repetition-penalty", "1.1",
             "--max-new-tokens", "30"]


@pytest.fixture(scope="module")
def plain_tiny_lm(tiny_hf_llama_dir) -> LanguageModel:
    """The tiny Llama exactly as the CLI loads it from its folder (app_fixtures' tiny_lm is sharpened)."""
    return LanguageModel.load(str(tiny_hf_llama_dir))


def cli_generate(capsys, model: str, seed: int, *extra: str) -> list[int]:
    """The token ids `llmtui generate` draws, called in this process."""
    code = main(["generate", PROMPT, "--model", model, "--seed", str(seed), *CLI_KNOBS, "--json", *extra])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert data["seed"] == seed
    return [step["token"]["id"] for step in data["steps"]]


def cli_generate_in_a_fresh_process(model: str, seed: int, *extra: str) -> list[int]:
    out = subprocess.run(
        [sys.executable, "-m", "llmtui.cli", "generate", PROMPT, "--model", model, "--seed", str(seed), *CLI_KNOBS,
         "--json", *extra],
        capture_output=True, text=True, check=True, timeout=300,
    )
    return [step["token"]["id"] for step in json.loads(out.stdout)["steps"]]


async def app_generate(lm: LanguageModel, seed: int, *, chat: bool = False, runs: int = 2) -> list[int]:
    """The token ids the Generate pane draws with the seed knob set to `seed`; F5 twice must agree."""
    app = make_app(lm, settings=KNOBS)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await ready(pilot)
        if chat:
            await pilot.press("ctrl+t")
        pane.knob("seed").focus()
        await pilot.press("enter", "ctrl+a", "ctrl+k", *str(seed), "enter")
        assert pane.settings.seed == seed
        drawn = []
        for _ in range(runs):
            if chat:
                await pilot.press("ctrl+n")  # a new chat: otherwise the first reply becomes history
            pane.set_prompt(PROMPT)  # chat mode empties the editor once the message is sent
            await pilot.press("f5")
            await finished(pilot, pane)
            assert pane.session.seed == seed
            drawn.append([s.token_id for s in pane.steps])
        assert all(ids == drawn[0] for ids in drawn), "the same seed drew differently in the app"
        return drawn[0]


async def test_plain_sampling_matches_between_the_app_and_the_cli(plain_tiny_lm, tiny_hf_llama_dir, capsys):
    folder = str(tiny_hf_llama_dir)
    in_app = await app_generate(plain_tiny_lm, 1234)
    assert len(in_app) > 5
    assert cli_generate(capsys, folder, 1234) == in_app
    assert cli_generate(capsys, folder, 1234) == in_app  # a second run in the same process
    assert cli_generate_in_a_fresh_process(folder, 1234) == in_app
    assert cli_generate(capsys, folder, 99) != in_app  # the seed matters: these knobs really sample


async def test_chat_sampling_matches_between_the_app_and_the_cli(plain_tiny_lm, tiny_hf_llama_dir, capsys):
    in_app = await app_generate(plain_tiny_lm, 77, chat=True)
    assert len(in_app) > 1
    assert cli_generate(capsys, str(tiny_hf_llama_dir), 77, "--chat") == in_app


@pytest.mark.default_model
async def test_the_default_model_samples_the_same_text_in_the_app_and_the_cli(default_lm, capsys):
    in_app = await app_generate(default_lm, 2026, runs=1)
    assert cli_generate(capsys, DEFAULT_MODEL, 2026) == in_app
    assert len(in_app) > 5
