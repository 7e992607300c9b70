"""The Compare screen's cells, from hand-made positions."""

import math

from llmtui.app.screens.compare.view import COLUMNS, kl_style, row, tops_side_by_side
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
