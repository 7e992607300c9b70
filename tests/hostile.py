"""Hypothesis strategies for hostile text, and checks that a string is shown literally.

Used by tests/robustness/test_hostile_text.py. Each class of trouble has its own strategy and a few fixed
`EXAMPLES` (fed to tests with `@example`, so every run tries them whatever hypothesis draws):

- Rich markup, balanced or not: "[bold]x[/]", "[/]", "[link=http://x]a[/link]", "[red on blue]"
- ANSI CSI and OSC escapes: "\\x1b[31m", "\\x1b]0;title\\x07", "\\x1b]8;;http://x\\x1b\\\\"
- C0 and C1 control characters and DEL
- zero-width characters (U+200B..U+200D, U+FEFF) and bidirectional controls (U+202A..U+202E, U+2066..U+2069)
- combining marks, wide CJK and emoji (with zero-width joiners)
- lone surrogates (a Python str may hold them; they are not UTF-8)
- special-token text ("<|im_start|>", "<|endoftext|>")

`hostile_text()` mixes all of them with ordinary words. `LiveApp` runs one Pilot app per entry point
in its own thread, so that a plain `@given` test can feed it many strings.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import unicodedata
from collections.abc import Awaitable, Callable
from typing import Any

from hypothesis import strategies as st

MARKUP = ["[bold]", "[/]", "[/bold]", "[red on blue]", "[link=http://x]", "[/link]", "[@click=app.quit]",
          "[i]", "[", "]", "[[", "]]", "\\[", "[b", "[/b]]", "[on #ff0000]", "[reverse]"]
ESCAPES = ["\x1b[31m", "\x1b[0m", "\x1b[2J", "\x1b[H", "\x1b[?1049h", "\x1b]0;title\x07", "\x1b]8;;http://x\x1b\\",
           "\x1b]52;c;aGk=\x07", "\x1bc", "\x1b", "\x9b31m", "\x1bP1$r\x1b\\"]
CONTROLS = [chr(c) for c in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]]
ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\ufeff", "\u2060"]
BIDI = ["\u061c", "\u200e", "\u200f", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))]
COMBINING = ["\u0301", "\u0308", "\u20dd", "\u0336", "e\u0301", "\u0915\u094d\u0937"]
WIDE = ["東京", "你好", "🍕", "👩\u200d👩\u200d👧", "🇫🇷", "ｆｕｌｌ", "\U0001f600", "한국어"]
SURROGATES = ["\ud800", "\udfff", "\udc80", "a\ud83d", "\ude00b"]
SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_start|>user\nhi<|im_end|>", "<|", "|>"]
WORDS = ["The", " cat", " capital", " of", " France", " is", " Paris", "!", " ", "\n", "\t", "hello", "x"]

EXAMPLES: dict[str, str] = {
    "markup": "[bold]x[/] [/] [red on blue]r[/red on blue] [link=http://x]l[/link] [@click=app.quit]q[/]",
    "unbalanced": "[[x] ]] [b [/ ] [/bold] [",
    "csi": "red \x1b[31mRED\x1b[0m clear\x1b[2J home\x1b[H alt\x1b[?1049h",
    "osc": "t\x1b]0;title\x07 link \x1b]8;;http://x\x1b\\x\x1b]8;;\x1b\\ clip\x1b]52;c;aGk=\x07",
    "c0": "".join(chr(c) for c in range(0x20)) + "end",
    "c1_del": "a\x7fb\x80c\x85d\x9be\x9f",
    "zero_width_bidi": "a\u200bb\u200cc\u200dd\ufeffe \u202eevil\u202c \u2066iso\u2069 \u200f",
    "combining_wide": "e\u0301\u0301\u0301 東京 🍕 👩\u200d👩\u200d👧 🇫🇷 ｆｕｌｌ",
    "surrogates": "lone \ud800 and \udfff and a\ud83d!",
    "specials": "<|im_start|>user\nhello<|im_end|><|endoftext|> <|im_start|>",
}
"""One fixed string per class, tried on every run (`@example`)."""


def _pieces() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(MARKUP),
        st.sampled_from(ESCAPES),
        st.sampled_from(CONTROLS),
        st.sampled_from(ZERO_WIDTH),
        st.sampled_from(BIDI),
        st.sampled_from(COMBINING),
        st.sampled_from(WIDE),
        st.sampled_from(SURROGATES),
        st.sampled_from(SPECIALS),
        st.sampled_from(WORDS),
        st.text(max_size=4),  # anything else (hypothesis' text() has no surrogates: they come from the lists)
        st.characters(codec=None, categories=["Cc", "Cf", "Cs", "Mn", "Zl", "Zp", "Co", "Cn"]),
    )


def hostile_text(max_pieces: int = 12) -> st.SearchStrategy[str]:
    """A string built from hostile pieces of every class, mixed with ordinary words."""
    return st.lists(_pieces(), max_size=max_pieces).map("".join)


def hostile_line(max_pieces: int = 12) -> st.SearchStrategy[str]:
    """A hostile string without line breaks: for one-line inputs (an Input keeps no newline)."""
    return hostile_text(max_pieces).map(lambda s: "".join(ch for ch in s if ch not in LINE_BREAKS))


# Characters that str.splitlines() (and so Textual's TextArea document) treats as line breaks.
LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def obeyed(text: str) -> set[str]:
    """Characters a terminal would act on, reorder text by, or fail to encode: controls (Cc), lone surrogates
    (Cs) and bidi controls. Newlines are line breaks, not drawn. Zero-width characters (U+200B..U+200D,
    U+FEFF) are allowed: they draw as nothing, and the joiner holds emoji together.
    """
    return {ch for ch in text if unicodedata.category(ch) in ("Cc", "Cs") and ch != "\n"} | {
        ch for ch in text if ch in BIDI
    }


def one_mb_paste() -> str:
    """A 1 MB paste of mixed hostile text (exactly 2**20 characters)."""
    block = "".join(EXAMPLES[k] for k in ("markup", "csi", "combining_wide", "specials")) + " The cat sat.\n"
    text = block * (2**20 // len(block) + 1)
    return text[: 2**20]


# -- one app per entry point, many examples --------------------------------------------------------------


class LiveApp:
    """An app under Pilot in its own thread and event loop, driven one hypothesis example at a time.

    Starting an app costs ~1 s, so each entry point gets one app, and a plain (sync) `@given` test
    sends each drawn string to it with `run(coroutine_function)`: hypothesis keeps its shrinking
    and prints the failing string, and pytest-asyncio's per-test loop is not involved.
    """

    def __init__(self, app: Any, size: tuple[int, int] = (120, 40),
                 start: Callable[[Any], Awaitable[None]] | None = None) -> None:
        self.app = app
        self._loop = asyncio.new_event_loop()
        self._jobs: asyncio.Queue | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._main, args=(size, start), daemon=True, name="live-app")
        self._thread.start()
        if not self._started.wait(120):
            raise TimeoutError("the app did not start in 120 s")
        if self._failure is not None:
            raise self._failure

    def _main(self, size: tuple[int, int], start: Callable[[Any], Awaitable[None]] | None) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve(size, start))

    async def _serve(self, size: tuple[int, int], start: Callable[[Any], Awaitable[None]] | None) -> None:
        self._jobs = asyncio.Queue()
        try:
            async with self.app.run_test(size=size) as pilot:
                self.pilot = pilot
                if start is not None:
                    await start(pilot)
                self._started.set()
                while (job := await self._jobs.get()) is not None:
                    function, future = job
                    try:
                        future.set_result(await function(pilot))
                    except BaseException as e:  # handed to the test thread, which raises it
                        future.set_exception(e)
        except BaseException as e:  # the app itself failed (Textual re-raises its exception on exit)
            self._failure = e
            self._started.set()
            raise

    def run(self, function: Callable[[Any], Awaitable[Any]], timeout: float = 60.0) -> Any:
        """Run `await function(pilot)` in the app's loop and return its result (or raise its exception)."""
        if self._failure is not None:
            raise AssertionError("the app has stopped") from self._failure
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._loop.call_soon_threadsafe(self._jobs.put_nowait, (function, future))
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise AssertionError(f"the app did not answer within {timeout} s") from None

    def close(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._jobs.put_nowait, None)
            self._thread.join(60)
        if self._failure is not None:
            raise self._failure
