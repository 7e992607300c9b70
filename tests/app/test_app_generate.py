"""The Generate pane, driven with Pilot on a tiny random model: knobs, streaming, stop, step, fork, chat, tables."""

from __future__ import annotations

import time
import unicodedata

import app_fixtures
import pytest
from app_fixtures import (
    finished,
    generate,
    greedy,
    make_app,
    press_now,
    ready,
    settle,
    wait_for,
)
from textual import events

from llmtui.app.selection import TokenSelection
from llmtui.app.screens.value_input import ValueInputScreen
from llmtui.app.widgets.knob import KNOBS
from llmtui.app.widgets.prob_table import ProbabilityTable, percent
from llmtui.engine.generation import GenerationSession
from llmtui.engine.sampling import distribution
from llmtui.engine.settings import SamplingSettings


PROMPT = "The capital of France is"


def rendered_lines(widget) -> list[str]:
    """What a line-API widget draws, as text, line by line."""
    return ["".join(seg.text for seg in widget.render_line(y)) for y in range(widget.content_region.height)]


def control_chars(text: str) -> set[str]:
    return {ch for ch in text if unicodedata.category(ch) == "Cc"}


class TestKnobs:
    async def test_keys_turn_every_knob(self, tiny_lm):
        """Left/right on a focused knob move it one rung of its ladder, and the pane's settings follow."""
        app = make_app(tiny_lm, prompt=PROMPT)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            for spec in KNOBS:
                knob = pane.knob(spec.name)
                knob.focus()
                before = getattr(pane.settings, spec.name)
                await pilot.press("right")
                up = spec.neighbour(before, 1)
                assert getattr(pane.settings, spec.name) == up, spec.name
                assert knob.value == up
                await pilot.press("left")
                assert getattr(pane.settings, spec.name) == spec.neighbour(up, -1), spec.name

    async def test_clicks_turn_every_knob(self, tiny_lm):
        """Clicking a knob's + raises it, its − lowers it."""
        app = make_app(tiny_lm, prompt=PROMPT)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            for spec in KNOBS:
                knob = pane.knob(spec.name)
                before = getattr(pane.settings, spec.name)
                await pilot.click(knob, offset=(knob.size.width - 1, 0))
                assert getattr(pane.settings, spec.name) == spec.neighbour(before, 1), spec.name
                await pilot.click(knob, offset=(0, 0))
                assert getattr(pane.settings, spec.name) == spec.neighbour(spec.neighbour(before, 1), -1), spec.name

    async def test_scroll_wheel_turns_a_knob(self, tiny_lm):
        app = make_app(tiny_lm, prompt=PROMPT, settings=SamplingSettings(temperature=0.7))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            knob = pane.knob("temperature")
            knob.post_message(events.MouseScrollUp(knob, 1, 0, 0, 0, 0, False, False, False))
            await pilot.pause()
            assert pane.settings.temperature == 0.8
            knob.post_message(events.MouseScrollDown(knob, 1, 0, 0, 0, 0, False, False, False))
            await pilot.pause()
            assert pane.settings.temperature == 0.7
    @pytest.mark.parametrize("width", [40, 50, 120])
    async def test_knob_labels_stay_distinct_on_a_narrow_terminal(self, tiny_lm, width):
        """Each knob's label starts with a word no other shown knob's starts with: cut to fit, "top-k" and
        "top-p" both read "t"; the short labels ("k", "p") are used instead, the full ones where they fit."""
        app = make_app(tiny_lm, prompt=PROMPT)
        async with app.run_test(size=(width, 24)) as pilot:
            pane = await ready(pilot)
            labels = {}
            for spec in KNOBS:
                knob = pane.knob(spec.name)
                drawn = knob.render().plain
                assert drawn.startswith("− ") and drawn.endswith(f"{spec.show(knob.value)} +"), drawn
                labels[spec.name] = drawn[2:].split(" ")[0]
                assert labels[spec.name] and (spec.label.startswith(labels[spec.name])
                                              or spec.short.startswith(labels[spec.name])), drawn
            assert len(set(labels.values())) == len(KNOBS), labels
            if width >= 120:
                assert labels == {spec.name: spec.label.split(" ")[0] for spec in KNOBS}

    async def test_typed_value_is_validated(self, tiny_lm):
        """Enter on a knob asks for an exact value; a bad one is refused with the reason, a good one taken."""
        app = make_app(tiny_lm, prompt=PROMPT)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            pane.knob("top_p").focus()
            await pilot.press("enter")
            assert isinstance(app.screen, ValueInputScreen)
            await pilot.press("ctrl+a", "ctrl+k", *"1.5", "enter")
            assert isinstance(app.screen, ValueInputScreen)  # refused: still asking
            assert "top-p must be between 0 and 1" in str(app.screen.query_one("#value-error").render())
            await pilot.press("escape")
            assert pane.settings.top_p == 1.0
            pane.knob("repetition_penalty").focus()
            for typed in ("nan", "inf"):  # float() takes both; nan made every probability nan
                await pilot.press("enter", "ctrl+a", "ctrl+k", *typed, "enter")
                assert isinstance(app.screen, ValueInputScreen)
                assert "repetition penalty must be between" in str(app.screen.query_one("#value-error").render())
                await pilot.press("escape")
            assert pane.settings.repetition_penalty == 1.0
            for name, typed, said in (("temperature", "", "temperature takes a number, such as 0.7; type one"),
                                      ("top_k", "ten", "top-k takes a whole number, such as 40 (0 or off: no limit); "
                                                       "not 'ten'")):
                pane.knob(name).focus()  # bug 9: Python's "could not convert string to float: ''" was shown
                await pilot.press("enter", "ctrl+a", "ctrl+k", *typed, "enter")
                assert str(app.screen.query_one("#value-error").render()) == said
                await pilot.press("escape")
            pane.knob("seed").focus()
            await pilot.press("enter", "ctrl+a", "ctrl+k", *"42", "enter")
            assert not isinstance(app.screen, ValueInputScreen)
            assert pane.settings.seed == 42
            assert pane.knob("seed").text == "seed 42"
            await pilot.press("r")  # on the seed knob: back to random
            assert pane.settings.seed is None

    async def test_a_double_enter_in_the_value_box_sets_the_value_once(self, tiny_lm):
        """Two enters before the box closes (a fast typist; found by the soak test): the value is set
        once, the box closes, and the second enter pops no other screen (it used to raise ScreenStackError)."""
        app = make_app(tiny_lm, prompt=PROMPT)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            pane.knob("top_k").focus()
            await pilot.press("enter")
            assert isinstance(app.screen, ValueInputScreen)
            await pilot.press(*"7")
            app._driver.send_message(events.Key("enter", "\r"))
            app._driver.send_message(events.Key("enter", "\r"))
            await pilot.pause()
            await pilot.pause()
            assert app._exception is None
            assert len(app.screen_stack) == 1
            assert pane.settings.top_k == 7

    async def test_knob_turned_mid_stream_applies_from_the_next_token(self, tiny_lm, slow_steps):
        slow_steps(0.02)
        app = make_app(tiny_lm, prompt=PROMPT, settings=greedy(max_new_tokens=40))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await press_now(pilot, "f5")
            await wait_for(pilot, lambda: len(pane.steps) >= 3, what="3 tokens")
            pane.set_knob("temperature", 1.0)
            await finished(pilot, pane)
            temperatures = [s.settings.temperature for s in pane.session.steps]
            assert temperatures[0] == 0.0 and temperatures[-1] == 1.0
            switch = temperatures.index(1.0)
            assert set(temperatures[:switch]) == {0.0} and set(temperatures[switch:]) == {1.0}
            assert len(pane.session.steps) == 40


class TestStreaming:
    async def test_tokens_stream_through_the_kv_cache(self, tiny_lm, monkeypatch):
        """After the prompt's one forward pass, each token costs a forward pass of one token."""
        app = make_app(tiny_lm, prompt=PROMPT, settings=greedy(max_new_tokens=20))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            lengths: list[int] = []
            forward = tiny_lm.model.forward

            def counting(ids, cache=None, **kwargs):
                lengths.append(ids.shape[1] if cache is not None else -1)
                return forward(ids, cache, **kwargs)

            monkeypatch.setattr(tiny_lm.model, "forward", counting)
            await generate(pilot, pane)
            n_prompt = len(tiny_lm.encode(PROMPT))
            cached = [n for n in lengths if n != -1]  # (other panes may run the model on the text, uncached)
            assert cached[0] == n_prompt
            assert cached[1:20] == [1] * 19
            assert len(pane.steps) == 20
            assert pane.message.startswith("Max tokens reached: 20 tokens")

    async def test_stop_takes_effect_before_the_next_token(self, tiny_lm, slow_steps):
        slow_steps(0.03)
        app = make_app(tiny_lm, prompt=PROMPT, settings=greedy(max_new_tokens=100))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await press_now(pilot, "f5")
            await wait_for(pilot, lambda: len(pane.steps) >= 3, what="3 tokens")
            assert pane.running
            await press_now(pilot, "escape")
            at_stop = len(pane.session.steps)
            await finished(pilot, pane)
            # at most the token being computed when stop was pressed lands
            assert at_stop <= len(pane.steps) <= at_stop + 1 < 100
            assert pane.message.startswith(f"Stopped after {len(pane.steps)} tokens")
            await pilot.pause(0.2)
            assert len(pane.session.steps) == len(pane.steps)
            await pilot.press("f7")  # go on from there
            await finished(pilot, pane)
            assert len(pane.steps) == 100

    async def test_the_app_answers_keys_while_generating(self, tiny_lm, slow_steps):
        """A key's action runs within 100 ms while tokens stream (or, on a machine too busy for that even
        when idle, no slower than when idle): generation never blocks the UI thread."""
        slow_steps(0.02)
        app = make_app(tiny_lm, prompt=PROMPT, settings=SamplingSettings(temperature=0.5, max_new_tokens=500))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            knob = pane.knob("top_k")
            knob.focus()

            async def round_trips(n: int) -> float:
                delays = []
                for _ in range(n):
                    before = knob.value
                    sent = time.perf_counter()
                    app._driver.send_message(events.Key("right" if before != 1000 else "left", None))
                    await wait_for(pilot, lambda before=before: knob.value != before, timeout=5, what="the knob to turn")
                    delays.append(time.perf_counter() - sent)
                return sorted(delays)[n // 2]

            idle = await round_trips(5)
            await press_now(pilot, "f5")
            await wait_for(pilot, lambda: len(pane.steps) >= 2, what="2 tokens")
            busy = await round_trips(7)
            assert pane.running
            await press_now(pilot, "escape")
            await finished(pilot, pane)
            assert busy < 0.1 or busy < idle + 0.05, (busy, idle)

    async def test_a_streamed_text_is_laid_out_as_the_whole_text_would_be(self, tiny_lm, slow_steps, monkeypatch):
        """While tokens stream, each frame lays out only the new tokens after the old lines; the lines are
        those of laying out the whole text at once (wrapped at the same places, every token where it was)."""
        from llmtui.app.panes.generate import runner
        from llmtui.app.widgets.token_text import TokenText, wrap

        slow_steps(0.004)
        monkeypatch.setattr(runner, "POST_EVERY", 0.01)  # many frames, however long each takes to draw
        monkeypatch.setattr(runner, "UI_BUDGET", 1.0)
        appended: list[int] = []
        append = TokenText._append
        monkeypatch.setattr(TokenText, "_append", lambda self, new: (appended.append(len(new)), append(self, new))[1])
        app = make_app(tiny_lm, prompt=PROMPT, settings=SamplingSettings(temperature=1.0, seed=5, max_new_tokens=80))
        async with app.run_test(size=(70, 30)) as pilot:
            pane = await ready(pilot)
            await generate(pilot, pane)
            output = pane.output
            assert len(appended) >= 3  # frames that laid out only their new tokens
            assert len(output._lines) > 3  # the text wraps
            assert output._lines == wrap(output._pieces(), output._layout_width)
            assert output.plain_text == "".join(p.text for p in output._pieces())
            assert [p.step for p in output._steps] == list(range(80))

    async def test_colours_follow_the_probabilities(self, tiny_lm):
        from llmtui.app.palette import prob_style

        app = make_app(tiny_lm, prompt=PROMPT, settings=SamplingSettings(temperature=1.0, seed=3, max_new_tokens=15))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await generate(pilot, pane)
            pieces = {p.step: p for p in pane.output._steps}
            for step in pane.steps:
                assert pieces[step.index].style.bgcolor == prob_style(step.raw_prob).bgcolor
            await pilot.press("tab", "tab", "tab", "tab", "tab", "tab", "tab", "tab")  # to the output
            pane.output.focus()
            await pilot.press("c")  # colour by the probability after the knobs
            pieces = {p.step: p for p in pane.output._steps}
            for step in pane.steps:
                assert pieces[step.index].style.bgcolor == prob_style(step.prob).bgcolor


class TestTable:
    async def test_table_matches_the_engine_and_shows_the_cuts(self, tiny_lm):
        """Each step's table holds the engine's candidates and probabilities; the cut rows are those the knobs cut."""
        settings = SamplingSettings(temperature=0.9, top_k=8, top_p=0.7, min_p=0.05, seed=7, max_new_tokens=12)
        headless = GenerationSession(tiny_lm, tiny_lm.encode(PROMPT), settings)
        expected = list(headless)
        app = make_app(tiny_lm, prompt=PROMPT, settings=settings)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await generate(pilot, pane)
            assert [s.token_id for s in pane.steps] == [s.token_id for s in expected]
            table = pane.query_one(ProbabilityTable)
            n_cut = 0
            for want in expected:
                pane.output.selected = want.index
                await pilot.pause()
                view = table.view
                assert view.index == want.index and view.drawn == want.token_id
                assert [c.id for c in view.candidates] == [c.id for c in want.candidates]
                for got, c, (label, model, knobs) in zip(view.candidates, want.candidates, table.cells):
                    assert abs(got.raw_prob - c.raw_prob) < 1e-6 and abs(got.prob - c.prob) < 1e-6
                    assert model == percent(c.raw_prob)
                    assert knobs == (c.cut_by if c.cut_by else percent(c.prob))
                cut_rows = [knobs in ("top-k", "top-p", "min-p") for _, _, knobs in table.cells]
                assert cut_rows == [c.cut_by is not None for c in want.candidates]
                n_cut += sum(cut_rows)
                assert table.cells[[c.id for c in want.candidates].index(want.token_id)][0].startswith("▶")
            assert n_cut >= 2 * len(expected)  # top-k 8 of 10 candidates cuts at least two per step

    async def test_preview_shows_the_next_token_before_generating(self, tiny_lm):
        app = make_app(tiny_lm, prompt=PROMPT, settings=SamplingSettings(temperature=0.5))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            table = pane.query_one(ProbabilityTable)
            assert table.view is not None and table.view.preview
            ids = tiny_lm.encode(PROMPT)
            dist = distribution(tiny_lm.run(ids, capture=False).logits[0, -1], pane.settings, ids)
            top = dist.raw.topk(10)
            assert [c.id for c in table.view.candidates] == top.indices.tolist()
            assert PROMPT in pane.output.plain_text
            # a knob turned while stopped redraws the preview under the new knobs
            pane.set_knob("temperature", 2.0)
            await settle(pilot)
            assert table.view.settings.temperature == 2.0
            assert "T 2.00" in str(table.border_subtitle)
            flat = distribution(tiny_lm.run(ids, capture=False).logits[0, -1], pane.settings, ids)
            assert abs(table.view.candidates[0].prob - float(flat.final[table.view.candidates[0].id])) < 1e-6

    async def test_an_export_names_the_prompt_its_preview_is_for(self, tiny_lm):
        """Typing ahead of the preview (it waits for a pause): the table still shows the last prompt's preview,
        and an export says which prompt that is, not the editor's newer text (found by the teach-lyon demo test)."""
        app = make_app(tiny_lm, prompt=PROMPT, settings=SamplingSettings(temperature=0.5))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            assert pane.preview_prompt == PROMPT
            pane.editor.load_text("A newer prompt")  # the preview waits for a typing pause
            data = pane.export_data()
            assert data["prompt"]["text"] == PROMPT and data["table"]["preview"]
            assert pane.preview_prompt == PROMPT
            await wait_for(pilot, lambda: pane.preview_prompt == "A newer prompt", what="the new preview")
            assert pane.export_data()["prompt"]["text"] == "A newer prompt"
            pane.editor.load_text("")  # no prompt: no preview, and the export says no prompt
            await wait_for(pilot, lambda: pane.table.view is None, what="the empty table")
            assert pane.preview_prompt is None

    async def test_temperature_changes_the_bars(self, tiny_lm):
        app = make_app(tiny_lm, prompt=PROMPT, settings=SamplingSettings(temperature=1.0))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            table = pane.query_one(ProbabilityTable)
            sharp_top = table.view.candidates[0].prob
            pane.set_knob("temperature", 3.0)
            await settle(pilot)
            assert table.view.candidates[0].prob < sharp_top  # flatter
            bars = [line for line in rendered_lines(table)[1:] if "█" in line or "░" in line]
            assert bars


    async def test_plus_and_minus_bias_the_highlighted_token_and_the_table_shows_it(self, tiny_lm):
        app = make_app(tiny_lm, prompt=PROMPT, settings=SamplingSettings(temperature=1.0))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            table = pane.query_one(ProbabilityTable)
            pane.output.focus()
            await pilot.press("plus")
            assert pane.message.startswith("Bias a token from the table") and pane.settings.logit_bias == ()
            table.focus()
            table.cursor = 1
            token, before = table.view.candidates[1].id, table.view.candidates[1].prob
            await pilot.press("plus", "plus")
            await settle(pilot)
            assert pane.settings.logit_bias == ((token, 4.0),) and "logit +4" in pane.message
            # the preview under the new knobs: the bias stage raises that token's odds by e^4, its label says +4
            ids = tiny_lm.encode(PROMPT)
            expected = distribution(tiny_lm.run(ids, capture=False).logits[0, -1], pane.settings, ids)
            row = next(n for n, c in enumerate(table.view.candidates) if c.id == token)
            assert table.view.labels[row].endswith(" +4") and table.view.candidates[row].prob > before
            assert abs(table.view.candidates[row].prob - float(expected.final[token])) < 1e-6
            table.cursor = row
            await pilot.press("minus", "minus")
            await settle(pilot)
            assert pane.settings.logit_bias == () and "no bias" in pane.message  # back to none: the entry goes


class TestSelectAndFork:
    async def test_selecting_a_past_token_shows_its_table(self, tiny_lm):
        app = make_app(tiny_lm, prompt=PROMPT, settings=greedy(max_new_tokens=10))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await generate(pilot, pane)
            table = pane.query_one(ProbabilityTable)
            assert table.view.index == 9
            pane.output.focus()
            await pilot.press("left", "left", "left")
            assert pane.output.selected == 6 and table.view.index == 6
            await pilot.press("home")
            assert table.view.index == 0
            # a click on a token selects its step
            output = pane.output
            target = next(c for y, line in enumerate(output._lines) for c in line if c.step == 4 and c.text)
            y = next(y for y, line in enumerate(output._lines) if target in line)
            region = output.content_region
            await pilot.click(output, offset=(region.x - output.region.x + target.x, region.y - output.region.y + y - output.scroll_offset.y))
            assert output.selected == 4 and table.view.index == 4

    async def test_fork_replaces_the_text_after_the_step_and_goes_on(self, tiny_lm):
        app = make_app(tiny_lm, prompt=PROMPT, settings=greedy(max_new_tokens=12))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await generate(pilot, pane)
            before = [s.token_id for s in pane.steps]
            pane.output.focus()
            pane.output.selected = 4
            n_prompt = len(tiny_lm.encode(PROMPT))
            app.selection = TokenSelection.at([*tiny_lm.encode(PROMPT), *before], n_prompt + 4, "generate")  # picked
            await pilot.pause()
            table = pane.query_one(ProbabilityTable)
            table.focus()
            await pilot.press("down")  # greedy drew row 0; take the runner-up
            chosen = table.view.candidates[table.cursor].id
            assert chosen != before[4]
            await pilot.press("enter")
            await finished(pilot, pane)
            after = [s.token_id for s in pane.steps]
            assert after[:4] == before[:4]
            assert after[4] == chosen and pane.steps[4].forced
            assert len(after) == 12  # it went on
            rest = GenerationSession(tiny_lm, tiny_lm.encode(PROMPT) + after[:5], greedy(max_new_tokens=7))
            assert [s.token_id for s in rest] == after[5:]
            assert pane.output.step_text(4) != ""
            # bug 9: the status line still named the token the fork replaced
            assert app.selection.ids[n_prompt + 4] == chosen and app.selection.position == n_prompt + 4
            assert f"({chosen}) at position {n_prompt + 4}" in str(app.query_one("#status").render())

    async def test_fork_after_stepping_takes_just_that_token(self, tiny_lm):
        app = make_app(tiny_lm, prompt=PROMPT, settings=greedy(max_new_tokens=50))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            for _ in range(5):
                await generate(pilot, pane, "f6")
            table = pane.query_one(ProbabilityTable)
            pane.output.selected = 2
            await pilot.pause()
            await app_fixtures.choose_and_finish(pilot, pane, 1)
            assert len(pane.steps) == 3 and pane.steps[2].forced
            assert pane.steps[2].token_id == table.view.candidates[1].id

    async def test_choosing_a_candidate_of_the_preview_forces_the_next_token(self, tiny_lm):
        app = make_app(tiny_lm, prompt=PROMPT, settings=greedy(max_new_tokens=50))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            table = pane.query_one(ProbabilityTable)
            assert table.view.preview
            wanted = table.view.candidates[3].id
            await generate(pilot, pane, "f6")  # step mode: forcing takes one token
            pane.output.selected = 1  # the next token
            await settle(pilot)
            assert table.view.preview and table.view.index == 1
            wanted = table.view.candidates[3].id
            await app_fixtures.choose_and_finish(pilot, pane, 3)
            assert [s.forced for s in pane.steps] == [False, True]
            assert pane.steps[1].token_id == wanted

    async def test_choosing_the_drawn_token_changes_nothing(self, tiny_lm):
        app = make_app(tiny_lm, prompt=PROMPT, settings=greedy(max_new_tokens=6))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await generate(pilot, pane)
            ids = [s.token_id for s in pane.steps]
            pane.query_one(ProbabilityTable).choose(0)
            await pilot.pause()
            assert [s.token_id for s in pane.steps] == ids
            assert "That is the token it drew" in pane.message

    async def test_t_forks_to_typed_text_its_tokens_forced_then_goes_on(self, tiny_lm):
        """t types the text that replaces the selected token and what follows: its tokens (as the tokenizer cuts
        it) are forced with the model's probabilities of them, and greedy generation goes on after them."""
        app = make_app(tiny_lm, prompt=PROMPT, settings=greedy(max_new_tokens=12))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await generate(pilot, pane)
            before = [s.token_id for s in pane.steps]
            pane.output.focus()
            pane.output.selected = 3
            await pilot.press("t")
            await wait_for(pilot, lambda: isinstance(app.screen, ValueInputScreen), what="the text box")
            assert app.screen.query_one("#value-input").value == pane.steps[3].text
            app.screen.query_one("#value-input").value = "\u00a7 zebra"  # nothing the tiny model drew
            await pilot.press("enter")
            await finished(pilot, pane)
            typed = tiny_lm.encode("\u00a7 zebra")
            after = [s.token_id for s in pane.steps]
            assert after[:3] == before[:3] and after[3:3 + len(typed)] == typed
            assert all(s.forced for s in pane.steps[3:3 + len(typed)]) and len(after) == 12  # it went on
            ids = tiny_lm.encode(PROMPT) + after[:3 + len(typed)]
            expected = GenerationSession(tiny_lm, ids[:-1], greedy()).distribution().raw[ids[-1]].item()
            assert pane.steps[2 + len(typed)].raw_prob == pytest.approx(expected, rel=1e-4)  # the model's own
            rest = GenerationSession(tiny_lm, ids, greedy(max_new_tokens=12 - len(ids) + len(tiny_lm.encode(PROMPT))))
            assert [s.token_id for s in rest] == after[3 + len(typed):]


class TestStepMode:
    async def test_one_token_per_press(self, tiny_lm):
        app = make_app(tiny_lm, prompt=PROMPT, settings=greedy(max_new_tokens=50))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            for n in range(1, 4):
                await generate(pilot, pane, "f6")
                assert len(pane.steps) == n
            pane.output.focus()
            await generate(pilot, pane, "n")
            assert len(pane.steps) == 4
            await generate(pilot, pane, "space")
            assert len(pane.steps) == 5
            headless = GenerationSession(tiny_lm, tiny_lm.encode(PROMPT), greedy(max_new_tokens=5))
            assert [s.token_id for s in headless] == [s.token_id for s in pane.steps]

    async def test_presses_faster_than_the_model_are_not_lost(self, tiny_lm, slow_steps):
        """A speaker's clicker may outrun the model: five quick presses give five tokens, no more, no less."""
        slow_steps(0.05)
        app = make_app(tiny_lm, prompt=PROMPT, settings=greedy(max_new_tokens=50))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            for _ in range(5):
                await press_now(pilot, "f6")
            await wait_for(pilot, lambda: len(pane.steps) == 5 and not pane.running, what="five tokens")
            await finished(pilot, pane)
            await pilot.pause(0.2)
            assert len(pane.steps) == 5 and len(pane.session.steps) == 5

    async def test_a_changed_prompt_starts_again(self, tiny_lm):
        app = make_app(tiny_lm, prompt=PROMPT, settings=greedy(max_new_tokens=50))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await generate(pilot, pane, "f6")
            await generate(pilot, pane, "f6")
            pane.editor.focus()
            await pilot.press("end", "!")
            await generate(pilot, pane, "f6")
            assert len(pane.steps) == 1
            assert pane.session.prompt_ids == tiny_lm.encode(PROMPT + "!")


class TestChat:
    async def test_chat_shows_the_template_and_a_reply(self, tiny_lm):
        app = make_app(tiny_lm, settings=greedy(max_new_tokens=8))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await pilot.press("ctrl+t")
            assert pane.chat_mode
            pane.editor.focus()
            await pilot.press(*"Hi <|im_end|>")
            await generate(pilot, pane)
            template = "<|im_start|>user\nHi <|im_end|><|im_end|>\n<|im_start|>assistant\n"
            assert pane.output.plain_text.startswith(template)
            assert pane.session.prompt_ids == tiny_lm.encode_chat("Hi <|im_end|>")
            assert len(pane.steps) > 0
            assert pane.editor.text == ""  # sent: it now shows in the transcript
            # the user's "<|im_end|>" stayed text, not the special token
            specials = [p.text for p in pane.output._prompt if p.role == "special"]
            assert specials == ["<|im_start|>", "<|im_end|>", "<|im_start|>"]

    async def test_a_second_message_continues_the_chat(self, tiny_lm):
        app = make_app(tiny_lm, settings=greedy(max_new_tokens=4))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await pilot.press("ctrl+t")
            pane.editor.focus()
            await pilot.press(*"one")
            await generate(pilot, pane)
            reply = tiny_lm.tokenizer.decode([s.token_id for s in pane.steps if s.token_id not in tiny_lm.stop_ids])
            await pilot.press(*"two")
            await generate(pilot, pane)
            history = [{"role": "user", "content": "one"}, {"role": "assistant", "content": reply}]
            assert pane.session.prompt_ids == tiny_lm.encode_chat("two", history)


class TestSafeText:
    async def test_markup_ansi_and_controls_in_the_prompt_are_shown_literally(self, tiny_lm):
        prompt = "[bold]x[/] [/] \x1b[31mred\x1b[0m bell\x07 cr\r [link=http://a]l[/link]"
        app = make_app(tiny_lm, prompt=prompt, settings=greedy(max_new_tokens=5))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await generate(pilot, pane)
            shown = pane.output.plain_text
            # the editor keeps every line break as "\n" (a lone \r too: see PromptEditor)
            assert "[bold]x[/] [/] \\x1b[31mred\\x1b[0m bell\\x07 cr\n [link=http://a]l[/link]" in shown
            for widget in (pane.output, pane.query_one(ProbabilityTable)):
                assert not control_chars("".join(rendered_lines(widget)))
            assert "[bold]x[/]" in "".join(rendered_lines(pane.output))
            assert pane.editor.text == prompt.replace("\r", "\n")
            assert app.is_running

    async def test_undoing_a_long_paste_gives_the_prompt_back(self, tiny_lm):
        """ctrl+z after pasting more lines than the prompt box shows (found by the soak test, seed 6): Textual's
        undo put the shorter text back before the cursor, and the scrollbar going away in between asked for
        the cursor's line, gone by then (ValueError stopped the app; Textualize/textual#6686)."""
        app = make_app(tiny_lm, prompt="Once upon a time")
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            pane.editor.focus()
            pane.editor.move_cursor(pane.editor.document.end)
            await pilot.pause()
            app.post_message(events.Paste("\n".join(f"line {n}" for n in range(40))))
            await wait_for(pilot, lambda: pane.editor.document.line_count == 40, what="the paste")
            await pilot.pause()
            assert pane.editor.show_vertical_scrollbar
            await pilot.press("ctrl+z")
            await pilot.pause()
            assert app._exception is None
            assert pane.editor.text == "Once upon a time" and not pane.editor.show_vertical_scrollbar
            await pilot.press(*" there")
            assert pane.editor.text == "Once upon a time there"

    async def test_control_tokens_from_the_model_are_shown_literally(self, tiny_lm):
        """Force the model to 'say' ESC, BEL and a markup tag: they show as escapes and plain text."""
        app = make_app(tiny_lm, prompt=PROMPT, settings=greedy(max_new_tokens=8))
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await generate(pilot, pane, "f6")
            table = pane.query_one(ProbabilityTable)
            for index, text in enumerate(["\x1b", "\x07", "[", "/", "]"], start=1):
                (token,) = tiny_lm.encode(text)
                table.post_message(ProbabilityTable.Chosen(table, index, token, preview=True))
                await finished(pilot, pane)
            shown = pane.output.plain_text
            assert shown.endswith("\\x1b\\x07[/]")
            for index in range(1, 6):
                pane.output.selected = index
                await pilot.pause()
                assert not control_chars("".join(rendered_lines(table)) + "".join(rendered_lines(pane.output)))

    async def test_an_empty_prompt_gets_a_message(self, tiny_lm):
        app = make_app(tiny_lm, prompt="   ")
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await pilot.press("f5")
            assert "The prompt is empty" in pane.message
            await pilot.press("f6")
            assert "The prompt is empty" in pane.message
            await pilot.press("ctrl+t", "f5")
            assert "The message is empty" in pane.message
            assert not pane.steps and app.is_running

    async def test_a_prompt_over_the_context_window_gets_a_message(self, tiny_lm):
        long_prompt = "Paris " * 200  # far over the tiny model's 128 positions
        app = make_app(tiny_lm, prompt=long_prompt)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            assert "context window holds 128" in pane.message  # the preview says so at once
            await generate(pilot, pane)
            assert "context window holds 128" in pane.message
            assert pane.editor.text == long_prompt  # nothing the user typed is lost
            assert not pane.steps and app.is_running


async def test_a_model_with_bos_generates_after_it(tiny_hf_llama_bos_dir):
    """A plain prompt runs as transformers' tokenizer(text) gives it (BOS first); the same greedy tokens as headless."""
    from llmtui.engine.lm import LanguageModel

    lm = LanguageModel.load(str(tiny_hf_llama_bos_dir))
    ids = lm.prompt_ids(PROMPT)
    assert ids[0] == lm.tokenizer.bos_id and ids[1:] == lm.encode(PROMPT)
    async with make_app(lm, prompt=PROMPT, settings=greedy(max_new_tokens=5)).run_test(size=(100, 30)) as pilot:
        pane = await ready(pilot)
        await generate(pilot, pane)
        assert pane.session.prompt_ids == ids
        headless = GenerationSession(lm, ids, greedy(max_new_tokens=5))
        assert [s.token_id for s in pane.session.steps] == [s.token_id for s in headless]
