"""Where the Generate pane's tokens come from: the local model (through the model service) or a served one.

The pane runs the same run loop, forks and table over either backend; what a backend
cannot do is said, never faked: a served model gives no next-token preview and no
context window (they need the weights), and only the candidates its server lists.
Both are awaited from the pane's exclusive workers on the UI's event loop.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from textual.message import Message

from llmtui.app.display import StepTexts, prompt_pieces, safe
from llmtui.app.messages import RemoteTraffic, Throughput
from llmtui.app.model_thread import call, jobs_waiting
from llmtui.app.panes.generate import view
from llmtui.app.panes.generate.run import TOP_N, PromptRequest, Run, check_fits
from llmtui.app.widgets.prob_table import TableView
from llmtui.app.widgets.token_text import Piece

if TYPE_CHECKING:
    from llmtui.engine.generation import Candidate, GenerationSession, Step
    from llmtui.engine.lm import LanguageModel
    from llmtui.engine.remote.client import RemoteModel
    from llmtui.engine.remote.session import RemoteSession
    from llmtui.engine.settings import SamplingSettings

T = TypeVar("T")


class Backend(Protocol):
    """What the pane asks of a source of steps."""

    served: ClassVar[bool]
    name: str
    window: int | None  # the context window in tokens; None where it is not known (a served model)

    async def open(self, prompt: PromptRequest, settings: SamplingSettings) -> Any: ...
    async def step(self, session: Any, settings: SamplingSettings, want: int | None) -> Step | None: ...
    async def take(self, session: Any, run: Run, drawn: Callable[[], None]) -> bool: ...
    def end(self, session: Any) -> None: ...
    def close(self) -> None: ...
    async def fork(self, session: Any, index: int, token_id: int) -> None: ...
    async def force_text(self, session: Any, index: int, text: str) -> str | None: ...
    def prompt_ids(self, session: Any) -> list[int]: ...
    def prompt_pieces(self, ids: list[int]) -> list[Piece]: ...
    def texts(self, steps: Sequence[Step], first: int = 0) -> list[tuple[str, bool]]: ...
    def reply_text(self, steps: Sequence[Step]) -> str: ...
    def seed(self, session: Any) -> int | None: ...
    def notes(self, session: Any) -> str: ...
    def step_view(self, step: Step, n_steps: int) -> TableView: ...
    def label(self, token_id: int, text: str) -> str: ...
    def speed_message(self, session: Any, tokens_per_s: float | None) -> Message: ...


class LocalBackend:
    """The model loaded here: each step one job on the model thread."""

    served: ClassVar[bool] = False

    def __init__(self, lm: LanguageModel) -> None:
        self.lm = lm
        self.name = lm.name
        self.window: int | None = lm.config.context_length
        self._texts = StepTexts(lm.tokenizer)

    async def open(self, prompt: PromptRequest, settings: SamplingSettings) -> GenerationSession:
        from llmtui.engine.generation import GenerationSession

        ids = await call(prompt.encode, self.lm)
        check_fits(prompt, len(ids), self.lm.config.context_length)
        return await call(GenerationSession, self.lm, ids, settings, top_n=TOP_N)

    async def step(self, session: GenerationSession, settings: SamplingSettings, want: int | None) -> Step | None:
        session.settings = settings  # the knobs as they are now: a turned knob applies from the next token
        return await call(session.step)

    async def take(self, session: GenerationSession, run: Run, drawn: Callable[[], None]) -> bool:
        """Steps one after another in one job of the model thread, calling `drawn` (on that thread) after each,
        until the run must pause (stop, its limit, its worker cancelled) or another job waits for the model
        thread (a capture, a preview: it goes first, and the pane asks again); False once the session finished.

        One job for many steps, because a job per step waited for the event loop between tokens, and
        the loop is busy drawing now and then: on two cores that cost ~5% of the speed (app_stream.py)."""
        return await call(self._take, session, run, drawn)

    @staticmethod
    def _take(session: GenerationSession, run: Run, drawn: Callable[[], None]) -> bool:
        while True:
            session.settings = run.settings  # the knobs as they are now: a turned knob applies from the next token
            if session.step() is None:
                return False
            run.count_step()
            drawn()
            if run.should_pause or jobs_waiting():
                return True

    def end(self, session: GenerationSession | None = None) -> None:
        """Nothing is open between steps."""

    def close(self) -> None:
        """The model service outlives the pane."""

    async def fork(self, session: GenerationSession, index: int, token_id: int) -> None:
        await call(session.fork, index, token_id)

    async def force_text(self, session: GenerationSession, index: int, text: str) -> str | None:
        """Make `text` the text from step `index` on: its tokens (as this tokenizer cuts it alone) forced in turn."""
        def force() -> None:
            ids = self.lm.encode(text)
            room = self.lm.config.context_length - len(session.prompt_ids) - index
            if len(ids) > room:
                raise ValueError(f"that text is {len(ids):,} tokens; the context window has room for {max(room, 0):,} there")
            if ids and index < len(session.steps):
                session.fork(index, ids[0])
                ids = ids[1:]
            else:
                session.restore(session.steps[:index])  # drop what followed (nothing when it goes at the end)
            for token in ids:
                session.force(token)

        await call(force)
        return None

    def prompt_ids(self, session: GenerationSession) -> list[int]:
        return list(session.prompt_ids)

    def prompt_pieces(self, ids: list[int]) -> list[Piece]:
        """The prompt as the model sees it: its text, the template's special tokens marked."""
        return [Piece(p.text, role="special" if p.special else "prompt") for p in prompt_pieces(self.lm.tokenizer, ids)]

    def texts(self, steps: Sequence[Step], first: int = 0) -> list[tuple[str, bool]]:
        """Each step's text from `first` on (decoded as UTF-8 across steps) and whether it is a special token."""
        texts = self._texts.update(steps)
        return [(texts[i], self._texts.is_special(i)) for i in range(first, len(texts))]

    def reply_text(self, steps: Sequence[Step]) -> str:
        """A chat reply as the next turn's history holds it: the generated text without the stop token."""
        stops = set(self.lm.stop_ids)
        return self.lm.tokenizer.decode([s.token_id for s in steps if s.token_id not in stops])

    def seed(self, session: GenerationSession) -> int | None:
        return session.seed

    def notes(self, session: GenerationSession) -> str:
        return ""

    def step_view(self, step: Step, n_steps: int) -> TableView:
        return view.step_view(self.lm.tokenizer, step, n_steps)

    def label(self, token_id: int, text: str) -> str:
        return view.token_label(self.lm.tokenizer, token_id, text)

    def speed_message(self, session: GenerationSession | None, tokens_per_s: float | None) -> Message:
        return Throughput(tokens_per_s)


@dataclass
class _OpenStream:
    session: RemoteSession
    settings: SamplingSettings
    steps: Iterator[Step]


class ServedBackend:
    """A model on a server (--endpoint): its streamed completion, read on a thread of its own.

    The HTTP calls block, so they run on one thread of this backend (never the model
    thread: a local model opened beside the server keeps it). One thread means the
    session is only ever used there: a cancelled run's last read finishes before the
    next run's first. A stream stays open between steps of one run; knobs turned while
    it runs close it and the next step asks again with the new ones (from the text so far).
    """

    served: ClassVar[bool] = True

    def __init__(self, remote: RemoteModel) -> None:
        self.remote = remote
        self.name = remote.name
        self.window: int | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="llmtui-served")
        self._open: _OpenStream | None = None

    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.wrap_future(self._thread.submit(fn, *args))

    async def open(self, prompt: PromptRequest, settings: SamplingSettings) -> RemoteSession:
        from llmtui.engine.remote.session import RemoteSession

        # a chat sends the whole conversation as messages: the server applies its own chat template
        return await self._call(lambda: RemoteSession(self.remote, prompt.text, settings, chat=prompt.chat,
                                                      history=prompt.history, system=prompt.system))

    async def step(self, session: RemoteSession, settings: SamplingSettings, want: int | None) -> Step | None:
        """The next streamed step; a stream that ended short of a finish (it gave the tokens asked for) is asked again."""
        if self._open is not None and (self._open.session is not session or self._open.settings != settings):
            self.end(session)
        for _ in range(2):
            if self._open is None:
                session.settings = settings
                self._open = _OpenStream(session, settings, session.stream(max_tokens=want))
            try:
                step = await self._call(next, self._open.steps, None)
            except Exception:  # the stream is over (its connection closed by the session): one line, by the pane
                self._open = None
                raise
            if step is not None:
                return step
            self._open = None
            if session.finished:
                break
        return None

    async def take(self, session: RemoteSession, run: Run, drawn: Callable[[], None]) -> bool:
        """One streamed step (each is a read of the server's stream); False once the session finished."""
        if await self.step(session, run.settings, run.wanted) is None:
            return False
        run.count_step()
        drawn()
        return True

    def end(self, session: RemoteSession | None = None) -> None:
        """Close the open stream (its connection), after a read still under way on the thread."""
        if self._open is not None:
            self._thread.submit(self._open.steps.close)  # type: ignore[attr-defined]
            self._open = None

    def close(self) -> None:
        """The pane is going: close the stream and let the thread go once its last read returns."""
        self.end()
        self._thread.shutdown(wait=False, cancel_futures=True)

    async def fork(self, session: RemoteSession, index: int, token_id: int) -> None:
        self.end(session)
        listed: tuple[Candidate, ...] = session.steps[index].candidates
        candidate = next((c for c in listed if c.id == token_id), None)
        if candidate is None:
            raise ValueError("that token is not among the candidates the server listed")
        await self._call(session.fork, index, candidate)

    async def force_text(self, session: RemoteSession, index: int, text: str) -> str | None:
        """Make `text` the text from step `index` on, with the server's probabilities where it can score a given
        text; where it can't, the text goes on without them and the returned note says why."""
        from llmtui.engine.remote.scoring import CannotScore

        self.end(session)
        try:
            await self._call(session.force_text, text, index)
            return None
        except CannotScore as e:
            await self._call(session.append_unscored, text, index)
            return f"Your text goes on without its probabilities: {e}"

    def prompt_ids(self, session: RemoteSession) -> list[int]:
        return []  # the server's tokens of the prompt are its own

    def prompt_pieces(self, ids: list[int]) -> list[Piece]:
        return []  # so the output shows the generated text only

    def texts(self, steps: Sequence[Step], first: int = 0) -> list[tuple[str, bool]]:
        return [(safe(step.text), False) for step in steps[first:]]

    def reply_text(self, steps: Sequence[Step]) -> str:
        """A chat reply as received (a chat completion's content leaves out the stop token)."""
        return "".join(step.text for step in steps)

    def seed(self, session: RemoteSession) -> int | None:
        return session.settings.seed  # None: the server draws its own

    def notes(self, session: RemoteSession) -> str:
        """What the server did short of what was asked (fewer candidates listed), said once: ' · ...'."""
        return f" · {session.notes[0]}" if session.notes else ""

    def step_view(self, step: Step, n_steps: int) -> TableView:
        return view.served_step_view(step, n_steps)

    def label(self, token_id: int, text: str) -> str:
        return view.token_label(None, token_id, text)

    def speed_message(self, session: RemoteSession | None, tokens_per_s: float | None) -> Message:
        return RemoteTraffic(session.traffic if session is not None else None)
