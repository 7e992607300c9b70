"""Showing untrusted text literally: control characters become visible escapes.

Model output and user input may hold ANSI escapes (ESC [ 31 m), carriage returns or
other control characters that a terminal would obey. Everything shown to a person
passes through `escape_controls` first.

    >>> escape_controls("red \\x1b[31m!\\r")
    'red \\\\x1b[31m!\\\\r'
"""

from __future__ import annotations

import unicodedata

_NAMED = {"\r": "\\r", "\t": "\\t", "\n": "\\n", "\x00": "\\0"}


def escape_controls(text: str, keep: str = "\n\t") -> str:
    """Replace control characters (Unicode category Cc, and lone surrogates) by escapes; `keep` passes through."""
    out = []
    for ch in text:
        if ch in keep:
            out.append(ch)
        elif unicodedata.category(ch) in ("Cc", "Cs"):
            out.append(_NAMED.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"))
        else:
            out.append(ch)
    return "".join(out)
