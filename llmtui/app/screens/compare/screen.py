"""The Compare screen: the Generate pane's prompt under its knobs (A) and under other knobs or another model (B),
token by token; or two branches of the tree, each read on its own text.

B's knobs are typed as knob=value words over A's (`temperature=1.5 top-k=40`); `model=NAME` (or F4, a
list of the catalogue's models) gives B its own model, loaded on the model thread and kept while the
app runs (`second_model.py`). In same-text mode (the default) B is read on A's tokens, so both
distributions at every position share one context: with two models, the KL is the two models'
disagreement on the same text. In free mode each side writes its own text from the same seed.
Opened from the Branches screen on two marked branches (`for_branches`), each side is read on its own
branch from where they part. The study runs on the model thread, a position at a time, in an
exclusive worker: typing new words and pressing enter starts over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from llmtui.app.model_thread import call
from llmtui.app.panes.base import error_line
from llmtui.app.screens.compare.model_picker import ModelPickerScreen
from llmtui.app.screens.compare.card import CompareCard
from llmtui.app.screens.compare.view import COLUMNS, default_b, row, side_header, tops_side_by_side, with_model
from llmtui.app.widgets.safe_input import SafeInput
from llmtui.engine.settings import SamplingSettings, apply_knob_words
from llmtui.engine.studies.compare import BRANCHES, MODES, Comparison, Position, Side

if TYPE_CHECKING:
    from llmtui.app.app import LLMTuiApp
    from llmtui.app.screens.compare.second_model import SecondModel
    from llmtui.engine.generation import Step
    from llmtui.engine.lm import LanguageModel


TOPS = 6
"""Candidates of each side shown for the selected position (the table keeps the room at 80x24)."""


@dataclass(frozen=True)
class BranchPair:
    """Two branches of one prompt, to compare as they were written (each its steps from the first token)."""

    prompt_ids: list[int]
    a: tuple[Step, ...]
    b: tuple[Step, ...]
    names: tuple[str, str]


class CompareScreen(CompareCard):
    """Two sides side by side; `positions` holds what was compared so far, `lm_b` B's model once known."""

    BINDINGS = [
        Binding("f4", "pick_model", "B's model", priority=True, tooltip="B's model: A's own or a catalogue model"),
    ]

    class LoadProgress(Message):
        """B's model loading (posted from the model thread)."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, lm: LanguageModel, encode: Callable[[LanguageModel], list[int]], settings: SamplingSettings,
                 b_words: str | None = None, mode: str = "same-text", *, branches: BranchPair | None = None) -> None:
        super().__init__()
        self.lm, self.encode, self.settings_a = lm, encode, settings
        self.b_words = b_words  # None: default_b, once the app's --model-b is known (compose)
        self.mode = mode
        self.branches = branches
        self.positions: list[Position] = []
        self.comparison: Comparison | None = None
        self.lm_b: LanguageModel | None = None
        self._names = ("", "")  # the models' names over the tops' columns, when they differ (or the branches')

    @classmethod
    def for_branches(cls, lm: LanguageModel, pair: BranchPair) -> CompareScreen:
        first = (pair.a or pair.b)[0]
        return cls(lm, lambda _: list(pair.prompt_ids), first.settings, "", BRANCHES, branches=pair)

    @property
    def second_model(self) -> SecondModel:
        return cast("LLMTuiApp", self.app).second_model

    def compose(self) -> ComposeResult:
        if self.b_words is None:
            self.b_words = default_b(self.settings_a, self.second_model.spec)
        with Vertical(id="cmp-box") as box:
            box.border_subtitle = ("enter/F5 compare · F4 B's model · ctrl+o mode · ↑↓ a position · esc back"
                                   if self.branches is None else "↑↓ a position · esc back")
            if self.branches is None:
                yield Static(side_header("A", self.lm.name, self.settings_a.changed_words()), id="cmp-a")
                b = SafeInput(value=self.b_words, id="cmp-b", placeholder="B's knobs: temperature=1.5 top-k=40 …")
                b.border_title = "B: knob=value words over A's; model=NAME (or F4) for another model"
                yield b
            else:
                yield Static(side_header("A", f"branch {self.branches.names[0]}", f"{len(self.branches.a)} tokens"),
                             id="cmp-a")
            yield Static(self._b_header(), id="cmp-b-head")
            table: DataTable[Any] = DataTable(id="cmp-table", cursor_type="row", zebra_stripes=True)
            table.add_columns(*COLUMNS)
            yield table
            yield Static("", id="cmp-tops")
            yield Static("", id="cmp-summary")
            yield Static("", id="cmp-message")

    def _b_header(self, settings_b: SamplingSettings | None = None) -> Text:
        if self.branches is not None:
            return side_header("B", f"branch {self.branches.names[1]}", f"{len(self.branches.b)} tokens")
        if self.lm_b is None:
            return Text("B: (enter compares)")
        return side_header("B", self.lm_b.name, (settings_b or self.settings_a).changed_words())

    @on(LoadProgress)
    def _load_progress(self, message: LoadProgress) -> None:
        self._say(message.text)


    def action_toggle_mode(self) -> None:
        if self.branches is not None:
            self._say("Two branches are compared as they were written: each side read on its own text.")
            return
        self.mode = MODES[(MODES.index(self.mode) + 1) % len(MODES)]
        self.action_run()

    def action_pick_model(self) -> None:
        if self.branches is not None:
            self._say("Two branches are read by the model that wrote them.")
            return

        def chosen(result: tuple[str | None] | None) -> None:
            if result is None:
                return
            b = self.query_one("#cmp-b", Input)
            try:
                b.value = with_model(b.value, result[0])
            except ValueError as e:
                self._say(str(e))
                return
            self.action_run()

        self.app.push_screen(ModelPickerScreen(self.lm.name, self.second_model.spec), chosen)

    def action_run(self) -> None:
        settings_b, model = self.settings_a, None
        if self.branches is None:
            words = self.query_one("#cmp-b", Input).value
            try:
                settings_b, model = apply_knob_words(self.settings_a, words)
            except ValueError as e:
                self._say(f"B: {e}")
                return
            self.b_words = words
        self._title(self._explain())
        self.query_one("#cmp-table", DataTable).clear()
        self.query_one("#cmp-tops", Static).update("")
        self.query_one("#cmp-summary", Static).update("")
        self.positions = []
        self._say("Comparing…")
        self._compare(settings_b, model, self.mode)

    def _title(self, text: str) -> None:
        """The box's title: what is compared and how (the mode)."""
        self.query_one("#cmp-box", Vertical).border_title = f"Compare · {text}"

    def _explain(self) -> str:
        if self.branches is not None:
            return "two branches, each read on its own text"
        return ("same text: B read on A's tokens, one context for both" if self.mode == "same-text"
                else "free: each side writes its own text from one seed")

    async def _b_model(self, spec: str | None) -> LanguageModel:
        """B's model: A's own, or `spec` from the app's second model (loaded on the model thread the first time)."""
        if spec is None:
            return self.lm
        self.query_one("#cmp-b-head", Static).update(Text(f"B: loading {spec}…"))
        self._say(f"Loading B's model {spec}…")

        def progress(message: str, fraction: float) -> None:  # on the model thread: post, never touch widgets
            self.post_message(self.LoadProgress(f"Loading B's model {spec}: {message} ({fraction:.0%})"))

        return await self.second_model.get(spec, progress)

    @work(exclusive=True, group="compare", exit_on_error=False)
    async def _compare(self, settings_b: SamplingSettings, model_b: str | None, mode: str) -> None:
        table = self.query_one("#cmp-table", DataTable)
        try:
            if self.branches is not None:
                pair = self.branches
                comparison = await call(Comparison.of_branches, self.lm, pair.prompt_ids, pair.a, pair.b,
                                        labels=pair.names)
                self._names = pair.names
                self._title(f"two branches, the same for {comparison.shared} tokens, each read on its own text after")
            else:
                self.lm_b = lm_b = await self._b_model(model_b)
                self.query_one("#cmp-b-head", Static).update(self._b_header(settings_b))
                ids = await call(self.encode, self.lm)
                comparison = await call(Comparison, ids, Side(self.lm, self.settings_a, "A"),
                                        Side(lm_b, settings_b, "B"), mode=mode)
                self._names = (self.lm.name, lm_b.name) if lm_b is not self.lm else ("", "")
            self.comparison = comparison
            while (position := await call(comparison.step)) is not None:
                self.positions.append(position)
                table.add_row(*row(position))
                if len(self.positions) == 1:
                    self._show_tops(0)
                self.query_one("#cmp-summary", Static).update(Text(comparison.summary().describe()))
            seed = f", seed {comparison.seed}" if self.branches is None else ""
            self._say(f"Done: {len(self.positions)} positions{seed}.")
        except Exception as e:  # the prompt too long, bad knobs, a model that can't load or compare, a bug: one line
            self._say(error_line(e))

    def _show_tops(self, index: int) -> None:
        if 0 <= index < len(self.positions):
            self.query_one("#cmp-tops", Static).update(tops_side_by_side(self.positions[index], TOPS, self._names))
