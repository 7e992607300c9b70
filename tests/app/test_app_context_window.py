"""The Generate pane at the end of the context window, on the tiny model (128 positions).

Reaching the window stops with a notice on the message line, never an index error, by
F5, F6, F7, a fork or a chat reply; a prompt that leaves no room says so and stays in
the editor; the output's title always says how much of the window the text uses.
"""

from __future__ import annotations

import app_fixtures
import pytest
from app_fixtures import finished, generate, greedy, make_app, ready, settle

from llmtui.app.widgets.prob_table import ProbabilityTable


WINDOW = 128
"""The tiny model's context length (tests/conftest.py)."""


def a_tokens(lm, n: int) -> str:
    """A plain prompt of exactly n tokens (' a' is one token of the tiny vocabulary)."""
    text = " a" * n
    assert len(lm.encode(text)) == n
    return text


def screen_text(app) -> str:
    return app.export_screenshot().replace("&#160;", " ")


def assert_full_notice(pane) -> None:
    assert pane.message.startswith(f"Context window full: {WINDOW} of {WINDOW} tokens"), pane.message
    assert pane.output.border_title == f"Output · context {WINDOW} / {WINDOW} · full"
    assert len(pane.session.ids) == WINDOW


class TestShown:
    async def test_the_title_counts_the_prompt_then_every_token(self, tiny_lm):
        """Before a run the previewed prompt's tokens, then one more per token, back to the prompt after clear."""
        prompt = "The capital of France is"
        n = len(tiny_lm.encode(prompt))
        app = make_app(tiny_lm, prompt=prompt, settings=greedy(max_new_tokens=5))
        async with app.run_test(size=(80, 24)) as pilot:
            pane = await ready(pilot)
            assert pane.output.border_title == f"Output · context {n} / {WINDOW}"
            assert f"context {n} / {WINDOW}" in screen_text(app)  # drawn, even at 80 columns
            await generate(pilot, pane, "f6")
            assert pane.output.border_title == f"Output · context {n + 1} / {WINDOW}"
            await generate(pilot, pane, "f7")
            assert len(pane.steps) == 5 and pane.context_used == n + 5
            assert f"context {n + 5} / {WINDOW}" in screen_text(app)
            await pilot.press("ctrl+n")
            await settle(pilot)
            assert pane.output.border_title == f"Output · context {n} / {WINDOW}"
            pane.set_prompt("")
            await settle(pilot)
            await pilot.pause(0.5)  # the preview waits for typing to pause
            await settle(pilot)
            assert pane.output.border_title == "Output"


class TestWindowFull:
    async def test_a_run_stops_at_the_window_and_go_on_or_step_say_so_again(self, tiny_lm):
        app = make_app(tiny_lm, prompt=a_tokens(tiny_lm, 100), settings=greedy(max_new_tokens=4096))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await generate(pilot, pane)
            assert pane.session.finish_reason == "context window full"
            assert len(pane.steps) == WINDOW - 100
            assert_full_notice(pane)
            assert "Context window full" in screen_text(app)
            for key in ("f7", "f6"):
                await generate(pilot, pane, key)
                assert_full_notice(pane)
                assert len(pane.steps) == WINDOW - 100

    async def test_single_steps_fill_the_last_positions(self, tiny_lm):
        app = make_app(tiny_lm, prompt=a_tokens(tiny_lm, WINDOW - 3), settings=greedy(max_new_tokens=50))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            for used in (WINDOW - 2, WINDOW - 1):
                await generate(pilot, pane, "f6")
                assert pane.context_used == used and not pane.message.startswith("Context window full")
            await generate(pilot, pane, "f6")
            assert_full_notice(pane)
            await generate(pilot, pane, "f6")
            assert_full_notice(pane)
            assert len(pane.steps) == 3

    async def test_a_fork_in_a_full_text_goes_on_to_the_window_again(self, tiny_lm):
        app = make_app(tiny_lm, prompt=a_tokens(tiny_lm, 110), settings=greedy(max_new_tokens=4096))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await generate(pilot, pane)
            assert_full_notice(pane)
            pane.output.selected = 5
            await pilot.pause()
            table = pane.query_one(ProbabilityTable)
            chosen = table.view.candidates[1].id
            await app_fixtures.choose_and_finish(pilot, pane, 1)
            assert pane.steps[5].forced and pane.steps[5].token_id == chosen
            assert_full_notice(pane)

    async def test_forcing_the_next_token_of_a_full_text_is_refused_with_a_message(self, tiny_lm):
        app = make_app(tiny_lm, prompt=a_tokens(tiny_lm, 120), settings=greedy(max_new_tokens=4096))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await generate(pilot, pane)
            table = pane.query_one(ProbabilityTable)
            table.post_message(ProbabilityTable.Chosen(table, len(pane.steps), 5, preview=True))
            await finished(pilot, pane)
            assert "context window full" in pane.message and "internal" not in pane.message
            assert len(pane.session.ids) == WINDOW

    async def test_a_chat_reply_stops_at_the_window(self, tiny_lm):
        overhead = len(tiny_lm.encode_chat(""))
        message = a_tokens(tiny_lm, WINDOW - overhead - 6)
        app = make_app(tiny_lm, settings=greedy(max_new_tokens=4096))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await pilot.press("ctrl+t")
            pane.set_prompt(message)
            await generate(pilot, pane)
            if pane.session.finish_reason == "stop token":
                pytest.fail("the tiny model ended its reply early: pick another message length")
            assert_full_notice(pane)
            assert pane.editor.text == ""  # sent: the message shows in the transcript


class TestNoRoom:
    @pytest.mark.parametrize("n", [WINDOW, WINDOW + 1, 3 * WINDOW])
    async def test_a_prompt_that_fills_the_window_is_refused_and_kept(self, tiny_lm, n):
        prompt = a_tokens(tiny_lm, n)
        app = make_app(tiny_lm, prompt=prompt, settings=greedy(max_new_tokens=5))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            expected = f"The prompt is {n} tokens; the model's context window holds {WINDOW}"
            assert pane.message.startswith(expected), pane.message  # said by the preview, before any key
            for key in ("f5", "f6", "f7"):
                await generate(pilot, pane, key)
                assert pane.message.startswith(expected), (key, pane.message)
                assert pane.session is None and pane.editor.text == prompt
            if n == WINDOW:
                assert "no room for one more token" in pane.message

    async def test_a_chat_message_too_long_for_the_window_is_kept(self, tiny_lm):
        message = a_tokens(tiny_lm, WINDOW - 5)  # the template's tokens push it over
        app = make_app(tiny_lm, settings=greedy(max_new_tokens=5))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await pilot.press("ctrl+t")
            pane.set_prompt(message)
            await generate(pilot, pane)
            n = len(tiny_lm.encode_chat(message))
            assert pane.message.startswith(f"The message is {n} tokens; the model's context window holds {WINDOW}")
            assert pane.session is None and pane.editor.text == message

    async def test_a_chat_that_outgrows_the_window_says_so_and_keeps_the_message(self, tiny_lm):
        app = make_app(tiny_lm, settings=greedy(max_new_tokens=20))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await pilot.press("ctrl+t")
            pane.set_prompt(a_tokens(tiny_lm, 50))
            await generate(pilot, pane)
            first = pane.session
            shown = pane.steps
            second = a_tokens(tiny_lm, 60)
            pane.set_prompt(second)
            await generate(pilot, pane)
            assert pane.message.startswith("The chat so far and this message are "), pane.message
            assert "ctrl+n clears the chat" in pane.message
            assert pane.editor.text == second  # kept, to send after clearing
            assert pane.session is first and pane.steps == shown  # the chat so far still shows
            await pilot.press("ctrl+n")
            await generate(pilot, pane)
            assert pane.session is not first and pane.session.prompt_ids == tiny_lm.encode_chat(second)
