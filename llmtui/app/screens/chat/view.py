"""What the chat turns screen lists, as pure functions of the chat (no widgets here)."""

from __future__ import annotations

from rich.text import Text

from llmtui.engine.chat import Chat
from llmtui.engine.text import escape_controls

COLUMNS = ("#", "user", "assistant")
WIDTH = 40


def one_line(text: str, width: int = WIDTH) -> str:
    """A message on one line, literally (newlines as ↵, escapes and markup shown, not obeyed), cut with …."""
    text = escape_controls(text.replace("\n", "↵"), keep="")
    return text if len(text) <= width else text[: width - 1] + "…"


def rows(chat: Chat) -> list[tuple[Text, ...]]:
    """One row per turn: its number, what the user said, what the assistant answered."""
    return [(Text(str(i + 1), justify="right"), Text(one_line(t.user)), Text(one_line(t.assistant) or "(no reply)",
                                                                         style="" if t.assistant else "dim"))
            for i, t in enumerate(chat.turns)]


def system_line(chat: Chat, default: str | None, served: bool = False) -> Text:
    """The system prompt the chat runs with: its own, or the template's (which may be none; a served model's is
    the server's business, unknown here)."""
    if chat.system is not None:
        return Text(f"System: {one_line(chat.system, 200)}")
    if served:
        return Text("System: none sent (the server's template decides)", style="dim")
    return Text(f"System: the template's own ({one_line(default, 200)})" if default else
                "System: none (this template adds none)", style="dim")
