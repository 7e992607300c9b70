"""One thread for all of the app's work with torch: loading, generating, previews.

Why one: PyTorch's CPU kernels run on OpenMP, and OpenMP keeps a team of helper
threads for every thread that has ever started a parallel region. When the helpers
of all those teams outnumber the CPUs, OpenMP stops letting them spin between
regions and puts them to sleep instead; each small matrix product then pays a
wake-up, and a small model decodes at half speed on a two-core machine. So every torch call of the app goes
through this one thread: a pane's `@work(exclusive=True)` coroutine awaits `call()`
on the UI's event loop (no thread of its own, so no second hop), and a newer request
cancels the coroutine at its await; a job it queued that has not started yet is then
dropped. The loader and the tests, in plain threads, use `run_on_model_thread`.

    >>> run_on_model_thread(lambda: threading.current_thread().name)
    'llmtui-model'
"""

from __future__ import annotations

import asyncio
import gc
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")

_NAME = "llmtui-model"
_jobs: queue.SimpleQueue[tuple[Future, Callable[[], object]]] = queue.SimpleQueue()
_thread: threading.Thread | None = None
_start_lock = threading.Lock()
_pending = 0  # jobs queued or running (guarded by _pending_lock)
_pending_lock = threading.Lock()


def _serve() -> None:
    global _pending
    while True:
        future, job = _jobs.get()
        try:
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(job())
            except BaseException as error:  # noqa: BLE001 - handed to the caller, who re-raises it
                future.set_exception(error)
        finally:
            # Let go of the job and its result now: waiting for the next job, they would keep
            # the last caller's objects (a whole generation session and its KV cache) alive.
            del future, job
            with _pending_lock:
                _pending -= 1


def model_thread_idle() -> bool:
    """Whether the model thread has nothing queued or running (tests check it after a session ends)."""
    with _pending_lock:
        return _pending == 0


def jobs_waiting() -> bool:
    """Whether a job is queued behind the running one: a long job (a generation's run of steps) yields to it."""
    return not _jobs.empty()


def on_model_thread() -> bool:
    return threading.current_thread().name == _NAME


def submit(fn: Callable[..., T], *args: object, **kwargs: object) -> Future[T]:
    """Queue fn on the model thread; its Future holds the result (or the exception).

    The thread is a daemon: quitting the app never waits for a model still loading.
    A Future cancelled before the thread reaches it is skipped.
    """
    global _thread, _pending
    with _start_lock:
        if _thread is None:
            _thread = threading.Thread(target=_serve, name=_NAME, daemon=True)
            _thread.start()
    future: Future = Future()
    with _pending_lock:
        _pending += 1
    _jobs.put((future, lambda: fn(*args, **kwargs)))
    return future


async def call(fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Await fn on the model thread from the event loop (the app's one way to run the model).

    Cancelling the awaiting coroutine (Textual does, when an exclusive worker is replaced)
    cancels the job too, unless it has started: its result is then simply never seen.
    """
    return await asyncio.wrap_future(submit(fn, *args, **kwargs))


def run_on_model_thread(fn: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Call fn on the model thread and wait for its result (or its exception): for plain threads."""
    if on_model_thread():
        return fn(*args, **kwargs)
    return submit(fn, *args, **kwargs).result()


def freeze_loaded_objects(collect: bool = True) -> None:
    """Collect garbage once, then exempt every object alive now from later collections.

    A loaded model brings hundreds of thousands of long-lived Python objects (its
    vocabulary tables above all). Python's full collections walk them all, and one
    such walk stops every thread, the UI's included, for 50-150 ms in the middle of
    a stream. Frozen (`gc.freeze`), they are skipped: only what is made afterwards is
    walked, and the pauses stay a few milliseconds. Without `collect` it costs nothing
    (the app calls it again once its widgets exist, to freeze those too).
    """
    if collect:
        gc.collect()
    gc.freeze()


def thaw_frozen_objects() -> None:
    """Undo `freeze_loaded_objects` when an app ends.

    A frozen object is never collected, so without this every app that ran in a
    process stays in memory for good: harmless for `llmtui` (one app, then exit),
    but the test suite runs hundreds of apps in one process.
    """
    gc.unfreeze()
