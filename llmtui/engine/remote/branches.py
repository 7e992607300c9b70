"""The branch tree of a served model's generations: the same tree as the local one, keyed by text.

A server that sends token texts without ids (the legacy completions format) gets stand-in ids
numbered per step (session.py), so two steps that took the same token may carry different ids:
steps are matched by their text instead. That is also what the server sees: a branch is
continued by sending its text as the prompt, so two branches with one text are one context.
The steps keep their top-N tables as received; nothing is re-asked to build the tree. A session
file (JSON, as the local tree's) is marked `served` and holds the prompt as text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

from llmtui.engine.branches import BranchTree

if TYPE_CHECKING:
    from llmtui.engine.generation import Step


class ServedBranchTree(BranchTree):
    """Every generation, fork and continuation of one prompt on one served model (`model`: its name @ endpoint)."""

    def __init__(self, prompt: str, *, model: str, chat: bool = False) -> None:
        super().__init__([], lambda ids: "", model=model)
        self.prompt = prompt
        self.chat = chat  # a chat message's replies and a plain prompt's continuations are different trees

    def same_token(self, a: Step, b: Step) -> bool:
        return a.text == b.text

    def text_of(self, steps: Sequence[Step]) -> str:
        return "".join(s.text for s in steps)

    @property
    def prompt_text(self) -> str:
        return self.prompt

    def grows_from(self, prompt: str, chat: bool) -> bool:
        """Whether a generation from this prompt belongs in this tree."""
        return self.prompt == prompt and self.chat == chat

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "served": True, "chat": self.chat}

    @classmethod
    def _empty_from_json(cls, data: Any, decode: Callable[[list[int]], str]) -> ServedBranchTree:
        if not data.get("served"):
            raise ValueError("that session was made on a local model: its token ids mean nothing to a server")
        return cls(str(data["prompt"]), model=str(data.get("model", "")), chat=bool(data.get("chat", False)))
