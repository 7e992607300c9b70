"""What every pane shares: its id, title, help text, keys, and the hooks the shell calls.

A new pane is a subclass of `Pane` in its own module, added to `PANES` in
`llmtui/app/panes/__init__.py`: the shell builds its tab, its number key, its help
screen and its command-palette entries from the class attributes below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, ClassVar

from textual.binding import Binding
from textual.containers import Vertical

from llmtui.app.messages import ModelReady
from llmtui.app.widgets.text_box import is_text_box

if TYPE_CHECKING:
    from llmtui.app.selection import TokenSelection
    from llmtui.engine.lm import LanguageModel


class Pane(Vertical):
    """One concept of the model, shown in one tab."""

    PANE_ID: ClassVar[str]
    """The pane's id, also its name on the command line (--pane)."""
    TITLE: ClassVar[str]
    """The tab's label."""
    SHORT_TITLE: ClassVar[str]
    """The tab's label on a terminal too narrow for every TITLE (at most 6 characters)."""
    HELP: ClassVar[str]
    """Two or three plain sentences: the concept the pane shows and the keys it takes."""

    def __init__(self) -> None:
        super().__init__(id=self.PANE_ID, classes="pane")
        self.lm: LanguageModel | None = None

    def on_model_ready(self, message: ModelReady) -> None:
        self.lm = message.lm
        self.model_ready(message.lm)

    # -- hooks for subclasses --------------------------------------------------------------

    def model_ready(self, lm: LanguageModel) -> None:
        """The model is loaded: start showing things."""

    def set_prompt(self, text: str) -> None:
        """Text from the command line (--prompt) to open with."""

    def follow_selection(self, selection: TokenSelection) -> None:
        """The app's current token changed in another pane (or the user switched here): show it, if it applies."""

    def advance(self) -> bool:
        """The advance key (presentation mode, demos): the pane's next step; False when it has none."""
        return False

    def export_data(self) -> dict | None:
        """The data behind the view, as plain JSON-able values (None: nothing shown yet)."""
        return None

    def export_table(self) -> tuple[list[str], list[list]] | None:
        """The view's main table (header, rows) for Markdown and CSV; None when it has none."""
        return None

    def focus_default(self) -> None:
        """Focus the pane's main widget when the pane is shown."""
        for widget in self.query("*"):
            if widget.focusable:
                widget.focus()
                return

    def focus_main(self) -> None:
        """Focus the pane's first widget on screen that is not a text box (pane switches, Escape from a text box)."""
        self._focus_first(lambda widget: not is_text_box(widget))

    def leave_text(self) -> None:
        """Escape in one of the pane's text boxes: back to its main widget."""
        self.focus_main()

    def focus_text(self) -> None:
        """Put the cursor in the pane's first text box on screen (ctrl+l in every pane)."""
        self._focus_first(is_text_box)

    def _focus_first(self, wanted: Callable[[object], bool]) -> None:
        mine = [w for w in self.screen.focus_chain if self in w.ancestors]
        target = next((w for w in mine if wanted(w)), None)
        if target is not None:
            target.focus()

    def commands(self) -> Iterable[tuple[str, str, Callable[[], object]]]:
        """Command-palette entries (title, help, callback); by default one per described binding."""
        seen = set()
        for binding in self._bindings_for_help():
            if binding.description and binding.action not in seen:
                seen.add(binding.action)
                yield (f"{self.TITLE}: {binding.description}", binding.tooltip or f"key: {binding.key}",
                       lambda action=binding.action: self.run_action(action))

    def help_keys(self) -> list[tuple[str, str]]:
        """(keys, what they do) for the help screen."""
        keys: dict[str, list[str]] = {}
        for binding in self._bindings_for_help():
            if binding.description:
                keys.setdefault(binding.description, []).append(binding.key)
        return [(", ".join(dict.fromkeys(k for ks in v for k in ks.split(","))), d) for d, v in keys.items()]

    def _bindings_for_help(self) -> list[Binding]:
        return [b if isinstance(b, Binding) else Binding(*b) for b in self.BINDINGS]
