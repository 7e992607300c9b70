"""Tokens for display: labels that show every byte, characters cut across byte tokens, counts, pasted id lists.

Headless (no textual, no rich): the Tokenizer pane draws what these functions return.

    >>> token_label(b" love")
    (('·', 'marker'), ('love', 'text'))
    >>> token_label("🍕".encode()[:2])
    (('<0xF0>', 'byte'), ('<0x9F>', 'byte'))
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from operator import itemgetter
from typing import TYPE_CHECKING, Literal

from llmtui.engine.text import escape_controls

if TYPE_CHECKING:
    from llmtui.engine.tokenizer.tokenizer import Tokenizer

__all__ = [
    "CharGroup",
    "LabelKind",
    "ParsedIds",
    "Tokenization",
    "char_groups",
    "from_ids",
    "parse_ids",
    "token_chunks",
    "token_label",
    "tokenize",
]

LabelKind = Literal["text", "marker", "escape", "byte"]
"""text: shown as is; marker: a visible stand-in (· for a space, ↵ newline, → tab, ◌ under a lone
combining mark); escape: an invisible or control character written as an escape (\\x1b, \\u200d);
byte: one byte that is not a whole UTF-8 character on its own (<0xF0>)."""

MARKERS = {" ": "·", "\n": "↵", "\t": "→"}
_NAMED_ESCAPES = {"\r": "\\r", "\x00": "\\0"}
# Characters a terminal would not draw as one visible cell: controls, format characters (zero-width
# joiner, bidi overrides), private use, unassigned, line/paragraph separators. Spaces other than
# U+0020 (no-break, ideographic, ...) are escaped too, so they do not pass for a plain space.
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"})
_DOTTED_CIRCLE = "◌"


def _char_kind(ch: str, space: str = MARKERS[" "]) -> tuple[str, LabelKind]:
    if ch in MARKERS:
        return (space if ch == " " else MARKERS[ch]), "marker"
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: a byte that is not part of a whole character
        return f"<0x{code - 0xDC00:02X}>", "byte"
    if unicodedata.category(ch) in _ESCAPED_CATEGORIES:
        if ch in _NAMED_ESCAPES:
            return _NAMED_ESCAPES[ch], "escape"
        return (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"), "escape"
    return ch, "text"


def token_label(data: bytes, space: str = MARKERS[" "]) -> tuple[tuple[str, LabelKind], ...]:
    """A token's bytes as runs of (text, kind) that show every byte and nothing a terminal would obey.

    `space`: the marker for a space (a SentencePiece tokenizer's `space_marker` is '▁', as its
    vocabulary writes it).

    >>> token_label(b"a\\n[red]")
    (('a', 'text'), ('↵', 'marker'), ('[red]', 'text'))
    >>> token_label(b"\\x1b[0m")
    (('\\\\x1b', 'escape'), ('[0m', 'text'))
    >>> token_label("\\u0301".encode())
    (('◌', 'marker'), ('́', 'text'))
    >>> token_label(b" Paris", space="▁")
    (('▁', 'marker'), ('Paris', 'text'))
    """
    text = data.decode("utf-8", errors="surrogateescape")
    runs: list[tuple[str, LabelKind]] = []
    for i, ch in enumerate(text):
        shown, kind = _char_kind(ch, space)
        if i == 0 and kind == "text" and unicodedata.combining(ch):
            runs.append((_DOTTED_CIRCLE, "marker"))  # a lone combining mark needs a base to sit on
        if runs and runs[-1][1] == kind and kind != "byte":
            runs[-1] = (runs[-1][0] + shown, kind)
        else:
            runs.append((shown, kind))
    return tuple(runs)


@dataclass(frozen=True)
class CharGroup:
    """Consecutive tokens whose bytes only make whole characters together (an emoji cut into byte tokens).

    `first` and `last` are token indices (inclusive); `text` is what their bytes decode to together.
    """

    first: int
    last: int
    text: str


def char_groups(chunks: Sequence[bytes], ends: Sequence[int] | None = None) -> list[CharGroup]:
    """The groups of two or more consecutive tokens that a UTF-8 character straddles.

    A token carries on into the next when the byte after it is a continuation byte (10xxxxxx).
    `ends`: where each token ends in the joined bytes, if already known.

    >>> char_groups([b"I", b" \\xf0\\x9f", b"\\x8d\\x95", b"!"])
    [CharGroup(first=1, last=2, text=' 🍕')]
    """
    data = b"".join(chunks)
    if data.isascii():
        return []
    if ends is None:
        ends = list(accumulate(map(len, chunks)))
    # Only non-ASCII bytes can be continuations: look at those, not at every token.
    if len(ends) < 2:
        return []
    # Tokens cut inside a character: the byte after them is a continuation byte. Done in C: a
    # mask of the continuation bytes, read at every token's end (10,000 tokens in well under 1 ms).
    mask = data.translate(_CONTINUATION_MASK) + b"\x00"
    flags = bytes(itemgetter(*ends[:-1])(mask)) if len(ends) > 2 else bytes([mask[ends[0]]])
    carries = [m.start() for m in _ONE.finditer(flags)]
    groups: list[CharGroup] = []
    k = 0
    while k < len(carries):
        first = last = carries[k]
        while k + 1 < len(carries) and carries[k + 1] == last + 1:
            k += 1
            last = carries[k]
        last += 1  # the token the character ends in
        start = ends[first - 1] if first else 0
        groups.append(CharGroup(first, last, data[start : ends[last]].decode("utf-8", errors="replace")))
        k += 1
    return groups


_CONTINUATION_MASK = bytes(1 if 0x80 <= b < 0xC0 else 0 for b in range(256))
_ONE = re.compile(b"\x01")


@dataclass(frozen=True)
class Tokenization:
    """Text cut into tokens, with what a display needs: each token's bytes, specials, groups and counts."""

    ids: tuple[int, ...]
    chunks: tuple[bytes, ...]  # each token's bytes (a special token: its text in UTF-8)
    special: frozenset[int]  # indices of special tokens
    groups: tuple[CharGroup, ...]
    n_chars: int  # characters (code points) of the text
    n_bytes: int  # its UTF-8 bytes
    ends: tuple[int, ...] = ()  # where each token ends, in bytes from the start
    dropped: tuple[int, ...] = ()  # byte values in the text that no token stands for (dropped by encode)
    round_trip: bool = True  # whether decoding the ids gives back the text exactly

    @property
    def n_tokens(self) -> int:
        return len(self.ids)

    @property
    def chars_per_token(self) -> float:
        """Characters per token: how much text one token carries on average (0 for no tokens)."""
        return self.n_chars / len(self.ids) if self.ids else 0.0

    def group_of(self, index: int) -> CharGroup | None:
        """The group token `index` belongs to, if a character straddles it and a neighbour."""
        for group in self.groups:  # few groups; a display asks once per token it draws at most
            if group.first <= index <= group.last:
                return group
        return None


def token_chunks(tokenizer: Tokenizer, ids: Sequence[int]) -> tuple[bytes, ...]:
    """Each token's bytes, for ids known to be in the vocabulary (from encode, or checked).

    The tokenizer's own id -> bytes table when it has one: `token_bytes` checks each id and
    costs ~5 µs a call, which is most of the time for 10,000 tokens.
    """
    table = getattr(tokenizer, "_token_bytes", None)
    if isinstance(table, list):
        return tuple([table[i] for i in ids])  # type: ignore[misc]
    return tuple(tokenizer.token_bytes(i) for i in ids)


def _tokenization(tokenizer: Tokenizer, ids: Sequence[int], n_chars: int, n_bytes: int, **extra: object) -> Tokenization:
    chunks = token_chunks(tokenizer, ids)
    ends = tuple(accumulate(map(len, chunks)))
    specials = set(tokenizer.special_ids.values())
    special = frozenset(k for k, i in enumerate(ids) if i in specials) if not specials.isdisjoint(ids) else frozenset()
    return Tokenization(
        ids=tuple(ids),
        chunks=chunks,
        special=special,
        groups=tuple(char_groups(chunks, ends)),
        ends=ends,
        n_chars=n_chars,
        n_bytes=n_bytes,
        **extra,  # type: ignore[arg-type]
    )


def tokenize(tokenizer: Tokenizer, text: str, allow_special: bool = False) -> Tokenization:
    """`text` as the tokenizer cuts it (the same ids as `tokenizer.encode`), ready to display."""
    ids = tokenizer.encode(text, allow_special=allow_special)
    data = text.encode("utf-8", errors="surrogatepass")
    decoded = tokenizer.decode_bytes(ids)
    dropped: tuple[int, ...] = ()
    if decoded != data and tokenizer.missing_bytes:
        dropped = tuple(sorted(tokenizer.missing_bytes.intersection(data)))
    return _tokenization(tokenizer, ids, len(text), len(data), dropped=dropped, round_trip=decoded == data)


def from_ids(tokenizer: Tokenizer, ids: Sequence[int]) -> tuple[Tokenization, str]:
    """The tokens of a list of valid ids, and the text they decode to (broken UTF-8 as U+FFFD)."""
    text = tokenizer.decode(ids)
    return _tokenization(tokenizer, ids, len(text), len(tokenizer.decode_bytes(ids))), text


@dataclass(frozen=True)
class ParsedIds:
    """Ids read from pasted text: the valid ones in order, and one line per item that is not one."""

    ids: tuple[int, ...]
    problems: tuple[str, ...]
    n_items: int


_ITEM = re.compile(r"[^\s,;\[\](){}]+")
_INTEGER = re.compile(r"[+-]?[0-9]+")


def parse_ids(text: str, tokenizer: Tokenizer, name: str | None = None) -> ParsedIds:
    """Read token ids separated by commas, spaces or semicolons, brackets allowed ('[40, 3047]').

    Every item that is not an id of `tokenizer` becomes a problem saying why ("'x' (item 2) is not
    a whole number", "-1 (item 3) is negative: ids start at 0"); the others are kept. `name`: the
    tokenizer's name in those lines (default: its own).
    """
    name = name or tokenizer.name
    ids: list[int] = []
    problems: list[str] = []
    items = _ITEM.findall(text)
    last = tokenizer.vocab_size - 1
    for n, item in enumerate(items, start=1):
        shown = escape_controls(item, keep="")
        if len(shown) > 24:
            shown = shown[:23] + "…"
        if not _INTEGER.fullmatch(item):
            problems.append(f"'{shown}' (item {n}) is not a whole number")
            continue
        digits = item.lstrip("+-").lstrip("0") or "0"
        negative = item.startswith("-") and digits != "0"
        if negative:
            problems.append(f"{shown} (item {n}) is negative: ids start at 0")
        elif len(digits) > len(str(last)) or int(digits) > last:
            problems.append(f"{shown} (item {n}) is too large: {name}'s ids go from 0 to {last}")
        else:
            value = int(digits)
            try:
                tokenizer.token_bytes(value)
            except ValueError:
                problems.append(f"{shown} (item {n}) is not a token of {name} (an unused id)")
                continue
            ids.append(value)
    return ParsedIds(tuple(ids), tuple(problems), len(items))
