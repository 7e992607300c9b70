"""The Generate pane: watch the model choose its next token, and change how it chooses.

A prompt editor, the sampling knobs, the output (each token coloured by the
probability it had) and the probability table of one step. This module lays the pane
out and holds its keys; the rest is in parts mixed into the class, each in its own
module: knobs.py, chat.py, preview.py (the next-token table), forks.py (forks, the
branch tree, Compare), served_forks.py (the tree and Compare on a served model),
runner.py (a run's worker), output.py (output and table). Runs and previews are
exclusive workers on the UI's event loop that await the model thread (`model_thread.call`),
so a newer one cancels the older at its await.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal
from textual.reactive import reactive
from textual.widgets import TextArea

from llmtui.app.panes.base import Debounce, Pane, prompt_box
from llmtui.app.panes.generate import view
from llmtui.app.panes.generate.attach import AttachPart
from llmtui.app.panes.generate.chat import ChatPart
from llmtui.app.panes.generate.forks import ForksPart
from llmtui.app.panes.generate.knobs import KnobsPart
from llmtui.app.panes.generate.output import OutputPart, OutputPieces
from llmtui.app.panes.generate.preview import PREVIEW_DELAY, PreviewPart
from llmtui.app.panes.generate.run import PromptRequest, Run
from llmtui.app.panes.generate.runner import RunnerPart
from llmtui.app.panes.generate.served_forks import ServedForksPart
from llmtui.app.widgets.knob import KNOBS, Knob
from llmtui.app.widgets.message_line import MessageLine
from llmtui.app.widgets.prob_table import ProbabilityTable, TableView
from llmtui.app.widgets.prompt_editor import PromptEditor
from llmtui.app.widgets.token_text import Piece, TokenText
from llmtui.engine.branches import BranchTree
from llmtui.engine.settings import SamplingSettings

if TYPE_CHECKING:
    from llmtui.app.panes.generate.backend import Backend
    from llmtui.engine.generation import GenerationSession, Step
    from llmtui.engine.remote.session import RemoteSession


class GeneratePane(AttachPart, KnobsPart, ChatPart, PreviewPart, ServedForksPart, ForksPart, RunnerPart, OutputPart,
                   Pane):
    """Streamed generation with live probability tables and sampling knobs."""

    PANE_ID = "generate"
    MESSAGE_LINE = "#gen-message"
    TITLE = "Generate"
    SHORT_TITLE = "Gen"
    HELP = view.HELP
    WHEN_LOADED = "{typed} is kept. Press the key again when it is ready."  # a key here runs nothing by itself later
    SEE_WHY = " (see the output)"  # the output box shows the load's error

    BINDINGS = [
        Binding("f5,ctrl+g", "generate", "Generate", priority=True, tooltip="Generate from the prompt (chat: send the message)"),
        Binding("escape", "stop", "Stop", tooltip="Stop generating (takes effect before the next token)"),
        Binding("f6", "step", "Step", priority=True, tooltip="Generate exactly one token"),
        Binding("n,space", "step", "Step", show=False),
        Binding("f7", "continue", "Go on", priority=True, tooltip="Go on generating from where it stopped"),
        Binding("ctrl+t", "toggle_chat", "Chat", priority=True, tooltip="Chat mode on/off: the prompt becomes a user message"),
        Binding("ctrl+n", "clear", "Clear", show=False, tooltip="Clear the output (and the chat so far)"),
        Binding("enter", "focus_table", "Its candidates", show=False, tooltip="Move to the table of the selected token"),
        Binding("c", "toggle_colour", "Colour by", show=False, tooltip="Colour tokens by the model's probability or by the probability after the knobs"),
        Binding("ctrl+r", "reset_knobs", "Reset knobs", show=False, tooltip="Set every knob back to its default"),
        Binding("f2", "compare", "Compare", priority=True, tooltip="Compare these knobs (A) with others (B), token by token"),
        Binding("f3", "branches", "Branches", priority=True, tooltip="Every generation and fork of this prompt: reopen, rename, delete, save"),
        Binding("f4", "system_prompt", "System", show=False, tooltip="Edit the chat's system prompt"),
        Binding("ctrl+o", "chat_turns", "Turns", show=False, priority=True, tooltip="The chat's turns: edit a message and re-run from it"),
        Binding("ctrl+b", "stop_strings", "Stop strings", show=False, tooltip="Text that ends a generation"),
        Binding("x", "ban", "Ban", show=False, tooltip="In the table: ban the highlighted token (again: unban)"),
        Binding("plus,equals_sign", "bias(1)", "Bias +", key_display="+", show=False, tooltip="In the table: raise the highlighted token's logit by 2"),
        Binding("minus", "bias(-1)", "Bias −", key_display="-", show=False, tooltip="In the table: lower the highlighted token's logit by 2"),
        Binding("t", "fork_to_text", "Fork to text", show=False,
                tooltip="In the output or the table: type the text that replaces the shown token and what follows"),
        Binding("ctrl+z", "undo_fork", "Undo fork", show=False, tooltip="Take back the last new branch"),
        Binding("ctrl+y", "redo_fork", "Redo fork", show=False, tooltip="Bring back the branch last taken back"),
    ]

    settings: reactive[SamplingSettings] = reactive(SamplingSettings, init=False)
    """The knobs. Replaced whole (it is frozen); a running generation reads it at its next token."""
    chat_mode: reactive[bool] = reactive(False, init=False)
    """Chat mode: the prompt is a user message wrapped in the model's chat template."""
    colour_by: reactive[str] = reactive("model", init=False)
    """Colour output tokens by the model's probability ("model") or the one after the knobs ("knobs")."""

    def __init__(self, settings: SamplingSettings | None = None, served: bool = False) -> None:
        """served: the app attaches a served model (--endpoint), not the local one, whose model this pane then ignores."""
        super().__init__()
        self.set_reactive(GeneratePane.settings, settings or SamplingSettings())
        self.served = served
        self.backend: Backend | None = None  # where the tokens come from, once the app attached a model
        self._run: Run | None = None
        self._session: GenerationSession | RemoteSession | None = None
        self._session_prompt: PromptRequest | None = None
        self._steps: tuple[Step, ...] = ()
        self._prompt_ids: list[int] = []
        self._prompt_pieces: list[Piece] = []
        self._output_pieces = OutputPieces()  # the steps' pieces, built once each
        self._preview: TableView | None = None
        self._preview_for: PromptRequest | None = None  # the prompt the preview is for (the editor may be ahead)
        self._preview_pause = Debounce(self, PREVIEW_DELAY, self._request_preview)  # the preview waits for a typing pause
        self._streaming = True  # after a fork, go on generating (False after single steps)
        self._note_until = 0.0  # a knob's note stays on the message line until then (time.monotonic)
        self._speed_shown_at = 0.0  # when tokens/s last went to the status line (time.monotonic)
        self._last_seed: int | None = None
        self._preview_len = 0  # tokens of the previewed prompt (no session yet)
        self._tree: BranchTree | None = None  # every generation and fork of the shown prompt
        self.system_prompt: str | None = None  # the chat's system prompt; None: the template's own

    def compose(self) -> ComposeResult:
        yield prompt_box(PromptEditor, id="prompt", placeholder="Type a prompt, then F5 to generate or F6 for one token",
                         title="Prompt")
        with Grid(id="knobs"):
            for spec in KNOBS:
                yield Knob(spec, getattr(self.settings, spec.name))
        yield MessageLine(id="gen-message")
        with Horizontal(id="gen-main"):
            output = TokenText(id="output")
            output.border_title = "Output"
            yield output
            yield ProbabilityTable(id="probs")

    def on_mount(self) -> None:
        self.watch(self.output, "selected", self._selection_changed, init=False)
        self._update_legend()
        if self.served:
            self.output.set_placeholder("Connecting to the server…", "placeholder")
            self.say("Connecting to the server… you can type the prompt meanwhile.", "busy")

    def on_unmount(self) -> None:
        if self.backend is not None:
            self.backend.close()

    @property
    def editor(self) -> TextArea:
        return self.query_one("#prompt", TextArea)

    @property
    def output(self) -> TokenText:
        return self.query_one("#output", TokenText)

    @property
    def table(self) -> ProbabilityTable:
        return self.query_one("#probs", ProbabilityTable)

    @property
    def steps(self) -> tuple[Step, ...]:
        """The steps shown in the output."""
        return self._steps

    @property
    def session(self) -> GenerationSession | RemoteSession | None:
        return self._session

    @property
    def run(self) -> Run | None:
        """The last run (its state, the tokens it drew, its rate): for tests and benchmarks/app_stream.py."""
        return self._run

    @property
    def running(self) -> bool:  # a generation under way: Escape stops it first (Pane.leave_text)
        return self._run is not None and not self._run.ended

    def knob(self, name: str) -> Knob:
        return self.query_one(f"#knob-{name.replace('_', '-')}", Knob)

    def focus_default(self) -> None:
        self.editor.focus()

    def set_prompt(self, text: str) -> None:
        self.editor.load_text(text)
        self.editor.move_cursor(self.editor.document.end)  # ready to type on

    def action_generate(self) -> None:
        """Generate from the prompt (in chat mode: send the message)."""
        if not self.need_model():
            return
        request = self._new_prompt_request()
        if request is None:
            return
        self._streaming = True
        self._start("generate", request, new_session=True)

    def action_step(self) -> None:
        """Exactly one token: from where the shown text stops, or from a new prompt.

        Presses that come while a step is computed are counted, not lost: a speaker's
        clicker may be faster than the model. While streaming, it stops instead.
        """
        run = self._run
        if run is not None and not run.ended:
            if run.limit is not None and not run.stop.is_set():
                run.limit += 1  # the worker reads it before each token
            else:
                self.action_stop()
            return
        if not self.need_model():
            return
        self._streaming = False
        if self._can_go_on():
            self._start("step", self._session_prompt, limit=1)  # type: ignore[arg-type]
            return
        request = self._new_prompt_request()
        if request is not None:
            self._start("step", request, new_session=True, limit=1)

    def action_continue(self) -> None:
        """Go on generating from where the text stopped."""
        if self.running or not self.need_model():
            return
        self._streaming = True
        if self._can_go_on():
            self._start("continue", self._session_prompt)  # type: ignore[arg-type]
        else:
            self.action_generate()

    def action_stop(self) -> None:
        """Stop the running generation before its next token."""
        run = self._run
        if run is None or run.ended:
            return
        run.stop.set()  # the worker ends the run (and says so) once the token being computed lands
        self.say("Stopping…", "busy")

    def action_focus_table(self) -> None:
        self.table.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Stop shows in the footer only while generating; enter goes to the table from the output."""
        if action == "stop":
            return self.running
        if action == "focus_table":
            return self.app.focused is self.output
        return True

    def action_toggle_colour(self) -> None:
        self.colour_by = "knobs" if self.colour_by == "model" else "model"

    def watch_colour_by(self) -> None:
        self._update_legend()
        self._render_output()
        self.say("Tokens coloured by the model's probability." if self.colour_by == "model"
                  else "Tokens coloured by their probability after the knobs (what they were drawn with).")

    def action_clear(self) -> None:
        """Forget the shown text (and the chat so far); the prompt stays in the editor."""
        if self.running:
            self.post_message(self.backend.speed_message(None, None))
        self.workers.cancel_group(self, "generation")  # a run, or a branch being restored: nothing of it lands
        self._run = None
        self.refresh_bindings()
        self._session = None
        self._session_prompt = None
        self._tree = None
        self._steps = ()
        self._prompt_ids = []
        self._prompt_pieces = []
        self._preview_len = 0
        self._show_context()
        self.table.show(None)
        self._show_idle_output()
        self._request_preview()
        self.say("Cleared.")

    def help_keys(self) -> list[tuple[str, str]]:
        return super().help_keys() + view.MORE_KEYS

    def commands(self):  # type: ignore[override]
        yield from super().commands()
        yield from self._knob_commands()

    def advance(self) -> bool:
        """The advance key: one more token (as F6)."""
        self.action_step()
        return True

    def export_data(self) -> dict | None:
        """The probability table shown, and the whole generation with every step's candidates."""
        lm = self.lm
        # the table's prompt: a preview's is the text it was computed for, which the editor may have left already
        shown = self._session_prompt if self._session is not None else self._preview_for
        return view.export_data(self.backend.name if self.backend else None, self.table.view, shown, self._session,
                                self._session_prompt, self._steps, lm.tokenizer if lm else None)

    @property
    def preview_prompt(self) -> str | None:
        """The prompt the shown preview is for (None: no preview of a typed prompt); the editor may be ahead of it."""
        return self._preview_for.text if self._preview_for is not None else None

    def export_table(self) -> tuple[list[str], list[list]] | None:
        return None if self.table.view is None else view.export_table(self.table.view)
