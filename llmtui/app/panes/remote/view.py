"""What the served-model panes show (the status line, the Tokenizer's chips, the weights line): pure functions.

The Generate pane draws a served model's steps with its own view (panes/generate/view.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from rich.style import Style
from rich.text import Text

from llmtui.app.display import table_label
from llmtui.engine.text import escape_controls

if TYPE_CHECKING:
    from llmtui.engine.remote.client import RemoteModel
    from llmtui.engine.remote.session import Traffic


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
