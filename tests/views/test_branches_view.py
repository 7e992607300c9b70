"""The Branches screen's rows, from a hand-made tree."""

import math

from llmtui.app.screens.branches.view import COLUMNS, rows, toggle_mark
from llmtui.engine.branches import BranchTree
from llmtui.engine.generation import Step
from llmtui.engine.settings import SamplingSettings


def steps(tokens, prob=0.5):
    return [Step(i, 2 + i, t, str(t), prob, prob, (), SamplingSettings()) for i, t in enumerate(tokens)]


def test_one_row_per_branch_with_length_log_p_and_the_current_marked():
    tree = BranchTree([0, 1], lambda ids: "".join("ab\n\x1b"[i % 4] for i in ids))
    first = tree.add(steps([1, 2, 3]))
    second = tree.add(steps([1, 3], prob=0.25))
    tree.rename(first, "[bold]mine")
    cells = {node: [c.plain for c in row] for node, row in rows(tree)}
    assert list(cells) == [first, second] and len(cells[first]) == len(COLUMNS)
    assert cells[first][:6] == [" ", "", "[bold]mine", "3", f"{3 * math.log(0.5):.2f}", f"{math.log(0.5):.2f}"]
    assert cells[second][0] == "▶" and cells[second][2] == f"#{second}"
    assert cells[first][6].startswith("b↵")
    assert "\n" not in cells[first][6] and "\x1b" not in cells[first][6]
    marked = {node: [c.plain for c in row] for node, row in rows(tree, [second, first])}
    assert marked[second][1] == "A" and marked[first][1] == "B"


def test_at_most_two_marks_a_third_drops_the_oldest_and_a_second_press_unmarks():
    assert toggle_mark([], 3) == [3]
    assert toggle_mark([3], 5) == [3, 5]
    assert toggle_mark([3, 5], 7) == [5, 7]
    assert toggle_mark([3, 5], 3) == [5]


def test_a_branch_holding_text_a_served_model_did_not_score_shows_its_log_p_as_unknown():
    """An unscored step (raw_prob nan) makes the branch's log p unknown: "?", never -inf, and null in JSON."""
    tree = BranchTree([0, 1], lambda ids: "x" * len(ids))
    scored = tree.add(steps([1, 2]))
    unscored = Step(2, 4, -1, ", a city", math.nan, None, (), SamplingSettings(), forced=True)
    mixed = tree.add([*steps([1]), unscored])
    cells = {node: [c.plain for c in row] for node, row in rows(tree)}
    assert cells[mixed][4:6] == ["?", "?"]
    assert cells[scored][4] == f"{2 * math.log(0.5):.2f}"
    listed = {b["node"]: b for b in tree.to_json()["branches"]}
    assert listed[mixed]["logprob"] is None and listed[mixed]["logprob_per_token"] is None
    assert listed[scored]["logprob"] == 2 * math.log(0.5)
