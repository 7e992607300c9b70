"""Print the README's table of keys per pane, made from the panes' BINDINGS and the app's keys (tests check it matches).

    .venv/bin/python scripts/keys_table.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from textual.binding import Binding

from llmtui.app.app import APP_KEYS
from llmtui.app.panes import PANES


def _key(binding: Binding) -> str:
    if binding.key_display:
        return binding.key_display
    return ", ".join(k.strip() for k in binding.key.split(","))


def keys_table() -> str:
    """Markdown: one row per described key, pane by pane, then the keys that work everywhere."""
    lines = ["| pane | keys | what they do |", "| --- | --- | --- |"]
    for pane in PANES:
        keys: dict[str, list[str]] = {}  # by description: "Step" on f6 and on n, space is one row
        what: dict[str, str] = {}
        for b in pane.BINDINGS:
            b = b if isinstance(b, Binding) else Binding(*b)
            if b.description:
                keys.setdefault(b.description, []).append(_key(b))
                if b.tooltip and b.description not in what:
                    what[b.description] = b.tooltip
        for description, ks in keys.items():
            lines.append(f"| {pane.TITLE} | `{'`, `'.join(ks)}` | {_cell(what.get(description, description))} |")
    for ks, description in APP_KEYS:
        lines.append(f"| every pane | `{ks}` | {_cell(description)} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


if __name__ == "__main__":
    print(keys_table(), end="")
