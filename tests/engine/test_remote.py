"""A served model through the OpenAI-compatible API: the client, its faults, and the knobs' verdicts on a top-N list.

Every fault is played by tests/fake_server.py on 127.0.0.1; each must end in one RemoteError line.
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import ssl
import subprocess
import threading

import pytest
import torch

from fake_server import MODEL, SCRIPT, fake_server
from llmtui.engine.errors import RemoteError
from llmtui.engine.remote import transport
from llmtui.engine.remote.client import RemoteModel
from llmtui.engine.remote.endpoint import Endpoint
from llmtui.engine.remote.judge import UNDECIDED, judge
from llmtui.engine.remote.session import RemoteSession
from llmtui.engine.remote.transport import HttpFault, StreamDropped
from llmtui.engine.sampling import distribution
from llmtui.engine.settings import SamplingSettings


def connect(url: str, **kw) -> RemoteModel:
    return RemoteModel.connect(Endpoint.parse(url, **kw))


def one_line(e: BaseException) -> str:
    text = str(e)
    assert "\n" not in text and "Traceback" not in text and 0 < len(text) <= 300
    return text


# -- the knobs on a listed top-N -----------------------------------------------------------------


def _listed(probs: torch.Tensor, n: int) -> list[tuple[int, str, float]]:
    top = torch.topk(probs, n)
    return [(int(i), f"t{int(i)}", float(p)) for p, i in zip(top.values, top.indices)]


SETTINGS = [
    SamplingSettings(temperature=1.0),
    SamplingSettings(temperature=1.0, top_p=0.8),
    SamplingSettings(temperature=1.0, top_k=3, top_p=0.95, min_p=0.05),
    SamplingSettings(temperature=0.5, top_p=0.9),
    SamplingSettings(temperature=1.7, top_p=0.6),
    SamplingSettings(temperature=0.8, top_k=40, min_p=0.1),
    SamplingSettings(temperature=1.5, top_k=30, top_p=0.8),
    SamplingSettings(temperature=0.3, top_k=12, top_p=0.95),
    SamplingSettings(temperature=0.0),
]


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: f"T{s.temperature}-k{s.top_k}-p{s.top_p}-m{s.min_p}")
def test_judge_agrees_with_the_local_sampler_wherever_it_decides(settings):
    """What the listed top-N decides (cut or kept, and the probability) is what the full distribution gives."""
    gen = torch.Generator().manual_seed(0)
    decided = total = 0
    for trial in range(60):
        logits = torch.randn(200, generator=gen) * (0.5 + trial / 10)
        dist = distribution(logits, settings)
        for c in judge(_listed(dist.raw, 10), settings):
            total += 1
            local_kept = bool(dist.final[c.id] > 0)
            if c.cut_by != UNDECIDED:
                decided += 1
                assert (c.cut_by is None) == local_kept, (trial, c)
            if c.prob is not None:
                assert c.prob == pytest.approx(float(dist.final[c.id]), abs=1e-5), (trial, c)
    assert decided / total > 0.5  # the list decides most cuts: the test can't pass by deciding nothing


def test_judge_marks_what_the_tail_leaves_open():
    # T 2 spreads the tail over an unknown vocabulary: whether top-p 0.5 reaches 'c' depends on it.
    out = judge([(1, "a", 0.4), (2, "b", 0.3), (3, "c", 0.1)], SamplingSettings(temperature=2, top_p=0.5))
    assert [c.cut_by for c in out] == [None, None, UNDECIDED]
    assert all(c.prob is None for c in out)  # the total mass is unknown: no probability is invented


@pytest.mark.parametrize("knob", [{"repetition_penalty": 1.3}, {"frequency_penalty": 0.5}, {"presence_penalty": 0.5},
                                  {"typical_p": 0.9}, {"top_n_sigma": 1.0}, {"logit_bias": ((2, 5.0),)},
                                  {"banned": (1,)}])
def test_judge_with_knobs_beyond_the_list_decides_nothing(knob):
    out = judge([(1, "a", 0.6), (2, "b", 0.3)], SamplingSettings(temperature=1, **knob))
    assert [(c.cut_by, c.prob) for c in out] == [(UNDECIDED, None), (UNDECIDED, None)]


# -- endpoints ------------------------------------------------------------------------------------


@pytest.mark.parametrize("url, why", [
    ("ftp://127.0.0.1/", "http:// or https://"),
    ("file:///etc/passwd", "http:// or https://"),
    ("127.0.0.1:8000", "http:// or https://"),
    ("http://", "names no host"),
    ("http://user:secret@127.0.0.1:8000", "LLMTUI_API_KEY"),
    ("http://127.0.0.1:notaport", "not a URL"),
    ("http://127.0.0.1:8000/?x=1", "base URL"),
])
def test_a_url_that_is_not_a_plain_http_base_url_is_one_line(url, why):
    with pytest.raises(RemoteError) as e:
        Endpoint.parse(url)
    assert why in one_line(e.value)
    assert "secret" not in str(e.value)


def test_the_base_url_drops_a_trailing_v1():
    assert Endpoint.parse("https://example.test/api/v1/").url == "https://example.test/api"


def test_the_api_key_is_sent_as_a_bearer_token_and_never_shown(monkeypatch):
    monkeypatch.setenv("LLMTUI_API_KEY", "sk-test-SECRET")
    with fake_server() as srv:
        model = connect(srv.url)
        assert srv.requests[0][1]["Authorization"] == "Bearer sk-test-SECRET"
    assert "SECRET" not in repr(model) and "SECRET" not in repr(model.endpoint) and "SECRET" not in model.name


def test_tls_verification_is_on():
    ctx = transport._OPENER.handlers  # the HTTPS handler's context
    https = next(h for h in ctx if isinstance(h, transport.urllib.request.HTTPSHandler))
    assert https._context.verify_mode == ssl.CERT_REQUIRED and https._context.check_hostname


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_a_self_signed_certificate_is_refused(tmp_path):
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    with fake_server() as srv:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        with pytest.raises(RemoteError) as e:
            connect(srv.url.replace("http:", "https:"), timeout=5)
    assert "certificate failed verification" in one_line(e.value)


# -- faults ---------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_server_that_is_down_is_one_line():
    with pytest.raises(RemoteError) as e:
        connect(f"http://127.0.0.1:{_closed_port()}")
    assert "refused the connection" in one_line(e.value)


def test_a_host_that_hangs_up_without_answering_is_one_line():
    listener = socket.create_server(("127.0.0.1", 0))

    def hang_up() -> None:
        listener.settimeout(10)
        conn, _ = listener.accept()
        conn.recv(1024)
        conn.close()

    t = threading.Thread(target=hang_up, daemon=True)
    t.start()
    with pytest.raises(RemoteError) as e:
        connect(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=5)
    t.join(5)
    listener.close()
    assert "closed the connection" in one_line(e.value)


def test_a_slow_server_times_out_after_the_users_timeout():
    with fake_server(delay=1.0) as srv:
        with pytest.raises(RemoteError) as e:
            connect(srv.url, timeout=0.3)
    assert "within 0.3 s" in one_line(e.value) and "--timeout" in str(e.value)


@pytest.mark.parametrize("status, words", [
    ("401", "needs an API key"), ("403", "forbids"), ("404", "not found"), ("429", "rate-limiting"),
    ("500", "server error 500"), ("503", "server error 503"),
])
def test_http_errors_are_one_line_each(status, words):
    with fake_server(fault=status) as srv:
        with pytest.raises(HttpFault) as e:
            model = connect(srv.url)  # a 404 here means a server without the model list: taken on trust
            list(RemoteSession(model, "The capital of France is", SamplingSettings()).stream())
    assert words in one_line(e.value) and e.value.status == int(status)


def test_401_with_a_key_says_the_key_was_refused(monkeypatch):
    monkeypatch.setenv("LLMTUI_API_KEY", "wrong")
    with fake_server(fault="401") as srv:
        with pytest.raises(RemoteError) as e:
            connect(srv.url)
    assert "refused the API key" in one_line(e.value) and "wrong" not in str(e.value)


def test_a_model_the_server_does_not_serve_is_named_with_what_it_serves():
    with fake_server() as srv:
        with pytest.raises(RemoteError) as e:
            connect(srv.url, model="llama-70b")
    assert "'llama-70b'" in one_line(e.value) and MODEL in str(e.value)


def test_an_unknown_model_on_a_server_without_a_model_list_is_one_line():
    with fake_server(fault="no-models-route") as srv:
        model = connect(srv.url, model="llama-70b")
        with pytest.raises(RemoteError) as e:
            list(RemoteSession(model, "The capital of France is", SamplingSettings()).stream())
    assert "does not serve the model 'llama-70b'" in one_line(e.value)


# -- streaming --------------------------------------------------------------------------------


def test_a_stream_becomes_steps_with_the_servers_candidates():
    with fake_server() as srv:
        session = RemoteSession(connect(srv.url), "The capital of France is", SamplingSettings(temperature=1))
        steps = list(session.stream())
        body = srv.requests[-1][2]
    assert session.text == "".join(t for t, _ in SCRIPT) and session.finish_reason == "stop token"
    assert body["logprobs"] == 20 and body["stream"] is True and body["model"] == MODEL
    assert body["top_k"] == 0 and body["top_p"] == 1.0 and body["min_p"] == 0.0  # sent, not left to server defaults
    assert body["repetition_penalty"] == body["repeat_penalty"] == 1.0  # llama-cpp-python's default is 1.1
    for step, (token, top) in zip(steps, SCRIPT):
        assert [(c.text, c.raw_prob) for c in step.candidates] == [(t, pytest.approx(math.exp(v))) for t, v in top]
        assert step.text == token and step.raw_prob == pytest.approx(math.exp(dict(top)[token]))
        assert step.unlisted == pytest.approx(1 - sum(math.exp(v) for _, v in top))
        assert step.to_json()["token"]["id"] is None  # the legacy format sends no ids: none invented
    assert session.prompt_tokens == len("The capital of France is")  # the fake tokenizer: one token a character
    assert [s.position for s in steps] == [24, 25, 26, 27]
    assert session.traffic is not None and session.traffic.tokens == len(SCRIPT)


def test_chat_mode_streams_from_chat_completions():
    with fake_server() as srv:
        session = RemoteSession(connect(srv.url), "Hi", SamplingSettings(), chat=True)
        list(session.stream())
        path, _, body = srv.requests[-1]
    assert path == "/v1/chat/completions" and body["messages"] == [{"role": "user", "content": "Hi"}]
    assert body["logprobs"] is True and body["top_logprobs"] == 20
    assert session.text == "".join(t for t, _ in SCRIPT)


def test_a_chat_sends_the_system_prompt_and_the_earlier_turns_as_messages():
    history = (("Hi", "Hello! How can I help?"), ("Capital of France?", " Paris."))
    with fake_server() as srv:
        session = RemoteSession(connect(srv.url), "And of Italy?", SamplingSettings(), chat=True, history=history,
                                system="Answer in one word.")
        list(session.stream())
        path, _, body = srv.requests[-1]
    assert path == "/v1/chat/completions" and body["messages"] == [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": " Paris."},
        {"role": "user", "content": "And of Italy?"},
    ]


def test_a_stream_dropped_midway_keeps_what_came_and_goes_on():
    with fake_server(fault="drop") as srv:
        session = RemoteSession(connect(srv.url), "The capital of France is", SamplingSettings())
        with pytest.raises(StreamDropped) as e:
            for _ in session.stream():
                pass
        assert "kept 2 tokens" in one_line(e.value)
        assert session.text == " Paris." and session.finish_reason == "dropped after 2 tokens"
        srv.fault = None
        list(session.stream())  # going on sends the text so far
        assert srv.requests[-1][2]["prompt"] == "The capital of France is Paris."
        assert srv.requests[-1][2]["max_tokens"] == 128 - 2


def test_a_stream_the_server_ends_early_without_a_reason_is_a_drop():
    with fake_server(fault="done-early") as srv:
        session = RemoteSession(connect(srv.url), "The capital of France is", SamplingSettings())
        with pytest.raises(StreamDropped) as e:
            list(session.stream())
    assert "ended the stream after 2 of 128 tokens without saying why" in one_line(e.value)
    assert session.text == " Paris." and session.finish_reason == "dropped after 2 tokens"


@pytest.mark.parametrize("fault, words", [
    ("malformed", "is not JSON"),
    ("not-json", "neither a stream nor JSON"),
    ("no-logprobs", "ignores them"),
])
def test_a_broken_stream_is_one_line(fault, words):
    with fake_server(fault=fault) as srv:
        session = RemoteSession(connect(srv.url), "The capital of France is", SamplingSettings())
        with pytest.raises(RemoteError) as e:
            list(session.stream())
    assert words in one_line(e.value)


def test_fewer_candidates_than_asked_is_a_note_not_an_error():
    with fake_server(fault="fewer") as srv:
        session = RemoteSession(connect(srv.url), "The capital of France is", SamplingSettings(), top_n=4)
        steps = list(session.stream())
    assert len(steps) == len(SCRIPT) and session.notes == [
        "only 2 of 4 candidates listed"]
    assert all(len(s.candidates) >= 2 for s in steps)


def test_step_and_fork_send_the_prefix_as_the_prompt():
    with fake_server() as srv:
        session = RemoteSession(connect(srv.url), "The capital of France is", SamplingSettings(temperature=0))
        first = session.step()
        assert srv.requests[-1][2]["max_tokens"] == 1 and first.text == " Paris" and not session.finished
        other = next(c for c in first.candidates if c.text == " Lyon")
        forked = session.fork(0, other)
        assert forked.forced and session.text == " Lyon" and forked.prob == 0.0  # greedy would not have drawn it
        session.step()
        assert srv.requests[-1][2]["prompt"] == "The capital of France is Lyon"


def test_the_tokenizer_routes():
    with fake_server() as srv:
        model = connect(srv.url)
        assert model.tokenize("hé") == [(104, "h"), (233, "é")]
        assert model.detokenize([104, 105]) == "hi"
    with fake_server(fault="no-tokenizer") as srv:
        with pytest.raises(RemoteError) as e:
            connect(srv.url).tokenize("hi")
    assert "no tokenizer route" in one_line(e.value)
    assert [p for p, _, _ in srv.requests] == ["/v1/models", "/tokenize", "/extras/tokenize"]


def test_the_test_server_stops_by_itself_and_keeps_to_127_0_0_1():
    with fake_server() as srv:
        assert srv.server_address[0] == "127.0.0.1"
    with pytest.raises(RemoteError):
        connect(srv.url, timeout=2)  # closed when the block ends


def test_step_records_are_json():
    with fake_server() as srv:
        session = RemoteSession(connect(srv.url), "x", SamplingSettings(temperature=2, top_p=0.5))
        steps = list(session.stream())
    json.dumps([s.to_json() for s in steps], allow_nan=False)


# -- the command line ---------------------------------------------------------------------------


def test_cli_generate_streams_from_the_endpoint(capsys):
    from llmtui.cli import main

    with fake_server() as srv:
        assert main(["generate", "The capital of France is", "--endpoint", srv.url, "--temperature", "0"]) == 0
    out, err = capsys.readouterr()
    assert out == " Paris. It is\n" and f"{MODEL} @ {srv.url}" in err and "tokens/s" in err


def test_cli_generate_json_holds_the_servers_logprobs(capsys):
    from llmtui.cli import main

    with fake_server() as srv:
        assert main(["generate", "Hi", "--endpoint", srv.url, "--remote-model", MODEL, "--json", "--top", "3"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"] == MODEL and data["text"] == " Paris. It is" and data["finish_reason"] == "stop token"
    first = data["steps"][0]
    assert [(c["text"], c["raw_prob"]) for c in first["candidates"]] == [
        (t, pytest.approx(math.exp(v))) for t, v in SCRIPT[0][1][:3]]


def test_cli_generate_keeps_what_a_dropped_stream_sent(capsys):
    from llmtui.cli import main

    with fake_server(fault="drop") as srv:
        assert main(["generate", "Hi", "--endpoint", srv.url]) == 1
    out, err = capsys.readouterr()
    assert out == " Paris.\n" and err.count("llmtui: error:") == 1 and "kept 2 tokens" in err


@pytest.mark.parametrize("argv, words", [
    (["generate", "Hi", "--endpoint", "file:///etc"], "http:// or https://"),
    (["generate", "Hi", "--endpoint", "http://127.0.0.1:1", "--model", "x.gguf"], "not both"),
    (["tokenize", "Hi", "--endpoint", "http://127.0.0.1:1", "--encoding", "gpt2"], "not both"),
    (["generate", "Hi", "--endpoint", "http://127.0.0.1:1", "--timeout", "-1"], "positive number"),
])
def test_cli_endpoint_mistakes_are_one_line(capsys, argv, words):
    from llmtui.cli import main

    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err


def test_cli_tokenize_uses_the_servers_tokenizer(capsys):
    from llmtui.cli import main

    with fake_server() as srv:
        assert main(["tokenize", "hé", "--endpoint", srv.url, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tokens"] == [{"id": 104, "text": "h"}, {"id": 233, "text": "é"}] and srv.url in data["tokenizer"]


def read_request(conn: socket.socket) -> bytes:
    """A whole HTTP request: http.client sends the headers and the body in two writes, and a
    socket closed with the body unread sends a reset (the client would see "no answer")."""
    data = b""
    while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length and (chunk := conn.recv(65536)):
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_chunked_stream_cut_inside_a_chunk_keeps_what_came():
    """The server dies halfway through a chunk of its chunked encoding (http.client's IncompleteRead)."""
    listener = socket.create_server(("127.0.0.1", 0))
    event = (b'data: {"choices": [{"text": " Paris", "logprobs": {"tokens": [" Paris"], "token_logprobs": [-0.1], '
             b'"top_logprobs": [{" Paris": -0.1}]}, "finish_reason": null}]}\n\n')

    def serve() -> None:  # every route but the completion is "not found"; at most 5 connections
        listener.settimeout(10)
        for _ in range(5):
            conn, _ = listener.accept()
            request = read_request(conn)
            if not request.startswith(b"POST /v1/completions"):
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                conn.close()
                continue
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                         + f"{len(event):x}\r\n".encode() + event + b"\r\n" + b"400\r\ndata: {")
            conn.close()
            return

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    session = RemoteSession(connect(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=5), "Hi",
                            SamplingSettings())
    with pytest.raises(StreamDropped) as e:
        list(session.stream())
    t.join(5)
    listener.close()
    assert session.text == " Paris" and "kept 1 tokens" in one_line(e.value)
    assert "in the middle of an answer" in str(e.value)


def test_serve_passes_the_endpoint_on_and_never_the_key(monkeypatch):
    from llmtui.cli import app_command, build_parser

    monkeypatch.setenv("LLMTUI_API_KEY", "sk-SECRET")
    args = build_parser().parse_args(["serve", "--endpoint", "http://127.0.0.1:8000", "--remote-model", "m",
                                      "--timeout", "5"])
    command = app_command(args)
    assert "--endpoint http://127.0.0.1:8000 --remote-model m --timeout 5.0" in command and "SECRET" not in command


@pytest.mark.parametrize("as_json", [False, True])
def test_cli_shows_hostile_server_tokens_literally(capsysbinary, as_json):
    from llmtui.cli import main

    with fake_server(fault="hostile") as srv:
        assert main(["generate", "Hi", "--endpoint", srv.url, *(["--json"] if as_json else [])]) == 0
    out = capsysbinary.readouterr().out.decode("utf-8")  # printable: the lone surrogate became U+FFFD
    if as_json:  # valid JSON, the text kept exactly (JSON escapes the controls)
        assert json.loads(out)["text"] == "[bold red]x[/]\x1b]0;owned\x07\ufffd"
    else:  # the human form shows escapes, never sends them
        assert not any(ch in out for ch in "\x1b\x07\u202e\ud800") and "[bold red]x[/]" in out
