"""The Tokenizer's text editor: a PromptEditor (controls drawn as symbols) that tells the pane of each edit at once."""

from __future__ import annotations

from collections.abc import Callable

from textual.widgets.text_area import Edit, EditResult

from llmtui.app.widgets.prompt_editor import PromptEditor

__all__ = ["TextEditor"]


class TextEditor(PromptEditor):
    """A PromptEditor that calls `after_edit` right after each edit.

    `after_edit`, when set, is called right after each edit, before the screen is next drawn,
    so that what depends on the text can change in the same frame as the text. (The Changed
    message arrives a few hops later, often after a frame that shows the new text with the
    old tokens.)
    """

    after_edit: Callable[[], None] | None = None

    def edit(self, edit: Edit) -> EditResult:
        result = super().edit(edit)
        if self.after_edit is not None:
            self.after_edit()
        return result
