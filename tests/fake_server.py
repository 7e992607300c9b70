"""A small OpenAI-compatible server that misbehaves on request, on 127.0.0.1 only, for the remote tests.

It serves a scripted "model": each completion streams SCRIPT's tokens with their listed
candidates in the legacy completions format (or the chat format), and `fault` makes it fail
in one chosen way. It answers at most MAX_REQUESTS requests and shuts itself down after
LIFETIME_S seconds, so a test that forgets it leaves nothing running.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

MAX_REQUESTS = 200
LIFETIME_S = 120.0
MODEL = "fake-model"
MODEL_B = "fake-model-b"  # served beside MODEL with the fault "two-models"

# (drawn token, [(candidate, logprob), ...]) per step; candidates sorted, the drawn one among them, each list's
# probabilities adding up to less than 1 (the rest is the unlisted tail)
SCRIPT: list[tuple[str, list[tuple[str, float]]]] = [
    (" Paris", [(" Paris", -0.4), (" the", -2.0), (" a", -2.5), (" Lyon", -4.0)]),
    (".", [(".", -0.2), (",", -2.6), (" and", -3.5), ("!", -5.0)]),
    (" It", [(" It", -1.0), (" The", -1.2), ("\n", -1.9), (" Paris", -3.0)]),
    (" is", [(" is", -0.1), (" has", -3.4), (" was", -4.2), (" lies", -5.5)]),
]


# what a hostile or broken server might send as tokens: markup, terminal escapes, bidi controls, a lone surrogate
HOSTILE_SCRIPT: list[tuple[str, list[tuple[str, float]]]] = [
    ("[bold red]x[/]", [("[bold red]x[/]", -0.5), ("\x1b[2J", -1.5)]),
    ("\x1b]0;owned\x07", [("\x1b]0;owned\x07", -0.3), ("\u202e", -2.0)]),
    ("\ud800", [("\ud800", -0.2), ("\r", -2.5)]),
]


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fault: str | None = None, delay: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.fault = fault  # None: behave; else one of the names Handler checks
        self.delay = delay  # seconds before answering (the "slow" fault uses it)
        self.requests: list[tuple[str, dict, dict]] = []  # (path, headers, body) of each request

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: FakeServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _send(self, status: int, body: object, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _event(self, obj: object) -> None:
        self.wfile.write(b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n")  # ASCII JSON
        self.wfile.flush()

    def do_GET(self) -> None:
        self._serve({})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self._serve(json.loads(self.rfile.read(length) or b"{}"))

    def _serve(self, body: dict) -> None:
        srv, fault = self.server, self.server.fault
        srv.requests.append((self.path, dict(self.headers), body))
        if len(srv.requests) > MAX_REQUESTS:
            self._send(503, {"error": {"message": "the test server's request budget is spent"}})
            return
        time.sleep(srv.delay)
        if fault and fault.isdigit():
            self._send(int(fault), {"error": {"message": f"scripted {fault}"}})
        elif fault == "no-models-route" and self.path == "/v1/models":
            self._send(404, {"detail": "Not Found"})
        elif self.path == "/v1/models":
            served = [MODEL, MODEL_B] if fault == "two-models" else [MODEL]
            self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in served]})
        elif self.path == "/tokenize" and fault != "no-tokenizer":
            text = body.get("prompt", "")
            self._send(200, {"tokens": [ord(c) for c in text], "count": len(text)})
        elif self.path == "/detokenize" and fault != "no-tokenizer":
            self._send(200, {"prompt": "".join(chr(i) for i in body.get("tokens", []))})
        elif self.path in ("/v1/completions", "/v1/chat/completions"):
            self._complete(body, chat=self.path.endswith("chat/completions"))
        else:
            self._send(404, {"detail": "Not Found"})

    def _complete(self, body: dict, chat: bool) -> None:
        fault = self.server.fault
        if body.get("model") not in (None, MODEL) and not (fault == "two-models" and body.get("model") == MODEL_B):
            self._send(404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}})
            return
        if fault == "not-json":
            self._send(200, b"<html>hello</html>", "text/html")
            return
        if not body.get("stream"):
            scored = _scored(body, fault)
            n = int(body.get("logprobs") or 0)
            plain = {"tokens": [GENERATED], "token_logprobs": [char_logprob(GENERATED)],
                     "text_offset": [len(body.get("prompt", ""))],  # where the generated text starts, as servers do
                     "top_logprobs": [{**dict(list(CHAR_LOGPROBS.items())[:n]), GENERATED: char_logprob(GENERATED)}]}
            choice = scored or {"text": GENERATED, "logprobs": plain if n else None}
            self._send(200, {"id": "cmpl-2", "object": "text_completion", "model": MODEL,
                             "choices": [{"index": 0, "finish_reason": "length", **choice}]})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        n = int(body.get("logprobs") if not chat else body.get("top_logprobs") or 0)
        script = HOSTILE_SCRIPT if fault == "hostile" else SCRIPT
        steps = script[: int(body.get("max_tokens", len(script)))]
        for k, (token, top) in enumerate(steps):
            if fault == "drop" and k == 2:
                self.close_connection = True
                return  # the connection closes mid-stream, without [DONE]
            if fault == "done-early" and k == 2:
                break  # [DONE] with no finish_reason, as llama-cpp-python's server sends when interrupted
            if fault == "malformed" and k == 1:
                self._event(b"{not json")
                continue
            listed = top[: 2 if fault == "fewer" else n]
            last = k == len(steps) - 1
            reason = ("length" if len(steps) < len(script) else "stop") if last else None
            self._event(_chunk(token, listed, chat, fault != "no-logprobs", reason))
        self._event(b"[DONE]")
        self.close_connection = True


# the scripted model's next-character distribution when it reads a given text (echo, prompt_logprobs): the top
# candidates, any other character a little below them
CHAR_LOGPROBS = {" ": -1.0, "e": -1.6, "a": -2.0, "t": -2.3, "o": -2.6}
GENERATED = " Paris"  # the token a scoring request (max_tokens 1) generates after the text


def char_logprob(c: str) -> float:
    return CHAR_LOGPROBS.get(c, -4.0 - (ord(c[0]) % 5) * 0.2)


def echo_tokens(text: str) -> list[str]:
    """How the scripted model cuts a text it echoes: SCRIPT's tokens where they match (longest first), else characters."""
    vocabulary = sorted({t for _, top in SCRIPT for t, _ in top}, key=len, reverse=True)
    tokens, at = [], 0
    while at < len(text):
        token = next((t for t in vocabulary if text.startswith(t, at)), text[at])
        tokens.append(token)
        at += len(token)
    return tokens


def _scored(body: dict, fault: str | None) -> dict | None:
    """A non-streamed completion that scores the prompt: echo (llama.cpp, vLLM) or prompt_logprobs (vLLM)."""
    prompt, n = body.get("prompt", ""), int(body.get("logprobs") or 0)
    top = list(CHAR_LOGPROBS.items())
    if body.get("echo") and fault not in ("prompt-logprobs-only", "no-scoring"):
        tokens = [*echo_tokens(prompt), GENERATED]
        tops = [None] + [{**dict(top[:n]), c: char_logprob(c)} for c in tokens[1:]]
        lps = [None] + [char_logprob(c) for c in tokens[1:]]
        if fault == "shifted-echo":  # llama-cpp-python's on a model without BOS: each token gets the next one's list
            tokens, tops, lps = tokens[:-1], tops[1:], lps[1:]
        offsets = [sum(map(len, tokens[:k])) for k in range(len(tokens))]
        return {"text": prompt + GENERATED, "logprobs": {"tokens": tokens, "token_logprobs": lps,
                "top_logprobs": tops, "text_offset": offsets}}
    if body.get("prompt_logprobs") and fault != "no-scoring":
        k = int(body["prompt_logprobs"])

        def entry(c: str) -> dict:
            ranked = {str(ord(t)): {"logprob": v, "rank": r + 1, "decoded_token": t} for r, (t, v) in enumerate(top[:k])}
            return {str(ord(c)): {"logprob": char_logprob(c), "rank": 99, "decoded_token": c}, **ranked}

        return {"text": GENERATED, "prompt_logprobs": [None] + [entry(c) for c in prompt[1:]]}
    return None


def _chunk(token: str, listed: list[tuple[str, float]], chat: bool, logprobs: bool, reason: str | None) -> dict:
    drawn_lp = dict(listed).get(token, -6.0)
    if chat:
        lp = {"content": [{"token": token, "logprob": drawn_lp,
                           "top_logprobs": [{"token": t, "logprob": v} for t, v in listed]}]}
        choice = {"index": 0, "delta": {"content": token}, "finish_reason": reason}
    else:
        lp = {"tokens": [token], "token_logprobs": [drawn_lp], "top_logprobs": [dict(listed)], "text_offset": [0]}
        choice = {"index": 0, "text": token, "finish_reason": reason}
    if logprobs:
        choice["logprobs"] = lp
    return {"id": "cmpl-1", "object": "text_completion", "model": MODEL, "choices": [choice]}


@contextmanager
def fake_server(fault: str | None = None, delay: float = 0.0) -> Iterator[FakeServer]:
    """A FakeServer running on 127.0.0.1 for the `with` block (and LIFETIME_S at most)."""
    server = FakeServer(fault, delay)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    stopper = threading.Timer(LIFETIME_S, server.shutdown)
    stopper.daemon = True
    stopper.start()
    try:
        yield server
    finally:
        stopper.cancel()
        server.shutdown()
        server.server_close()
        thread.join(5)
