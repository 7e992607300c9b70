"""The served-model panes' view functions (status line, Tokenizer chips, the weights line): pure, no terminal.

The Generate pane's served-model table and output are in test_generate_view.py."""

from __future__ import annotations

from llmtui.app.panes.remote.view import needs_weights_line, status_text, token_chips
from llmtui.engine.remote.client import RemoteModel
from llmtui.engine.remote.endpoint import Endpoint
from llmtui.engine.remote.session import Traffic


def test_status_text_names_model_endpoint_latency_and_rate():
    remote = RemoteModel(Endpoint.parse("http://127.0.0.1:8000/v1"), "qwen")
    assert status_text(remote, None) == "qwen @ http://127.0.0.1:8000"
    assert status_text(remote, Traffic(0.1234, 11, 0.5)) == "qwen @ http://127.0.0.1:8000 · 123 ms · 20.0 tok/s"


def test_token_chips_and_the_weights_line():
    assert token_chips([(1, "hi"), (2, " \x07")]).plain == "hi 1  ␣\\x07 2  "
    line = needs_weights_line("Attention")
    assert "\n" not in line and "press o" in line
