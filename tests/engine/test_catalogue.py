"""The model catalogue: the popular small models, what they need, `llmtui models`, and refusing before downloading.

The hub is never reached: downloads are replaced by a Hugging Face cache laid out in a temp folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_gguf_families import _hf_model, write_family_gguf

from llmtui.cli import main
from llmtui.engine.loading import fetch
from llmtui.engine.loading.fetch import catalogue, check_fits, describe, memory_needed
from llmtui.engine.loading.load import ModelLoadError, load_weights
from llmtui.engine.model.config import FAMILY_DEFAULTS

ISSUE_MODELS = {
    "qwen2.5-0.5b-instruct": "qwen2", "qwen2.5-1.5b-instruct": "qwen2", "llama-3.2-1b-instruct": "llama",
    "gemma-3-1b-it": "gemma3", "smollm2-360m-instruct": "llama", "smollm2-1.7b-instruct": "llama",
    "phi-3.5-mini-instruct": "phi3", "phi-4-mini-instruct": "phi3", "olmo-2-1b-instruct": "olmo2",
    "pythia-160m": "gptneox", "pythia-410m": "gptneox", "mistral-7b-instruct": "mistral",
}  # fmt: skip
GB = 10**9


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hugging Face cache, offline: nothing can be downloaded."""
    folder = tmp_path / "hf"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(folder))
    return folder


def put_in_hub_cache(cache: Path, repo: str, filename: str, source: Path) -> Path:
    """A file as huggingface_hub keeps a downloaded one: models--org--name/snapshots/<commit>/<file>."""
    commit = "0" * 40
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    target = folder / "snapshots" / commit / filename
    target.parent.mkdir(parents=True)
    target.write_bytes(source.read_bytes())
    return target


def test_the_issue_models_are_listed_with_what_a_user_needs():
    entries = catalogue()
    for name, family in ISSUE_MODELS.items():
        entry = entries[name]
        assert entry.family == family
        assert entry.params and entry.download_mb and entry.license and entry.repo, name
        if entry.source == "hf-gguf":
            assert entry.gguf_repo and entry.gguf_file.endswith(".gguf")
    assert all(e.family in FAMILY_DEFAULTS for e in entries.values())
    assert sum(e.default for e in entries.values()) == 1


def test_memory_follows_what_llmtui_keeps_in_memory():
    """A packed GGUF (its blocks kept as they are on the CPU) needs about its file's size; safetensors,
    and a GGUF whose matrices become float32, about 4.4 bytes a parameter."""
    entries = catalogue()
    qwen, mistral, olmo, gemma = (entries[n] for n in ("qwen2.5-0.5b-instruct", "mistral-7b-instruct",
                                                      "olmo-2-1b-instruct", "gemma-3-1b-it"))
    for packed in (qwen, mistral):
        size = packed.download_mb * 10**6
        assert size < memory_needed(packed) < 1.2 * size + 300 * 2**20 < 4 * packed.params
    for float32 in (olmo, gemma):
        assert not (float32.source != "hf" and float32.packed)
        assert 4 * float32.params < memory_needed(float32) < 5 * float32.params + 300 * 2**20


def test_a_model_that_does_not_fit_is_refused_before_downloading(monkeypatch, hub_cache, isolated_cache):
    monkeypatch.setattr(fetch, "available_memory", lambda: 4 * GB)

    def no_download(*args, **kwargs):
        raise AssertionError("downloaded although the model cannot fit")

    monkeypatch.setattr("llmtui.engine.loading.load.fetch_hub_gguf", no_download)
    with pytest.raises(ModelLoadError) as err:
        load_weights("mistral-7b-instruct")
    message = str(err.value)
    assert "\n" not in message and "5.1 GB" in message and "4.0 GB available" in message
    check_fits(catalogue()["qwen2.5-0.5b-instruct"], available=4 * GB)  # a small one passes


def test_offline_and_not_cached_is_one_line(monkeypatch, hub_cache, isolated_cache):
    monkeypatch.setattr(fetch, "available_memory", lambda: 64 * GB)
    with pytest.raises(ModelLoadError) as err:
        load_weights("qwen2.5-0.5b-instruct")
    assert "\n" not in str(err.value)
    assert "offline mode is on" in str(err.value) and "Qwen/Qwen2.5-0.5B-Instruct-GGUF" in str(err.value)


def test_a_cached_hub_gguf_loads_and_shows_as_downloaded(monkeypatch, hub_cache, isolated_cache, tiny_tokenizer, tmp_path):
    """The catalogue's qwen2.5-0.5b-instruct, stood in for by a tiny qwen2 GGUF in the hub's cache."""
    monkeypatch.setattr(fetch, "available_memory", lambda: 64 * GB)
    entry = catalogue()["qwen2.5-0.5b-instruct"]
    assert not describe(entry, 64 * GB)["downloaded"]
    tiny = write_family_gguf(tmp_path / "tiny.gguf", "qwen2", _hf_model("qwen2"), tiny_tokenizer)
    put_in_hub_cache(hub_cache, entry.gguf_repo, entry.gguf_file, tiny)
    assert describe(entry, 64 * GB)["downloaded"]
    weights = load_weights("qwen2.5-0.5b-instruct")
    assert weights.config.family == "qwen2" and weights.name == "Qwen2.5-0.5B-Instruct"


def test_models_command_json_and_table(monkeypatch, hub_cache, isolated_cache, capsys):
    monkeypatch.setattr(fetch, "available_memory", lambda: 4 * GB)
    assert main(["models", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["available_memory"] == 4 * GB
    rows = {row["name"]: row for row in listing["models"]}
    assert set(rows) == set(catalogue())
    assert rows["qwen2.5-0.5b-instruct"]["fits"] is True
    assert rows["phi-3.5-mini-instruct"]["fits"] is True  # 2.4 GB of Q4_K_M blocks, kept packed
    assert rows["mistral-7b-instruct"]["fits"] is False and rows["olmo-2-1b-instruct"]["fits"] is False
    assert rows["qwen2.5-0.5b-instruct"]["downloaded"] is False
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 80 for line in lines)  # readable at 80x24
    mistral = next(line for line in lines if line.startswith("mistral-7b-instruct"))
    assert mistral.split()[-2:] == ["no", "no"]  # not here, does not fit


# ---------------------------------------------------------------------------------------------
# Checksums of hub downloads (the hub itself is never reached: its download is a local file)


def hub_blob_layout(cache: Path, repo: str, filename: str, data: bytes, blob_name: str) -> Path:
    """A file as huggingface_hub keeps an LFS download: snapshots/<commit>/<file> -> blobs/<its sha256>."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    blob = folder / "blobs" / blob_name
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data)
    link = folder / "snapshots" / ("0" * 40) / filename
    link.parent.mkdir(parents=True)
    link.symlink_to(Path("..", "..", "blobs", blob_name))
    return link


def sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


DATA = b"GGUF stand-in bytes " * 1000


@pytest.fixture
def hub_entry():
    import dataclasses

    return dataclasses.replace(catalogue()["qwen2.5-0.5b-instruct"], sha256=None)


def test_a_file_matching_its_pinned_sha256_passes_and_is_not_hashed_again(hub_entry, tmp_path, isolated_cache, monkeypatch):
    import dataclasses

    entry = dataclasses.replace(hub_entry, sha256=sha256(DATA))
    path = tmp_path / "model.gguf"
    path.write_bytes(DATA)
    fetch.verify_hub_file(entry, path, offline=True)
    monkeypatch.setattr(fetch, "_sha256_of", lambda _path: pytest.fail("hashed again"))
    fetch.verify_hub_file(entry, path, offline=True)  # remembered: no second hash
    path.write_bytes(DATA[:-1] + b"!")  # changed in place: the mark no longer fits
    monkeypatch.undo()
    monkeypatch.setenv("LLMTUI_CACHE_DIR", str(isolated_cache))
    with pytest.raises(ModelLoadError):
        fetch.verify_hub_file(entry, path, offline=True)


def test_a_file_differing_from_its_pinned_sha256_is_refused_and_deleted(hub_entry, tmp_path, isolated_cache):
    import dataclasses

    entry = dataclasses.replace(hub_entry, sha256=sha256(b"what the publisher uploaded"))
    path = tmp_path / "model.gguf"
    path.write_bytes(DATA)
    with pytest.raises(ModelLoadError) as err:
        fetch.verify_hub_file(entry, path, offline=True)
    message = str(err.value)
    assert "\n" not in message and "sha256" in message and "the catalogue pins" in message and "deleted" in message
    assert sha256(DATA)[:16] in message
    assert not path.exists()


def test_without_a_pin_the_hubs_lfs_sha256_is_checked(hub_entry, hub_cache, isolated_cache):
    good = hub_blob_layout(hub_cache, hub_entry.gguf_repo, hub_entry.gguf_file, DATA, sha256(DATA))
    fetch.verify_hub_file(hub_entry, good, offline=True)
    bad_cache = hub_cache.parent / "hf-bad"
    bad = hub_blob_layout(bad_cache, hub_entry.gguf_repo, hub_entry.gguf_file, DATA, sha256(b"the hub's file"))
    blob = bad.resolve()
    with pytest.raises(ModelLoadError) as err:
        fetch.verify_hub_file(hub_entry, bad, offline=True)
    assert "huggingface.co lists" in str(err.value) and "\n" not in str(err.value)
    assert not blob.exists() and not bad.exists()  # the next try downloads it again


def test_a_corrupt_download_is_refused_with_one_line_on_load(monkeypatch, hub_entry, hub_cache, isolated_cache, tmp_path):
    """The load path end to end: the (stand-in) download does not match the hub's sha256."""
    import huggingface_hub

    monkeypatch.setattr(fetch, "available_memory", lambda: 64 * GB)
    monkeypatch.setattr("llmtui.engine.loading.load.catalogue", lambda path=None: {hub_entry.name: hub_entry})
    bad = hub_blob_layout(hub_cache, hub_entry.gguf_repo, hub_entry.gguf_file, DATA, sha256(b"other"))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *args, **kwargs: str(bad))
    with pytest.raises(ModelLoadError) as err:
        load_weights(hub_entry.name)
    assert "sha256" in str(err.value) and "\n" not in str(err.value)


def test_pinned_catalogue_entries_name_their_commit():
    """A pinned sha256 belongs to one upload: the entry names the commit it was read at."""
    pinned = [e for e in catalogue().values() if e.source == "hf-gguf" and e.sha256]
    assert pinned  # at least one pin from a public source (see models/catalogue.toml)
    for entry in pinned:
        assert entry.revision and len(entry.revision) == 40 and len(entry.sha256) == 64, entry.name
