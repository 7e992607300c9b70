"""What the served-model panes show, as pure functions of engine records (tested without a terminal)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from rich.style import Style
from rich.text import Text

from llmtui.app.display import table_label
from llmtui.app.palette import prob_style
from llmtui.app.widgets.prob_table import TableView, percent
from llmtui.app.widgets.token_text import Piece
from llmtui.engine.remote import UNDECIDED
from llmtui.engine.text import escape_controls

if TYPE_CHECKING:
    from llmtui.engine.generation import Step
    from llmtui.engine.remote.client import RemoteModel
    from llmtui.engine.remote.session import Traffic

UNKNOWN_STYLE = Style(dim=True, italic=True)
"""A token whose probability after the knobs the server's list does not decide."""


def output_pieces(steps: Sequence[Step], by_model: bool) -> list[Piece]:
    """The generated tokens, coloured by the model's probability or (where decided) the one after the knobs."""
    pieces = []
    for i, step in enumerate(steps):
        p = step.raw_prob if by_model else step.prob
        style = prob_style(p) if p is not None else UNKNOWN_STYLE
        if step.forced:
            style += Style(underline=True, italic=True)
        pieces.append(Piece(escape_controls(step.text, keep="\n").replace("\n", "↵\n"), style, i))
    return pieces


def step_table(step: Step, n_steps: int) -> TableView:
    """One step's listed candidates, titled with the drawn token and the mass the server did not list."""
    how = "forced" if step.forced else f"drew {table_label(step.text)}"
    unlisted = f" · {percent(step.unlisted)} unlisted" if step.unlisted is not None else ""
    return TableView(
        title=f"Token {step.index + 1} of {n_steps} · {how}{unlisted}",
        index=step.index,
        candidates=step.candidates,
        labels=tuple(table_label(c.text) for c in step.candidates),
        drawn=step.token_id,
        settings=step.settings,
    )


def undecided_note(step: Step) -> str | None:
    """Why some rows show '?', in one line; None when every row is decided."""
    if not any(c.cut_by == UNDECIDED or c.prob is None for c in step.candidates):
        return None
    if step.settings.repetition_penalty != 1:
        return "?: a repetition penalty moves tokens the server did not list, so their fate is unknown"
    tail = percent(step.unlisted) if step.unlisted is not None else "some"
    return f"?: decided by the {tail} the server did not list (its tail is unknown, never guessed)"


def status_text(remote: RemoteModel, traffic: Traffic | None) -> str:
    """'model @ http://host:port · 120 ms · 31.2 tok/s' (the round trip to the first token, then the rate)."""
    text = escape_controls(remote.name, keep="")
    if traffic is not None:
        text += f" · {traffic.latency_s * 1000:.0f} ms"
        if traffic.tokens_per_s is not None:
            text += f" · {traffic.tokens_per_s:.1f} tok/s"
    return text


def token_chips(pairs: Sequence[tuple[int, str]]) -> Text:
    """The server's tokens as alternately shaded chips, each followed by its id: text shown literally."""
    out = Text(no_wrap=False)
    shades = (Style(bgcolor="#264f78"), Style(bgcolor="#5a3d73"))
    for n, (token_id, piece) in enumerate(pairs):
        out.append(table_label(piece) or "∅", shades[n % 2])
        out.append(f" {token_id}  ", Style(dim=True))
    return out


def needs_weights_line(title: str) -> str:
    return (f"The {title} pane reads the model's weights and internals, which a served model does not expose: "
            "press o to open the default model here (or start llmtui with --model).")
