"""The Generate pane's forks and what is made of them: a candidate chosen in the table, the branch tree
(F3, undo and redo), and Compare (F2)."""

from __future__ import annotations

from textual import work

from llmtui.app.model_thread import call
from llmtui.app.panes.generate.run import TOP_N, PromptRequest, typed_fork
from llmtui.app.screens.value_input import ValueInputScreen
from llmtui.app.widgets.prob_table import ProbabilityTable
from llmtui.engine.branches import BranchTree


class ForksPart:
    """Mixed into GeneratePane: forking the text at a candidate, and the tree of every fork."""

    def on_probability_table_chosen(self, event: ProbabilityTable.Chosen) -> None:
        event.stop()
        if not self.need_model():
            return
        if event.preview:
            prompt = self._session_prompt if self._session is not None else PromptRequest(self.editor.text, chat=self.chat_mode, system=self.system_prompt)
            if self._session is None and not prompt.text.strip():
                self.say("The prompt is empty: type some text first.", "error")
                return
            self._start("force", prompt, new_session=self._session is None, limit=None if self._streaming else 0,
                        fork=(event.index, event.token_id))
            return
        if not 0 <= event.index < len(self._steps):
            return
        if self._steps[event.index].token_id == event.token_id:
            self.say("That is the token it drew; choose another row to fork the text there.")
            return
        assert self._session_prompt is not None
        self._start("fork", self._session_prompt, limit=None if self._streaming else 0, fork=(event.index, event.token_id))

    def action_fork_to_text(self) -> None:
        """Type the text that replaces the shown token and what follows it; the text then goes on from yours."""
        if not self.need_model():
            return
        if self.running:
            self.say("Stop the generation first (escape): a fork to your text starts from a finished text.")
            return
        if self._session is None or not self._steps or self._session_prompt is None:
            self.say("Nothing generated yet: generate first, pick a token (←/→ in the output), then t types the text "
                     "that replaces it.")
            return
        if self.backend is not None and self.backend.served and self._session_prompt.chat:
            self.say("Forking a served chat reply: not available (llmtui sends plain prompts for that; ctrl+o re-runs a turn).")
            return
        selected = self.output.selected
        index = selected if selected is not None and selected < len(self._steps) else len(self._steps) - 1
        session = self._session

        def done(result: tuple[str] | None) -> None:
            if result is None or self.running or self._session is not session:
                return  # cancelled, or the text changed while the box was open
            at, rest = typed_fork([s.text for s in self._steps], index, result[0])
            if at >= len(self._steps) and not rest:
                self.say("That is the text already there.")
                return
            assert self._session_prompt is not None
            self._start("type", self._session_prompt, limit=None if self._streaming else 0, fork=(at, rest))

        def check(text: str) -> str:
            if not text:
                raise ValueError("type the text that replaces it")
            return text

        hint = (f"Your text replaces token {index + 1} and what follows; the text goes on from yours"
                + (" (the server scores it where it can)." if self.backend is not None and self.backend.served else "."))
        self.app.push_screen(ValueInputScreen(f"the text from token {index + 1}", self._steps[index].text, check, hint),
                             done)

    def action_compare(self, b_words: str | None = None, mode: str = "same-text") -> None:
        """Open Compare on the shown prompt (or the editor's) with these knobs as A."""
        from llmtui.app.screens.compare.screen import CompareScreen

        if not self.need_model() or not self._local_only("Compare"):
            return
        prompt = self._session_prompt if self._session is not None else self._new_prompt_request()
        if prompt is None:
            return
        assert self.lm is not None
        self.app.push_screen(CompareScreen(self.lm, prompt.encode, self.settings, b_words, mode))

    def _record_branch(self) -> None:
        """Keep the shown text in the branch tree (a new node only where it takes a new turn)."""
        session = self._session
        if session is None or not session.steps or self.lm is None:
            return
        if self._tree is None or self._tree.prompt_ids != session.prompt_ids:
            self._tree = BranchTree(session.prompt_ids, self.lm.tokenizer.decode, model=self.lm.name)
        self._tree.add(session.steps)

    def action_branches(self) -> None:
        from llmtui.app.screens.branches.screen import BranchesScreen

        if not self._local_only("The branch tree"):
            return
        if self.lm is None or self._session is None or self._tree is None:
            self.say("No branches yet: generate first; every fork from the table becomes a branch.")
            return
        if self.running:
            self.say("Stop the generation first (escape): the branches are the finished texts.")
            return
        self.app.push_screen(BranchesScreen(self._tree, self.lm.tokenizer.decode, self.lm.name), self._follow_tree)

    def _follow_tree(self, tree: BranchTree | None) -> None:
        """Show the tree's current branch (after a reopen, undo, redo, delete or a loaded session)."""
        if tree is None or self._session is None or self.running:
            return
        self._tree = tree
        self._restore_worker(tree)

    @work(exclusive=True, group="generation", exit_on_error=False)
    async def _restore_worker(self, tree: BranchTree) -> None:
        from llmtui.engine.generation import GenerationSession

        session = self._session
        if session is None or self.lm is None or self.backend is None:
            return  # cleared (ctrl+n) or the model switched between the key and this worker's start: nothing to show
        with self.reporting():  # tokens outside this model's vocabulary in a hand-edited session, or a bug
            if session.prompt_ids != tree.prompt_ids:  # a loaded session of another prompt
                session = await call(GenerationSession, self.lm, tree.prompt_ids, self.settings, top_n=TOP_N)
                self._session = session
                self._session_prompt = PromptRequest(tree.decode(tree.prompt_ids))
                self._prompt_ids = list(tree.prompt_ids)
                self._prompt_pieces = self.backend.prompt_pieces(self._prompt_ids)
            await call(session.restore, tree.steps(tree.current))
            self._steps = tuple(session.steps)
            self.output.allow_next(True)
            self._render_output()
            self._refresh_table()
            branch = tree.branch(tree.current) if tree.current in tree.nodes and tree.current != 0 else None
            self.say(f"Branch {branch.name or '#' + str(branch.node)}: {branch.length} tokens, log p {branch.logprob:.2f}"
                     " · F7 goes on, enter on a candidate forks" if branch else "Back at the prompt.")

    def action_undo_fork(self) -> None:
        self._tree_step("undo")

    def action_redo_fork(self) -> None:
        self._tree_step("redo")

    def _tree_step(self, which: str) -> None:
        if self._tree is None or self.running:
            self.say("Nothing to " + which + ("" if self._tree is None else " while generating") + ".")
            return
        with self.reporting(lambda line: self.say(line + ".")):  # nothing to take back or bring back: a note
            getattr(self._tree, which)()
            self._follow_tree(self._tree)
