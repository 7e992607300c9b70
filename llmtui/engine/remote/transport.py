"""HTTP to a served model: JSON requests and server-sent-event streams, every fault as one RemoteError line.

Standard library only. TLS certificates are verified (the system's trust store); redirects
are not followed (a POST that is redirected is a misconfigured URL, said so); proxies from
the environment are not used, so a request goes only to the host the user named.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import urllib.error
import urllib.request
from typing import Iterator

from llmtui.engine.errors import RemoteError
from llmtui.engine.remote.endpoint import API_KEY_VARIABLE, Endpoint


class StreamDropped(RemoteError):
    """The stream stopped before the server said it was done: what came before it is kept."""


class HttpFault(RemoteError):
    """The server answered with an HTTP error status (kept, so callers can tell a missing route)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 (urllib's signature)
        raise RemoteError(f"{req.full_url} redirects ({code}) to {newurl!r}: give that address as the endpoint")


_OPENER = urllib.request.build_opener(
    urllib.request.ProxyHandler({}),
    _NoRedirect(),
    urllib.request.HTTPSHandler(context=ssl.create_default_context()),
)


def _request(endpoint: Endpoint, path: str, body: object | None) -> http.client.HTTPResponse:
    headers = {"Accept": "application/json, text/event-stream", "User-Agent": "llmtui"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if key := endpoint.api_key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(endpoint.url + path, data=data, headers=headers, method="GET" if data is None else "POST")
    try:
        return _OPENER.open(req, timeout=endpoint.timeout)
    except urllib.error.HTTPError as e:
        raise http_fault(endpoint, path, e.code, _read_quietly(e)) from None
    except RemoteError:
        raise
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise connection_fault(endpoint, e) from None


def _read_quietly(response: urllib.error.HTTPError) -> bytes:
    try:
        return response.read(8192)
    except (OSError, http.client.HTTPException):
        return b""


def server_message(body: bytes) -> str:
    """The one-line reason in an error body: OpenAI's {"error": {"message"}}, FastAPI's {"detail"}, or text."""
    try:
        data = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return text.splitlines()[0][:200] if text else ""
    if isinstance(data, dict):
        for key in ("error", "detail", "message"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message", value)
            if value:
                return str(value).replace("\n", " ")[:200]
    return str(data)[:200]


def http_fault(endpoint: Endpoint, path: str, status: int, body: bytes) -> HttpFault:
    """One line for an HTTP error status, with what to do about it."""
    return HttpFault(_status_line(endpoint, path, status, body), status)


def _status_line(endpoint: Endpoint, path: str, status: int, body: bytes) -> str:
    why = server_message(body)
    said = f": {why}" if why else ""
    where = endpoint.url + path
    if status == 401:
        if endpoint.api_key:
            return f"{endpoint.url} refused the API key in {API_KEY_VARIABLE} (401){said}"
        return f"{endpoint.url} needs an API key (401): set {API_KEY_VARIABLE}{said}"
    if status == 403:
        return f"{endpoint.url} forbids this request (403){said}"
    if status == 404:
        if endpoint.model and "model" in why.lower():
            return f"{endpoint.url} does not serve the model {endpoint.model!r} (404){said}"
        return f"{where} not found (404): is this an OpenAI-compatible server, and the base URL right?"
    if status == 429:
        return f"{endpoint.url} is rate-limiting requests (429): wait a little and try again{said}"
    if status >= 500:
        return f"{endpoint.url} failed with server error {status}{said}"
    return f"{where} answered {status}{said}"


def connection_fault(endpoint: Endpoint, e: BaseException) -> RemoteError:
    """One line for a request that got no HTTP answer."""
    reason = e.reason if isinstance(e, urllib.error.URLError) else e
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return RemoteError(f"no answer from {endpoint.url} within {endpoint.timeout:g} s (raise it with --timeout)")
    if isinstance(reason, ConnectionRefusedError):
        return RemoteError(f"{endpoint.url} refused the connection: is the server running on that port?")
    if isinstance(reason, socket.gaierror):
        return RemoteError(f"cannot find the host of {endpoint.url} ({reason.strerror})")
    if isinstance(reason, ssl.SSLCertVerificationError):
        return RemoteError(f"{endpoint.url}'s TLS certificate failed verification ({reason.verify_message})")
    if isinstance(reason, ssl.SSLError):
        return RemoteError(f"TLS with {endpoint.url} failed ({reason.reason or reason})")
    if isinstance(reason, http.client.IncompleteRead):
        return RemoteError(f"{endpoint.url} closed the connection in the middle of an answer")
    if isinstance(reason, (ConnectionResetError, http.client.RemoteDisconnected, http.client.BadStatusLine)):
        return RemoteError(f"{endpoint.url} closed the connection without an answer: is it an HTTP server?")
    return RemoteError(f"cannot reach {endpoint.url} ({reason})")


def get_json(endpoint: Endpoint, path: str) -> object:
    return _json_answer(endpoint, path, None)


def post_json(endpoint: Endpoint, path: str, body: object) -> object:
    return _json_answer(endpoint, path, body)


def _json_answer(endpoint: Endpoint, path: str, body: object | None) -> object:
    with _request(endpoint, path, body) as response:
        try:
            raw = response.read()
        except (OSError, http.client.HTTPException) as e:
            raise connection_fault(endpoint, e) from None
    try:
        return json.loads(raw)
    except ValueError:
        raise RemoteError(f"{endpoint.url}{path} answered something that is not JSON: {raw[:60]!r}") from None


def stream_events(endpoint: Endpoint, path: str, body: object) -> Iterator[dict]:
    """The JSON objects of a server-sent-event stream, up to `data: [DONE]`.

    A server that answers with one JSON document instead of a stream yields that document.
    A stream that breaks off raises StreamDropped after yielding everything that came whole.
    """
    with _request(endpoint, path, body) as response:
        if "text/event-stream" not in response.headers.get("Content-Type", ""):
            yield _one_document(endpoint, path, response)
            return
        data: list[str] = []
        events = 0
        while True:
            try:
                line = response.readline(1 << 20)
            except (OSError, http.client.HTTPException) as e:
                raise StreamDropped(f"the stream from {endpoint.url} broke off after {events} events "
                                    f"({connection_fault(endpoint, e)})") from None
            if not line:
                raise StreamDropped(f"the stream from {endpoint.url} ended after {events} events, "
                                    "before the server said it was done")
            line = line.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif not line and data:  # a blank line ends an event
                payload, data = "\n".join(data), []
                if payload.strip() == "[DONE]":
                    return
                try:
                    event = json.loads(payload)
                except ValueError:
                    raise RemoteError(f"event {events + 1} of the stream from {endpoint.url} is not JSON: "
                                      f"{payload[:60]!r}") from None
                if not isinstance(event, dict):
                    raise RemoteError(f"event {events + 1} of the stream from {endpoint.url} is not a JSON object")
                if "error" in event:
                    raise RemoteError(f"{endpoint.url} reported an error mid-stream: "
                                      f"{server_message(json.dumps(event).encode())}")
                events += 1
                yield event
            # other lines (": comment", "event:", "id:", "retry:") carry nothing we use


def _one_document(endpoint: Endpoint, path: str, response: http.client.HTTPResponse) -> dict:
    try:
        raw = response.read()
        event = json.loads(raw)
    except (OSError, http.client.HTTPException) as e:
        raise StreamDropped(f"the answer from {endpoint.url} broke off ({connection_fault(endpoint, e)})") from None
    except ValueError:
        raise RemoteError(f"{endpoint.url}{path} answered something that is neither a stream nor JSON") from None
    if not isinstance(event, dict):
        raise RemoteError(f"{endpoint.url}{path} answered JSON that is not an object")
    return event
