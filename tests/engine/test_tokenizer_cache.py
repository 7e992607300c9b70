"""The cache of SentencePiece tokenizers built from GGUF metadata (engine/tokenizer/built_cache.py).

The vocabulary is test_sentencepiece's trained one, with the size threshold lowered so it is
cached; a cached tokenizer must give the ids of a fresh build, and a damaged entry must be
rebuilt without a word to the user.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from hostile import EXAMPLES, hostile_text
from llmtui.engine.tokenizer import built_cache, sentencepiece
from llmtui.engine.tokenizer.tokenizer import tokenizer_from_gguf
from test_sentencepiece import CORPUS, write_spm_gguf

ARCHS = [("llama", True), ("gemma3", False), ("phi3", True)]


@pytest.fixture
def cache(isolated_cache, monkeypatch) -> Path:
    monkeypatch.setattr(built_cache, "MIN_TOKENS", 0)
    return isolated_cache / "tokenizers"


def no_build(*_args, **_kwargs):
    raise AssertionError("the tokenizer was built again instead of read from the cache")


def entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.json"))


def texts() -> list[str]:
    return [*CORPUS, *EXAMPLES.values()]


def assert_same_ids(a, b) -> None:
    for text in texts():
        for allow_special in (False, True):
            assert a.encode(text, allow_special=allow_special) == b.encode(text, allow_special=allow_special), text
        assert a.decode(a.encode(text)) == b.decode(b.encode(text))


@pytest.mark.parametrize(("arch", "prefix"), ARCHS)
def test_cached_tokenizer_gives_the_built_ids(cache, tmp_path, monkeypatch, arch, prefix):
    path = write_spm_gguf(tmp_path / f"{arch}.gguf", arch, prefix)
    built = tokenizer_from_gguf(path)
    (entry,) = entries(cache)
    monkeypatch.setattr(sentencepiece, "merges_from_scores", no_build)
    cached = tokenizer_from_gguf(path)
    assert_same_ids(cached, built)
    assert (cached.special_ids, cached.added_ids, cached.bos_id, cached.eos_id) == (
        built.special_ids, built.added_ids, built.bos_id, built.eos_id
    )
    assert [cached.token_bytes(i) for i in range(cached.vocab_size)] == [built.token_bytes(i) for i in range(built.vocab_size)]
    assert entries(cache) == [entry]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=hostile_text())
def test_cached_tokenizer_gives_the_built_ids_on_hostile_text(tmp_path_factory, text):
    pair = _hostile_pair(tmp_path_factory)
    for allow_special in (False, True):
        assert pair[0].encode(text, allow_special=allow_special) == pair[1].encode(text, allow_special=allow_special)


_PAIR: list = []


def _hostile_pair(tmp_path_factory):
    """A Gemma-spelled vocabulary built once without the cache and once read from it (made on first use)."""
    if not _PAIR:
        folder = tmp_path_factory.mktemp("cached-gemma")
        path = write_spm_gguf(folder / "g.gguf", "gemma3", False)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(built_cache, "MIN_TOKENS", 0)
            patch.setenv("LLMTUI_CACHE_DIR", str(folder / "cache"))
            built = tokenizer_from_gguf(path)
            patch.setattr(sentencepiece, "merges_from_scores", no_build)
            cached = tokenizer_from_gguf(path)
        _PAIR.extend([cached, built])
    return _PAIR


def _flip_a_token(data: bytes) -> bytes:
    """The entry with one vocabulary piece renamed: still valid JSON, so only the checksum can tell."""
    header, _, body = data.partition(b"\n")
    spec = json.loads(body)
    vocab = spec["model"]["vocab"]
    piece = next(t for t in vocab if len(t) > 3 and not t.startswith("<"))
    vocab[piece[::-1] + "x"] = vocab.pop(piece)
    return header + b"\n" + json.dumps(spec).encode()


DAMAGE = {
    "truncated": lambda data: data[: len(data) // 2],
    "empty": lambda data: b"",
    "not json": lambda data: b"\x00\xff garbage\n{",
    "a token renamed": _flip_a_token,
    "another format": lambda data: data.replace(b'"format": "1"', b'"format": "0"', 1),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_entry_is_rebuilt_silently(cache, tmp_path, damage, capsys):
    path = write_spm_gguf(tmp_path / "l.gguf", "llama", True)
    built = tokenizer_from_gguf(path)
    (entry,) = entries(cache)
    good = entry.read_bytes()
    entry.write_bytes(DAMAGE[damage](good))
    rebuilt = tokenizer_from_gguf(path)
    assert_same_ids(rebuilt, built)
    assert entry.read_bytes() == good  # written again, whole
    assert capsys.readouterr() == ("", "")


def test_an_entry_copied_under_another_key_is_not_used(cache, tmp_path):
    """The header names the vocabulary: an entry renamed to another vocabulary's name is rebuilt."""
    llama = tokenizer_from_gguf(write_spm_gguf(tmp_path / "l.gguf", "llama", True))
    (llama_entry,) = entries(cache)
    gemma_path = write_spm_gguf(tmp_path / "g.gguf", "gemma3", False)
    gemma = tokenizer_from_gguf(gemma_path)
    (gemma_entry,) = set(entries(cache)) - {llama_entry}
    gemma_entry.write_bytes(llama_entry.read_bytes())
    again = tokenizer_from_gguf(gemma_path)
    assert_same_ids(again, gemma)
    assert any(again.encode(text) != llama.encode(text) for text in CORPUS)  # the two really differ


def test_an_unwritable_cache_still_loads(tmp_path, monkeypatch):
    monkeypatch.setattr(built_cache, "MIN_TOKENS", 0)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("LLMTUI_CACHE_DIR", str(blocker))  # mkdir under a file fails
    path = write_spm_gguf(tmp_path / "l.gguf", "llama", True)
    assert tokenizer_from_gguf(path).encode("The quick brown fox") == tokenizer_from_gguf(path).encode("The quick brown fox")


def test_small_vocabularies_are_not_cached(isolated_cache, tmp_path):
    assert built_cache.MIN_TOKENS > 1000
    tokenizer_from_gguf(write_spm_gguf(tmp_path / "l.gguf", "llama", True))
    assert not (isolated_cache / "tokenizers").exists()
