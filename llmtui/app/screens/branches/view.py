"""What the Branches screen lists, as pure functions of the tree (no widgets here)."""

from __future__ import annotations

from rich.text import Text

from llmtui.engine.branches import Branch, BranchTree
from llmtui.engine.text import escape_controls

COLUMNS = ("", "name", "tokens", "log p", "per token", "text")
TEXT_WIDTH = 60


def one_line(text: str, width: int = TEXT_WIDTH) -> str:
    """A branch's text on one line, literally (newlines as ↵, escapes and markup shown, not obeyed)."""
    return escape_controls(text.replace("\n", "↵"), keep="")[:width]


def row(branch: Branch, current: bool) -> tuple[Text, ...]:
    return (
        Text("▶" if current else " ", style="bold"),
        Text(one_line(branch.name, 20) or f"#{branch.node}"),
        Text(str(branch.length), justify="right"),
        Text(f"{branch.logprob:.2f}", justify="right"),
        Text(f"{branch.logprob_per_token:.2f}", justify="right"),
        Text(one_line(branch.text)),
    )


def rows(tree: BranchTree) -> list[tuple[int, tuple[Text, ...]]]:
    """Every branch (node id, cells), the one the pane shows marked."""
    return [(b.node, row(b, b.node == tree.current)) for b in tree.branches()]
