"""A one-line picker for a word of several tokens: use their mean, or one of them.

    Use:  mean of 2  ␣ban  ana

Left/right (when focused) or a click picks; each change posts `TokenChoice.Changed`.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget


class TokenChoice(Widget, can_focus=True):
    """Which vector stands for a word of several tokens: None (their mean) or a token's index."""

    DEFAULT_CSS = """
    TokenChoice {
        height: 1;
        padding: 0 1;
        & > .choice--label { color: $text-muted; }
        & > .choice--option { color: $text; }
        & > .choice--selected { background: $primary; color: $text; text-style: bold; }
        &:focus > .choice--selected { background: $block-cursor-background; color: $block-cursor-foreground; }
        &:focus > .choice--label { color: $text; }
    }
    """

    COMPONENT_CLASSES = {"choice--label", "choice--option", "choice--selected"}

    BINDINGS = [
        Binding("left", "move(-1)", "Previous token", show=False),
        Binding("right", "move(1)", "Next token", show=False),
    ]

    choice: reactive[int | None] = reactive(None)
    """None: the mean of the tokens; an index: that token alone."""

    class Changed(Message):
        """The user picked another option."""

        def __init__(self, choice: int | None) -> None:
            self.choice = choice
            super().__init__()

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._labels: tuple[str, ...] = ()

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    def set_tokens(self, labels: Sequence[str], choice: int | None = None) -> None:
        """The word's tokens (safe labels); shows the picker when there are several."""
        self._labels = tuple(labels)
        self.set_reactive(TokenChoice.choice, choice)
        self.display = len(self._labels) > 1
        self.refresh()

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("Use: ", self.get_component_rich_style("choice--label"))
        options: list[tuple[int | None, str]] = [(None, f"mean of {len(self._labels)}")]
        options += list(enumerate(self._labels))
        for value, label in options:
            style = self.get_component_rich_style("choice--selected" if value == self.choice else "choice--option")
            text.append(f" {label} ", style + Style(meta={"choice": -1 if value is None else value}))
            text.append(" ")
        text.append("  ←/→ picks", self.get_component_rich_style("choice--label"))
        return text

    def pick(self, choice: int | None) -> None:
        """Choose as a user would (posts Changed)."""
        if choice != self.choice:
            self.choice = choice
            self.post_message(self.Changed(choice))

    def action_move(self, step: int) -> None:
        values: list[int | None] = [None, *range(len(self._labels))]
        i = values.index(self.choice) if self.choice in values else 0
        self.pick(values[max(0, min(len(values) - 1, i + step))])

    def on_click(self, event: events.Click) -> None:
        value = event.style.meta.get("choice")
        if value is not None:
            event.stop()
            self.pick(None if value == -1 else int(value))
