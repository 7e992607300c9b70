"""A faster precision (--precision int8) is said on the status line and heads every export."""

from __future__ import annotations

import json

from app_fixtures import greedy, ready, wait_for

from llmtui.app.app import LLMTuiApp
from llmtui.engine.lm import LanguageModel


async def test_status_line_and_exports_say_the_mode(tiny_hf_llama_dir, tmp_path):
    lm = LanguageModel.load(str(tiny_hf_llama_dir), precision="int8")
    folder = tmp_path / "exports"
    app = LLMTuiApp(lm=lm, pane="tokenizer", settings=greedy(max_new_tokens=2), export_dir=folder)
    async with app.run_test(size=(120, 36)) as pilot:
        await ready(pilot)
        assert app.status.model_info.endswith(" · int8, p not exact")
        assert "int8, p not exact" in str(app.status.render())
        tok = app.pane("tokenizer")
        tok.set_prompt("Hello world")
        await wait_for(pilot, lambda: tok.tokens() is not None, what="tokens")
        await pilot.press("ctrl+s")
        await pilot.pause()
        by_ext = {p.suffix: p for p in folder.iterdir()}
        assert json.loads(by_ext[".json"].read_text())["compute"]["precision"] == "int8"
        head = by_ext[".md"].read_text().splitlines()[0]
        assert "precision int8" in head and "probabilities are the int8 mode's own, not exact" in head
        assert by_ext[".csv"].read_text().startswith(f"# {head}\n")
        assert "precision&#160;int8" in by_ext[".svg"].read_text()


async def test_the_app_loads_its_model_in_the_mode_asked(tiny_hf_llama_dir):
    app = LLMTuiApp(model=str(tiny_hf_llama_dir), precision="bf16", settings=greedy(max_new_tokens=2))
    async with app.run_test(size=(120, 36)) as pilot:
        await ready(pilot)
        assert app.lm.precision == "bf16" and app.status.model_info.endswith(" · bf16, p not exact")


def test_served_app_command_keeps_the_precision():
    from llmtui.cli import app_command, build_parser

    args = build_parser().parse_args(["serve", "--precision", "int4"])
    assert "--precision int4" in app_command(args)
