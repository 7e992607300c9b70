"""A chat as data: an editable system prompt and the turns so far, rendered through the model's template.

The model only ever continues text: `prompt_ids` is the template's rendering of the system
prompt, every earlier turn and the new user message, ending where the assistant writes.
Any turn can be edited and the chat re-run from it (`rerun_from`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmtui.engine.lm import LanguageModel

_SYSTEM, _USER = "\x00llmtui-system\x00", "\x00llmtui-user\x00"


@dataclass
class Turn:
    user: str
    assistant: str = ""


@dataclass
class Chat:
    """The system prompt (None: the template's own default, if it has one) and the turns so far."""

    system: str | None = None
    turns: list[Turn] = field(default_factory=list)

    def messages(self, user_text: str | None = None) -> list[dict[str, str]]:
        """The chat as role/content messages, ending with `user_text` as a new user message when given."""
        out = [] if self.system is None else [{"role": "system", "content": self.system}]
        for turn in self.turns:
            out += [{"role": "user", "content": turn.user}, {"role": "assistant", "content": turn.assistant}]
        if user_text is not None:
            out.append({"role": "user", "content": user_text})
        return out

    def prompt_ids(self, lm: LanguageModel, user_text: str) -> list[int]:
        """The token ids the model continues to answer `user_text` after this chat."""
        history = self.messages()
        return lm.encode_chat(user_text, history)

    def prompt_text(self, lm: LanguageModel, user_text: str) -> str:
        """The raw template text (special tokens as text) the model continues: what the template view shows."""
        return lm.tokenizer.apply_chat_template(self.messages(user_text), add_generation_prompt=True)

    def copy(self) -> Chat:
        """Another chat with the same system prompt and turns, to edit without touching this one."""
        return Chat(self.system, [Turn(t.user, t.assistant) for t in self.turns])

    @classmethod
    def of_history(cls, system: str | None, history: Sequence[tuple[str, str]]) -> Chat:
        """A chat from (user, assistant) pairs, as the Generate pane keeps its turns."""
        return cls(system, [Turn(u, a) for u, a in history])

    def history(self) -> tuple[tuple[str, str], ...]:
        """The turns as (user, assistant) pairs."""
        return tuple((t.user, t.assistant) for t in self.turns)

    def add(self, user_text: str, assistant_text: str) -> None:
        self.turns.append(Turn(user_text, assistant_text))

    def rerun_from(self, index: int, user_text: str | None = None) -> str:
        """Drop turn `index` and every later one; return its user text (or `user_text`, an edit) to send again."""
        if not 0 <= index < len(self.turns):
            raise IndexError(f"no turn {index}: the chat has {len(self.turns)} turns")
        text = self.turns[index].user if user_text is None else user_text
        del self.turns[index:]
        return text

    def to_json(self) -> dict[str, Any]:
        return {"system": self.system, "turns": [{"user": t.user, "assistant": t.assistant} for t in self.turns]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Chat:
        system = data.get("system")
        if system is not None and not isinstance(system, str):
            raise ValueError("a chat's system prompt must be text")
        turns = data.get("turns", [])
        if not isinstance(turns, list) or not all(
            isinstance(t, dict) and isinstance(t.get("user"), str) and isinstance(t.get("assistant", ""), str)
            for t in turns
        ):
            raise ValueError("a chat's turns must be a list of {user, assistant} texts")
        return cls(system, [Turn(t["user"], t.get("assistant", "")) for t in turns])


def default_system_prompt(lm: LanguageModel) -> str | None:
    """The system prompt the template adds when the chat gives none (SmolLM2's names itself), or None.

    Found by rendering the template with a marker as the system prompt and without one: the text the
    template puts where the marker was is its default."""
    template = lm.tokenizer.apply_chat_template
    with_marker = template([{"role": "system", "content": _SYSTEM}, {"role": "user", "content": _USER}])
    without = template([{"role": "user", "content": _USER}])
    if _SYSTEM not in with_marker:
        return None
    before, after = with_marker.split(_SYSTEM, 1)
    after = after.split(_USER, 1)[0]
    if not without.startswith(before):
        return None
    rest = without[len(before) :]
    end = rest.find(after)
    return rest[:end] if end > 0 else None
