"""The Compare screen on a served model: A is the served model under the pane's knobs, B the same server under
other knobs (`knob=value` words over A's) or another model it serves (`model=NAME`); or two branches of the tree.

The study is engine/remote/comparison.py: in same-text mode B reads A's listed raw candidates under
B's knobs (no second request on one model; another model scores A's text, where the server can);
in free mode each side streams its own text from one seed. Its blocking HTTP runs on a thread of
its own (asyncio.to_thread), never the model thread; progress comes back as messages. A fault
(the server dropping or refusing) is one line, and the positions received before it are shown.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from llmtui.app.panes.base import error_line
from llmtui.app.screens.compare.served_view import COLUMNS, LEGEND, row, tops_side_by_side
from llmtui.app.screens.compare.card import CompareCard
from llmtui.app.screens.compare.view import default_b, side_header
from llmtui.app.widgets.safe_input import SafeInput
from llmtui.engine.settings import SamplingSettings, apply_knob_words

if TYPE_CHECKING:
    from llmtui.engine.generation import Step
    from llmtui.engine.remote.client import RemoteModel
    from llmtui.engine.remote.comparison import RemoteComparison, RemotePosition

MODES = ("same-text", "free")
TOPS = 6
TOP_N = 10  # candidates asked per token: enough for the table, well under servers' limits


@dataclass(frozen=True)
class ServedBranchPair:
    """Two branches of one served prompt, each its steps (as received) from the first token."""

    a: tuple[Step, ...]
    b: tuple[Step, ...]
    names: tuple[str, str]


class ServedCompareScreen(CompareCard):
    """Two sides on a served model side by side; `positions` holds what was compared (or received before a fault)."""

    class Progress(Message):
        """Tokens received so far (posted from the comparison's thread)."""

        def __init__(self, side: str, tokens: int, run: threading.Event) -> None:
            super().__init__()
            self.side, self.tokens, self.run = side, tokens, run  # run: the comparison's stop event, its identity

    def __init__(self, remote: RemoteModel, prompt: str, settings: SamplingSettings, *, chat: bool = False,
                 b_words: str | None = None, mode: str = "same-text", branches: ServedBranchPair | None = None) -> None:
        super().__init__()
        self.remote, self.prompt, self.settings_a, self.chat = remote, prompt, settings, chat
        self.b_words = default_b(settings) if b_words is None else b_words
        self.mode = mode
        self.branches = branches
        self.positions: list[RemotePosition] = []
        self.comparison: RemoteComparison | None = None
        self._names = ("", "")  # the models over the tops' columns, where they differ (or the branches' names)
        self._stop = threading.Event()  # the running comparison's: set to end its streams
        self._running: threading.Event | None = None  # the stop event of the comparison under way (None: none)

    @classmethod
    def for_branches(cls, remote: RemoteModel, pair: ServedBranchPair) -> ServedCompareScreen:
        first = (pair.a or pair.b)[0]
        return cls(remote, "", first.settings, b_words="", mode="branches", branches=pair)

    def compose(self) -> ComposeResult:
        with Vertical(id="cmp-box") as box:
            box.border_subtitle = ("enter/F5 compare · ctrl+o mode · ↑↓ a position · esc back"
                                   if self.branches is None else "↑↓ a position · esc back")
            if self.branches is None:
                yield Static(side_header("A", self.remote.name, self.settings_a.changed_words()), id="cmp-a")
                b = SafeInput(value=self.b_words, id="cmp-b", placeholder="B's knobs: temperature=1.5 top-k=40 …")
                b.border_title = "B: knob=value words over A's; model=NAME for another model of this server"
                yield b
                yield Static(Text("B: (enter compares)"), id="cmp-b-head")
            else:
                pair = self.branches
                yield Static(side_header("A", f"branch {pair.names[0]}", f"{len(pair.a)} tokens · {self.remote.name}"),
                             id="cmp-a")
                yield Static(side_header("B", f"branch {pair.names[1]}", f"{len(pair.b)} tokens · {self.remote.name}"),
                             id="cmp-b-head")
            table: DataTable[Any] = DataTable(id="cmp-table", cursor_type="row", zebra_stripes=True)
            table.add_columns(*COLUMNS)
            yield table
            yield Static("", id="cmp-tops")
            yield Static("", id="cmp-summary")
            yield Static(LEGEND, id="cmp-legend")
            yield Static("", id="cmp-message")

    def on_unmount(self) -> None:
        self._stop.set()  # a comparison still streaming closes its connection at its next token

    def _title(self, text: str) -> None:
        self.query_one("#cmp-box", Vertical).border_title = f"Compare · {text}"

    @on(Progress)
    def _progress(self, message: Progress) -> None:
        # a comparison that has ended (or was replaced) says nothing more: posted from its thread, the last
        # progress could land after the result line and put "Comparing…" back over it
        if message.run is self._running:
            self._say(f"Comparing… {message.side}: {message.tokens} tokens received")

    def action_toggle_mode(self) -> None:
        if self.branches is not None:
            self._say("Two branches are compared as they were received: each side on its own text.")
            return
        self.mode = MODES[(MODES.index(self.mode) + 1) % len(MODES)]
        self.action_run()

    def action_run(self) -> None:
        self._stop.set()  # the comparison still running (if any) ends; its worker is cancelled below
        self._stop = threading.Event()
        self.query_one("#cmp-table", DataTable).clear()
        self.query_one("#cmp-tops", Static).update("")
        self.query_one("#cmp-summary", Static).update("")
        self.positions = []
        if self.branches is not None:
            self._compare_branches()
            return
        words = self.query_one("#cmp-b", Input).value
        try:
            settings_b, model = apply_knob_words(self.settings_a, words)
        except ValueError as e:
            self._say(f"B: {e}")
            return
        self.b_words = words
        self._title("same text: B read on A's tokens, one context for both" if self.mode == "same-text"
                    else "free: each side writes its own text from one seed")
        self._say("Comparing…")
        self._compare(settings_b, model, self.mode, self._stop)

    def _compare_branches(self) -> None:
        from llmtui.engine.remote.comparison import compare_branches, describe

        pair = self.branches
        assert pair is not None
        try:
            shared, positions = compare_branches(pair.a, pair.b)
        except ValueError as e:
            self._say(str(e))
            return
        self._names = pair.names
        self._title(f"two branches, the same for {shared} tokens, each as received after")
        self._show(positions)
        self.query_one("#cmp-summary", Static).update(Text(describe(positions)))
        self._say(f"Done: {len(positions)} positions (the tables as the server sent them; nothing asked again).")

    @work(exclusive=True, group="compare", exit_on_error=False)
    async def _compare(self, settings_b: SamplingSettings, model_b: str | None, mode: str,
                       stop: threading.Event) -> None:
        from llmtui.engine.remote.comparison import RemoteComparison

        comparison: RemoteComparison | None = None
        self._running = stop
        try:
            remote_b = self.remote if model_b is None or model_b == self.remote.model else \
                await asyncio.to_thread(self._other_model, model_b)
            head = side_header("B", remote_b.name, settings_b.changed_words())
            self.query_one("#cmp-b-head", Static).update(head)
            self._names = ("", "") if remote_b is self.remote else (self.remote.name, remote_b.name)
            # the constructor asks the server to count the prompt's tokens: on the thread too
            comparison = await asyncio.to_thread(RemoteComparison, self.prompt, (self.remote, self.settings_a),
                                                 (remote_b, settings_b), mode=mode, top_n=TOP_N, chat=self.chat)
            self.comparison = comparison

            def progress(side: str, tokens: int) -> None:  # on the comparison's thread: post, never touch widgets
                self.post_message(self.Progress(side, tokens, stop))

            await asyncio.to_thread(comparison.run, progress, stop)
            self._show(comparison.positions)
            self.query_one("#cmp-summary", Static).update(Text(comparison.describe()))
            self._say(f"Done: {len(comparison.positions)} positions, seed {comparison.seed}.")
        except asyncio.CancelledError:
            stop.set()
            raise
        except Exception as e:  # the server dropping or refusing, bad words, a bug: one line, what came is kept
            if comparison is not None and comparison.positions:
                self._show(comparison.positions)
                self.query_one("#cmp-summary", Static).update(Text(comparison.describe()))
                self._say(f"{error_line(e)} · showing the {len(comparison.positions)} positions received")
            else:
                self._say(error_line(e))
        finally:
            if self._running is stop:
                self._running = None

    def _other_model(self, name: str) -> RemoteModel:
        """Another model of the same server (checked against its list; a name it does not serve is one line)."""
        from llmtui.engine.remote.client import RemoteModel

        return RemoteModel.connect(replace(self.remote.endpoint, model=name))

    def _show(self, positions: list[RemotePosition]) -> None:
        self.positions = list(positions)
        table = self.query_one("#cmp-table", DataTable)
        table.clear()
        for position in self.positions:
            table.add_row(*row(position))
        self._show_tops(0)

    def _show_tops(self, index: int) -> None:
        if 0 <= index < len(self.positions):
            self.query_one("#cmp-tops", Static).update(tops_side_by_side(self.positions[index], TOPS, self._names))
