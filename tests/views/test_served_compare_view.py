"""The Compare screen's cells on a served model: a number where the distributions are known, ≥ where an unknown
tail was lumped, ? where the tail decides it; never a tail made up."""

import math

from llmtui.app.screens.compare.served_view import COLUMNS, divergence_cells, row, tops_side_by_side
from llmtui.engine.remote.comparison import Divergence, RemotePosition, divergence
from llmtui.engine.remote.session import Listed, step_record
from llmtui.engine.settings import SamplingSettings

LISTED = [(" Paris", 0.6), (" the", 0.2), (" a", 0.1)]  # 0.1 left to the unlisted tail


def served_step(settings: SamplingSettings, drawn: str = " Paris", listed=LISTED):
    top = [Listed(t, math.log(p), None) for t, p in listed]
    return step_record(0, 5, next(t for t in top if t.text == drawn), top, settings)


def position(a: SamplingSettings, b: SamplingSettings) -> RemotePosition:
    sa, sb = served_step(a), served_step(b)
    return RemotePosition(0, sa, sb, divergence(sa, sb))


def test_an_exact_divergence_is_a_plain_number():
    p = position(SamplingSettings(temperature=1, top_k=2), SamplingSettings(temperature=1, top_k=3))
    cells = [c.plain for c in row(p)]
    assert len(cells) == len(COLUMNS) and cells[0] == "0" and cells[1] == " Paris"
    assert cells[2] == "75.0%" and cells[4] == "66.7%"  # 0.6/0.8 and 0.6/0.9: known, the tail cut by top-k
    assert cells[5] == f"{math.log(0.75 / (0.6 / 0.9)) * 0.75 + math.log(0.25 / (0.2 / 0.9)) * 0.25:.3f}"


def test_two_unknown_tails_make_a_marked_lower_bound():
    """Both sides draw from the raw distribution (another model's, or another context's), each with a tail."""
    raw = SamplingSettings(temperature=1)
    a, b = served_step(raw), served_step(raw, listed=[(" Paris", 0.3), (" the", 0.3), (" Lyon", 0.2)])
    p = RemotePosition(0, a, b, divergence(a, b))
    assert p.divergence.kind == "lower bound"
    kl, tv = (c.plain for c in row(p)[5:7])
    assert kl.startswith("≥") and tv.startswith("≥")


def test_a_tail_that_decides_the_knobs_gives_a_question_mark_not_a_number():
    p = position(SamplingSettings(temperature=1), SamplingSettings(temperature=2))  # T 2 reweights the unknown tail
    cells = [c.plain for c in row(p)]
    assert cells[4] == "?" and cells[5] == "?" and cells[6] == "?"
    assert divergence_cells(Divergence(None, None, False)) == ("?", "?")
    assert divergence_cells(Divergence(math.inf, 0.5, True)) == ("inf", "0.50")


def test_an_ended_side_shows_no_divergence():
    a = served_step(SamplingSettings(temperature=1))
    cells = [c.plain for c in row(RemotePosition(4, a, None, Divergence(None, None, False)))]
    assert cells[3] == "(ended)" and cells[4] == "" and cells[5] == "" and cells[6] == ""


def test_the_tops_show_raw_and_after_knobs_and_the_unlisted_tail_as_known():
    text = tops_side_by_side(position(SamplingSettings(temperature=1, top_k=2), SamplingSettings(temperature=2)),
                             6, ("", "")).plain
    lines = text.splitlines()
    assert lines[0].split() == ["A", "B"] and lines[1].split() == ["raw", "knobs", "raw", "knobs"]
    paris = lines[2].split()
    assert paris[:3] == ["Paris", "60.0%", "75.0%"] and paris[3:] == ["Paris", "60.0%", "?"]
    assert lines[4].split()[2] == "top-k"  # A's top-k cuts " a"
    unlisted = lines[5].split()
    assert unlisted == ["(unlisted)", "10.0%", "cut", "(unlisted)", "10.0%", "?"]  # cut by A's top-k; open at B's T 2


def test_hostile_token_text_is_shown_literally():
    top = [Listed("[red]\x1b[2J\n", -0.5, None)]
    s = step_record(0, 0, top[0], top, SamplingSettings(temperature=1))
    cells = [c.plain for c in row(RemotePosition(0, s, s, divergence(s, s)))]
    assert "\x1b" not in cells[1] and "\n" not in cells[1]
