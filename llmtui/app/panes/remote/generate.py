"""The Generate pane on a served model: the server draws, its logprobs fill the table.

The same prompt, knobs, output and probability table as the local pane, without what needs
the weights (the next-token preview, the context window). A run is a thread worker that owns
the RemoteSession while it runs and posts snapshots of its steps; `exclusive` cancels an older
run, and a run id keeps a stale snapshot from landing.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Literal

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal
from textual.reactive import reactive
from textual.widgets import Static, TextArea
from textual.worker import get_current_worker

from llmtui.app.palette import legend
from llmtui.app.panes.base import Pane
from llmtui.app.panes.remote.messages import ReconnectWanted, RemoteConnected, RemoteFailed, RemoteSteps, RemoteTraffic
from llmtui.app.panes.remote.view import output_pieces, step_table, undecided_note
from llmtui.app.screens.value_input import ValueInputScreen
from llmtui.app.widgets.knob import KNOBS, Knob
from llmtui.app.widgets.prob_table import ProbabilityTable
from llmtui.app.widgets.prompt_editor import PromptEditor
from llmtui.app.widgets.token_text import TokenText
from llmtui.engine.settings import SamplingSettings

if TYPE_CHECKING:
    from llmtui.app.state import ModelState
    from llmtui.engine.generation import Step
    from llmtui.engine.remote.client import RemoteModel
    from llmtui.engine.remote.session import RemoteSession

POST_EVERY = 0.1  # seconds between snapshots: as the local pane (panes/generate.py's POST_EVERY)
RunKind = Literal["generate", "step", "continue", "fork"]


class RemoteGeneratePane(Pane):
    """Streamed generation from a served model, with its listed candidates and the knobs' verdicts."""

    PANE_ID = "generate"
    TITLE = "Generate"
    SHORT_TITLE = "Gen"
    MESSAGE_LINE = "#gen-message"
    HELP = (
        "A served model writes one token at a time; its server lists the most probable candidates of each step "
        "(logprobs, usually 20) and says nothing of the rest. The table shows them with what the knobs would do: "
        "a cut where the list decides it, '?' where it depends on the unlisted tail. Stepping and forking send "
        "the text so far as a new prompt."
    )
    BINDINGS = [
        Binding("f5,ctrl+g", "generate", "Generate", priority=True, tooltip="Generate from the prompt"),
        Binding("escape", "stop", "Stop", tooltip="Stop generating"),
        Binding("f6", "step", "Step", priority=True, tooltip="Generate exactly one token"),
        Binding("f7", "continue", "Go on", priority=True, tooltip="Go on generating from where it stopped"),
        Binding("ctrl+t", "toggle_chat", "Chat", priority=True, tooltip="Chat mode on/off: the prompt becomes a user message"),
        Binding("ctrl+n", "clear", "Clear", show=False, tooltip="Clear the output"),
        Binding("c", "toggle_colour", "Colour by", show=False, tooltip="Colour tokens by the model's probability or the knobs'"),
    ]

    settings: reactive[SamplingSettings] = reactive(SamplingSettings, init=False)
    """The knobs, sent with each request (a running stream keeps the ones it was sent with)."""
    chat_mode: reactive[bool] = reactive(False, init=False)
    """Chat mode: the prompt goes to /v1/chat/completions as a user message."""
    colour_by: reactive[str] = reactive("model", init=False)
    """Colour output tokens by the model's probability ("model") or the one after the knobs ("knobs")."""

    def __init__(self, settings: SamplingSettings | None = None) -> None:
        super().__init__()
        self.set_reactive(RemoteGeneratePane.settings, settings or SamplingSettings())
        self.remote: RemoteModel | None = None
        self._session: RemoteSession | None = None
        self._session_lock = threading.Lock()  # one worker thread at a time uses the session
        self._steps: tuple[Step, ...] = ()
        self._run = 0
        self._in_flight = False  # a request runs (not `_running`: Textual's message pump uses that name)

    def compose(self) -> ComposeResult:
        editor = PromptEditor(id="prompt", soft_wrap=True, tab_behavior="focus", show_line_numbers=False,
                              placeholder="Type a prompt, then F5 to generate or F6 for one token")
        editor.border_title = "Prompt"
        yield editor
        with Grid(id="knobs"):
            for spec in KNOBS:
                yield Knob(spec, getattr(self.settings, spec.name))
        yield Static(id="gen-message")
        with Horizontal(id="gen-main"):
            output = TokenText(id="output")
            output.border_title = "Output"
            output.border_subtitle = legend("model p ")
            yield output
            yield ProbabilityTable(id="probs")

    def on_mount(self) -> None:
        self.watch(self.output, "selected", lambda _: self._refresh_table(), init=False)
        self.output.set_placeholder("Connecting to the server…", "placeholder")
        self.say("Connecting to the server… you can type the prompt meanwhile.", "busy")

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
        return self._steps

    @property
    def ready(self) -> bool:
        """Attached to the server (what a demo step waits for)."""
        return self.remote is not None

    @property
    def session(self) -> RemoteSession | None:
        return self._session

    @property
    def running(self) -> bool:
        return self._in_flight

    @property
    def message(self) -> str:
        return str(self.query_one("#gen-message", Static).render())

    def knob(self, name: str) -> Knob:
        return self.query_one(f"#knob-{name.replace('_', '-')}", Knob)

    def focus_default(self) -> None:
        self.editor.focus()

    def set_prompt(self, text: str) -> None:
        self.editor.load_text(text)
        self.editor.move_cursor(self.editor.document.end)  # ready to type on

    def model_state_changed(self, state: ModelState) -> None:
        """A local model opened beside the server (o in a weights pane) is none of this pane's business."""

    # -- the connection --------------------------------------------------------------------

    def on_remote_connected(self, message: RemoteConnected) -> None:
        self.remote = message.remote
        self.output.set_placeholder(f"Attached to {message.remote.name}. F5 generates, F6 adds one token.")
        self.say(f"Ready · {message.remote.name} · F5 generate · F6 one token")

    def on_remote_failed(self, message: RemoteFailed) -> None:
        self.output.set_placeholder(message.error, "error")
        self.say(f"{message.error} · F5 tries again (your prompt is kept)", "error")

    def _attached(self) -> bool:
        if self.remote is None:
            self.post_message(ReconnectWanted())
            self.say("Connecting to the server…", "busy")
            return False
        return True

    # -- actions ---------------------------------------------------------------------------

    def action_generate(self) -> None:
        self._start("generate")

    def action_step(self) -> None:
        self._start("step", limit=1)  # the first step starts a session from the prompt

    def action_continue(self) -> None:
        if self._session is None or self._session.finished and not self._dropped():
            self.say("Nothing to go on from: F5 generates from the prompt.")
            return
        self._start("continue")

    def _dropped(self) -> bool:
        return self._session is not None and (self._session.stopped or "").startswith("dropped")

    def action_stop(self) -> None:
        if self._in_flight:
            self._run += 1  # what the stopped run still posts is stale
            self.workers.cancel_group(self, "remote-generate")
            self._in_flight = False
            self.say(f"Stopped after {len(self._steps)} tokens · F7 goes on")

    def action_clear(self) -> None:
        self.action_stop()
        self._run += 1
        self._session, self._steps = None, ()
        self._render_output()
        self.table.show(None)
        self.say("Cleared · F5 generates from the prompt")

    def watch_settings(self, settings: SamplingSettings) -> None:
        for spec in KNOBS:  # set from outside (a demo step): the knobs show it
            self.knob(spec.name).value = getattr(settings, spec.name)

    def action_toggle_chat(self) -> None:
        self.chat_mode = not self.chat_mode
        self.say("Chat mode: the prompt is sent as a user message." if self.chat_mode
                  else "Plain mode: the model continues your text.")

    def action_toggle_colour(self) -> None:
        self.colour_by = "knobs" if self.colour_by == "model" else "model"
        self.output.border_subtitle = legend("model p " if self.colour_by == "model" else "knobs p ")
        self._render_output()

    def advance(self) -> bool:
        self.action_step()
        return True

    def _start(self, kind: RunKind, *, limit: int | None = None, fork: tuple[int, int] | None = None) -> None:
        if not self._attached():
            return
        prompt = self.editor.text
        if (kind == "generate" or self._session is None) and not prompt.strip():
            self.say("The prompt is empty: type some text first.", "error")
            return
        self._run += 1
        self._in_flight = True
        self.say("Asking the server…", "busy")
        self._worker(self._run, kind, prompt, self.chat_mode, self.settings, limit, fork)

    @work(thread=True, exclusive=True, group="remote-generate", exit_on_error=False)
    def _worker(self, run: int, kind: RunKind, prompt: str, chat: bool, settings: SamplingSettings,
                limit: int | None, fork: tuple[int, int] | None) -> None:
        """Only posts messages; the session is used by one run's thread at a time."""
        from llmtui.engine.errors import RemoteError
        from llmtui.engine.remote.session import RemoteSession

        worker = get_current_worker()
        assert self.remote is not None
        with self._session_lock:
            session = self._session
            try:
                if kind == "generate" or session is None:
                    session = self._session = RemoteSession(self.remote, prompt, settings, chat=chat)
                session.settings = settings
                if fork is not None:
                    index, n = fork
                    session.fork(index, session.steps[index].candidates[n])
                posted = 0.0
                stream = session.stream(max_tokens=limit)
                for _ in stream:
                    if worker.is_cancelled:
                        stream.close()
                        return
                    if time.monotonic() - posted >= POST_EVERY:
                        posted = time.monotonic()
                        self.post_message(RemoteSteps(run, tuple(session.steps)))
                        if session.traffic is not None:
                            self.post_message(RemoteTraffic(session.traffic))
                error = None
            except (RemoteError, ValueError, IndexError) as e:
                error = str(e)
            except Exception as e:  # a bug: one line, the app keeps running
                error = f"internal error ({type(e).__name__}: {e})"
            if session.traffic is not None:
                self.post_message(RemoteTraffic(session.traffic))
            self.post_message(RemoteSteps(run, tuple(session.steps), True, error, session.finish_reason,
                                          tuple(session.notes)))

    @on(RemoteSteps)
    def _on_steps(self, message: RemoteSteps) -> None:
        if message.run != self._run:
            return  # a stopped or older run
        self._steps = message.steps
        self._render_output()
        self.output.selected = None  # follow the newest
        self._refresh_table()
        if not message.ended:
            self.say(f"Generating… {len(self._steps)} tokens · esc stops", "busy")
            return
        self._in_flight = False
        if message.error:
            dropped = (message.finish_reason or "").startswith("dropped")
            kept = " · F7 goes on" if dropped else f" · {len(self._steps)} tokens kept" if self._steps else ""
            self.say(message.error + kept, "error")
        else:
            notes = f" · {message.notes[0]}" if message.notes else ""
            self.say(f"{len(self._steps)} tokens · {message.finish_reason or 'F6 adds one more'}{notes}")

    def _render_output(self) -> None:
        self.output.set_content([], output_pieces(self._steps, self.colour_by == "model"), len(self._steps))

    def _refresh_table(self) -> None:
        index = self.output.selected if self.output.selected is not None else len(self._steps) - 1
        if 0 <= index < len(self._steps):
            step = self._steps[index]
            self.table.show(step_table(step, len(self._steps)))
            if not self._in_flight and (note := undecided_note(step)):
                self.say(note)

    # -- forks and knobs -------------------------------------------------------------------

    @on(ProbabilityTable.Chosen)
    def _chosen(self, event: ProbabilityTable.Chosen) -> None:
        event.stop()
        if event.preview or not 0 <= event.index < len(self._steps):
            return
        candidates = self._steps[event.index].candidates
        n = next((n for n, c in enumerate(candidates) if c.id == event.token_id), None)
        if n is None or self._steps[event.index].token_id == event.token_id:
            self.say("That is the token it drew; choose another row to fork the text there.")
            return
        self._start("fork", fork=(event.index, n))

    @on(Knob.Changed)
    def _knob_changed(self, event: Knob.Changed) -> None:
        event.stop()
        try:
            self.settings = self.settings.with_(**{event.knob.spec.name: event.value})
        except ValueError as e:
            event.knob.value = getattr(self.settings, event.knob.spec.name)
            self.say(str(e), "error")
            return
        self.say(f"{event.knob.text}: sent with the next request")

    @on(Knob.AskValue)
    def _ask_knob_value(self, event: Knob.AskValue) -> None:
        event.stop()
        knob, spec = event.knob, event.knob.spec

        def check(text: str) -> Any:
            value = spec.parse(text)
            self.settings.with_(**{spec.name: value})
            return value

        self.app.push_screen(ValueInputScreen(spec.label, spec.show(knob.value), check, spec.help),
                             lambda result: result is not None and knob.set_by_user(result[0]))

    def export_data(self) -> dict | None:
        if not self._steps:
            return None
        return {"endpoint": self.remote.endpoint.url if self.remote else None,
                "model": self.remote.model if self.remote else None,
                "prompt": self._session.prompt if self._session else None,
                "steps": [s.to_json() for s in self._steps], "text": "".join(s.text for s in self._steps)}
