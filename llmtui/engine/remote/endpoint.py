"""Where a served model lives: its base URL, model name, timeout; the API key stays in the environment.

    >>> Endpoint.parse("http://127.0.0.1:8080/v1/").url
    'http://127.0.0.1:8080'
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from llmtui.engine.errors import RemoteError

API_KEY_VARIABLE = "LLMTUI_API_KEY"
DEFAULT_TIMEOUT = 60.0  # seconds without a byte from the server: a big model's first token can take a while


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible server (vLLM, SGLang, llama.cpp's server). `url` has no trailing /v1."""

    url: str
    model: str | None = None  # None: the server's first (usually only) model
    timeout: float = DEFAULT_TIMEOUT
    tokenizer: str | None = None  # --tokenizer: the model's tokenizer files here, for a server without /tokenize

    @classmethod
    def parse(cls, url: str, model: str | None = None, timeout: float = DEFAULT_TIMEOUT,
              tokenizer: str | None = None) -> Endpoint:
        """Check a URL given by the user; one line saying what is wrong with it."""
        shown = repr(url) if len(url) < 80 else repr(url[:77] + "...")
        try:
            parts = urlsplit(url.strip())
            parts.port  # raises for a port that is not a number
        except ValueError as e:
            raise RemoteError(f"the endpoint {shown} is not a URL ({e})") from None
        if parts.scheme not in ("http", "https"):
            raise RemoteError(f"the endpoint {shown} must start with http:// or https://")
        if not parts.hostname:
            raise RemoteError(f"the endpoint {shown} names no host (e.g. http://127.0.0.1:8000)")
        if parts.username or parts.password:
            raise RemoteError(f"put the API key in {API_KEY_VARIABLE}, not in the endpoint URL")
        if parts.query or parts.fragment:
            raise RemoteError(f"the endpoint {shown} should be a base URL, without ?query or #fragment")
        if not (math.isfinite(timeout) and timeout > 0):
            raise RemoteError(f"the timeout must be a positive number of seconds, got {timeout}")
        path = parts.path.rstrip("/")
        path = path[:-3] if path.endswith("/v1") else path
        return cls(f"{parts.scheme}://{parts.netloc}{path}", model or None, timeout, tokenizer or None)

    @property
    def api_key(self) -> str | None:
        """Read at each request, never stored, printed or passed on (repr leaves it out: it is not a field)."""
        return os.environ.get(API_KEY_VARIABLE) or None
