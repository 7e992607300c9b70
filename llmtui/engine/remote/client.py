"""The served model's routes: which models it serves, completions, and its tokenizer.

Routes differ between servers; each function tries the known spellings in turn:
vLLM and llama.cpp's `llama-server` have /tokenize and /detokenize; llama-cpp-python's
server has /extras/tokenize and /extras/detokenize; SGLang has neither (its answer: 404).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmtui.engine.errors import RemoteError
from llmtui.engine.remote import transport
from llmtui.engine.remote.endpoint import Endpoint

MAX_PIECES = 512  # tokens whose text is asked for one by one (servers that return ids only)


class NoTokenizerRoute(RemoteError):
    """The server has neither /tokenize nor /extras/tokenize (tokenizing.py then looks for tokenizer files here)."""


@dataclass
class RemoteModel:
    """A connection to one served model: the endpoint and the model name the server confirmed."""

    endpoint: Endpoint
    model: str | None = None  # the name sent in requests; None when the server lists no models
    served: tuple[str, ...] = ()
    _tokenizer_prefix: str | None = field(default=None, repr=False)  # '' or '/extras', once found
    scoring: str | None = field(default=None, repr=False)  # the dialect that scores a given text (scoring.py), once found

    @classmethod
    def connect(cls, endpoint: Endpoint) -> RemoteModel:
        """Ask the server which models it serves and check the one asked for is among them."""
        try:
            answer = transport.get_json(endpoint, "/v1/models")
        except transport.HttpFault as e:
            if e.status != 404:
                raise
            return cls(endpoint, endpoint.model)  # a server without the listing: take the name on trust
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list):
            raise RemoteError(f"{endpoint.url}/v1/models answered without a model list: is it OpenAI-compatible?")
        served = tuple(str(m.get("id")) for m in data if isinstance(m, dict) and m.get("id"))
        if endpoint.model is None:
            if not served:
                raise RemoteError(f"{endpoint.url} serves no model")
            return cls(endpoint, served[0], served)
        if endpoint.model not in served:
            listed = ", ".join(served[:8]) + (" …" if len(served) > 8 else "")
            raise RemoteError(f"{endpoint.url} does not serve the model {endpoint.model!r}; it serves: {listed}")
        return cls(endpoint, endpoint.model, served)

    @property
    def name(self) -> str:
        return f"{self.model or 'served model'} @ {self.endpoint.url}"

    # -- tokenizer ----------------------------------------------------------------------

    def tokenize(self, text: str) -> list[tuple[int, str]]:
        """The served model's tokens of `text` as (id, text) pairs; RemoteError when the server has no tokenizer route."""
        answer = self._tokenize_answer(text)
        tokens = answer.get("tokens") if isinstance(answer, dict) else None
        if not isinstance(tokens, list):
            raise RemoteError(f"{self.endpoint.url}'s tokenizer answered without a token list")
        pairs: list[tuple[int, str | None]] = []
        for t in tokens:
            if isinstance(t, dict) and isinstance(t.get("id"), int):  # llama-server's with_pieces
                piece = t.get("piece")
                pairs.append((t["id"], piece if isinstance(piece, str) else None))
            elif isinstance(t, int):
                pairs.append((t, None))
            else:
                raise RemoteError(f"{self.endpoint.url}'s tokenizer answered a token that is not an id: {t!r:.40}")
        strs = answer.get("token_strs")  # vLLM's return_token_strs
        if isinstance(strs, list) and len(strs) == len(pairs):
            pairs = [(i, s if isinstance(s, str) else None) for (i, _), s in zip(pairs, strs)]
        return [(i, p if p is not None else self._piece(i, n)) for n, (i, p) in enumerate(pairs)]

    def _piece(self, token_id: int, n: int) -> str:
        return self.detokenize([token_id]) if n < MAX_PIECES else ""

    def detokenize(self, ids: list[int]) -> str:
        answer = self._post_tokenizer("detokenize", {"tokens": ids})
        text = answer.get("text", answer.get("prompt", answer.get("content"))) if isinstance(answer, dict) else None
        if not isinstance(text, str):
            raise RemoteError(f"{self.endpoint.url}'s detokenizer answered without text")
        return text

    def _tokenize_answer(self, text: str) -> object:
        return self._post_tokenizer("tokenize", {"prompt": text, "content": text, "input": text, "with_pieces": True,
                                                 "return_token_strs": True, "add_special_tokens": False})

    def _post_tokenizer(self, what: str, body: dict) -> object:
        """POST to the server's tokenize or detokenize route, found once: /tokenize, else /extras/tokenize."""
        body = {**body, **({"model": self.model} if self.model else {})}
        routes = [self._tokenizer_prefix] if self._tokenizer_prefix is not None else ["", "/extras"]
        for prefix in routes:
            try:
                answer = transport.post_json(self.endpoint, f"{prefix}/{what}", body)
            except transport.HttpFault as e:
                if e.status in (404, 405) and self._tokenizer_prefix is None:
                    continue
                raise
            self._tokenizer_prefix = prefix
            return answer
        raise NoTokenizerRoute(f"{self.endpoint.url} has no tokenizer route (/tokenize): the Tokenizer needs vLLM, "
                               "llama.cpp's server or the model's tokenizer files (--tokenizer PATH)")
