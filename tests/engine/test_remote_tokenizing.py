"""A served model's tokenizer: the server's route, else --tokenizer PATH, a folder of the model's name, the HF cache."""

from __future__ import annotations

import json
import shutil

import pytest

from fake_server import MODEL, fake_server
from llmtui.engine.errors import RemoteError
from llmtui.engine.remote.client import RemoteModel
from llmtui.engine.remote.endpoint import Endpoint
from llmtui.engine.remote.tokenizing import ServedTokenizer

TEXT = "Hello world, hello tokens!"


def served(url: str, path: str | None = None) -> ServedTokenizer:
    return ServedTokenizer(RemoteModel.connect(Endpoint.parse(url)), path)


def test_the_servers_route_comes_first():
    with fake_server() as srv:
        tokenizer = served(srv.url)
        assert tokenizer.tokenize("hé") == [(104, "h"), (233, "é")]
    assert tokenizer.source == f"{MODEL} @ {srv.url}"


@pytest.mark.parametrize("which", ["folder", "tokenizer.json"])
def test_tokenizer_files_the_user_names(tiny_hf_gpt2_dir, tiny_tokenizer, which):
    path = tiny_hf_gpt2_dir if which == "folder" else tiny_hf_gpt2_dir / "tokenizer.json"
    with fake_server(fault="no-tokenizer") as srv:
        tokenizer = served(srv.url, str(path))
        pairs = tokenizer.tokenize(TEXT)
        assert not any(p == "/tokenize" for p, _, _ in srv.requests)  # a path the user gave is their choice
    assert [i for i, _ in pairs] == tiny_tokenizer.encode(TEXT).ids
    assert "".join(t for _, t in pairs) == TEXT and str(path) in tokenizer.source


def test_the_hugging_face_cache_is_read_offline(tiny_hf_gpt2_dir, tiny_tokenizer, tmp_path, monkeypatch):
    from huggingface_hub import constants

    repo = tmp_path / f"models--{MODEL}"
    snapshot = repo / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abc")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_hf_gpt2_dir / name, snapshot / name)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with fake_server(fault="no-tokenizer") as srv:
        tokenizer = served(srv.url)
        assert [i for i, _ in tokenizer.tokenize(TEXT)] == tiny_tokenizer.encode(TEXT).ids
        tokenizer.tokenize("again")
        routes = [p for p, _, _ in srv.requests if "tokenize" in p]
    assert routes == ["/tokenize", "/extras/tokenize"]  # the missing route is asked for once
    assert str(snapshot) in tokenizer.source


def test_no_route_and_no_files_is_one_line(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    with fake_server(fault="no-tokenizer") as srv:
        with pytest.raises(RemoteError) as e:
            served(srv.url).tokenize(TEXT)
    assert "\n" not in str(e.value) and "--tokenizer PATH" in str(e.value) and MODEL in str(e.value)


def test_a_path_without_a_tokenizer_is_one_line(tmp_path):
    (tmp_path / "tokenizer.json").write_text(json.dumps({"model": "not one"}))
    with fake_server(fault="no-tokenizer") as srv:
        for path in (tmp_path / "missing", tmp_path / "notes.txt", tmp_path):
            if path.name == "notes.txt":
                path.write_text("hello")
            with pytest.raises(RemoteError) as e:
                served(srv.url, str(path)).tokenize(TEXT)
            assert "\n" not in str(e.value) and str(path)[:40] in str(e.value)


def test_cli_tokenize_with_a_tokenizer_path(tiny_hf_gpt2_dir, tiny_tokenizer, capsys):
    from llmtui.cli import main

    with fake_server(fault="no-tokenizer") as srv:
        assert main(["tokenize", TEXT, "--endpoint", srv.url, "--tokenizer", str(tiny_hf_gpt2_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [t["id"] for t in data["tokens"]] == tiny_tokenizer.encode(TEXT).ids
    assert str(tiny_hf_gpt2_dir) in data["tokenizer"]
