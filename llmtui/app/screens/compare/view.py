"""What the Compare screen shows, as pure functions of the study's records (no widgets here)."""

from __future__ import annotations

import math
import shlex
from collections.abc import Iterable, Mapping

from rich.text import Text

from llmtui.engine.generation import Step
from llmtui.engine.settings import SamplingSettings
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


def tops_side_by_side(position: Position, n: int = 8, names: tuple[str, str] = ("", "")) -> Text:
    """The top of both tables for one position: A's candidates beside B's, each with its probability after the knobs;
    each column headed by its side and, where given, its model's name."""
    def lines(step: Step | None) -> list[str]:
        if step is None:
            return ["(ended)"]
        return [f"{token_cell(c.text):<{TOKEN_WIDTH}} {percent(c.prob) if c.cut_by is None else c.cut_by:>7}"
                for c in step.candidates[:n]]

    left, right = lines(position.a), lines(position.b)
    width = TOKEN_WIDTH + 8
    head_a, head_b = (one_line(f"{side} {name}".strip(), width) for side, name in zip("AB", names))
    out = Text(f"{head_a:<{width}}   {head_b}\n", style="bold")
    for i in range(max(len(left), len(right))):
        out.append(f"{left[i] if i < len(left) else '':<{width}}   {right[i] if i < len(right) else ''}\n")
    return out


def one_line(text: str, width: int) -> str:
    """A name or a label on one line, literally, cut to `width` cells with … where cut."""
    text = escape_controls(text.replace("\n", " "), keep="")
    return text if len(text) <= width else text[: width - 1] + "…"


def side_header(side: str, model: str, knobs: str) -> Text:
    """A column's header: which side, its model, its knobs (a model name can hold anything: shown literally)."""
    out = Text(f"{side}: ", style="bold")
    out.append(one_line(model, 60), style="bold")
    out.append(f" · {one_line(knobs, 200)}")
    return out


def with_model(words: str, spec: str | None) -> str:
    """B's knob words with their model word replaced by `model=spec` (None: none, B is A's model).
    ValueError when the words can't be read (an unclosed quote): they are the user's, kept as typed."""
    try:
        kept = [w for w in shlex.split(words) if not w.startswith("model=")]
    except ValueError as err:
        raise ValueError(f"can't read B's words {words!r}: {err}") from None
    if spec is not None:
        kept.insert(0, f"model={spec}")
    return shlex.join(kept)


def model_choices(a_name: str, rows: Iterable[Mapping[str, object]], extra: str | None = None) -> list[tuple[str | None, str]]:
    """What B's model can be: A's own (None), `extra` (the --model-b spec, when not in the catalogue), then each
    catalogue model (a row of `fetch.describe`) with its family, whether it is downloaded and whether it fits."""
    out: list[tuple[str | None, str]] = [(None, f"A's model ({a_name}): two settings of one model")]
    rows = list(rows)
    if extra is not None and extra not in {r["name"] for r in rows}:
        out.append((extra, f"{extra} (from --model-b)"))
    for r in rows:
        where = "downloaded" if r["downloaded"] else f"downloads {r['download_mb'] or '?'} MB"
        fits = "; too big for this machine" if r["fits"] is False else ""
        out.append((str(r["name"]), f"{r['display_name']} · {r['family']} · {where}{fits}"))
    return out


def default_b(settings: SamplingSettings, model_b: str | None = None) -> str:
    """A first B worth looking at: another model under the same knobs (--model-b), else the same knobs, hotter
    (or, when A is hot, colder)."""
    if model_b is not None:
        return with_model("", model_b)
    return "temperature=0.3" if settings.temperature > 1 else f"temperature={max(1.0, settings.temperature * 2):g}"
