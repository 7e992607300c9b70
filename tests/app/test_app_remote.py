"""The app on a served model (--endpoint), against tests/fake_server.py on 127.0.0.1.

Generate streams from the server with its listed candidates; Tokenizer asks its /tokenize;
the panes that need weights say so in one line and open a local model on request; faults
are one line in the pane, the prompt is kept, and the app keeps going.
"""

from __future__ import annotations

import math

import pytest

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
            # Compare, the branch tree (test_app_remote_compare_branches) and the system prompt work on a served model
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


def chat_requests(srv) -> list[list[dict]]:
    """The `messages` array of each chat completion the server received, in order."""
    return [body["messages"] for path, _, body in srv.requests if path == "/v1/chat/completions"]


REPLY = "".join(t for t, _ in SCRIPT)  # the fake server's reply to every message


async def test_a_served_chat_sends_the_whole_conversation():
    with fake_server() as srv:
        async with remote_app(srv.url).run_test(size=(120, 40)) as pilot:
            pane = await attached(pilot)
            await pilot.press("ctrl+t")
            await run(pilot, pane)
            assert pane.editor.text == "" and len(pane.steps) == len(SCRIPT)  # sent: it shows in the output
            pane.set_prompt("And of Italy?")
            await run(pilot, pane)
            pane.set_prompt("And of Spain?")
            await run(pilot, pane)
            user, assistant = ({"role": r, "content": c} for r, c in (("user", PROMPT), ("assistant", REPLY)))
            italy = [user, assistant, {"role": "user", "content": "And of Italy?"}]
            assert chat_requests(srv) == [
                [user],
                italy,
                [*italy[:2], italy[2], {"role": "assistant", "content": REPLY}, {"role": "user", "content": "And of Spain?"}],
            ]
            await pilot.press("ctrl+n")  # a cleared chat starts again from the next message alone
            pane.set_prompt("Hi")
            await run(pilot, pane)
            assert chat_requests(srv)[-1] == [{"role": "user", "content": "Hi"}]


async def test_a_served_chat_sends_its_system_prompt_and_a_stopped_reply_as_received():
    from llmtui.app.screens.value_input import ValueInputScreen

    with fake_server(delay=0.05) as srv:
        async with remote_app(srv.url).run_test(size=(120, 40)) as pilot:
            pane = await attached(pilot)
            await pilot.press("ctrl+t", "f4")
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, ValueInputScreen), what="the system prompt box")
            await settle(pilot)
            await pilot.press(*"Be brief.", "enter")
            await settle(pilot)
            assert pane.system_prompt == "Be brief." and "applies from the next message" in pane.message
            pane.set_prompt("Hi")
            await run(pilot, pane, "f6")  # one token of the reply: what the next turn's history holds
            assert [s.text for s in pane.steps] == [" Paris"]
            pane.set_prompt("More?")
            await run(pilot, pane)
            assert chat_requests(srv)[-1] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                                              {"role": "assistant", "content": " Paris"}, {"role": "user", "content": "More?"}]


async def test_a_served_chat_turn_edited_in_the_turns_screen_runs_again_from_there():
    from llmtui.app.screens.chat.screen import ChatTurnsScreen
    from llmtui.app.screens.value_input import ValueInputScreen

    with fake_server() as srv:
        async with remote_app(srv.url).run_test(size=(120, 40)) as pilot:
            pane = await attached(pilot)
            await pilot.press("ctrl+t")
            await run(pilot, pane)
            for message in ("Second?", "Third?"):
                pane.set_prompt(message)
                await run(pilot, pane)
            await pilot.press("ctrl+o")
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, ChatTurnsScreen), what="the turns screen")
            await settle(pilot)
            assert "server's template decides" in str(pilot.app.screen.query_one("#chat-system").render())
            await pilot.press("up", "enter")  # turn 2 ("Second?"): edit it
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, ValueInputScreen), what="the message box")
            await settle(pilot)
            pilot.app.screen.query_one("#value-input").value = "Other?"
            await pilot.press("enter")
            await wait_for(pilot, lambda: len(chat_requests(srv)) == 4 and not pane.running, what="the re-run")
            await settle(pilot)
            assert chat_requests(srv)[-1] == [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": REPLY},
                                              {"role": "user", "content": "Other?"}]
            assert pane.session is not None and pane.session.text == REPLY  # the re-run's reply is shown


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


# -- a fork to typed text on a served model (t in the output or the table) --


async def fork_to_text(pilot, pane: GeneratePane, index: int, typed: str) -> None:
    """Select token `index` in the output, press t, type `typed` in the box, and wait for the run it starts."""
    from llmtui.app.screens.value_input import ValueInputScreen

    pane.output.focus()
    pane.output.selected = index
    await pilot.press("t")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ValueInputScreen), what="the text box")
    await settle(pilot)
    assert pilot.app.screen.query_one("#value-input").value == pane.steps[index].text  # the token it replaces
    pilot.app.screen.query_one("#value-input").value = typed
    await pilot.press("enter")
    await wait_for(pilot, lambda: pilot.app.screen is not None and not isinstance(pilot.app.screen, ValueInputScreen)
                   and pane.run.kind == "type" and not pane.running, what="the fork to text")
    await settle(pilot)


async def test_a_fork_to_typed_text_shows_the_servers_probabilities_of_it_and_goes_on():
    from fake_server import char_logprob, echo_tokens

    with fake_server() as srv:
        async with remote_app(srv.url, settings=SamplingSettings(temperature=0.0)).run_test(size=(120, 40)) as pilot:
            pane = await attached(pilot)
            await run(pilot, pane)
            await fork_to_text(pilot, pane, 1, ", a city")
            typed = echo_tokens(", a city")  # how the scripted server cuts it: ",", " a", " ", "c", ...
            assert [s.text for s in pane.steps[:1 + len(typed)]] == [" Paris", *typed]
            assert not pane.steps[0].forced and all(s.forced for s in pane.steps[1:1 + len(typed)])
            assert [s.raw_prob for s in pane.steps[1:1 + len(typed)]] == [
                pytest.approx(math.exp(char_logprob(t))) for t in typed]
            assert last_completion(srv)["prompt"] == PROMPT + " Paris, a city"  # it went on from the typed text
            assert "".join(s.text for s in pane.steps) == " Paris, a city" + REPLY
            pane.output.selected = 2  # the typed " a": its table is the server's list there
            await pilot.pause()
            assert "forced" in str(pane.table.border_title) and pane.table.cells


async def test_a_fork_to_typed_text_keeps_the_drawn_tokens_it_starts_with_and_waits_in_step_mode():
    with fake_server() as srv:
        async with remote_app(srv.url, settings=SamplingSettings(temperature=0.0)).run_test(size=(120, 40)) as pilot:
            pane = await attached(pilot)
            for _ in range(3):
                await run(pilot, pane, "f6")  # the scripted server starts its script again at each request
            assert [s.text for s in pane.steps] == [" Paris"] * 3
            asked = len(srv.requests)
            await fork_to_text(pilot, pane, 0, " Paris Paris!")  # two tokens are the text's own: kept as drawn
            assert [s.text for s in pane.steps] == [" Paris", " Paris", "!"]
            assert [s.forced for s in pane.steps] == [False, False, True]
            assert pane.message.startswith("Forked to your text: 3 tokens now")
            assert not [p for p, _, b in srv.requests[asked:] if b.get("stream")]  # step mode: nothing generated after


async def test_a_server_that_cant_score_a_text_says_so_and_goes_on_from_it():
    with fake_server(fault="no-scoring") as srv:
        async with remote_app(srv.url, settings=SamplingSettings(temperature=0.0)).run_test(size=(120, 40)) as pilot:
            pane = await attached(pilot)
            await run(pilot, pane)
            await fork_to_text(pilot, pane, 1, ", a city")
            unscored = pane.steps[1]
            assert unscored.text == ", a city" and unscored.forced and not unscored.candidates
            assert math.isnan(unscored.raw_prob) and unscored.to_json()["raw_prob"] is None
            assert pane.message.startswith("Your text goes on without its probabilities: ")  # first: 80 columns cut the end
            assert "can't give the probabilities of a given text" in pane.message and "\n" not in pane.message
            assert last_completion(srv)["prompt"] == PROMPT + " Paris, a city"
            assert "".join(s.text for s in pane.steps) == " Paris, a city" + REPLY
            assert pane.output.plain_text.startswith(" Paris, a city Paris")
            pane.output.selected = 1
            await pilot.pause()
            assert "your text, unscored" in str(pane.table.border_title) and not pane.table.cells
            assert pane.message.startswith("Your text: the server can't score a given text")


async def test_a_served_chat_reply_says_in_one_line_why_it_cant_fork_to_text():
    with fake_server() as srv:
        async with remote_app(srv.url).run_test(size=(120, 40)) as pilot:
            pane = await attached(pilot)
            await pilot.press("ctrl+t")
            await run(pilot, pane)
            pane.output.focus()
            await pilot.press("t")
            await settle(pilot)
            assert pane.message.startswith("Forking a served chat reply: not available") and len(pilot.app.screen_stack) == 1
