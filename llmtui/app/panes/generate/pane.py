"""The Generate pane: watch the model choose its next token, and change how it chooses.

A prompt editor, the sampling knobs, the output (each token coloured by the
probability it had) and the probability table of one step. Generation runs in an
exclusive worker on the UI's event loop that awaits each step from the model thread
(`model_thread.call`); a newer run or preview cancels the older worker at its await,
so a stale result never lands.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from rich.style import Style
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal
from textual.reactive import reactive
from textual.timer import Timer
from textual.widgets import TextArea

from llmtui.app.display import StepTexts, count, prompt_pieces
from llmtui.app.messages import Throughput
from llmtui.app.model_thread import call
from llmtui.app.palette import legend, prob_style
from llmtui.app.panes.base import MessageKind, Pane, error_line
from llmtui.app.panes.generate import view
from llmtui.app.panes.generate.run import PromptRequest, Run, RunKind, check_fits
from llmtui.app.screens.value_input import ValueInputScreen
from llmtui.app.selection import TokenSelection
from llmtui.app.state import ModelState
from llmtui.app.widgets.knob import KNOBS, Knob
from llmtui.app.widgets.message_line import MessageLine
from llmtui.app.widgets.prob_table import ProbabilityTable, TableView
from llmtui.app.widgets.prompt_editor import PromptEditor
from llmtui.app.widgets.token_text import Piece, TokenText
from llmtui.engine.branches import BranchTree
from llmtui.engine.chat import default_system_prompt
from llmtui.engine.settings import SamplingSettings

if TYPE_CHECKING:
    from llmtui.engine.generation import Candidate, GenerationSession, Step
    from llmtui.engine.lm import LanguageModel

TOP_N = 10
"""Candidates per step in the table (the drawn token is added when it is not among them)."""
POST_EVERY = 0.1
"""The worker posts the steps at most this often (seconds). Ten redraws a second still read as a
stream (a fast model shows a few tokens per frame), and leave the CPU and the GIL to the model:
on two cores, 20 redraws a second cost the model ~20% of its speed, 10 about half that
(benchmarks/app_stream.py)."""
PREVIEW_DELAY = 0.3
"""Seconds after the last key press in the prompt before the next-token preview is computed."""

def check_settings(settings: SamplingSettings, name: str, value: Any) -> SamplingSettings:
    """The settings with one knob changed, or ValueError saying why not."""
    return settings.with_(**{name: value})


class GeneratePane(Pane):
    """Streamed generation with live probability tables and sampling knobs."""

    PANE_ID = "generate"
    MESSAGE_LINE = "#gen-message"
    TITLE = "Generate"
    SHORT_TITLE = "Gen"
    HELP = view.HELP

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
        Binding("ctrl+b", "stop_strings", "Stop strings", show=False, tooltip="Text that ends a generation"),
        Binding("x", "ban", "Ban", show=False, tooltip="In the table: ban the highlighted token (again: unban)"),
        Binding("ctrl+z", "undo_fork", "Undo fork", show=False, tooltip="Take back the last new branch"),
        Binding("ctrl+y", "redo_fork", "Redo fork", show=False, tooltip="Bring back the branch last taken back"),
    ]

    settings: reactive[SamplingSettings] = reactive(SamplingSettings, init=False)
    """The knobs. Replaced whole (it is frozen); a running generation reads it at its next token."""
    chat_mode: reactive[bool] = reactive(False, init=False)
    """Chat mode: the prompt is a user message wrapped in the model's chat template."""
    colour_by: reactive[str] = reactive("model", init=False)
    """Colour output tokens by the model's probability ("model") or the one after the knobs ("knobs")."""

    def __init__(self, settings: SamplingSettings | None = None) -> None:
        super().__init__()
        self.set_reactive(GeneratePane.settings, settings or SamplingSettings())
        self._run: Run | None = None
        self._session: GenerationSession | None = None
        self._session_prompt: PromptRequest | None = None
        self._steps: tuple[Step, ...] = ()
        self._prompt_ids: list[int] = []
        self._prompt_pieces: list[Piece] = []
        self._texts: StepTexts | None = None
        self._preview: TableView | None = None
        self._preview_timer: Timer | None = None
        self._streaming = True  # after a fork, go on generating (False after single steps)
        self._note_until = 0.0  # a knob's note stays on the message line until then (time.monotonic)
        self._speed_shown_at = 0.0  # when tokens/s last went to the status line (time.monotonic)
        self._last_seed: int | None = None
        self._preview_len = 0  # tokens of the previewed prompt (no session yet)
        self._tree: BranchTree | None = None  # every generation and fork of the shown prompt
        self.system_prompt: str | None = None  # the chat's system prompt; None: the template's own

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        editor = PromptEditor(
            id="prompt",
            soft_wrap=True,
            tab_behavior="focus",
            show_line_numbers=False,
            placeholder="Type a prompt, then F5 to generate or F6 for one token",
        )
        editor.border_title = "Prompt"
        yield editor
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
    def session(self) -> GenerationSession | None:
        return self._session

    @property
    def running(self) -> bool:
        return self._run is not None and not self._run.ended

    @property
    def message(self) -> str:
        """The text of the pane's message line."""
        return self.query_one("#gen-message", MessageLine).text

    def knob(self, name: str) -> Knob:
        return self.query_one(f"#knob-{name.replace('_', '-')}", Knob)

    def focus_default(self) -> None:
        self.editor.focus()

    def set_prompt(self, text: str) -> None:
        self.editor.load_text(text)
        self.editor.move_cursor(self.editor.document.end)  # ready to type on

    def say(self, text: str, kind: MessageKind = "info", where: str | None = None) -> None:
        """The message line (a MessageLine: cheap to update many times a second while tokens stream)."""
        line = self.query_one("#gen-message", MessageLine)
        line.text = str(text)
        for k in ("info", "error", "busy", "hint"):
            line.set_class(k == kind, f"-{k}")

    def _update_legend(self) -> None:
        self.output.border_subtitle = legend("model p " if self.colour_by == "model" else "knobs p ")

    @property
    def context_used(self) -> int:
        """Tokens of the context window the shown text takes: the prompt (as encoded) and the generated tokens."""
        if self._session is not None:
            return len(self._prompt_ids) + len(self._steps)
        return self._preview_len

    def _show_context(self) -> None:
        """The output's title says how much of the context window the text uses (always in view)."""
        used = self.context_used
        if self.lm is None or not used:
            self.output.border_title = "Output"
            return
        window = self.lm.config.context_length
        full = " · full" if used >= window else ""
        self.output.border_title = f"Output · context {used:,} / {window:,}{full}"

    # -- the model -------------------------------------------------------------------------

    def model_state_changed(self, state: ModelState) -> None:
        if state.phase == "ready":
            return
        self.output.set_placeholder(
            state.describe() + ("\n\nQuit with ctrl+q and start again with --model NAME|PATH." if state.phase == "failed" else ""),
            "error" if state.phase == "failed" else "placeholder",
        )
        super().model_state_changed(state)

    def model_ready(self, lm: LanguageModel) -> None:
        self._texts = StepTexts(lm.tokenizer)
        self.say(f"Ready · {lm.config.context_length} tokens of context · F5 generate · F6 one token")
        self._show_idle_output()
        self._request_preview()

    def _show_idle_output(self) -> None:
        if not self._steps and not self._prompt_pieces:
            if self.chat_mode:
                self.output.set_placeholder("Chat mode: type a message as the user; F5 sends it.\n"
                                            "The output shows the exact text the model continues, template tokens included.")
            else:
                self.output.set_placeholder("Type a prompt above. The table shows the next token's probabilities; "
                                            "F5 generates, F6 adds one token at a time.")

    # -- actions ---------------------------------------------------------------------------

    def _ready_to_run(self) -> bool:
        if self.lm is None:
            if self.model_state.phase == "failed":
                self.say("No model: it could not be loaded (see the output). Your prompt is kept.", "error")
            else:
                self.say("The model is still loading; your prompt is kept. Press the key again when it is ready.", "busy")
            return False
        return True

    def _new_prompt_request(self) -> PromptRequest | None:
        """The request for a fresh session from the editor, or None (with a message) when there is none."""
        text = self.editor.text
        if not self.chat_mode:
            if not text.strip():
                self.say("The prompt is empty: type some text first.", "error")
                return None
            return PromptRequest(text)
        if text.strip():
            history: tuple[tuple[str, str], ...] = ()
            previous = self._session_prompt
            if previous is not None and previous.chat and self._session is not None:
                history = previous.history + ((previous.text, self._reply_text()),)
            return PromptRequest(text, chat=True, history=history, system=self.system_prompt)
        previous = self._session_prompt
        if previous is not None and previous.chat:
            return previous  # an empty message: draw the last reply again
        self.say("The message is empty: type what the user says first.", "error")
        return None

    def _reply_text(self) -> str:
        """The assistant's reply in the shown chat: the generated text without the stop token."""
        if self.lm is None:
            return ""
        stops = set(self.lm.stop_ids)
        return self.lm.tokenizer.decode([s.token_id for s in self._steps if s.token_id not in stops])

    def _can_go_on(self) -> bool:
        """Whether step/continue extend the shown session (rather than start one from the editor)."""
        prompt = self._session_prompt
        if self._session is None or prompt is None:
            return False
        if prompt.chat:
            return self.chat_mode and not self.editor.text.strip()
        return not self.chat_mode and self.editor.text == prompt.text

    def action_generate(self) -> None:
        """Generate from the prompt (in chat mode: send the message)."""
        if not self._ready_to_run():
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
        if not self._ready_to_run():
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
        if self.running or not self._ready_to_run():
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

    def leave_text(self) -> None:
        """Escape in the prompt stops a running generation (the key a speaker reaches for); else it leaves the prompt."""
        if self.running:
            self.action_stop()
        else:
            super().leave_text()

    def action_focus_table(self) -> None:
        self.table.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Stop shows in the footer only while generating; enter goes to the table from the output."""
        if action == "stop":
            return self.running
        if action == "focus_table":
            return self.app.focused is self.output
        return True

    def action_toggle_chat(self) -> None:
        self.chat_mode = not self.chat_mode

    def action_toggle_colour(self) -> None:
        self.colour_by = "knobs" if self.colour_by == "model" else "model"

    def action_reset_knobs(self) -> None:
        self.settings = SamplingSettings()
        self.say("Knobs reset to their defaults.")

    def action_clear(self) -> None:
        """Forget the shown text (and the chat so far); the prompt stays in the editor."""
        if self.running:
            self.workers.cancel_group(self, "generation")  # the run is dropped: nothing of it lands
            self.post_message(Throughput(None))
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

    def watch_chat_mode(self, chat: bool) -> None:
        self.editor.border_title = "Message (chat mode: you are the user)" if chat else "Prompt"
        self.editor.placeholder = (
            "Type a message as the user, then F5 to send it" if chat else "Type a prompt, then F5 to generate or F6 for one token"
        )
        self.set_class(chat, "-chat")
        self.say("Chat mode: your text is wrapped in the model's chat template." if chat else "Plain mode: the model continues your text.")
        if not self._steps:
            self._prompt_pieces = []
            self._show_idle_output()
            self._request_preview()

    def watch_colour_by(self) -> None:
        self._update_legend()
        self._render_output()
        self.say("Tokens coloured by the model's probability." if self.colour_by == "model"
                  else "Tokens coloured by their probability after the knobs (what they were drawn with).")

    # -- knobs -----------------------------------------------------------------------------

    @on(Knob.Changed)
    def _knob_changed(self, event: Knob.Changed) -> None:
        event.stop()
        name = event.knob.spec.name
        try:
            new = check_settings(self.settings, name, event.value)
        except ValueError as e:
            event.knob.value = getattr(self.settings, name)
            self.say(str(e), "error")
            return
        self.settings = new
        if self.running:
            note = "the seed applies to the next generation" if name == "seed" else "applies from the next token"
            self.say(f"{event.knob.text}: {note}", "busy")
            self._note_until = time.monotonic() + 2.0
        else:
            if name == "seed":
                self.say(f"{event.knob.text}: applies to the next generation")
                return
            if name == "max_new_tokens":
                self.say(f"{event.knob.text}: the most this text may have (F7 goes on up to it)")
                return
            self.say(f"{event.knob.text}: the table shows the next token under the new knobs")
            if self._steps and self.output.selected != len(self._steps):
                self.output.allow_next(True)
                self.output.selected = len(self._steps)

    @on(Knob.AskValue)
    def _ask_knob_value(self, event: Knob.AskValue) -> None:
        event.stop()
        knob = event.knob
        spec = knob.spec

        def check(text: str) -> Any:
            value = spec.read(text)
            check_settings(self.settings, spec.name, value)
            return value

        def done(result: tuple[Any] | None) -> None:
            if result is not None:
                knob.set_by_user(result[0])

        self.app.push_screen(ValueInputScreen(spec.label, spec.show(knob.value), check, spec.help), done)

    def set_knob(self, name: str, value: Any) -> None:
        """Set one knob as a user would (validated; an invalid value leaves a message)."""
        self.knob(name).set_by_user(value)

    def watch_settings(self, settings: SamplingSettings) -> None:
        for spec in KNOBS:
            self.knob(spec.name).value = getattr(settings, spec.name)
        if self._run is not None and not self._run.ended:
            self._run.settings = settings  # the worker reads it before its next token
        else:
            self._request_preview()

    def action_fix_seed(self) -> None:
        if self._last_seed is not None:
            self.set_knob("seed", self._last_seed)

    def action_random_seed(self) -> None:
        self.set_knob("seed", None)

    def on_key(self, event: Any) -> None:
        focused = self.app.focused
        if isinstance(focused, Knob) and focused.spec.name == "seed" and event.key in ("r", "f"):
            event.stop()
            self.action_random_seed() if event.key == "r" else self.action_fix_seed()

    # -- running ---------------------------------------------------------------------------

    def _start(self, kind: RunKind, prompt: PromptRequest, *, new_session: bool = False, limit: int | None = None,
               fork: tuple[int, int] | None = None) -> None:
        if self._run is not None and not self._run.ended:
            self._run.stop.set()
        self.workers.cancel_group(self, "preview")  # a pending preview is stale now
        run = Run(kind, self.settings, prompt, None if new_session else self._session, limit)
        self._run = run
        self.output.allow_next(False)
        self.output.selected = None
        self.say("Generating…" if limit is None else "Thinking…", "busy")
        self._worker(run, fork)
        self.refresh_bindings()

    @work(exclusive=True, group="generation", exit_on_error=False)
    async def _worker(self, run: Run, fork: tuple[int, int] | None) -> None:
        """Advance the session a step at a time on the model thread; show the steps at most every POST_EVERY
        seconds, drawn while the model computes the next step."""
        from llmtui.engine.generation import GenerationSession

        lm = self.lm
        assert lm is not None
        first_at, last_post = 0.0, 0.0
        try:
            if run.session is None:
                ids = await call(run.prompt.encode, lm)
                check_fits(run.prompt, len(ids), lm.config.context_length)
                run.session = await call(GenerationSession, lm, ids, run.settings, top_n=TOP_N)
            session = run.session
            if fork is not None:
                index, token = fork
                session.settings = run.settings
                if run.kind == "force":
                    step = await call(session.step)
                    if step is None:
                        raise ValueError(f"the text has finished ({session.finish_reason}): no token comes next")
                    if step.token_id != token:
                        await call(session.fork, step.index, token)
                else:
                    await call(session.fork, index, token)
                self._show_steps(run, tuple(session.steps), None)
            shown: tuple[Step, ...] | None = None  # steps to draw while the next one is computed
            while True:
                if run.limit is not None and run.produced >= run.limit:
                    reason = session.finish_reason or ("forked" if fork is not None and run.produced == 0 else "paused")
                    break
                if run.stop.is_set():
                    reason = "stopped"
                    break
                session.settings = run.settings
                next_step = asyncio.ensure_future(call(session.step))
                if shown is not None:
                    self._show_steps(run, shown, run.rate)
                    shown = None
                step = await next_step
                if step is None:
                    reason = session.finish_reason or "finished"
                    break
                run.produced += 1
                now = time.perf_counter()
                if run.produced == 1:
                    first_at = now
                else:
                    run.rate = (run.produced - 1) / (now - first_at)
                if now - last_post >= POST_EVERY:
                    last_post = now
                    shown = tuple(session.steps)
            self._ended(run, tuple(session.steps), reason)
        except Exception as e:  # a prompt too long, a fork past the end (the user's to fix), or a bug: one line
            self._ended(run, tuple(run.session.steps) if run.session else (), "error", error_line(e))

    def _adopt(self, run: Run) -> None:
        """Make the run's session the shown one (once the worker created it)."""
        if run.session is not None and run.session is not self._session:
            self._session = run.session
            self._session_prompt = run.prompt
            self._prompt_ids = list(run.session.prompt_ids)
            assert self.lm is not None
            self._prompt_pieces = [
                Piece(p.text, role="special" if p.special else "prompt") for p in prompt_pieces(self.lm.tokenizer, self._prompt_ids)
            ]
            self._last_seed = run.session.seed
            if run.prompt.chat and run.kind in ("generate", "step") and self.editor.text == run.prompt.text:
                self.editor.load_text("")  # the message was sent: it now shows in the transcript

    def _show_steps(self, run: Run, steps: tuple[Step, ...], tokens_per_s: float | None) -> None:
        """The run's steps so far, while it goes on."""
        self._adopt(run)
        self._steps = steps
        self._render_output()
        self._refresh_table()
        if not run.ended and not run.stop.is_set() and time.monotonic() > self._note_until:
            self.say(f"Generating… {count(len(self._steps), 'token')} · seed {self._last_seed}", "busy")
        now = time.monotonic()
        if tokens_per_s is not None and now - self._speed_shown_at >= 1.0:  # the status line: once a second
            self._speed_shown_at = now
            self.post_message(Throughput(tokens_per_s))

    def _ended(self, run: Run, steps: tuple[Step, ...], reason: str, error: str | None = None) -> None:
        """The run stopped: finished ("stop token", "max new tokens", ...), "stopped" by the user, or failed."""
        run.ended = True
        self.refresh_bindings()
        self.post_message(Throughput(None))
        self._reselect()
        if error is not None and run.session is None:
            self.say(error, "error")
            return
        self._adopt(run)
        # The pane holds the session now. Textual keeps a finished worker (and so its run) reachable
        # for a while through context variables; without this, each kept an old session and its KV cache.
        run.session = None
        self._steps = steps
        self._record_branch()
        self.output.allow_next(True)
        self._render_output()
        self._refresh_table()
        if reason == "paused" and run.pending > 0 and not run.stop.is_set():
            # step presses that came in while it worked: a new worker, once this one has returned
            self.call_later(self._start, "step", run.prompt, limit=run.pending)
            return
        if error is not None:
            self.say(error, "error")
        else:
            window = self.lm.config.context_length if self.lm is not None else self.context_used
            self.say(*view.ended_line(reason, self._steps, self._last_seed, self.context_used, window))

    # -- output and table ------------------------------------------------------------------

    def _render_output(self) -> None:
        if self._texts is None:
            return
        self._show_context()
        if not self._steps and not self._prompt_pieces:
            self._show_idle_output()
            return
        texts = self._texts.update(self._steps)
        by_model = self.colour_by == "model"
        pieces = []
        for i, (step, text) in enumerate(zip(self._steps, texts)):
            style = prob_style(step.raw_prob if by_model else step.prob)
            if step.forced:
                style += Style(underline=True, italic=True)
            if self._texts.is_special(i):
                style += Style(bold=True)
            pieces.append(Piece(text.replace("\n", "↵\n"), style, i))
        self.output.set_content(self._prompt_pieces, pieces, len(self._steps))

    @on(TokenText.Selected, "#output")
    def _step_selected(self, event: TokenText.Selected) -> None:
        """The user picked a generated token: it becomes the app's current token (in the whole text)."""
        if event.index is not None and 0 <= event.index < len(self._steps):
            ids = [*self._prompt_ids, *(s.token_id for s in self._steps)]
            self.select_token(ids, len(self._prompt_ids) + event.index)

    def shown_ids(self) -> tuple[int, ...] | None:
        """The session's text: its prompt and the tokens generated so far (None before the first run)."""
        if self._session is None:
            return None
        return (*self._session.prompt_ids, *(step.token_id for step in self._steps))

    def _reselect(self) -> None:
        """After a fork, the app's current token (picked here) is the new text's token at its position, not the old one."""
        selection = self.selection  # the app's, handed down
        ids = (*self._prompt_ids, *(s.token_id for s in self._steps))
        if (selection is not None and selection.source == self.PANE_ID and selection.position < len(ids)
                and ids[: selection.position + 1] != tuple(selection.ids[: selection.position + 1])):
            self.select_token(ids, selection.position)

    def follow_selection(self, selection: TokenSelection) -> None:
        """The app's current token, when it is one of the shown steps: select it, its table shows."""
        ids = (*self._prompt_ids, *(s.token_id for s in self._steps))
        n_prompt = len(self._prompt_ids)
        # the selection's text may be an earlier state of this one (Attention or Layers took it mid-generation)
        if self._steps and ids[: len(selection.ids)] == selection.ids and n_prompt <= selection.position < len(ids):
            self.output.selected = selection.position - n_prompt

    def _selection_changed(self, index: int | None) -> None:
        """The output's cursor moved (by the user or by the pane): show that step's table."""
        self._refresh_table()
        if index is not None and index >= len(self._steps):
            self._request_preview()

    def _label(self, token_id: int, text: str) -> str:
        assert self.lm is not None
        return view.token_label(self.lm.tokenizer, token_id, text)

    def _refresh_table(self) -> None:
        selected = self.output.selected
        steps = self._steps
        index = selected if selected is not None else len(steps) - 1
        if 0 <= index < len(steps):
            assert self.lm is not None
            self.table.show(view.step_view(self.lm.tokenizer, steps[index], len(steps)))
        elif not self.running:
            self.table.show(self._preview)

    # -- the next-token preview ------------------------------------------------------------

    @on(TextArea.Changed, "#prompt")
    def _prompt_changed(self, event: TextArea.Changed) -> None:
        if self._session is None and self.lm is not None:
            if self._preview_timer is not None:
                self._preview_timer.stop()
            self._preview_timer = self.set_timer(PREVIEW_DELAY, self._request_preview)

    def _request_preview(self) -> None:
        """Compute the next token's distribution under the current knobs (in a thread)."""
        if self.lm is None or self.running:
            return
        if self._session is not None:
            self._preview_worker(self._session, None, self.settings)
            return
        request = PromptRequest(self.editor.text, chat=self.chat_mode, system=self.system_prompt)
        if not request.text.strip() and not self.chat_mode:
            self._preview = None
            self._prompt_pieces = []
            self._preview_len = 0
            self._show_context()
            self.table.show(None)
            self.workers.cancel_group(self, "preview")
            self._show_idle_output()
            return
        self._preview_worker(None, request, self.settings)

    @work(exclusive=True, group="preview", exit_on_error=False)
    async def _preview_worker(self, session: GenerationSession | None, request: PromptRequest | None,
                              settings: SamplingSettings) -> None:
        from llmtui.engine.generation import candidates
        from llmtui.engine.sampling import distribution

        lm = self.lm
        assert lm is not None

        def next_token(ids: list[int]) -> tuple:
            if session is not None:
                return candidates(lm, session.distribution(settings), TOP_N), len(session.steps), list(session.prompt_ids)
            logits = lm.run(ids, capture=False).logits[0, -1]
            return candidates(lm, distribution(logits, settings, ids), TOP_N), 0, ids

        try:
            ids: list[int] = []
            if session is None:
                assert request is not None
                ids = await call(request.encode, lm)
                if not ids:
                    raise ValueError("the prompt is empty: type some text first")
                check_fits(request, len(ids), lm.config.context_length)
            cands, position, ids = await call(next_token, ids)
        except Exception as e:  # the user's to fix (ValueError), or a bug: one line, the app keeps running
            self._preview_failed(error_line(e))
            return
        if not self.running:
            self._show_preview(position, cands, settings, tuple(ids))

    def _show_preview(self, position: int, cands: tuple[Candidate, ...], settings: SamplingSettings,
                      prompt_ids: tuple[int, ...]) -> None:
        """The distribution of the token that would come next, under the given knobs."""
        assert self.lm is not None
        self._preview = view.preview_view(self.lm.tokenizer, position, cands, settings)
        if self._session is None:  # show the prompt as the model will see it
            self._preview_len = len(prompt_ids)
            self._prompt_pieces = [
                Piece(p.text, role="special" if p.special else "prompt")
                for p in prompt_pieces(self.lm.tokenizer, list(prompt_ids))
            ]
            self._render_output()
            self.output.allow_next(True)
            self.output.selected = 0
        self._refresh_table()

    def _preview_failed(self, error: str) -> None:
        self._preview = None
        if self._session is None:
            self._preview_len = 0
            self._show_context()
        self.table.show(None)
        self.say(error, "error")

    # -- forks -----------------------------------------------------------------------------

    @on(ProbabilityTable.Chosen)
    def _chosen(self, event: ProbabilityTable.Chosen) -> None:
        event.stop()
        if not self._ready_to_run():
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

    def help_keys(self) -> list[tuple[str, str]]:
        return super().help_keys() + view.MORE_KEYS

    def commands(self):  # type: ignore[override]
        yield from super().commands()
        for spec in KNOBS:
            for direction, word in ((1, "up"), (-1, "down")):
                yield (f"{self.TITLE}: {spec.label} {word}", spec.help,
                       lambda spec=spec, d=direction: self.knob(spec.name).turn(d))
            yield (f"{self.TITLE}: set {spec.label}…", spec.help,
                   lambda spec=spec: self.knob(spec.name).action_ask())
        yield (f"{self.TITLE}: greedy (temperature 0)", "Always take the most probable token",
               lambda: self.set_knob("temperature", 0.0))
        yield (f"{self.TITLE}: random seed", "A fresh seed for every generation", self.action_random_seed)
        yield (f"{self.TITLE}: fix the last seed", "Repeat the last generation's draws", self.action_fix_seed)

    # -- compare, branches, the chat's system prompt, stop strings and bans ----------------

    def action_compare(self, b_words: str | None = None, mode: str = "same-text") -> None:
        """Open Compare on the shown prompt (or the editor's) with these knobs as A."""
        from llmtui.app.screens.compare.screen import CompareScreen

        if not self._ready_to_run():
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
        assert session is not None and self.lm is not None
        try:
            if session.prompt_ids != tree.prompt_ids:  # a loaded session of another prompt
                session = await call(GenerationSession, self.lm, tree.prompt_ids, self.settings, top_n=TOP_N)
                self._session = session
                self._session_prompt = PromptRequest(tree.decode(tree.prompt_ids))
                self._prompt_ids = list(tree.prompt_ids)
                self._prompt_pieces = [Piece(p.text, role="special" if p.special else "prompt")
                                       for p in prompt_pieces(self.lm.tokenizer, self._prompt_ids)]
            await call(session.restore, tree.steps(tree.current))
        except Exception as e:  # tokens outside this model's vocabulary in a hand-edited session, or a bug
            self.say(error_line(e), "error")
            return
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
        try:
            getattr(self._tree, which)()
        except ValueError as e:
            self.say(error_line(e) + ".")
            return
        self._follow_tree(self._tree)

    def action_system_prompt(self) -> None:
        """Edit the chat's system prompt; empty gives the template's own back."""
        if self.lm is None:
            self._ready_to_run()
            return
        default = default_system_prompt(self.lm)
        shown = self.system_prompt if self.system_prompt is not None else (default or "")
        hint = (f"The template's own: {default!r}. Empty brings it back." if default else
                "This model's template adds none of its own. Empty: none.")

        def done(result: tuple[Any] | None) -> None:
            if result is None:
                return
            text = result[0]
            self.system_prompt = text if text.strip() and text != default else None
            self.say("System prompt set: it applies from the next message." if self.system_prompt is not None
                     else "System prompt: the template's own.")
            self._request_preview()

        self.app.push_screen(ValueInputScreen("system prompt", shown, str, hint), done)

    def action_stop_strings(self) -> None:
        """Stop strings, written as words (quote one with spaces): the text ends before the first that appears."""
        import shlex

        def check(text: str) -> tuple[str, ...]:
            try:
                words = tuple(shlex.split(text))
            except ValueError as e:
                raise ValueError(f"can't read that: {e}") from None
            self.settings.with_(stop=words)
            return words

        def done(result: tuple[Any] | None) -> None:
            if result is not None:
                self.settings = self.settings.with_(stop=result[0])
                self.say(f"Stop strings: {', '.join(map(repr, result[0]))}" if result[0] else "No stop strings.")

        current = " ".join(shlex.quote(s) for s in self.settings.stop)
        self.app.push_screen(ValueInputScreen("stop strings", current, check,
                                              "Words such as \"User:\" '\\n\\n'; the text ends before the first."), done)

    def action_ban(self) -> None:
        """Ban the table's highlighted token (or lift its ban): the logit-bias stage cuts it from the next token on."""
        if self.app.focused is not self.table:
            self.say("Ban a token from the table: tab to it, pick a row, then x.")
            return
        token = self.table.highlighted_token()
        if token is None:
            return
        token_id, text = token
        banned = set(self.settings.banned) ^ {token_id}
        self.settings = self.settings.with_(banned=tuple(banned))
        what = "Banned" if token_id in banned else "Unbanned"
        self.say(f"{what} {self._label(token_id, text)}: it applies from the next token ({len(banned)} banned).")

    # -- presentation and export -----------------------------------------------------------

    def advance(self) -> bool:
        """The advance key: one more token (as F6)."""
        self.action_step()
        return True

    def export_data(self) -> dict | None:
        """The probability table shown, and the whole generation with every step's candidates."""
        lm = self.lm
        shown = self._session_prompt if self._session is not None else PromptRequest(self.editor.text, chat=self.chat_mode)
        return view.export_data(lm.name if lm else None, self.table.view, shown, self._session, self._session_prompt,
                                self._steps, lm.tokenizer if lm else None)

    def export_table(self) -> tuple[list[str], list[list]] | None:
        return None if self.table.view is None else view.export_table(self.table.view)
