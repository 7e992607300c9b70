"""The Generate pane's runs: starting one, the worker that draws its tokens, and what the pane shows as it
goes and when it ends (the run's states are in run.py)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from textual import work

from llmtui.app.display import count
from llmtui.app.panes.generate import view
from llmtui.app.panes.generate.run import PromptRequest, Run, RunKind

if TYPE_CHECKING:
    from llmtui.app.panes.generate.backend import Backend
    from llmtui.engine.generation import Step

POST_EVERY = 0.1
"""The worker posts the steps at most this often (seconds). Ten redraws a second still read as a
stream (a fast model shows a few tokens per frame), and leave the CPU to the model: on two cores,
20 redraws a second cost the model ~20% of its speed, 10 about half that (benchmarks/app_stream.py)."""
UI_BUDGET = 0.06
"""The share of a core the UI thread may take while tokens stream; frames that cost more come further apart.
Each ms the UI thread runs is a ms one of the model's threads waits (on two cores, a little more: the other
thread waits for it at the step's next barrier), so this bounds what drawing costs the model (~7%)."""
LONGEST_GAP = 0.25
"""Frames never come further apart than this (seconds): four a second still read as a stream."""


class FramePace:
    """The time between a stream's frames: POST_EVERY, longer where drawing costs the UI thread more than
    UI_BUDGET of a core (a big terminal, a slow machine, a slow terminal emulator), never over LONGEST_GAP.

    A frame's cost is the UI thread's CPU time from one frame to the next: the frame's own drawing (the
    screen's update comes after the pane's), and whatever else the UI did meanwhile (keys, timers)."""

    def __init__(self) -> None:
        self.gap = POST_EVERY
        self._cpu: float | None = None  # the UI thread's CPU time at the last frame
        self._cost: float | None = None  # a frame's cost, smoothed

    def drawn(self, cpu: float) -> None:
        """A frame was drawn; cpu: the UI thread's CPU time now (time.thread_time() on it). Sets the gap
        to the next frame. The first frame only starts the count: before it, the UI started the run."""
        if self._cpu is not None:
            cost = cpu - self._cpu
            self._cost = cost if self._cost is None else (self._cost + cost) / 2
            self.gap = min(LONGEST_GAP, max(POST_EVERY, self._cost / UI_BUDGET))
        self._cpu = cpu


class RunnerPart:
    """Mixed into GeneratePane: one run at a time, in an exclusive worker awaiting the model thread."""

    def _start(self, kind: RunKind, prompt: PromptRequest, *, new_session: bool = False, limit: int | None = None,
               fork: tuple[int, int | str] | None = None) -> None:
        """fork: (step, token id) for a fork to a candidate, (step, text) for a fork to typed text ("type")."""
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
    async def _worker(self, run: Run, fork: tuple[int, int | str] | None) -> None:
        """One run, its failure said as one line, and a served model's stream closed however it ends."""
        backend = self.backend
        assert backend is not None
        try:
            with self.reporting(lambda line: self._ended(run, tuple(run.session.steps) if run.session else (), "error", line)):
                await self._advance(run, backend, fork)  # a prompt too long, a fork past the end, a server's fault, a bug
        finally:
            if run.session is not None:
                backend.end(run.session)  # a served model's stream still open (stopped, paused, cancelled)

    async def _advance(self, run: Run, backend: Backend, fork: tuple[int, int | str] | None) -> None:
        """Advance the session through the backend (the model thread, or a served model's stream), which takes
        steps until the run must pause; show them every POST_EVERY seconds or more (FramePace), drawn while it goes on."""
        session = run.session
        if session is None:
            session = run.session = await backend.open(run.prompt, run.settings)
        if fork is not None:
            index, token = fork
            if isinstance(token, str):  # a fork to typed text
                run.note = await backend.force_text(session, index, token)
            elif run.kind == "force":
                step = await backend.step(session, run.settings, 1)
                if step is None:
                    raise ValueError(f"the text has finished ({session.finish_reason}): no token comes next")
                if step.token_id != token:
                    await backend.fork(session, step.index, token)
            else:
                await backend.fork(session, index, token)
            self._show_steps(run, tuple(session.steps), None)
        loop = asyncio.get_running_loop()
        due = asyncio.Event()  # set when steps drawn since the last post are due on screen
        last_post = 0.0
        pace = FramePace()

        def drawn() -> None:  # after each step, on the thread that took it
            nonlocal last_post
            now = time.perf_counter()
            if now - last_post >= pace.gap:
                last_post = now
                loop.call_soon_threadsafe(due.set)

        while True:
            if run.limit is not None and run.produced >= run.limit:
                reason = session.finish_reason or (("typed" if run.kind == "type" else "forked")
                                                   if fork is not None and run.produced == 0 else "paused")
                break
            if run.stop.is_set():
                reason = "stopped"
                break
            taking = asyncio.ensure_future(backend.take(session, run, drawn))
            try:
                while not taking.done():
                    posted = asyncio.ensure_future(due.wait())
                    await asyncio.wait((taking, posted), return_when=asyncio.FIRST_COMPLETED)
                    posted.cancel()
                    if due.is_set() and not taking.done():
                        due.clear()
                        self._show_steps(run, tuple(session.steps), run.rate)
                        pace.drawn(time.thread_time())
            except asyncio.CancelledError:
                run.halt = True  # a newer run replaced this one: the model thread's loop stops after its step
                taking.cancel()
                raise
            if not taking.result():
                reason = session.finish_reason or "finished"
                break
        self._ended(run, tuple(session.steps), reason)

    def _adopt(self, run: Run) -> None:
        """Make the run's session the shown one (once the worker created it)."""
        if run.session is not None and run.session is not self._session:
            self._session = run.session
            self._session_prompt = run.prompt
            assert self.backend is not None
            self._prompt_ids = self.backend.prompt_ids(run.session)
            self._prompt_pieces = self.backend.prompt_pieces(self._prompt_ids)
            self._last_seed = self.backend.seed(run.session)
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
            self.post_message(self.backend.speed_message(run.session, tokens_per_s))

    def _ended(self, run: Run, steps: tuple[Step, ...], reason: str, error: str | None = None) -> None:
        """The run stopped: finished ("stop token", "max new tokens", ...), "stopped" by the user, or failed."""
        run.ended = True
        self.refresh_bindings()
        self.post_message(self.backend.speed_message(run.session, None))
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
            self.say(view.failed_line(error, self._session.finish_reason), "error")
        else:
            text, kind = view.ended_line(reason, self._steps, self._last_seed, self.context_used, self.backend.window)
            if run.note:  # what a fork to typed text could not do goes first: an 80-column line cuts its end
                self.say(f"{run.note} · {text}", kind)
            else:
                self.say(text + self.backend.notes(self._session), kind)
