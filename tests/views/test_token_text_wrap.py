"""The output's line layout: laying out pieces that continue earlier lines gives what laying out all of them gives."""

from __future__ import annotations

import random

import pytest
from rich.style import Style

from llmtui.app.widgets.token_text import Piece, wrap

TEXTS = ["Hello", " world", ",", "\n", "", " ", "↵\n", "日本", "語", " a-very-long-token-that-spans-lines", "\n\n",
         " x", "é", "😀", "  ", "tab\tlike", " end."]


@pytest.mark.parametrize("seed", range(40))
def test_a_continued_layout_equals_a_whole_one(seed):
    rng = random.Random(seed)
    width = rng.choice([1, 2, 5, 11, 20, 80])
    pieces = [Piece(rng.choice(TEXTS), Style(bold=i % 2 == 0), i) for i in range(rng.randint(0, 60))]
    whole = wrap(pieces, width)
    # the same pieces, laid out a few at a time as a stream's frames bring them
    lines = wrap([], width)
    at = 0
    while at < len(pieces):
        n = rng.randint(1, 7)
        before = [list(line) for line in lines]
        lines = wrap(pieces[at:at + n], width, after=lines)
        assert [list(line) for line in lines[: len(before) - 1]] == before[:-1]
        at += n
    assert lines == whole


def test_continuing_leaves_the_earlier_lines_as_they_were():
    """The lines handed in are not changed (the widget compares old and new lines to redraw only what changed)."""
    first = wrap([Piece("abc", step=0)], 10)
    snapshot = [list(line) for line in first]
    wrap([Piece("defgh", step=1), Piece("ijklmnop", step=2)], 10, after=first)
    assert first == snapshot
