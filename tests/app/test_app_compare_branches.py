"""Compare (F2), Branches (F3), undo/redo of a fork, bans, the system prompt, stop strings and the chat's turns
(ctrl+o), with Pilot."""

from __future__ import annotations

import json
import math
import shlex

import app_fixtures
import pytest
from app_fixtures import finished, generate, greedy, make_app, ready, settle, wait_for
from textual.containers import Vertical
from textual.widgets import DataTable, Input

from llmtui.app.screens.branches.screen import BranchesScreen
from llmtui.app.screens.chat.screen import ChatTurnsScreen
from llmtui.app.screens.compare.model_picker import ModelPickerScreen
from llmtui.app.screens.compare.screen import CompareScreen
from llmtui.app.screens.value_input import ValueInputScreen
from llmtui.engine.chat import Chat
from llmtui.engine.sampling import SamplingSettings
from llmtui.engine.studies.compare import Comparison, Side

PROMPT = "The capital of France is"


async def fork(pilot, pane, index: int, row: int = 1) -> None:
    pane.output.selected = index
    await pilot.pause()
    await app_fixtures.choose_and_finish(pilot, pane, row)


async def test_f2_compares_the_knobs_with_b_as_typed(tiny_lm):
    settings = SamplingSettings(temperature=1.0, seed=5, max_new_tokens=6)
    app = make_app(tiny_lm, prompt=PROMPT, settings=settings)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("f2")
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        await wait_for(pilot, lambda: len(screen.positions) == 6 and "Done" in str(screen.query_one("#cmp-message").render()))
        expected = Comparison(tiny_lm.encode(PROMPT), Side(tiny_lm, settings), Side(tiny_lm, settings.with_(temperature=2.0)))
        assert [p.kl for p in screen.positions] == [p.kl for p in expected]
        assert screen.query_one("#cmp-table", DataTable).row_count == 6
        assert "mean KL" in str(screen.query_one("#cmp-summary").render())
        # B as the same knobs: KL 0 everywhere; a bad word says why and keeps the screen.
        b = screen.query_one("#cmp-b", Input)
        b.value = "temperature=1.0"
        await pilot.press("f5")
        await wait_for(pilot, lambda: len(screen.positions) == 6 and all(p.kl == 0 for p in screen.positions))
        b.value = "tempreature=1"
        await pilot.press("f5")
        assert "unknown knob" in str(screen.query_one("#cmp-message").render())
        b.value = "temperature=1.0"
        await pilot.press("ctrl+o")  # free mode
        await wait_for(pilot, lambda: screen.mode == "free" and len(screen.positions) == 6)
        await pilot.press("escape")
        assert not isinstance(app.screen, CompareScreen)


def message(screen) -> str:
    return str(screen.query_one("#cmp-message").render())


async def test_b_gets_its_own_model_and_same_text_kl_is_between_the_two_models(tiny_lm, tiny_hf_gpt2_dir, tmp_path):
    settings = SamplingSettings(temperature=0.8, seed=3, max_new_tokens=5)
    app = make_app(tiny_lm, prompt=PROMPT, settings=settings, model_b=str(tiny_hf_gpt2_dir))
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("f2")
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        await wait_for(pilot, lambda: "Done" in message(screen), 60)
        other = screen.lm_b
        assert other is not None and other is not tiny_lm and other.config.family != tiny_lm.config.family
        assert other.name in str(screen.query_one("#cmp-b-head").render())  # each column says its model
        assert tiny_lm.name in str(screen.query_one("#cmp-a").render())
        ids = screen.comparison.session_a.ids
        assert len(screen.positions) == 5
        for p in screen.positions:  # B read on A's tokens: both models' distributions over one context
            context = ids[: p.a.position]
            pa = (tiny_lm.run(context, capture=False).logits[0, -1].double() / 0.8).softmax(-1)
            pb = (other.run(context, capture=False).logits[0, -1].double() / 0.8).softmax(-1)
            assert p.b.token_id == p.a.token_id
            assert p.kl == pytest.approx(float((pa * (pa.log() - pb.log())).sum()), rel=1e-4)
            assert p.b.prob == pytest.approx(float(pb[p.a.token_id]), rel=1e-4)
        # Again: the second model is kept, not loaded twice.
        await pilot.press("f5")
        await wait_for(pilot, lambda: "Done" in message(screen), 30)
        assert screen.lm_b is other
        # F4 picks B's model: A's own (the first row) gives two equal sides, KL 0 everywhere.
        await pilot.press("f4")
        assert isinstance(app.screen, ModelPickerScreen)
        await pilot.press("enter")
        await wait_for(pilot, lambda: "Done" in message(screen) and screen.lm_b is tiny_lm, 30)
        assert "model=" not in screen.query_one("#cmp-b", Input).value
        assert all(p.kl == 0 for p in screen.positions)
        # A model that can't load: one line, the screen stays.
        screen.query_one("#cmp-b", Input).value = f"model={tmp_path / 'missing'}"
        await pilot.press("f5")
        await wait_for(pilot, lambda: "Comparing" not in message(screen) and "Loading" not in message(screen), 30)
        assert "internal error" not in message(screen).lower() and "missing" in message(screen)
        assert app.screen is screen


async def test_an_undo_then_a_clear_in_one_burst_leaves_the_text_cleared(tiny_lm):
    """ctrl+z then ctrl+n before the undo's worker starts (found by the soak test, seed 1): the text stays
    cleared, the branch being restored never lands, and no worker fails."""
    from textual.worker import Worker, WorkerState

    app = make_app(tiny_lm, prompt=PROMPT, settings=greedy(max_new_tokens=8))
    failed: list[str] = []
    async with app.run_test(size=(100, 30), message_hook=lambda m: failed.append(m.worker.name) if (
            isinstance(m, Worker.StateChanged) and m.state == WorkerState.ERROR) else None) as pilot:
        pane = await ready(pilot)
        await generate(pilot, pane)
        await fork(pilot, pane, 3)
        pane._tree_step("undo")  # as ctrl+z: its worker starts on a later turn of the event loop
        pane.action_clear()  # as ctrl+n, in the same burst
        await settle(pilot)
        await pilot.pause(0.2)
        assert failed == []
        assert pane.session is None and pane.steps == ()
        assert pane.output.n_steps == 0


async def test_forks_are_branches_that_reopen_undo_and_redo(tiny_lm, tmp_path):
    app = make_app(tiny_lm, prompt=PROMPT, settings=greedy(max_new_tokens=8))
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await ready(pilot)
        await generate(pilot, pane)
        first = [s.token_id for s in pane.steps]
        await fork(pilot, pane, 3)
        second = [s.token_id for s in pane.steps]
        assert second[:3] == first[:3] and second != first
        assert len(pane._tree.branches()) == 2
        await pilot.press("escape")  # out of any text box: ctrl+z is the pane's
        pane.table.focus()
        await pilot.press("ctrl+z")  # undo the fork: back to the first text
        await wait_for(pilot, lambda: [s.token_id for s in pane.steps] == first)
        await pilot.press("ctrl+y")
        await wait_for(pilot, lambda: [s.token_id for s in pane.steps] == second)
        # F3 lists both; reopening the first shows it and goes on from there as a fresh run would.
        await pilot.press("f3")
        screen = app.screen
        assert isinstance(screen, BranchesScreen) and screen.query_one(DataTable).row_count == 2
        branch = pane._tree.branch(screen.node_ids[0])
        assert branch.logprob == sum(math.log(s.raw_prob) for s in branch.steps)
        screen.query_one(DataTable).move_cursor(row=0)
        await pilot.press("enter")
        await wait_for(pilot, lambda: [s.token_id for s in pane.steps] == first)
        # Rename, save, and load the session back.
        await pilot.press("f3")
        await pilot.press("r")
        assert isinstance(app.screen, ValueInputScreen)
        app.screen.query_one(Input).value = "the first"
        await pilot.press("enter")
        assert "the first" in [b.name for b in pane._tree.branches()]
        await pilot.press("w")
        app.screen.query_one(Input).value = str(tmp_path / "talk.json")
        await pilot.press("enter")
        saved = json.loads((tmp_path / "talk.json").read_text())
        assert saved["format"] == "llmtui-branches" and len(saved["branches"]) == 2
        await pilot.press("d")
        assert app.screen.query_one(DataTable).row_count == 1
        await pilot.press("l")
        app.screen.query_one(Input).value = str(tmp_path / "talk.json")
        await pilot.press("enter")
        assert app.screen.query_one(DataTable).row_count == 2
        await pilot.press("escape")
        assert pane._tree.to_json()["branches"] == saved["branches"]


async def test_x_bans_the_highlighted_token_and_the_table_says_banned(tiny_lm):
    app = make_app(tiny_lm, prompt=PROMPT, settings=greedy(max_new_tokens=3))
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await ready(pilot)
        await generate(pilot, pane)
        top = pane.steps[0].token_id
        pane.output.selected = 0
        await pilot.pause()
        pane.table.focus()
        pane.table.cursor = 0
        await pilot.press("x")
        assert pane.settings.banned == (top,)
        await pilot.press("ctrl+n")
        pane.table.focus()
        await generate(pilot, pane)
        assert pane.steps[0].token_id != top
        assert next(c for c in pane.steps[0].candidates if c.id == top).cut_by == "banned"


async def test_system_prompt_and_stop_strings(tiny_lm):
    app = make_app(tiny_lm, prompt="hi", settings=greedy(max_new_tokens=12))
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await ready(pilot)
        await pilot.press("ctrl+t")  # chat mode
        await pilot.press("f4")
        assert isinstance(app.screen, ValueInputScreen)
        app.screen.query_one(Input).value = "Answer in French."
        await pilot.press("enter")
        assert pane.system_prompt == "Answer in French."
        await generate(pilot, pane)
        assert list(pane.session.prompt_ids) == Chat("Answer in French.").prompt_ids(tiny_lm, "hi")
        full = pane.session.text
        await pilot.press("ctrl+b")
        stop = next(ch for ch in full[1:] if ch.isascii() and ch.isalnum())  # the tiny model writes bytes and letters
        app.screen.query_one(Input).value = shlex.quote(stop)
        await pilot.press("enter")
        assert pane.settings.stop == (stop,)
        await pilot.press("ctrl+n")
        pane.editor.load_text("hi")
        await generate(pilot, pane)
        assert pane.session.finish_reason == "stop string" and pane.session.text == full[: full.find(stop)]


async def test_two_marked_branches_open_in_compare_each_read_on_its_own_text(tiny_lm):
    app = make_app(tiny_lm, prompt=PROMPT, settings=greedy(max_new_tokens=8))
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await ready(pilot)
        await generate(pilot, pane)
        first = list(pane.steps)
        await fork(pilot, pane, 3)
        second = list(pane.steps)
        await pilot.press("escape")
        pane.table.focus()
        await pilot.press("f3")
        branches = app.screen
        assert isinstance(branches, BranchesScreen)
        table = branches.query_one(DataTable)
        await pilot.press("c")  # nothing marked: says how
        assert "Mark two branches" in str(branches.query_one("#br-message").render())
        table.move_cursor(row=0)
        await pilot.press("m")
        table.move_cursor(row=1)
        await pilot.press("m")
        assert branches.marked == branches.node_ids[:2]
        await pilot.press("c")
        screen = app.screen
        assert isinstance(screen, CompareScreen) and screen.branches is not None
        await wait_for(pilot, lambda: "Done" in message(screen), 30)
        a, b = (pane._tree.branch(n) for n in branches.marked)
        assert [s.token_id for s in a.steps] == [s.token_id for s in first]
        assert [s.token_id for s in b.steps] == [s.token_id for s in second]
        assert screen.comparison.shared == 3 and len(screen.positions) == 5
        for p in screen.positions:  # each side is its branch's own text, with the probabilities it was drawn at
            assert p.a.token_id == first[3 + p.index].token_id and p.b.token_id == second[3 + p.index].token_id
            assert p.a.raw_prob == pytest.approx(first[3 + p.index].raw_prob, rel=1e-5)
            assert p.b.raw_prob == pytest.approx(second[3 + p.index].raw_prob, rel=1e-5)
        assert "the same for 3 tokens" in screen.query_one("#cmp-box", Vertical).border_title
        summary = screen.comparison.summary()
        assert summary.a.raw_log_likelihood == pytest.approx(sum(math.log(s.raw_prob) for s in first[3:]), rel=1e-5)
        await pilot.press("ctrl+o")  # one mode for two branches: said, nothing rerun
        assert "as they were written" in message(screen)
        await pilot.press("escape")
        assert app.screen is branches


async def test_a_chat_turn_is_edited_and_the_chat_reruns_from_it(tiny_lm):
    app = make_app(tiny_lm, settings=greedy(max_new_tokens=4))
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await ready(pilot)
        await pilot.press("ctrl+o")  # no chat yet: says how to get one
        assert not isinstance(app.screen, ChatTurnsScreen)
        await pilot.press("ctrl+t")
        pane.editor.focus()
        replies = []
        for message in ("one", "two", "three"):
            await pilot.press(*message)
            await generate(pilot, pane)
            replies.append(pane._reply_text())
        await pilot.press("ctrl+o")
        screen = app.screen
        assert isinstance(screen, ChatTurnsScreen) and screen.query_one(DataTable).row_count == 3
        screen.query_one(DataTable).move_cursor(row=1)
        await pilot.press("enter")  # edit turn 2's message
        assert isinstance(app.screen, ValueInputScreen)
        app.screen.query_one(Input).value = "two, edited"
        await pilot.press("enter")
        await finished(pilot, pane)
        # The chat before turn 2, then the edited message: turn 3 and turn 2's old reply are gone.
        assert pane.session.prompt_ids == Chat.of_history(None, [("one", replies[0])]).prompt_ids(tiny_lm, "two, edited")
        assert pane.editor.text == ""  # nothing the user was typing is lost (there was nothing)
        # r re-runs the last turn as it was: the same context, the same greedy reply.
        await pilot.press("ctrl+o")
        assert app.screen.query_one(DataTable).row_count == 2
        await pilot.press("r")
        await finished(pilot, pane)
        assert pane.session.prompt_ids == Chat.of_history(None, [("one", replies[0])]).prompt_ids(tiny_lm, "two, edited")
