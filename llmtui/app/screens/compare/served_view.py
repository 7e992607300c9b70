"""What the Compare screen shows on a served model, as pure functions of engine/remote/comparison.py's records.

A server lists only its top N candidates, so a divergence is a number where both distributions
are known, a marked lower bound (≥) where an unknown tail was lumped into one outcome, and `?`
where the knobs' probabilities depend on how the tail is spread: never an invented tail.
"""

from __future__ import annotations

import math

from rich.text import Text

from llmtui.app.screens.compare.view import TOKEN_WIDTH, kl_style, one_line, percent, token_cell
from llmtui.engine.generation import Step
from llmtui.engine.remote.comparison import Divergence, RemotePosition, drawn_from

COLUMNS = ("#", "token A", "p A", "token B", "p B", "KL", "TV", "top-1")
LEGEND = ("p: after the knobs (? where the unlisted tail decides it) · KL ≥: a lower bound, the unlisted tail "
          "lumped into one outcome · KL ?: unknown, the tail beyond the top-N decides it")


def divergence_cells(d: Divergence) -> tuple[str, str]:
    """KL and TV as shown: the number, ≥ the number where it is a lower bound, ? where it is unknown."""
    if d.kl is None or d.tv is None:
        return "?", "?"
    mark = "" if d.exact else "≥"
    kl = "inf" if d.kl == math.inf else f"{d.kl:.3f}"
    return mark + kl, f"{mark}{d.tv:.2f}"


def prob_cell(step: Step | None) -> str:
    """A side's probability of its token after its knobs; ? where the unlisted tail decides it; blank once ended."""
    if step is None:
        return ""
    return "?" if step.prob is None else percent(step.prob)


def row(position: RemotePosition) -> tuple[Text, ...]:
    """The cells of one position; tokens coloured by the divergence where it is known (dim where it is not)."""
    d = position.divergence
    style = kl_style(d.kl)
    kl, tv = divergence_cells(d)
    if position.a is None or position.b is None:
        kl, tv = "", ""  # one side has ended: nothing to compare there
    a, b = position.a, position.b
    return (
        Text(str(position.index)),
        Text(token_cell(a.text) if a else "(ended)", style=style),
        Text(prob_cell(a), justify="right"),
        Text(token_cell(b.text) if b else "(ended)", style=style),
        Text(prob_cell(b), justify="right"),
        Text(kl, style=style, justify="right"),
        Text(tv, justify="right"),
        Text("differs" if position.top1_differs else "", style="bold" if position.top1_differs else ""),
    )


def _lines(step: Step | None, n: int) -> list[str]:
    """A side's listed candidates: the raw probability as the server sent it, then what the knobs do to it."""
    if step is None:
        return ["(ended)"]
    out = []
    for c in step.candidates[:n]:
        after = c.cut_by if c.cut_by is not None else "?" if c.prob is None else percent(c.prob)
        out.append(f"{token_cell(c.text):<{TOKEN_WIDTH}} {percent(c.raw_prob):>6} {after:>6}")
    if step.unlisted is not None:
        known = drawn_from(step)
        tail = "?" if known is None else "cut" if known[1] == 0 and step.unlisted > 0 else percent(known[1])
        out.append(f"{'(unlisted)':<{TOKEN_WIDTH}} {percent(step.unlisted):>6} {tail:>6}")
    return out


def tops_side_by_side(position: RemotePosition, n: int, names: tuple[str, str]) -> Text:
    """Both sides' listed candidates for one position, each column headed by its side and model, then `raw  knobs`."""
    left, right = _lines(position.a, n), _lines(position.b, n)
    width = TOKEN_WIDTH + 14
    head_a, head_b = (one_line(f"{side} {name}".strip(), width) for side, name in zip("AB", names))
    sub = f"{'':<{TOKEN_WIDTH}} {'raw':>6} {'knobs':>6}"
    out = Text(f"{head_a:<{width}}   {head_b}\n", style="bold")
    out.append(f"{sub:<{width}}   {sub}\n", style="dim")
    for i in range(max(len(left), len(right))):
        out.append(f"{left[i] if i < len(left) else '':<{width}}   {right[i] if i < len(right) else ''}\n")
    return out
