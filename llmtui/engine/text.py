"""Showing untrusted text literally: control characters become visible escapes.

Model output and user input may hold ANSI escapes (ESC [ 31 m), carriage returns or
other control characters that a terminal would obey, and bidirectional controls (U+202E
right-to-left override, U+2066..U+2069 isolates, ...) that make a terminal draw the rest of
the line reordered. Everything shown to a person passes through `escape_controls` first.

    >>> escape_controls("red \\x1b[31m!\\r")
    'red \\\\x1b[31m!\\\\r'
"""

from __future__ import annotations

import unicodedata

_NAMED = {"\r": "\\r", "\t": "\\t", "\n": "\\n", "\x00": "\\0"}
# Format characters (category Cf) that reorder text. The other format characters stay: the zero-width
# joiner holds emoji sequences together, and the rest draw as nothing.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def escape_controls(text: str, keep: str = "\n\t") -> str:
    """Replace control characters (category Cc), lone surrogates and bidi controls by escapes; `keep` passes through."""
    out = []
    for ch in text:
        if ch in keep:
            out.append(ch)
        elif unicodedata.category(ch) in ("Cc", "Cs") or ch in BIDI_CONTROLS:
            out.append(_NAMED.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"))
        else:
            out.append(ch)
    return "".join(out)


def without_lone_surrogates(text: str) -> str:
    """Text with each lone surrogate replaced by U+FFFD, as the tokenizer encodes it ('a\\udcff' -> 'a\ufffd').

    A str may hold lone surrogates (a command-line argument that was not UTF-8 gets them from
    Python's surrogateescape), but no UTF-8 output can: printed as they are, they fail.
    """
    if not any("\ud800" <= ch <= "\udfff" for ch in text):
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
