"""The branch tree of a served model's generations: the same tree as the local one, keyed by text.

A server that sends token texts without ids (the legacy completions format) gets stand-in ids
numbered per step (session.py), so two steps that took the same token may carry different ids:
steps are matched by their text instead. That is also what the server sees: a branch is
continued by sending its text as the prompt, so two branches with one text are one context.
The steps keep their top-N tables as received; nothing is re-asked to build the tree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

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
