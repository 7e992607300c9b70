"""The Compare screen: the Generate pane's prompt under its knobs (A) and under other knobs (B), token by token.

B's knobs are typed as knob=value words over A's (`temperature=1.5 top-k=40`). In same-text mode
(the default) B is read on A's tokens, so both distributions at every position share one context;
in free mode each side writes its own text from the same seed. The study runs on the model thread,
a position at a time, in an exclusive worker: typing new knobs and pressing enter starts over.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

from llmtui.app.model_thread import call
from llmtui.app.panes.base import error_line
from llmtui.app.screens.compare.view import COLUMNS, row, tops_side_by_side
from llmtui.app.widgets.safe_input import SafeInput
from llmtui.engine.settings import SamplingSettings, apply_knob_words
from llmtui.engine.studies.compare import MODES, Comparison, Position, Side

if TYPE_CHECKING:
    from llmtui.engine.lm import LanguageModel


def default_b(settings: SamplingSettings) -> str:
    """A first B worth looking at: the same knobs, hotter (or, when A is hot, colder)."""
    return "temperature=0.3" if settings.temperature > 1 else f"temperature={max(1.0, settings.temperature * 2):g}"


class CompareScreen(ModalScreen[None]):
    """Two settings of the loaded model side by side; `positions` holds what was compared so far."""

    DEFAULT_CSS = """
    CompareScreen {
        align: center middle;
        & > Vertical { width: 100%; height: 100%; border: round $accent; background: $panel; padding: 0 1; }
        & #cmp-b { height: 3; }
        & #cmp-table { height: 1fr; }
        & #cmp-tops { height: auto; max-height: 10; }
        & #cmp-summary, & #cmp-message { height: auto; }
    }
    """
    BINDINGS = [
        Binding("escape", "close", "Back"),
        Binding("ctrl+o", "toggle_mode", "Mode", priority=True, tooltip="Same text (B read on A's tokens) or free"),
        Binding("f5", "run", "Compare", priority=True, tooltip="Compare again with B's knobs as typed"),
    ]

    def __init__(self, lm: LanguageModel, encode: Callable[[LanguageModel], list[int]], settings: SamplingSettings,
                 b_words: str | None = None, mode: str = "same-text") -> None:
        super().__init__()
        self.lm, self.encode, self.settings_a = lm, encode, settings
        self.b_words = default_b(settings) if b_words is None else b_words
        self.mode = mode
        self.positions: list[Position] = []
        self.comparison: Comparison | None = None

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Compare A and B"
            box.border_subtitle = "enter/F5 compare · ctrl+o mode · ↑↓ a position · esc back"
            yield Static(Text(f"A: {self.settings_a.changed_words()}"), id="cmp-a")
            b = SafeInput(value=self.b_words, id="cmp-b", placeholder="B's knobs: temperature=1.5 top-k=40 …")
            b.border_title = "B: knob=value words over A's"
            yield b
            yield Static("", id="cmp-mode")
            table: DataTable[Any] = DataTable(id="cmp-table", cursor_type="row", zebra_stripes=True)
            table.add_columns(*COLUMNS)
            yield table
            yield Static("", id="cmp-tops")
            yield Static("", id="cmp-summary")
            yield Static("", id="cmp-message")

    def on_mount(self) -> None:
        self.query_one("#cmp-table", DataTable).focus()
        self.action_run()

    def _say(self, text: str) -> None:
        self.query_one("#cmp-message", Static).update(Text(text))

    def action_close(self) -> None:
        if self.app.screen is self:
            self.dismiss(None)

    def action_toggle_mode(self) -> None:
        self.mode = MODES[(MODES.index(self.mode) + 1) % len(MODES)]
        self.action_run()

    @on(Input.Submitted, "#cmp-b")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_run()

    def action_run(self) -> None:
        words = self.query_one("#cmp-b", Input).value
        try:
            settings_b, model = apply_knob_words(self.settings_a, words)
        except ValueError as e:
            self._say(f"B: {e}")
            return
        if model is not None:
            self._say("B: the app compares two settings of the loaded model; for two models use "
                      "llmtui compare PROMPT --b \"model=NAME\"")
            return
        self.b_words = words
        explain = ("B is read on A's tokens: both distributions share every context" if self.mode == "same-text"
                   else "each side writes its own text from the same seed")
        self.query_one("#cmp-mode", Static).update(Text(f"mode: {self.mode} ({explain}) · B: {settings_b.changed_words()}"))
        self.query_one("#cmp-table", DataTable).clear()
        self.query_one("#cmp-tops", Static).update("")
        self.query_one("#cmp-summary", Static).update("")
        self.positions = []
        self._say("Comparing…")
        self._compare(settings_b, self.mode)

    @work(exclusive=True, group="compare", exit_on_error=False)
    async def _compare(self, settings_b: SamplingSettings, mode: str) -> None:
        table = self.query_one("#cmp-table", DataTable)
        try:
            ids = await call(self.encode, self.lm)
            comparison = await call(Comparison, ids, Side(self.lm, self.settings_a, "A"), Side(self.lm, settings_b, "B"),
                                    mode=mode)
            self.comparison = comparison
            while (position := await call(comparison.step)) is not None:
                self.positions.append(position)
                table.add_row(*row(position))
                if len(self.positions) == 1:
                    self._show_tops(0)
                self.query_one("#cmp-summary", Static).update(Text(comparison.summary().describe()))
            self._say(f"Done: {len(self.positions)} positions, seed {comparison.seed}.")
        except Exception as e:  # the prompt too long for the window, bad knobs, or a bug: one line
            self._say(error_line(e))

    @on(DataTable.RowHighlighted, "#cmp-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_tops(event.cursor_row)

    def _show_tops(self, index: int) -> None:
        if 0 <= index < len(self.positions):
            self.query_one("#cmp-tops", Static).update(tops_side_by_side(self.positions[index]))
