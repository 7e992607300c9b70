"""Compare (F2) and the branch tree (F3) on a served model, against tests/fake_server.py on 127.0.0.1.

The tree keeps the server's steps with their tables as received; a reopened branch goes on by
sending its text as the prompt; Compare shows KL exactly, as a marked lower bound, or as unknown;
a server dropping or refusing midway is one line, what came is kept, and the app keeps working.
"""

from __future__ import annotations

import json

from app_fixtures import settle, wait_for
from fake_server import MODEL, MODEL_B, SCRIPT, fake_server
from textual.containers import Vertical
from textual.widgets import DataTable, Input

from llmtui.app.app import LLMTuiApp
from llmtui.app.panes.generate import GeneratePane
from llmtui.app.screens.branches.screen import BranchesScreen
from llmtui.app.screens.compare.served_screen import ServedCompareScreen
from llmtui.app.screens.value_input import ValueInputScreen
from llmtui.app.widgets.prob_table import ProbabilityTable
from llmtui.engine.remote.endpoint import Endpoint
from llmtui.engine.settings import SamplingSettings

PROMPT = "The capital of France is"
SCRIPTED = "".join(t for t, _ in SCRIPT)  # " Paris. It is"
KNOBS = SamplingSettings(temperature=1.0, top_k=3)  # top-k within the 4 listed: every distribution known in full


def remote_app(url: str, settings: SamplingSettings = KNOBS) -> LLMTuiApp:
    return LLMTuiApp(endpoint=Endpoint.parse(url, timeout=10), pane="generate", prompt=PROMPT, settings=settings)


def completions(srv) -> list[dict]:
    return [body for path, _, body in srv.requests if path.endswith("/completions")]


def text(pane: GeneratePane) -> str:
    return "".join(s.text for s in pane.steps)


def said(screen, widget: str = "#cmp-message") -> str:
    return str(screen.query_one(widget).render())


async def attached(pilot) -> GeneratePane:
    pane = pilot.app.query_one(GeneratePane)
    await wait_for(pilot, lambda: pane.remote is not None, what="the connection")
    await settle(pilot)
    return pane


async def run(pilot, pane: GeneratePane, key: str = "f5") -> None:
    await pilot.press(key)
    await wait_for(pilot, lambda: not pane.running, what="the run")
    await settle(pilot)


async def fork(pilot, pane: GeneratePane, index: int, row: int) -> None:
    pane.output.selected = index
    await pilot.pause()
    pane.query_one(ProbabilityTable).choose(row)
    await wait_for(pilot, lambda: not pane.running and len(pane.steps) > index and pane.steps[index].forced,
                   what="the fork")
    await settle(pilot)


async def compared(pilot) -> ServedCompareScreen:
    screen = pilot.app.screen
    assert isinstance(screen, ServedCompareScreen)
    # done when its workers are and its message line no longer says "Comparing…" (right after F2 or F5
    # the worker may not have started yet: no workers is not the end; under load that raced)
    await wait_for(pilot, lambda: (not screen.workers or all(w.is_finished for w in screen.workers))
                   and not said(screen).startswith("Comparing…"), what="the compare")
    await settle(pilot)
    return screen


# -- F3: the branches of a served generation --


async def test_f3_lists_the_served_branches_and_a_reopened_one_goes_on_from_its_text():
    with fake_server() as srv:
        async with remote_app(srv.url).run_test(size=(120, 40)) as pilot:
            pane = await attached(pilot)
            await run(pilot, pane)
            await fork(pilot, pane, 1, row=1)  # "," where it drew ".": then it goes on streaming
            assert text(pane) == " Paris," + SCRIPTED
            assert completions(srv)[-1]["prompt"] == PROMPT + " Paris,"  # the fork sent its prefix as the prompt
            pane.output.focus()
            await pilot.press("ctrl+z")  # the fork taken back: the first text again, as received
            await settle(pilot)
            assert text(pane) == SCRIPTED
            await pilot.press("ctrl+y")
            await settle(pilot)
            assert text(pane) == " Paris," + SCRIPTED
            await pilot.press("f3")
            await settle(pilot)
            screen = pilot.app.screen
            assert isinstance(screen, BranchesScreen)
            assert screen.query_one("#br-table", DataTable).row_count == 2
            assert [b.text for b in screen.branch_tree.branches()] == [SCRIPTED, " Paris," + SCRIPTED]
            asked = len(srv.requests)
            screen.query_one("#br-table", DataTable).move_cursor(row=0)
            await pilot.press("enter")  # reopen the first branch: its steps as received, nothing asked again
            await settle(pilot)
            assert pilot.app.screen is not screen and text(pane) == SCRIPTED and len(srv.requests) == asked
            assert [c.text for c in pane.steps[1].candidates] == [t for t, _ in SCRIPT[1][1]]  # the table received
            assert pane.message.startswith("Branch #") and "F7 goes on" in pane.message
            await run(pilot, pane, "f7")  # goes on by sending the branch's text as the prompt
            assert completions(srv)[-1]["prompt"] == PROMPT + SCRIPTED and text(pane) == SCRIPTED + SCRIPTED
            assert sorted(b.text for b in pane._tree.branches()) == [" Paris," + SCRIPTED, SCRIPTED + SCRIPTED]


async def test_two_marked_served_branches_open_in_compare_as_received():
    with fake_server() as srv:
        async with remote_app(srv.url).run_test(size=(120, 40)) as pilot:
            pane = await attached(pilot)
            await run(pilot, pane)
            await fork(pilot, pane, 1, row=1)
            await pilot.press("f3")
            await settle(pilot)
            table = pilot.app.screen.query_one("#br-table", DataTable)
            table.move_cursor(row=0)
            await pilot.press("m")
            table.move_cursor(row=1)
            await pilot.press("m")
            asked = len(srv.requests)
            await pilot.press("c")
            screen = await compared(pilot)
            assert len(srv.requests) == asked  # the steps' tables as received: nothing asked again
            assert "the same for 1 tokens" in screen.query_one("#cmp-box", Vertical).border_title
            assert [(p.a.text, p.b.text) for p in screen.positions[:2]] == [(".", ","), (" It", " Paris")]
            fork_position = screen.positions[0].divergence  # one context, one set of knobs: the same distribution
            assert fork_position.kind == "value" and fork_position.kl == 0
            assert screen.positions[2].divergence.kind == "value"  # later, each in its own context, top-k known
            assert [p.b.text for p in screen.positions[-2:]] == [" It", " is"] and screen.positions[-1].a is None
            assert "one side ended before the other" in said(screen, "#cmp-summary")


async def test_a_served_tree_saves_and_loads_as_text_and_a_local_session_is_refused(tmp_path):
    with fake_server() as srv:
        async with remote_app(srv.url).run_test(size=(120, 40)) as pilot:
            pane = await attached(pilot)
            await run(pilot, pane)
            await fork(pilot, pane, 1, row=1)
            await pilot.press("f3")
            await settle(pilot)
            await pilot.press("w")
            pilot.app.screen.query_one(Input).value = str(tmp_path / "served.json")
            await pilot.press("enter")
            saved = json.loads((tmp_path / "served.json").read_text())
            assert saved["served"] is True and saved["prompt"] == PROMPT and len(saved["branches"]) == 2
            assert saved["model"] == f"{MODEL} @ {srv.url}"
            (tmp_path / "local.json").write_text(json.dumps({**saved, "served": False, "prompt_ids": [1, 2]}))
            await pilot.press("l")
            pilot.app.screen.query_one(Input).value = str(tmp_path / "local.json")
            await pilot.press("enter")
            assert isinstance(pilot.app.screen, ValueInputScreen)  # refused in one line, the path kept to fix
            assert "made on a local model" in str(pilot.app.screen.query_one("#value-error").render())
            await pilot.press("escape")
            await pilot.press("escape")  # back in the pane: a new prompt, then the saved session loaded over it
            await settle(pilot)
            pane.set_prompt("Once upon a time")
            await run(pilot, pane)
            asked = len(completions(srv))
            await pilot.press("f3")
            await settle(pilot)
            await pilot.press("l")
            pilot.app.screen.query_one(Input).value = str(tmp_path / "served.json")
            await pilot.press("enter")
            assert pilot.app.screen.query_one("#br-table", DataTable).row_count == 2
            pilot.app.screen.query_one("#br-table", DataTable).move_cursor(row=0)
            await pilot.press("enter")
            await wait_for(pilot, lambda: text(pane) == SCRIPTED, what="the loaded branch")
            await settle(pilot)
            assert len(completions(srv)) == asked and pane.steps[1].unlisted is not None  # the tables as saved
            await run(pilot, pane, "f7")  # a session of the saved prompt: its text goes as the prompt
            assert completions(srv)[-1]["prompt"] == PROMPT + SCRIPTED


async def test_a_branch_continuation_the_server_drops_keeps_what_came_and_the_app_goes_on():
    with fake_server() as srv:
        async with remote_app(srv.url).run_test(size=(120, 40)) as pilot:
            pane = await attached(pilot)
            await run(pilot, pane)
            await fork(pilot, pane, 1, row=1)
            await pilot.press("f3")
            await settle(pilot)
            pilot.app.screen.query_one("#br-table", DataTable).move_cursor(row=0)
            await pilot.press("enter")
            await settle(pilot)
            srv.fault = "drop"  # the stream breaks after two tokens
            await run(pilot, pane, "f7")
            assert text(pane) == SCRIPTED + " Paris." and "kept" in pane.message and "\n" not in pane.message
            assert SCRIPTED + " Paris." in [b.text for b in pane._tree.branches()]  # the tree keeps what came
            srv.fault = "503"  # refused outright
            await run(pilot, pane, "f7")
            assert "503" in pane.message and "\n" not in pane.message and text(pane) == SCRIPTED + " Paris."
            srv.fault = None
            await run(pilot, pane, "f7")
            assert text(pane).startswith(SCRIPTED + " Paris." + " Paris")
            assert completions(srv)[-1]["prompt"] == PROMPT + SCRIPTED + " Paris."


# -- F2: Compare on a served model --


async def test_f2_compares_the_served_knobs_with_b_exactly_where_the_list_decides():
    with fake_server() as srv:
        async with remote_app(srv.url).run_test(size=(120, 40)) as pilot:
            await attached(pilot)
            await pilot.press("f2")
            screen = await compared(pilot)
            assert [p.a.text for p in screen.positions] == [t for t, _ in SCRIPT]
            assert [p.b.text for p in screen.positions] == [t for t, _ in SCRIPT]  # same text: B reads A's tokens
            assert all(p.divergence.kind == "value" and p.divergence.kl > 0 for p in screen.positions)
            assert len(completions(srv)) == 1  # B reads A's listed raw candidates under its knobs: no request
            a_head, b_head = said(screen, "#cmp-a"), said(screen, "#cmp-b-head")
            assert f"A: {MODEL} @ {srv.url}" in a_head and "top_k=3" in a_head
            assert f"B: {MODEL} @ {srv.url}" in b_head and "temperature=2.0" in b_head
            assert "exact at 4 of 4" in said(screen, "#cmp-summary")
            # B at temperature 2 with no cut: its probabilities depend on the unlisted tail, so no number
            screen.query_one("#cmp-b", Input).value = "temperature=2 top-k=0"
            await pilot.press("f5")
            screen = await compared(pilot)
            cells = [screen.query_one("#cmp-table", DataTable).get_row_at(i) for i in range(4)]
            assert all(str(c[5]) == "?" and str(c[4]) == "?" for c in cells)
            assert "unknown at 4" in said(screen, "#cmp-summary")
            # free mode: each side streams its own text, one seed for both
            screen.query_one("#cmp-b", Input).value = "temperature=1 top-k=2"
            await pilot.press("ctrl+o")
            screen = await compared(pilot)
            sent = completions(srv)[-2:]
            assert screen.mode == "free" and sent[0]["seed"] == sent[1]["seed"] and [b["top_k"] for b in sent] == [3, 2]
            assert "free" in screen.query_one("#cmp-box", Vertical).border_title and len(screen.positions) == 4


async def test_two_raw_sides_on_two_served_models_give_a_marked_lower_bound():
    with fake_server("two-models") as srv:
        async with remote_app(srv.url, SamplingSettings(temperature=1.0)).run_test(size=(120, 40)) as pilot:
            await attached(pilot)
            await pilot.press("f2")
            screen = await compared(pilot)
            screen.query_one("#cmp-b", Input).value = f"model={MODEL_B} temperature=1"
            await pilot.press("f5")
            screen = await compared(pilot)
            assert MODEL_B in said(screen, "#cmp-b-head")
            assert [p.b.text for p in screen.positions] == [t for t, _ in SCRIPT]  # the server scored A's text for B
            kinds = {p.divergence.kind for p in screen.positions}
            assert kinds == {"lower bound"}  # both keep an unknown tail: lumped, marked
            cells = screen.query_one("#cmp-table", DataTable).get_row_at(0)
            assert str(cells[5]).startswith("≥") and str(cells[6]).startswith("≥")
            screen.query_one("#cmp-b", Input).value = "model=nope"
            await pilot.press("f5")
            screen = await compared(pilot)
            assert "does not serve the model 'nope'" in said(screen) and MODEL_B in said(screen)


async def test_a_server_dropping_or_refusing_mid_compare_is_one_line_and_the_app_keeps_working():
    with fake_server() as srv:
        async with remote_app(srv.url).run_test(size=(120, 40)) as pilot:
            pane = await attached(pilot)
            srv.fault = "drop"
            await pilot.press("f2")
            screen = await compared(pilot)
            message = said(screen)
            assert "kept 2 tokens" in message and "showing the 2 positions received" in message and "\n" not in message
            screen.post_message(screen.Progress("A", 2, screen._stop))  # the ended run's progress, landing late
            await settle(pilot)
            assert said(screen) == message  # it no longer puts "Comparing…" back over the result line
            assert [p.a.text for p in screen.positions] == [t for t, _ in SCRIPT[:2]]
            assert screen.query_one("#cmp-table", DataTable).row_count == 2
            srv.fault = "503"
            await pilot.press("f5")
            screen = await compared(pilot)
            assert "503" in said(screen) and "\n" not in said(screen) and screen.positions == []
            srv.fault = None
            await pilot.press("f5")
            screen = await compared(pilot)
            assert len(screen.positions) == 4 and said(screen).startswith("Done")
            await pilot.press("escape")
            await settle(pilot)
            await run(pilot, pane)  # the pane goes on as before
            assert text(pane) == SCRIPTED
