"""A cache of dequantized GGUF weights, so only the first start pays for dequantizing.

Each entry is one safetensors file of float32 tensors (our names) whose metadata holds the
ModelConfig as JSON and a CRC-32 per tensor. An entry is used only if it parses, every CRC
matches and every name and shape fits the config; anything else is deleted and rebuilt.
Caching is best effort: a read-only or full disk means no cache, and a note that says so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tempfile
import zlib
from pathlib import Path

import torch

from llmtui.engine.model.config import ModelConfig
from llmtui.engine.loading.common import check_state_dict

# Bump when the conversion changes (say, a fix to the q/k row order): old entries stop matching.
FORMAT = "2"  # 2: the key covers inode and ctime; each entry records its own name
# Past this size a float32 copy on disk costs more than it saves (and such models hardly fit in RAM).
MAX_CACHE_BYTES = 4 << 30


def cache_file(cache_dir: Path, source: Path) -> Path:
    """Entry for a GGUF file; the key changes when the file is replaced or touched.

    Size and mtime alone miss a file rewritten in place with its old mtime put back (os.utime,
    `cp -p`, `touch -r`); the inode and the ctime, which no tool can set back, catch those.
    """
    stat = source.stat()
    ident = f"{FORMAT}:{source.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}:{stat.st_ctime_ns}"
    key = hashlib.sha256(ident.encode()).hexdigest()[:16]
    return cache_dir / "dequantized" / f"{_stem(source)}-{key}.safetensors"


def _stem(source: Path) -> str:
    return re.sub(r"[^\w.-]", "_", source.stem)[:80]


def _crc(t: torch.Tensor) -> int:
    return zlib.crc32(t.contiguous().view(torch.uint8).numpy())


def load_cached(entry: Path) -> tuple[ModelConfig, dict[str, torch.Tensor]] | None:
    """The cached config and state dict, or None when there is no good entry (a bad one is deleted)."""
    if not entry.is_file():
        return None
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(entry, framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("llmtui_format") != FORMAT:
            raise ValueError("written by another version")
        if meta.get("entry") != entry.name:  # a good entry of another file, copied or renamed here
            raise ValueError("an entry for another file")
        config = ModelConfig(**json.loads(meta["config"]))
        crcs = json.loads(meta["crc32"])
        state_dict = load_file(entry)
        if set(crcs) != set(state_dict) or any(_crc(t) != crcs[name] for name, t in state_dict.items()):
            raise ValueError("checksum mismatch")
        check_state_dict(state_dict, config, entry.name)
        return config, state_dict
    except Exception:  # noqa: BLE001 - whatever is wrong with an entry, the answer is to rebuild it
        try:
            entry.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only cache: the entry is skipped, just not removed
        return None


def save_cached(entry: Path, config: ModelConfig, state_dict: dict[str, torch.Tensor]) -> str | None:
    """Write an entry atomically (temp file + rename).

    Returns None when it is written (or the model is too large to be worth it), else a note
    for the user saying why the cache can't be written: loading works on without it.
    """
    if sum(t.numel() * 4 for t in state_dict.values()) > MAX_CACHE_BYTES:
        return None
    from safetensors.torch import save_file

    metadata = {
        "llmtui_format": FORMAT,
        "entry": entry.name,
        "config": json.dumps(dataclasses.asdict(config)),
        "crc32": json.dumps({name: _crc(t) for name, t in state_dict.items()}),
    }
    tmp: Path | None = None
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=entry.parent, prefix=entry.name, suffix=".part")
        os.close(fd)
        tmp = Path(tmp_name)
        save_file(state_dict, tmp, metadata=metadata)
        os.replace(tmp, entry)
        tmp = None
        # One entry per model file name: drop the entries of older versions of the same file.
        same_model = re.compile(re.escape(entry.name.rpartition("-")[0]) + r"-[0-9a-f]{16}\.safetensors")
        for old in entry.parent.iterdir():
            if old != entry and same_model.fullmatch(old.name):
                old.unlink(missing_ok=True)
        return None
    except Exception as err:  # noqa: BLE001 - read-only folder, full disk, ...: loading works without a cache
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
        return (f"can't write the cache of dequantized weights in {entry.parent} ({reason}); "
                "the model works, but each start dequantizes it again")
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
