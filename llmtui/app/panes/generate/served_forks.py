"""The Generate pane's branch tree (F3) and Compare (F2) on a served model; forks.py holds the local ones.

Mixed in before ForksPart: on a served backend these take over, on a local one they hand on to it.
The tree keeps each served step with its top-N table as received (engine/remote/branches.py);
reopening a branch puts its steps back in the pane's RemoteSession, so F6, F7 and a fork go on
from it by sending its text as the prompt (the server keeps no session). A loaded session of
another prompt opens a session of its own on the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work

from llmtui.app.panes.generate.run import PromptRequest
from llmtui.engine.branches import ROOT, BranchTree

if TYPE_CHECKING:
    from llmtui.engine.remote.branches import ServedBranchTree


class ServedForksPart:
    """Mixed into GeneratePane before ForksPart: the served model's branch tree and Compare."""

    def _on_server(self) -> bool:
        return self.backend is not None and self.backend.served

    def action_compare(self, b_words: str | None = None, mode: str = "same-text") -> None:
        if not self._on_server():
            super().action_compare(b_words, mode)  # type: ignore[misc]
            return
        from llmtui.app.screens.compare.served_screen import ServedCompareScreen

        if not self.need_model():
            return
        prompt = self._session_prompt if self._session is not None else self._new_prompt_request()
        if prompt is None:
            return
        self.app.push_screen(ServedCompareScreen(self.remote, prompt.text, self.settings, chat=prompt.chat,
                                                 b_words=b_words, mode=mode))

    def _record_branch(self) -> None:
        if not self._on_server():
            super()._record_branch()  # type: ignore[misc]
            return
        from llmtui.engine.remote.branches import ServedBranchTree

        session = self._session
        if session is None or not session.steps:
            return
        if not isinstance(self._tree, ServedBranchTree) or not self._tree.grows_from(session.prompt, session.chat):
            self._tree = ServedBranchTree(session.prompt, model=self.backend.name, chat=session.chat)
        self._tree.add(session.steps)

    def action_branches(self) -> None:
        if not self._on_server():
            super().action_branches()  # type: ignore[misc]
            return
        from llmtui.app.screens.branches.screen import BranchesScreen

        tree, session = self._tree, self._session
        if session is None or tree is None or not tree.grows_from(session.prompt, session.chat):  # type: ignore[attr-defined]
            self.say("No branches yet: generate first; every fork from the table becomes a branch.")
            return
        if self.running:
            self.say("Stop the generation first (escape): the branches are the finished texts.")
            return
        self.app.push_screen(BranchesScreen(tree, tree.decode, self.backend.name, remote=self.remote),
                             self._follow_tree)

    def _follow_tree(self, tree: BranchTree | None) -> None:
        """Show the tree's current branch: its steps, as received, become the session's (no request for them)."""
        if not self._on_server():
            super()._follow_tree(tree)  # type: ignore[misc]
            return
        if tree is None or self._session is None or self.running:
            return
        self._tree = tree
        self._served_restore(tree)

    @work(exclusive=True, group="generation", exit_on_error=False)
    async def _served_restore(self, tree: ServedBranchTree) -> None:
        session = self._session
        with self.reporting():  # a loaded session of another prompt needs a session of its own: the server may fail
            if not tree.grows_from(session.prompt, session.chat):
                prompt = PromptRequest(tree.prompt, chat=tree.chat)
                session = await self.backend.open(prompt, self.settings)
                self._session, self._session_prompt = session, prompt
                if not prompt.chat:
                    self.set_prompt(prompt.text)  # so F6 and F7 go on from the loaded branch, not the editor's text
            self.backend.end(session)  # a stream left open by a paused run belongs to the old text
            session.steps = tree.steps(tree.current)
            session.stopped = None
            self._steps = tuple(session.steps)
            self.output.allow_next(True)
            self._render_output()
            self._refresh_table()
            if tree.current == ROOT or tree.current not in tree.nodes:
                self.say("Back at the prompt.")
                return
            branch = tree.branch(tree.current)
            self.say(f"Branch {branch.name or '#' + str(branch.node)}: {branch.length} tokens, log p "
                     f"{branch.logprob:.2f} · F7 goes on (its text sent as the prompt), enter on a candidate forks")
