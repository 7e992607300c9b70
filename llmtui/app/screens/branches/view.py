"""What the Branches screen lists, as pure functions of the tree (no widgets here)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.text import Text

from llmtui.engine.branches import Branch, BranchTree
from llmtui.engine.text import escape_controls

COLUMNS = ("", "cmp", "name", "tokens", "log p", "per token", "text")
TEXT_WIDTH = 60


def one_line(text: str, width: int = TEXT_WIDTH) -> str:
    """A branch's text on one line, literally (newlines as ↵, escapes and markup shown, not obeyed)."""
    return escape_controls(text.replace("\n", "↵"), keep="")[:width]


def label(branch: Branch) -> str:
    """A branch as the user knows it: its name, or its number."""
    return one_line(branch.name, 20) or f"#{branch.node}"


def _number(value: float) -> str:
    """A log p, or "?" where the branch holds text a served model did not score."""
    return "?" if math.isnan(value) else f"{value:.2f}"


def row(branch: Branch, current: bool, mark: str = "") -> tuple[Text, ...]:
    return (
        Text("▶" if current else " ", style="bold"),
        Text(mark, style="bold reverse" if mark else ""),
        Text(label(branch)),
        Text(str(branch.length), justify="right"),
        Text(_number(branch.logprob), justify="right"),
        Text(_number(branch.logprob_per_token), justify="right"),
        Text(one_line(branch.text)),
    )


def rows(tree: BranchTree, marked: Sequence[int] = ()) -> list[tuple[int, tuple[Text, ...]]]:
    """Every branch (node id, cells), the one the pane shows pointed at, the ones marked to compare as A and B."""
    return [(b.node, row(b, b.node == tree.current, "AB"[marked.index(b.node)] if b.node in marked else ""))
            for b in tree.branches()]


def toggle_mark(marked: Sequence[int], node: int) -> list[int]:
    """Marks for Compare after marking (or unmarking) `node`: at most two, a third mark drops the oldest."""
    if node in marked:
        return [m for m in marked if m != node]
    return [*marked, node][-2:]
