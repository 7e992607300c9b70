"""A cache of SentencePiece tokenizers built from GGUF metadata: only the first load pays for the merges.

A GGUF's SentencePiece vocabulary carries no merges; rebuilding them from the scores takes
seconds for Gemma's 262,144 tokens (benchmarks/tokenizer_build.py). The built tokenizer is kept
in the `tokenizers` library's own tokenizer.json (data, never a pickle) under
<cache>/tokenizers/, named by the sha256 of the vocabulary it was built from (tokens, scores,
types and the settings that shape it), so another file with the same vocabulary shares it and
a changed vocabulary never matches. The first line of an entry holds that key and the sha256 of
the JSON after it; an entry is used only if both match and `tokenizers` parses it. Anything else
is deleted and rebuilt. Best effort: a read-only or full disk means no cache, never an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer as HFTokenizer

# Bump when the build changes (a fix in merges_from_scores, say): old entries stop matching.
FORMAT = "1"
# A vocabulary below this builds in about a second: not worth a file in the user's cache.
MIN_TOKENS = 65_536


def vocabulary_key(*parts: Any) -> str:
    """sha256 of what a tokenizer is built from (JSON-serialisable parts), with the format."""
    digest = hashlib.sha256(FORMAT.encode())
    for part in parts:
        digest.update(json.dumps(part, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()


def entry_path(key: str, cache_dir: Path | None = None) -> Path:
    if cache_dir is None:
        from llmtui.engine.loading.common import user_cache_dir  # torch comes with it: only when caching

        cache_dir = user_cache_dir()
    return cache_dir / "tokenizers" / f"{key[:32]}.json"


def cached_backend(
    key: str, size: int, build: Callable[[], HFTokenizer], cache_dir: Path | None = None
) -> HFTokenizer:
    """The tokenizer `build` makes, read from the cache when a good entry for `key` is there."""
    if size < MIN_TOKENS:
        return build()
    entry = entry_path(key, cache_dir)
    backend = _load(entry, key)
    if backend is None:
        backend = build()
        _save(entry, key, backend)
    return backend


def _load(entry: Path, key: str) -> HFTokenizer | None:
    """The entry's tokenizer, or None when there is no good entry (a bad one is deleted)."""
    try:
        data = entry.read_bytes()
    except OSError:
        return None
    try:
        header, _, body = data.partition(b"\n")
        meta = json.loads(header)
        if meta != {"format": FORMAT, "key": key, "sha256": hashlib.sha256(body).hexdigest()}:
            raise ValueError("an entry of another vocabulary or version, or a damaged one")
        return HFTokenizer.from_str(body.decode("utf-8"))
    except Exception:  # noqa: BLE001 - whatever is wrong with an entry, the answer is to rebuild it
        with contextlib.suppress(OSError):  # a read-only cache: the entry is skipped, just not removed
            entry.unlink(missing_ok=True)
        return None


def _save(entry: Path, key: str, backend: HFTokenizer) -> None:
    """Write an entry atomically (temp file + rename); any failure leaves no entry."""
    body = backend.to_str().encode("utf-8")
    header = json.dumps({"format": FORMAT, "key": key, "sha256": hashlib.sha256(body).hexdigest()})
    tmp: Path | None = None
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=entry.parent, prefix=entry.name, suffix=".part")
        tmp = Path(name)
        with os.fdopen(fd, "wb") as out:
            out.write(header.encode() + b"\n" + body)
        os.replace(tmp, entry)
        tmp = None
    except OSError:
        pass  # read-only or full: the next load builds it again
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
