"""What the Compare screen shows, as pure functions of the study's records (no widgets here)."""

from __future__ import annotations

import math

from rich.text import Text

from llmtui.engine.generation import Step
from llmtui.engine.studies.compare import Position
from llmtui.engine.text import escape_controls

COLUMNS = ("#", "token A", "p A", "token B", "p B", "KL", "TV", "top-1")
TOKEN_WIDTH = 12
KL_STEPS = ((0.01, "dim"), (0.1, ""), (0.5, "yellow"), (math.inf, "bold red"))
"""Divergence in nats, coloured in bands: nothing to see, some, a lot, a different distribution."""


def token_cell(text: str) -> str:
    """A token as one line of literal text (newlines, escapes and markup shown, not obeyed)."""
    return escape_controls(repr(text)[1:-1], keep="")[:TOKEN_WIDTH]


def kl_style(kl: float | None) -> str:
    if kl is None:
        return "dim"
    return next(style for limit, style in KL_STEPS if kl < limit or limit == math.inf)


def percent(p: float | None) -> str:
    return "" if p is None else f"{p:.1%}"


def row(position: Position) -> tuple[Text, ...]:
    """The cells of one position, the tokens and the divergence coloured by how far the two sides differ."""
    style = kl_style(position.kl)
    kl = "" if position.kl is None else "inf" if position.kl == math.inf else f"{position.kl:.3f}"
    a, b = position.a, position.b
    return (
        Text(str(position.index)),
        Text(token_cell(a.text) if a else "", style=style),
        Text(percent(a.prob if a else None), justify="right"),
        Text(token_cell(b.text) if b else "", style=style),
        Text(percent(b.prob if b else None), justify="right"),
        Text(kl, style=style, justify="right"),
        Text("" if position.tv is None else f"{position.tv:.2f}", justify="right"),
        Text("differs" if position.top1_differs else "", style="bold" if position.top1_differs else ""),
    )


def tops_side_by_side(position: Position, n: int = 8) -> Text:
    """The top of both tables for one position: A's candidates beside B's, each with its probability after the knobs."""
    def lines(step: Step | None) -> list[str]:
        if step is None:
            return ["(ended)"]
        return [f"{token_cell(c.text):<{TOKEN_WIDTH}} {percent(c.prob) if c.cut_by is None else c.cut_by:>7}"
                for c in step.candidates[:n]]

    left, right = lines(position.a), lines(position.b)
    width = TOKEN_WIDTH + 8
    out = Text(f"{'A':<{width}}   B\n", style="bold")
    for i in range(max(len(left), len(right))):
        out.append(f"{left[i] if i < len(left) else '':<{width}}   {right[i] if i < len(right) else ''}\n")
    return out
