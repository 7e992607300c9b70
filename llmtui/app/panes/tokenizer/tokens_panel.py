"""The Tokenizer pane's lower half: the counts line, the token chips, and the selected token's details."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from llmtui.app.messages import ShowTokenInEmbeddings
from llmtui.app.panes.base import MessageKind
from llmtui.app.panes.tokenizer import view
from llmtui.app.panes.tokenizer.encodings import MODEL
from llmtui.app.widgets.token_chips import TokenChips


class TokensPanel(Vertical):
    """Counts over chips over details; enter on one of the model's tokens opens it in the Embeddings pane."""

    DEFAULT_CSS = "TokensPanel { height: 1fr; }"

    def compose(self) -> ComposeResult:
        yield Static(id="tok-info")
        chips = TokenChips(id="tok-chips")
        chips.border_title = "Tokens"
        chips.border_subtitle = "· space  ↵ newline  → tab  <0xF0> a byte of a character"
        yield chips
        yield Static(id="tok-detail")

    def on_mount(self) -> None:
        self.watch(self.chips, "selected", self.show_detail, init=False)

    @property
    def chips(self) -> TokenChips:
        return self.query_one("#tok-chips", TokenChips)

    def say(self, text: Text | str, kind: MessageKind = "info") -> None:
        """The counts line, which may hold up to three lines (problems with pasted ids)."""
        line = self.query_one("#tok-info", Static)
        # One line, except problems with pasted ids (up to three): a fixed height spares the
        # screen a layout pass at every keystroke.
        grows = kind == "error" or line.has_class("-error")
        line.set_class(kind == "error", "-error")
        line.update(text if isinstance(text, Text) else Text(text), layout=grows)

    def show_detail(self, selected: int | None = None) -> None:
        """The details of the selected chip (default: the one selected now)."""
        chips, detail = self.chips, self.query_one("#tok-detail", Static)
        selected = chips.selected if selected is None else selected
        section, index = chips.locate(selected) if selected is not None and chips.total else (None, 0)
        if section is None or section.tokens is None:
            detail.update("", layout=False)
            return
        label = chips.chip_label(section.tokenizer, section.tokens.ids[index], section.tokens.chunks[index])
        line = view.detail_line(section.tokens, index, label, section.key == MODEL, chips.has_focus)
        detail.update(line, layout=False)  # its height is fixed

    def advance(self) -> bool:
        """The next token (presentation mode); False after the last."""
        chips = self.chips
        if not chips.total or chips.selected == chips.total - 1:
            return False
        chips.select(0 if chips.selected is None else chips.selected + 1)
        return True

    @on(TokenChips.Opened)
    def _opened(self, event: TokenChips.Opened) -> None:
        event.stop()
        section, index = event.section, event.index
        if section.tokens is None:
            return
        if section.key != MODEL:
            self.notify(
                f"Only the model's own tokens have embeddings; id {section.tokens.ids[index]} is {section.key}'s. "
                "F2 switches to the model's tokenizer.",
                title="Not the model's token",
                severity="warning",
            )
            return
        data = section.tokens.chunks[index]
        self.post_message(ShowTokenInEmbeddings(section.tokens.ids[index], data.decode("utf-8", errors="replace")))
