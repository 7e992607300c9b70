"""A served model's tokenizer: the server's own route where it has one, else its tokenizer files found here.

In turn: the server's /tokenize (vLLM, llama.cpp; client.py); the files the user names with
`--tokenizer PATH` (a tokenizer.json, a model folder or a .gguf); a folder of that name (vLLM
serves a model from a path under that path's name); the Hugging Face cache, read offline, for
a repo id like meta-llama/Llama-3.1-8B-Instruct. Else one line says what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from llmtui.engine.errors import RemoteError
from llmtui.engine.remote.client import NoTokenizerRoute, RemoteModel
from llmtui.engine.tokenizer.tokenizer import Tokenizer


def local_tokenizer(model_name: str | None, path: str | None) -> tuple[Tokenizer, str] | None:
    """The tokenizer files of a served model found on this machine, and where; None when there are none.

    A PATH the user gave that holds no tokenizer is one RemoteError line, not a silent None."""
    if path:
        return _read(Path(path).expanduser(), given=True), path
    if not model_name:
        return None
    named = Path(model_name).expanduser()
    if named.is_dir() and _has_tokenizer_files(named):
        return _read(named, given=False), str(named)
    cached = _hf_cache(model_name)
    return (_read(cached, given=False), str(cached)) if cached else None


def _has_tokenizer_files(folder: Path) -> bool:
    return (folder / "tokenizer.json").is_file() or (folder / "vocab.json").is_file()


def _hf_cache(repo_id: str) -> Path | None:
    """The snapshot folder holding the repo's tokenizer.json in the Hugging Face cache; never asks the hub."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "tokenizer.json")
    except ValueError:  # not a repo id (HFValidationError): a model name like "default"
        return None
    return Path(found).parent if isinstance(found, str) else None


def _read(path: Path, *, given: bool) -> Tokenizer:
    from llmtui.engine.tokenizer.tokenizer import tokenizer_from_gguf, tokenizer_from_hf_folder

    if path.is_file() and path.name.endswith(".json"):
        path = path.parent  # tokenizer.json: its folder has the config beside it
    try:
        if path.is_file() and path.suffix == ".gguf":
            return tokenizer_from_gguf(path)
        if path.is_dir() and _has_tokenizer_files(path):
            return tokenizer_from_hf_folder(path)
    except Exception as e:  # files from elsewhere: a malformed one may break the reader anywhere (one line, not a crash)
        why = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise RemoteError(f"the tokenizer at {str(path)!r:.80} can't be read: {why}") from None
    what = "--tokenizer" if given else "the tokenizer folder"
    raise RemoteError(f"{what} {str(path)!r:.80} is not a tokenizer.json, a folder with one, or a .gguf file")


@dataclass
class ServedTokenizer:
    """Tokenizes for a served model; `source` says whose tokenizer cut the text."""

    model: RemoteModel
    path: str | None = None  # --tokenizer
    _local: tuple[Tokenizer, str] | None = field(default=None, repr=False)
    _server_has_route: bool = field(default=True, repr=False)

    def tokenize(self, text: str) -> list[tuple[int, str]]:
        """(id, text) pairs; RemoteError, one line, where neither the server nor this machine has the tokenizer."""
        if self._server_has_route and self.path is None:
            try:
                return self.model.tokenize(text)
            except NoTokenizerRoute:
                self._server_has_route = False
        tokenizer = self._local_tokenizer()
        ids = tokenizer.encode(text)
        return [(i, tokenizer.token_text(i)) for i in ids]

    @property
    def source(self) -> str:
        if self._server_has_route and self.path is None:
            return self.model.name
        return f"the tokenizer files at {self._local[1]}" if self._local else "no tokenizer"

    def _local_tokenizer(self) -> Tokenizer:
        if self._local is None:
            self._local = local_tokenizer(self.model.model, self.path)
        if self._local is None:
            raise RemoteError(f"{self.model.endpoint.url} has no tokenizer route (/tokenize) and no tokenizer files "
                              f"for {self.model.model or 'its model'!r} were found here: give --tokenizer PATH "
                              "(a tokenizer.json, a model folder or a .gguf)")
        return self._local[0]
