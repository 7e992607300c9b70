"""One token selected for the whole app: panes post it, the app keeps it and shows it, the other panes follow."""

from __future__ import annotations

import pytest
from app_fixtures import generate, greedy, make_app, ready, settle, wait_for
from test_app_layers import lens_ready

from llmtui.app.panes import PANES
from llmtui.app.panes.base import Pane
from llmtui.app.panes.layers import LayersPane
from llmtui.app.selection import TokenSelected, TokenSelection
from llmtui.app.widgets.lens_grid import Cursor
from llmtui.app.widgets.status_line import StatusLine

PROMPT = "The capital of France is"


def status_text(app) -> str:
    return str(app.query_one(StatusLine).render())


class TestTokenSelection:
    def test_the_token_must_be_the_one_at_the_position(self):
        sel = TokenSelection.at([5, 6, 7], 1, "layers")
        assert (sel.ids, sel.position, sel.token_id, sel.source) == ((5, 6, 7), 1, 6, "layers")
        assert sel.same_text([5, 6, 7]) and not sel.same_text([5, 6])
        with pytest.raises(ValueError):
            TokenSelection((5, 6, 7), 1, 7, "layers")
        with pytest.raises(ValueError):
            TokenSelection.at([5, 6, 7], 3, "layers")

    def test_it_describes_itself_safely(self, tiny_lm):
        ids = tiny_lm.encode("Hello [b]x\x1b")
        sel = TokenSelection.at(ids, len(ids) - 1, "tokenizer")
        text = sel.describe(tiny_lm.tokenizer, "Tokenizer")
        assert "\x1b" not in text and "\\x1b" in text
        assert text.endswith(f"at position {len(ids) - 1} · Tokenizer")


class TestAcrossPanes:
    async def test_selecting_in_layers_makes_the_app_token_shown_in_the_status_line(self, tiny_lm):
        app = make_app(tiny_lm, pane="layers", prompt=PROMPT)
        messages = []
        async with app.run_test(size=(100, 30), message_hook=messages.append) as pilot:
            pane = await lens_ready(pilot)
            assert app.selection is None
            await pilot.press("left", "left")
            ids = pane.data.ids
            position = len(ids) - 3
            assert app.selection == TokenSelection(ids, position, ids[position], "layers")
            assert any(isinstance(m, TokenSelected) for m in messages)
            assert f"at position {position} · Layers" in status_text(app)

    async def test_switching_panes_asks_the_new_one_to_follow_but_never_the_source(self, tiny_lm, monkeypatch):
        followed: list[tuple[str, TokenSelection]] = []
        original = Pane.follow_selection

        def spy(self, selection):
            followed.append((self.PANE_ID, selection))
            return original(self, selection)

        for pane_class in {c for p in PANES for c in p.__mro__}:  # where each pane's is defined (a mixed-in part's too)
            if "follow_selection" in pane_class.__dict__:
                monkeypatch.setattr(pane_class, "follow_selection", spy)
        app = make_app(tiny_lm, pane="layers", prompt=PROMPT)
        async with app.run_test(size=(100, 30)) as pilot:
            await lens_ready(pilot)
            await pilot.press("left")
            selection = app.selection
            assert followed == []  # the pane where it was chosen is not asked
            for n, pane_class in enumerate(PANES, start=1):
                app.screen.set_focus(None)
                await pilot.press(str(n))
                assert app.current_pane.PANE_ID == pane_class.PANE_ID
            assert [pane_id for pane_id, _ in followed] == [p.PANE_ID for p in PANES if p.PANE_ID != "layers"]
            assert all(s == selection for _, s in followed)

    async def test_a_selection_from_elsewhere_reaches_the_current_pane_at_once(self, tiny_lm):
        app = make_app(tiny_lm, pane="layers", prompt=PROMPT)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await lens_ready(pilot)
            ids = pane.data.ids
            app.post_message(TokenSelected(TokenSelection.at(ids, 2, "tokenizer")))
            await wait_for(pilot, lambda: pane.grid.cursor.position == 2, what="the Layers pane to follow")
            assert pane.grid.cursor.row == pane.data.n_rows - 1  # the layer stays
            assert "Tokenizer" in status_text(app)

    async def test_layers_reads_another_text_through_the_lens_and_ctrl_z_brings_the_prompt_back(self, tiny_lm):
        other = tiny_lm.encode("Hello there, how are you today?")
        app = make_app(tiny_lm, pane="generate", prompt=PROMPT)
        async with app.run_test(size=(100, 30)) as pilot:
            layers = app.query_one(LayersPane)
            await wait_for(pilot, lambda: layers.data is not None and layers.data.complete, what="the lens")
            # the user selects a token of another text in another pane, then opens the Layers pane
            app.query_one("#generate").post_message(TokenSelected(TokenSelection.at(other, 3, "generate")))
            await pilot.pause()
            app.screen.set_focus(None)
            await pilot.press(str([p.PANE_ID for p in PANES].index("layers") + 1))
            await wait_for(
                pilot,
                lambda: layers.data is not None and layers.data.ids == tuple(other) and layers.data.complete,
                what="the other text's lens",
            )
            await settle(pilot)
            assert layers.grid.cursor == Cursor(layers.data.n_rows - 1, 3)
            assert layers.editor.text == tiny_lm.tokenizer.decode(other)
            assert "Generate" in layers.message and "ctrl+z" in layers.message
            # the user's own prompt is one undo away
            layers.editor.focus()
            await pilot.press("ctrl+z")
            assert layers.editor.text == PROMPT
            await wait_for(
                pilot,
                lambda: (
                    layers.data is not None
                    and layers.data.ids == tuple(tiny_lm.encode(PROMPT))
                    and layers.data.complete
                ),
                what="the prompt's lens again",
            )

    async def test_a_selection_made_before_the_model_is_ready_is_followed_once_it_is(self, tiny_lm):
        app = make_app(tiny_lm, pane="layers", prompt=PROMPT)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = app.query_one(LayersPane)
            ids = tuple(tiny_lm.encode("Hello world!"))
            pane.lm = None  # as while loading
            pane.follow_selection(TokenSelection.at(ids, 1, "tokenizer"))
            pane.lm = tiny_lm
            pane.model_ready(tiny_lm)
            await wait_for(
                pilot,
                lambda: pane.data is not None and pane.data.ids == ids and pane.data.complete,
                what="the followed text's lens",
            )
            await settle(pilot)
            assert pane.grid.cursor.position == 1


def pane_key(pane_id: str) -> str:
    return str([p.PANE_ID for p in PANES].index(pane_id) + 1)


async def switch_to(pilot, pane_id: str) -> None:
    pilot.app.screen.set_focus(None)
    await pilot.press(pane_key(pane_id))
    assert pilot.app.current_pane.PANE_ID == pane_id


class TestEachPane:
    async def test_attention_posts_the_row_the_user_moves_to_and_layers_follows(self, tiny_lm):
        from test_app_attention import captured

        app = make_app(tiny_lm, pane="attention", prompt=PROMPT)
        async with app.run_test(size=(100, 30)) as pilot:
            attention = await captured(pilot)
            assert app.selection is None  # the first cursor of a text is not a choice
            attention.heatmap.focus()
            await pilot.press("up", "up")
            ids = attention.attention.ids
            row = attention.heatmap.cursor[0]
            assert row == len(ids) - 3
            assert app.selection == TokenSelection(ids, row, ids[row], "attention")
            assert "Attention" in status_text(app)
            await pilot.press("right")  # another key token: the query token stays the selection
            assert app.selection.position == row
            await switch_to(pilot, "layers")
            layers = await lens_ready(pilot)
            assert layers.data.ids == ids and layers.grid.cursor.position == row

    async def test_attention_shows_the_row_of_a_token_chosen_in_layers(self, tiny_lm):

        app = make_app(tiny_lm, pane="layers", prompt=PROMPT)
        async with app.run_test(size=(100, 30)) as pilot:
            layers = await lens_ready(pilot)
            await pilot.press("left", "left")
            selection = app.selection
            await switch_to(pilot, "attention")
            attention = app.query_one("#attention")
            await wait_for(
                pilot,
                lambda: attention.attention is not None and attention.attention.partial is None
                and attention.attention.ids == layers.data.ids,
                what="the Layers text in Attention",
            )
            await settle(pilot)
            assert attention.heatmap.cursor[0] == selection.position  # that token's row of attention
            assert app.selection == selection  # following does not make Attention the source

    async def test_embeddings_shows_the_neighbours_of_a_token_chosen_in_layers(self, tiny_lm):
        app = make_app(tiny_lm, pane="layers", prompt=PROMPT)
        async with app.run_test(size=(100, 30)) as pilot:
            await lens_ready(pilot)
            await pilot.press("left")
            token = app.selection.token_id
            await switch_to(pilot, "embeddings")
            embeddings = app.query_one("#embeddings")
            await wait_for(
                pilot,
                lambda: embeddings.answer is not None and embeddings.answer.query.terms[0].ids == (token,),
                what="the token's neighbours",
            )

    async def test_generate_posts_a_chosen_step_and_shows_the_table_of_a_step_chosen_elsewhere(self, tiny_lm):
        app = make_app(tiny_lm, pane="generate", prompt=PROMPT, settings=greedy(max_new_tokens=6))
        async with app.run_test(size=(100, 30)) as pilot:
            gen = await ready(pilot)
            await generate(pilot, gen)
            ids = (*tiny_lm.encode(PROMPT), *(s.token_id for s in gen.steps))
            n_prompt = len(ids) - 6
            gen.output.focus()
            await pilot.press("left", "left")
            index = gen.output.selected
            assert index == 3
            assert app.selection == TokenSelection(ids, n_prompt + index, ids[n_prompt + index], "generate")
            # Layers reads the whole generated text and shows that column
            await switch_to(pilot, "layers")
            layers = await lens_ready(pilot)
            assert layers.data.ids == ids and layers.grid.cursor.position == n_prompt + index
            await pilot.press("left", "left")  # the user moves two generated tokens back there
            assert app.selection.source == "layers" and app.selection.position == n_prompt + index - 2
            # back in Generate, that step is selected and its probability table shown
            await switch_to(pilot, "generate")
            assert gen.output.selected == index - 2
            view = gen.table.view
            assert view is not None and view.index == index - 2 and view.drawn == ids[n_prompt + index - 2]
            # a prompt token has no table: the selection moves on, the output keeps its cursor
            app.post_message(TokenSelected(TokenSelection.at(ids, 1, "tokenizer")))
            await pilot.pause()
            assert gen.output.selected == index - 2

    async def test_a_token_picked_in_the_tokenizer_is_shown_in_layers(self, tiny_lm):
        from test_app_tokenizer import open_pane

        app = make_app(tiny_lm, pane="tokenizer")
        async with app.run_test(size=(100, 30)) as pilot:
            await open_pane(pilot)
            await pilot.press(*"Hello world", "tab", "home", "right")
            ids = tuple(tiny_lm.encode("Hello world"))
            assert app.selection == TokenSelection.at(ids, 1, "tokenizer")
            await switch_to(pilot, "layers")
            layers = app.query_one(LayersPane)
            await wait_for(
                pilot,
                lambda: layers.data is not None and layers.data.ids == ids and layers.data.complete,
                what="the Tokenizer's text in Layers",
            )
            await settle(pilot)
            assert layers.grid.cursor.position == 1
            assert "Tokenizer" in layers.message


class TestTypedTextIsKept:
    """Following the app's token never overwrites what the user typed. Attention and Generate leave their
    prompt boxes alone (Tokenizer and Embeddings have their own tests); Layers shows a new selection's text in
    its prompt (ctrl+z brings the prompt back), and the app never hands it the same selection again."""

    async def test_text_typed_in_layers_after_following_stays_when_the_user_comes_back(self, tiny_lm):
        other = tuple(tiny_lm.encode("Hello there"))
        app = make_app(tiny_lm, pane="layers", prompt=PROMPT)
        async with app.run_test(size=(100, 30)) as pilot:
            layers = await lens_ready(pilot)
            app.post_message(TokenSelected(TokenSelection.at(other, 1, "generate")))
            await wait_for(pilot, lambda: layers.data is not None and layers.data.ids == other and layers.data.complete,
                           what="the followed text's lens")
            await settle(pilot)
            layers.editor.focus()
            await pilot.press("end", *" friend")
            typed = layers.editor.text
            assert typed == tiny_lm.tokenizer.decode(list(other)) + " friend"
            for pane_id in ("tokenizer", "layers"):  # away and back: the selection is still the app's
                await switch_to(pilot, pane_id)
            await lens_ready(pilot)
            assert layers.editor.text == typed
            assert layers.data.ids == tuple(tiny_lm.prompt_ids(typed))  # what was typed is read, not the followed ids
            assert "Generate" not in layers.message

    async def test_attention_and_generate_follow_without_touching_their_prompts(self, tiny_lm):
        from test_app_attention import captured

        other = tuple(tiny_lm.encode("Once upon a time there was"))
        app = make_app(tiny_lm, pane="attention", prompt=PROMPT)
        async with app.run_test(size=(100, 30)) as pilot:
            attention = await captured(pilot)
            attention.prompt.focus()
            await pilot.press("end", *" Paris")
            await wait_for(pilot, lambda: attention.attention.ids == tuple(tiny_lm.prompt_ids(PROMPT + " Paris")),
                           what="the typed prompt's capture")
            await settle(pilot)
            app.post_message(TokenSelected(TokenSelection.at(other, 3, "layers")))
            await wait_for(pilot, lambda: attention.attention.ids == other, what="the followed text's capture")
            await settle(pilot)
            assert attention.heatmap.cursor[0] == 3
            assert attention.prompt.value == PROMPT + " Paris"
            generate = app.query_one("#generate")
            await switch_to(pilot, "generate")
            await settle(pilot)
            assert generate.editor.text == PROMPT
