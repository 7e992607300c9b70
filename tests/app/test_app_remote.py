"""The app on a served model (--endpoint), against tests/fake_server.py on 127.0.0.1.

Generate streams from the server with its listed candidates; Tokenizer asks its /tokenize;
the panes that need weights say so in one line and open a local model on request; faults
are one line in the pane, the prompt is kept, and the app keeps going.
"""

from __future__ import annotations

import math

from app_fixtures import settle, wait_for
from fake_server import HOSTILE_SCRIPT, MODEL, SCRIPT, fake_server
from llmtui.app.app import LLMTuiApp
from llmtui.app.panes.generate import GeneratePane
from llmtui.app.panes.remote import NeedsWeightsPane, RemoteTokenizerPane
from llmtui.engine.remote import UNDECIDED
from llmtui.engine.remote.endpoint import Endpoint
from llmtui.engine.settings import SamplingSettings


PROMPT = "The capital of France is"


def remote_app(url: str, **kwargs) -> LLMTuiApp:
    kwargs.setdefault("pane", "generate")
    kwargs.setdefault("prompt", PROMPT)
    return LLMTuiApp(endpoint=Endpoint.parse(url, timeout=kwargs.pop("timeout", 10)), **kwargs)



def last_completion(srv) -> dict:
    """The body of the last completion request (the Tokenizer pane may ask /tokenize after it, following the selection)."""
    return [body for path, _, body in srv.requests if path.endswith("/completions")][-1]

async def attached(pilot) -> GeneratePane:
    pane = pilot.app.query_one(GeneratePane)
    await wait_for(pilot, lambda: pane.remote is not None or "not attached" in pilot.app.status.remote_info,
                   what="the connection")
    await settle(pilot)
    return pane


async def run(pilot, pane: GeneratePane, key: str = "f5") -> None:
    await pilot.press(key)
    await wait_for(pilot, lambda: not pane.running, what="the run")
    await settle(pilot)


async def test_generate_streams_the_servers_tokens_and_its_table():
    with fake_server() as srv:
        app = remote_app(srv.url, settings=SamplingSettings(temperature=1.0, top_k=2))
        async with app.run_test(size=(120, 40)) as pilot:
            pane = await attached(pilot)
            await run(pilot, pane)
            assert "".join(s.text for s in pane.steps) == "".join(t for t, _ in SCRIPT)
            assert pane.output.plain_text.endswith(" Paris. It is")
            # the last step's table: the server's listed candidates, top-k 2 cutting the rest (decided by ranks)
            cells = pane.table.cells
            assert [c[0].lstrip("▶ ") for c in cells] == ["␣is", "␣has", "␣was", "␣lies"]
            assert cells[0][1] == f"{math.exp(-0.1):.1%}" and [c[2] for c in cells[2:]] == ["top-k", "top-k"]
            assert f"{MODEL} @ {srv.url}" in app.status.remote_info and "ms" in app.status.remote_info
            completions = [body for path, _, body in srv.requests if path.endswith("/completions")]
            assert completions[-1]["top_k"] == 2  # the knobs are sent (other requests, as /tokenize, may follow)


async def test_undecided_rows_show_a_question_mark_and_say_why():
    with fake_server() as srv:
        app = remote_app(srv.url, settings=SamplingSettings(temperature=2.0, top_p=0.5))
        async with app.run_test(size=(120, 40)) as pilot:
            pane = await attached(pilot)
            await run(pilot, pane)
            pane.output.selected = 2  # " It": its top-p cut depends on the unlisted tail at T 2
            await pilot.pause()
            assert UNDECIDED in [c[2] for c in pane.table.cells]
            assert pane.message.startswith("?: decided by the") and "did not list" in pane.message


async def test_step_then_fork_send_prefix_prompts():
    with fake_server() as srv:
        app = remote_app(srv.url, settings=SamplingSettings(temperature=0.0))
        async with app.run_test(size=(120, 40)) as pilot:
            pane = await attached(pilot)
            await run(pilot, pane, "f6")
            assert [s.text for s in pane.steps] == [" Paris"] and last_completion(srv)["max_tokens"] == 1
            pane.table.focus()
            await pilot.press("end", "enter")  # the last listed candidate, " Lyon": fork there
            await wait_for(pilot, lambda: not pane.running and pane.steps and pane.steps[0].forced, what="the fork")
            await settle(pilot)
            assert [s.text for s in pane.steps] == [" Lyon"]  # in step mode a fork waits, as on a local model
            await run(pilot, pane, "f6")  # the next step sends the forked text as the prompt
            assert [s.text for s in pane.steps][0] == " Lyon" and len(pane.steps) == 2
            assert last_completion(srv)["prompt"] == PROMPT + " Lyon" and last_completion(srv)["max_tokens"] == 1


async def test_a_dropped_stream_keeps_its_tokens_and_f7_goes_on():
    with fake_server(fault="drop") as srv:
        async with remote_app(srv.url).run_test(size=(120, 40)) as pilot:
            pane = await attached(pilot)
            await run(pilot, pane)
            assert [s.text for s in pane.steps] == [" Paris", "."]
            assert "broke off" in pane.message or "ended after" in pane.message
            assert pane.message.endswith("F7 goes on") and "\n" not in pane.message
            srv.fault = None
            await run(pilot, pane, "f7")
            assert "".join(s.text for s in pane.steps).startswith(" Paris. Paris")  # the script again, after the kept text
            assert last_completion(srv)["prompt"] == PROMPT + " Paris."


async def test_a_server_that_is_down_is_one_line_and_the_prompt_is_kept():
    with fake_server() as srv:
        url = srv.url
    async with remote_app(url, timeout=2).run_test(size=(120, 40)) as pilot:
        pane = await attached(pilot)
        assert "refused the connection" in pane.message and "F5 tries again" in pane.message
        assert pane.editor.text == PROMPT
        pilot.app.action_show_pane("embeddings")  # panes still switch
        await pilot.pause()
        pilot.app.action_show_pane("generate")
        await pilot.pause()
        await run(pilot, pane)  # F5 tries again: still down, still one line
        assert "refused the connection" in pane.message and pane.editor.text == PROMPT


async def test_http_errors_are_one_line_in_the_pane():
    with fake_server(fault="429") as srv:
        async with remote_app(srv.url).run_test(size=(120, 40)) as pilot:
            pane = await attached(pilot)
            assert "rate-limiting" in pane.message and pane.editor.text == PROMPT


async def test_a_server_without_logprobs_is_one_line():
    with fake_server(fault="no-logprobs") as srv:
        async with remote_app(srv.url).run_test(size=(120, 40)) as pilot:
            pane = await attached(pilot)
            await run(pilot, pane)
            assert "ignores them" in pane.message and not pane.steps


async def test_tokenizer_uses_the_servers_tokenize_route():
    with fake_server() as srv:
        async with remote_app(srv.url, pane="tokenizer", prompt="hé").run_test(size=(120, 40)) as pilot:
            pane = pilot.app.query_one(RemoteTokenizerPane)
            await wait_for(pilot, lambda: pane.pairs, what="the tokens")
            assert pane.pairs == [(104, "h"), (233, "é")] and pane.message.startswith("2 tokens, 2 characters")
            assert any(p == "/tokenize" for p, _, _ in srv.requests)


async def test_tokenizer_falls_back_to_the_tokenizer_files_given(tiny_hf_gpt2_dir, tiny_tokenizer):
    with fake_server(fault="no-tokenizer") as srv:
        app = LLMTuiApp(endpoint=Endpoint.parse(srv.url, tokenizer=str(tiny_hf_gpt2_dir)), pane="tokenizer",
                        prompt="hello world")
        async with app.run_test(size=(120, 40)) as pilot:
            pane = pilot.app.query_one(RemoteTokenizerPane)
            await wait_for(pilot, lambda: pane.pairs, what="the tokens")
            assert [i for i, _ in pane.pairs] == tiny_tokenizer.encode("hello world").ids
            assert "cut by the tokenizer files at" in pane.message


async def test_the_weight_panes_say_so_in_one_line():
    with fake_server() as srv:
        async with remote_app(srv.url, pane="attention").run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            stand_ins = list(pilot.app.query(NeedsWeightsPane))
            assert sorted(p.PANE_ID for p in stand_ins) == ["attention", "embeddings", "layers", "train"]
            text = str(pilot.app.query_one("#attention #needs-weights").render())
            assert "does not expose" in text and "press o" in text


async def test_o_opens_a_local_model_for_the_weight_panes(tiny_lm, monkeypatch):
    from llmtui.app.panes.attention import AttentionPane
    from llmtui.engine.lm import LanguageModel

    monkeypatch.setattr(LanguageModel, "load", classmethod(lambda cls, *a, **k: tiny_lm))
    with fake_server() as srv:
        app = remote_app(srv.url, pane="attention")
        async with app.run_test(size=(120, 40)) as pilot:
            await attached(pilot)
            await pilot.press("o")
            await wait_for(pilot, lambda: app.lm is tiny_lm, what="the local model")
            await settle(pilot)
            assert not list(app.query(NeedsWeightsPane))
            assert app.current_pane is app.query_one(AttentionPane) and app.current_pane.display
            assert "local: " in str(app.status.render())
            assert app.query_one(GeneratePane).remote is not None  # Generate stays on the server


async def test_hostile_tokens_from_the_server_are_shown_literally():
    with fake_server(fault="hostile") as srv:
        async with remote_app(srv.url).run_test(size=(120, 40)) as pilot:
            pane = await attached(pilot)
            await run(pilot, pane)
            assert len(pane.steps) == len(HOSTILE_SCRIPT)
            shown = pane.output.plain_text + "".join(cell for row in pane.table.cells for cell in row) + pane.message
            assert "[bold red]x[/]" in pane.output.plain_text  # markup shown as sent, not obeyed
            assert not any(ch in shown for ch in "\x1b\x07\u202e\r")
            for step in pane.steps:  # selecting each step draws its table without error
                pane.output.selected = step.index
                await pilot.pause()


async def test_a_demo_runs_its_generate_steps_on_the_served_model():
    from llmtui.demo import parse_demo

    demo = parse_demo("""
title = "remote"
[[step]]
pane = "generate"
prompt = "The capital of France is"
generate = 3
knobs = { temperature = 0.0 }
""", "remote.toml")
    with fake_server() as srv:
        app = remote_app(srv.url, demo=demo)
        async with app.run_test(size=(120, 40)) as pilot:
            pane = await attached(pilot)
            await wait_for(pilot, lambda: len(pane.steps) == 3 and not pane.running, what="the demo's generation")
            sent = [body for path, _, body in srv.requests if path == "/v1/completions"]
            assert pane.knob("temperature").value == 0.0 and sent[-1]["max_tokens"] == 3 and sent[-1]["temperature"] == 0
            await pilot.press("ctrl+n")
            assert pane.steps == () and pane.session is None


# -- the one Generate pane on a served model: what it shares with the local one, and what it says it cannot --


async def test_what_needs_the_weights_is_one_line_never_faked():
    with fake_server() as srv:
        async with remote_app(srv.url).run_test(size=(120, 40)) as pilot:
            pane = await attached(pilot)
            assert pane.table.view is None and pane.output.border_title == "Output"  # no preview, no context window
            assert "no next-token preview and no context window" in pane.output.plain_text
            for key, what in (("f4", "The system prompt"),):  # Compare and the branch tree: test_app_remote_compare_branches
                await pilot.press(key)
                await settle(pilot)
                assert pane.message.startswith(f"{what}: not available on a served model") and "\n" not in pane.message
            await run(pilot, pane)
            pane.table.focus()
            await pilot.press("x")
            assert pane.message.startswith("Ban a token: not available") and pane.settings.banned == ()
            await pilot.press("plus")
            assert pane.message.startswith("Bias a token: not available") and pane.settings.logit_bias == ()
            assert len(pilot.app.screen_stack) == 1  # no screen opened
            assert pane.editor.text == PROMPT


async def test_step_presses_while_a_served_step_runs_are_counted():
    with fake_server(delay=0.3) as srv:
        async with remote_app(srv.url, settings=SamplingSettings(temperature=0.0)).run_test(size=(120, 40)) as pilot:
            pane = await attached(pilot)
            await pilot.press("f6", "f6", "f6")
            await wait_for(pilot, lambda: len(pane.steps) == 3 and not pane.running, what="three steps")
            sent = [body for path, _, body in srv.requests if path == "/v1/completions"]
            assert all(body["prompt"].startswith(PROMPT) for body in sent) and sum(b["max_tokens"] for b in sent) >= 3
            assert pane.message.startswith("3 tokens") and "F6 one more" in pane.message


async def test_a_served_chat_sends_one_message_per_request():
    with fake_server() as srv:
        async with remote_app(srv.url).run_test(size=(120, 40)) as pilot:
            pane = await attached(pilot)
            await pilot.press("ctrl+t")
            await run(pilot, pane)
            assert pane.editor.text == "" and len(pane.steps) == len(SCRIPT)  # sent: it shows in the output
            pane.set_prompt("And of Italy?")
            await run(pilot, pane)
            chats = [body for path, _, body in srv.requests if path == "/v1/chat/completions"]
            assert [c["messages"] for c in chats] == [[{"role": "user", "content": PROMPT}],
                                                      [{"role": "user", "content": "And of Italy?"}]]


async def test_a_served_generation_exports_its_steps_and_model():
    with fake_server() as srv:
        async with remote_app(srv.url).run_test(size=(120, 40)) as pilot:
            pane = await attached(pilot)
            await run(pilot, pane)
            data = pane.export_data()
            assert data["model"] == f"{MODEL} @ {srv.url}" and data["generation"]["prompt_ids"] is None
            assert data["generation"]["text"] == "".join(t for t, _ in SCRIPT) == "".join(s["token"]["text"] for s in data["generation"]["steps"])
            assert data["table"]["step_index"] == len(SCRIPT) - 1


async def test_knobs_turned_mid_stream_go_with_a_new_request_from_the_text_so_far():
    from llmtui.app.panes.generate.backend import ServedBackend
    from llmtui.app.panes.generate.run import PromptRequest
    from llmtui.engine.remote.client import RemoteModel

    with fake_server() as srv:
        backend = ServedBackend(RemoteModel.connect(Endpoint.parse(srv.url, timeout=10)))
        try:
            a, b = SamplingSettings(temperature=1.0), SamplingSettings(temperature=0.5)
            session = await backend.open(PromptRequest(PROMPT), a)
            first = await backend.step(session, a, None)
            second = await backend.step(session, a, None)  # the same stream: no new request
            third = await backend.step(session, b, None)  # the knobs turned: a new request, from the text so far
            sent = [body for path, _, body in srv.requests if path == "/v1/completions"]
            assert [body["temperature"] for body in sent] == [1.0, 0.5]
            assert sent[1]["prompt"] == PROMPT + first.text + second.text
            assert third.settings == b and [s.text for s in session.steps] == [" Paris", ".", " Paris"]
        finally:
            backend.close()
