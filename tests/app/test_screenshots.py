"""The screenshot script runs in the suite: one SVG per pane of the real app, showing what its step set up."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest

from llmtui.app.panes import PANES

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "screenshots.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("screenshots", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.default_model
def test_the_script_makes_one_svg_per_pane(default_lm, tmp_path):
    script = _load_script()
    svgs = asyncio.run(script.make(tmp_path, default_lm))
    assert sorted(p.stem for p in svgs) == sorted(p.PANE_ID for p in PANES)
    expected = {"tokenizer": "pizza", "embeddings": "queen", "attention": "chased", "layers": "France", "generate": "Paris",
                "train": "Lyon"}
    for svg in svgs:
        text = svg.read_text().replace("&#160;", " ")
        assert text.startswith("<svg") and "llmtui" in text
        assert expected[svg.stem] in text, f"{svg.stem}: {expected[svg.stem]!r} not in the picture"
    committed = SCRIPT.parent.parent / "screenshots"
    assert sorted(p.stem for p in committed.glob("*.svg")) == sorted(p.PANE_ID for p in PANES)


def test_the_readme_key_table_matches_the_code():
    spec = importlib.util.spec_from_file_location("keys_table", SCRIPT.parent / "keys_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (SCRIPT.parent.parent / "README.md").read_text()
    shown = readme.split("<!-- keys:start -->\n", 1)[1].split("<!-- keys:end -->", 1)[0]
    assert shown == module.keys_table(), "README's key table is stale: paste the output of scripts/keys_table.py"


def test_the_readme_shows_every_screenshot():
    readme = (SCRIPT.parent.parent / "README.md").read_text()
    for pane in PANES:
        assert f"(screenshots/{pane.PANE_ID}.svg)" in readme
