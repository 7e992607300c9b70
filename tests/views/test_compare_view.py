"""The Compare screen's cells, from hand-made positions."""

import math

import pytest

from llmtui.app.screens.compare.view import (COLUMNS, kl_style, model_choices, row, side_header, tops_side_by_side,
                                             with_model)
from llmtui.engine.generation import Candidate, Step
from llmtui.engine.sampling import SamplingSettings
from llmtui.engine.studies.compare import Position


def step(token: int, text: str, prob: float, cands: tuple[Candidate, ...] = ()) -> Step:
    return Step(0, 5, token, text, prob, prob, cands, SamplingSettings())


def test_a_row_shows_both_tokens_their_probabilities_and_the_divergence():
    p = Position(3, step(1, " Paris", 0.773), step(1, " Paris", 0.052), 2.083, 0.79, 1, 2)
    cells = [c.plain for c in row(p)]
    assert len(cells) == len(COLUMNS)
    assert cells == ["3", " Paris", "77.3%", " Paris", "5.2%", "2.083", "0.79", "differs"]
    assert row(p)[5].style == "bold red"


def test_hostile_tokens_are_shown_literally_and_an_ended_side_is_blank():
    p = Position(0, step(1, "[red]\x1b[31m\n", 0.5), None, None, None, 1, None)
    cells = [c.plain for c in row(p)]
    assert "\x1b" not in cells[1] and "\n" not in cells[1] and cells[3] == "" and cells[5] == ""


def test_divergence_bands_and_infinity():
    assert kl_style(0.0) == "dim" and kl_style(0.2) == "yellow" and kl_style(math.inf) == "bold red"
    p = Position(0, step(1, "a", 0.5), step(1, "a", 0.0), math.inf, 0.5, 1, 2)
    assert row(p)[5].plain == "inf"


def test_the_tops_of_both_tables_side_by_side():
    a = step(1, "a", 0.6, (Candidate(1, "a", 0.6, 0.6, None), Candidate(2, "b", 0.4, 0.0, "top-k")))
    b = step(1, "a", 0.3, (Candidate(2, "b", 0.7, 0.7, None), Candidate(1, "a", 0.3, 0.3, None)))
    text = tops_side_by_side(Position(0, a, b, 0.1, 0.3, 1, 2)).plain.splitlines()
    assert text[0].startswith("A") and text[0].rstrip().endswith("B")
    assert "60.0%" in text[1] and "70.0%" in text[1] and "top-k" in text[2] and "30.0%" in text[2]


def test_the_tops_are_headed_by_each_sides_model_shown_literally():
    a = step(1, "a", 0.6, (Candidate(1, "a", 0.6, 0.6, None),))
    head = tops_side_by_side(Position(0, a, a, 0.0, 0.0, 1, 1), names=("SmolLM2", "evil\x1b[2J[red]")).plain
    first = head.splitlines()[0]
    assert first.startswith("A SmolLM2") and "B evil" in first and "\x1b" not in first and "[red]" in first


def test_side_header_names_the_model_and_its_knobs():
    header = side_header("B", "GPT-2\nx", "temperature=1.5").plain
    assert header == "B: GPT-2 x · temperature=1.5"


def test_with_model_replaces_the_model_word_and_keeps_the_knobs():
    assert with_model("temperature=2 model=gpt2", "smollm2-360m") == "model=smollm2-360m temperature=2"
    assert with_model("model=gpt2 top-k=5", None) == "top-k=5"
    assert with_model("", "/a path/with spaces") == "'model=/a path/with spaces'"
    with pytest.raises(ValueError, match="can't read"):
        with_model("'unclosed", "gpt2")


def test_model_choices_offer_a_s_model_the_command_lines_and_the_catalogue():
    rows = [{"name": "gpt2", "display_name": "GPT-2", "family": "gpt2", "downloaded": True, "download_mb": 500, "fits": True},
            {"name": "big", "display_name": "Big", "family": "llama", "downloaded": False, "download_mb": None,
             "fits": False}]
    choices = model_choices("SmolLM2", rows, extra="/models/mine")
    assert [spec for spec, _ in choices] == [None, "/models/mine", "gpt2", "big"]
    assert "SmolLM2" in choices[0][1] and "downloaded" in choices[2][1]
    assert "downloads ? MB" in choices[3][1] and "too big" in choices[3][1]
    assert [spec for spec, _ in model_choices("A", rows, extra="gpt2")] == [None, "gpt2", "big"]  # listed once
