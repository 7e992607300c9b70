"""The Branches screen: the tree of the Generate pane's generations and forks, one row per branch.

Enter reopens a branch in the pane (to read, continue or fork it); r renames, d deletes;
ctrl+z / ctrl+y undo and redo the last new branch; w writes the tree to a session file and
l loads one (JSON); m marks a branch (A, then B) and c opens the two in Compare, each read on
its own text from where they part (one mark: against the highlighted branch). The screen edits
the pane's tree; the pane follows its current branch when the screen closes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from llmtui.app.screens.branches.view import COLUMNS, label, rows, toggle_mark
from llmtui.app.screens.compare.screen import BranchPair, CompareScreen
from llmtui.app.screens.value_input import ValueInputScreen
from llmtui.app.screens.whole_screen import WholeScreenCard
from llmtui.engine.branches import BranchTree

if TYPE_CHECKING:
    from llmtui.app.app import LLMTuiApp
    from llmtui.engine.remote.client import RemoteModel

DEFAULT_SESSION = "llmtui-branches.json"


class BranchesScreen(WholeScreenCard["BranchTree | None"]):
    """Dismissed with the tree (changed, or loaded from a file) when the pane should follow it, else None."""

    DEFAULT_CSS = """
    BranchesScreen {
        & #br-table { height: 1fr; }
        & #br-message { height: auto; }
    }
    """
    BINDINGS = [
        Binding("enter", "reopen", "Reopen", priority=True),
        Binding("r", "rename", "Rename"),
        Binding("d,delete", "delete", "Delete"),
        Binding("ctrl+z", "undo", "Undo fork"),
        Binding("ctrl+y", "redo", "Redo fork"),
        Binding("w", "save", "Save session"),
        Binding("l", "load", "Load session"),
        Binding("m,space", "mark", "Mark A/B"),
        Binding("c", "compare", "Compare A/B"),
    ]

    def __init__(self, tree: BranchTree, decode: Callable[[list[int]], str], model: str, *,
                 remote: RemoteModel | None = None) -> None:
        """remote: the served model that wrote the tree (its steps are the server's, compared as received)."""
        super().__init__()
        self.remote = remote
        self.branch_tree = tree
        self.decode = decode
        self.model = model
        self.changed = False
        self.node_ids: list[int] = []
        self.marked: list[int] = []  # branches marked for Compare, A first

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "Branches of this prompt"
            box.border_subtitle = ("enter reopen · m mark · c compare · r rename · d delete · ctrl+z/y undo/redo · w save · "
                                   "l load · esc back")
            table: DataTable[Any] = DataTable(id="br-table", cursor_type="row", zebra_stripes=True)
            table.add_columns(*COLUMNS)
            yield table
            yield Static("", id="br-message")

    def on_mount(self) -> None:
        self._fill()
        self.query_one("#br-table", DataTable).focus()

    def _say(self, text: str) -> None:
        self.query_one("#br-message", Static).update(Text(text))

    def _fill(self) -> None:
        table = self.query_one("#br-table", DataTable)
        table.clear()
        self.node_ids = []
        leaves = set(self.branch_tree.leaves())
        self.marked = [m for m in self.marked if m in leaves]  # a deleted or undone branch is no longer marked
        for node, cells in rows(self.branch_tree, self.marked):
            self.node_ids.append(node)
            table.add_row(*cells)
        if self.branch_tree.current in self.node_ids:
            table.move_cursor(row=self.node_ids.index(self.branch_tree.current))
        if not self.node_ids:
            self._say("No branches yet: generate, then fork from the table (enter on a candidate).")

    def _selected(self) -> int | None:
        row = self.query_one("#br-table", DataTable).cursor_row
        return self.node_ids[row] if 0 <= row < len(self.node_ids) else None

    def action_close(self) -> None:
        if self.app.screen is self:
            self.dismiss(self.branch_tree if self.changed else None)

    def action_reopen(self) -> None:
        node = self._selected()
        if node is not None and self.app.screen is self:
            self.branch_tree.reopen(node)
            self.dismiss(self.branch_tree)

    def action_rename(self) -> None:
        node = self._selected()
        if node is None:
            return

        def done(result: tuple[Any] | None) -> None:
            if result is not None:
                self.branch_tree.rename(node, result[0])
                self._fill()

        self.app.push_screen(ValueInputScreen("branch name", self.branch_tree.nodes[node].name, str.strip), done)

    def action_delete(self) -> None:
        node = self._selected()
        if node is not None:
            self.branch_tree.delete(node)
            self.changed = True
            self._fill()
            self._say(f"Deleted branch #{node}.")

    def action_mark(self) -> None:
        node = self._selected()
        if node is None:
            return
        self.marked = toggle_mark(self.marked, node)
        row = self.query_one("#br-table", DataTable).cursor_row
        self._fill()
        self.query_one("#br-table", DataTable).move_cursor(row=row)
        self._say("Marked " + " and ".join(f"{side}: {label(self.branch_tree.branch(m))}"
                                           for side, m in zip("AB", self.marked)) + " · c compares them"
                  if self.marked else "No branch marked.")

    def action_compare(self) -> None:
        """Open the two marked branches (or the one marked and the highlighted one) in Compare."""
        pair = self.marked if len(self.marked) == 2 else [*self.marked, self._selected()] if self.marked else []
        if len(pair) != 2 or pair[0] == pair[1] or pair[1] is None:
            self._say("Mark two branches (m on each, or one and move to the other), then c compares them.")
            return
        if self.remote is not None:
            from llmtui.app.screens.compare.served_screen import ServedBranchPair, ServedCompareScreen

            a, b = (self.branch_tree.branch(n) for n in pair)
            self.app.push_screen(ServedCompareScreen.for_branches(
                self.remote, ServedBranchPair(a.steps, b.steps, (label(a), label(b)))))
            return
        lm = cast("LLMTuiApp", self.app).lm
        if lm is None or lm.name != self.model:  # the tree's token ids mean this model's tokens
            self._say(f"These branches were written by {self.model}; load it to compare them.")
            return
        a, b = (self.branch_tree.branch(n) for n in pair)
        self.app.push_screen(CompareScreen.for_branches(
            lm, BranchPair(self.branch_tree.prompt_ids, a.steps, b.steps, (label(a), label(b)))))

    def action_undo(self) -> None:
        self._step("undo")

    def action_redo(self) -> None:
        self._step("redo")

    def _step(self, which: str) -> None:
        try:
            getattr(self.branch_tree, which)()
        except ValueError as e:
            self._say(str(e).capitalize() + ".")
            return
        self.changed = True
        self._fill()
        self._say("Undone: the last new branch is put aside (ctrl+y brings it back)." if which == "undo"
                  else "Redone.")

    def action_save(self) -> None:
        def check(text: str) -> Path:
            return Path(text.strip() or DEFAULT_SESSION).expanduser()

        def done(result: tuple[Any] | None) -> None:
            if result is None:
                return
            try:
                self.branch_tree.save(result[0])
            except OSError as e:
                self._say(f"Can't write {result[0]}: {e.strerror or e}")
                return
            self._say(f"Saved {len(self.branch_tree.leaves())} branches to {result[0]}.")

        self.app.push_screen(ValueInputScreen("session file to write", DEFAULT_SESSION, check), done)

    def action_load(self) -> None:
        def check(text: str) -> BranchTree:
            # a served tree loads served sessions (texts), a local one local sessions (token ids)
            tree = type(self.branch_tree).load(Path(text.strip() or DEFAULT_SESSION).expanduser(), self.decode)
            if tree.model != self.model:  # its token ids mean other tokens here
                raise ValueError(f"that session was made with {tree.model or 'another model'}, not {self.model}")
            return tree

        def done(result: tuple[Any] | None) -> None:
            if result is not None:
                self.branch_tree = result[0]
                self.changed = True
                self._fill()
                self._say(f"Loaded {len(self.branch_tree.leaves())} branches.")

        self.app.push_screen(ValueInputScreen("session file to load", DEFAULT_SESSION, check), done)
