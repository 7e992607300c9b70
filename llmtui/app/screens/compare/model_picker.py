"""Pick B's model for Compare: A's own, the one named by --model-b, or any catalogue model (downloaded or not)."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from llmtui.app.screens.compare.view import model_choices


def catalogue_rows() -> list[dict[str, object]]:
    """Every catalogue model as `llmtui models` describes it (a broken catalogue file: none, said by the caller)."""
    from llmtui.engine.loading.fetch import available_memory, catalogue, describe

    available = available_memory()
    return [describe(entry, available) for entry in catalogue().values()]


class ModelPickerScreen(ModalScreen["tuple[str | None] | None"]):
    """Dismissed with (spec,) — None as the spec: A's model — or None when cancelled."""

    DEFAULT_CSS = """
    ModelPickerScreen {
        align: center middle;
        & > Vertical { width: 80; max-width: 100%; height: auto; max-height: 100%; border: round $accent;
                       background: $panel; padding: 0 1; }
        & OptionList { height: auto; max-height: 20; }
        & #pick-note { height: auto; color: $text-muted; }
    }
    """
    BINDINGS = [Binding("escape", "cancel", "Back")]

    def __init__(self, a_name: str, extra: str | None) -> None:
        super().__init__()
        self.a_name, self.extra = a_name, extra

    def compose(self) -> ComposeResult:
        note = ("A model of another tokenizer can't be compared (the divergences need one vocabulary); "
                "a model not downloaded yet is fetched and checked first. model=PATH in B's words takes any other.")
        try:
            rows = catalogue_rows()
        except Exception as e:  # noqa: BLE001 - a broken catalogue file: A's model and --model-b are still offered
            rows, note = [], f"The catalogue can't be read ({type(e).__name__}: {e})."
        self.choices = model_choices(self.a_name, rows, self.extra)
        with Vertical() as box:
            box.border_title = "B's model"
            box.border_subtitle = "enter choose · esc back"
            yield OptionList(*(Option(Text(label)) for _, label in self.choices), id="pick-list")
            yield Static(Text(note), id="pick-note")

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if self.app.screen is self:
            self.dismiss((self.choices[event.option_index][0],))

    def action_cancel(self) -> None:
        if self.app.screen is self:
            self.dismiss(None)
