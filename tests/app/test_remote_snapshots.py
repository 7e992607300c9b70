"""Snapshots of the panes on a served model (tests/fake_server.py): Generate after a short run, and the Tokenizer
on the server's /tokenize, at 80x24 and 120x36, each in dark and light.

The fake server's scripted tokens are the same at every run. Two things are not, and are fixed here: the port the
OS gives the server (the model's name, `model @ URL`, is shown with a fixed address instead) and the clock the
session times its requests by (it reads 10 ms later at each call, so the status line's round trip and tok/s are
the same numbers every time). After a change that alters the look on purpose, look at the new pictures
(`--snapshot-report`), then accept them with `--snapshot-update`.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from app_fixtures import settle, wait_for

from fake_server import SCRIPT, fake_server
from llmtui.app.app import LLMTuiApp
from llmtui.app.panes.generate import GeneratePane
from llmtui.app.panes.remote import RemoteTokenizerPane
from llmtui.engine.remote import session as remote_session
from llmtui.engine.remote.client import RemoteModel
from llmtui.engine.remote.endpoint import Endpoint
from llmtui.engine.settings import SamplingSettings

PROMPT = "The capital of France is"
SHOWN_URL = "http://127.0.0.1:8000"  # where the picture says the server is (the fake one's port varies)
SIZES = pytest.mark.parametrize(
    ("size", "theme"),
    [((80, 24), "dark"), ((80, 24), "light"), ((120, 36), "dark"), ((120, 36), "light")],
    ids=["80x24-dark", "80x24-light", "120x36-dark", "120x36-light"],
)


class SteadyClock:
    """A perf_counter that advances 10 ms at each reading: the session's timings come out the same at every run."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 0.01
        return self.now


@pytest.fixture
def served(monkeypatch):
    """The fake server's URL, with the shown address and the session's clock fixed for the picture."""
    monkeypatch.setattr(RemoteModel, "name", property(lambda self: f"{self.model} @ {SHOWN_URL}"))
    monkeypatch.setattr(remote_session, "time", SimpleNamespace(perf_counter=SteadyClock().perf_counter))
    with fake_server() as srv:
        yield srv.url


def served_app(url: str, pane: str, theme: str) -> LLMTuiApp:
    # temperature 2 and top-p 0.5: the table shows rows the unlisted tail leaves undecided ('?'), and top-k 3 cuts
    settings = SamplingSettings(temperature=2.0, top_p=0.5, top_k=3, seed=1)
    return LLMTuiApp(endpoint=Endpoint.parse(url, timeout=10), pane=pane, prompt=PROMPT, theme=theme, settings=settings)


@SIZES
def test_generate_on_a_served_model(snap_compare, served, size, theme):
    """After a run of the script, " It" (step 3) selected: its table has '?' rows and the message line says why."""
    app = served_app(served, "generate", theme)

    async def run_before(pilot) -> None:
        pane = app.query_one(GeneratePane)
        await wait_for(pilot, lambda: pane.remote is not None, what="the connection")
        await settle(pilot)
        await pilot.press("f5")
        await wait_for(pilot, lambda: len(pane.steps) == len(SCRIPT) and not pane.running, what="the run")
        await settle(pilot)
        pane.output.selected = 2
        app.screen.set_focus(None)  # no blinking cursor in the picture
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@SIZES
def test_tokenizer_on_a_served_model(snap_compare, served, size, theme):
    """The prompt cut by the server's /tokenize (the fake one: a token per character)."""
    app = served_app(served, "tokenizer", theme)

    async def run_before(pilot) -> None:
        pane = app.query_one(RemoteTokenizerPane)
        await wait_for(pilot, lambda: len(pane.pairs) == len(PROMPT), what="the tokens")
        await settle(pilot)
        app.screen.set_focus(None)
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
