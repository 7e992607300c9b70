"""The Embeddings pane, driven with Pilot: neighbours, arithmetic, the map, several-token words, errors, history, context.

Fast tests run on the tiny random Llama; the facts about meaning (" dog" near " puppy",
king - man + woman = " queen") on the real default model.
"""

from __future__ import annotations

import random
import threading

import pytest
from app_fixtures import settle, wait_for
from rich.cells import cell_len

from llmtui.app.app import LLMTuiApp
from llmtui.app.display import table_label
from llmtui.app.panes.embeddings import LIST_SIZE, EmbeddingsPane
from llmtui.app.widgets.layer_chart import LayerChart
from llmtui.app.widgets.neighbour_list import NeighbourColumns
from llmtui.app.widgets.scatter import MapPoint, layout_map
from llmtui.app.widgets.token_choice import TokenChoice
from llmtui.engine.studies.embeddings import EmbeddingIndex, parse_query, query_neighbours
from llmtui.engine.lm import LanguageModel
from llmtui.engine.loading.load import ModelLoadError


def make_app(lm: LanguageModel, **kwargs) -> LLMTuiApp:
    kwargs.setdefault("pane", "embeddings")
    return LLMTuiApp(lm=lm, **kwargs)


async def ready(pilot) -> EmbeddingsPane:
    """Wait until the pane has its index and its first answer."""
    pane = pilot.app.query_one(EmbeddingsPane)
    await wait_for(pilot, lambda: pane.answer is not None, what="the first answer")
    await settle(pilot)
    return pane


async def ask(pilot, pane: EmbeddingsPane, text: str, key: str = "enter") -> None:
    """Type a query (as one edit) and press enter; wait for the answer."""
    pane.query_input.focus()
    pane.query_input.value = text
    await pilot.press(key)
    await settle(pilot)


def map_text(pane: EmbeddingsPane) -> str:
    return str(pane.scatter.render())


def words_of(lm: LanguageModel, n: int) -> list[str]:
    """Words that are one token with a leading space in the tiny vocabulary."""
    out = [
        lm.tokenizer.token_text(i)[1:]
        for i in range(lm.tokenizer.vocab_size)
        if lm.tokenizer.token_text(i).startswith(" ")
        and lm.tokenizer.token_text(i)[1:].isalpha()
        and len(lm.tokenizer.token_text(i)) > 3
    ]
    return out[:n]


class TestNeighbours:
    async def test_the_list_comes_from_the_engine_sorted_by_similarity(self, tiny_lm):
        """A one-token word: at least 20 neighbours, exactly the engine's, most similar first, with numbers and bars."""
        word = words_of(tiny_lm, 1)[0]
        app = make_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await ask(pilot, pane, word)
            index = EmbeddingIndex(tiny_lm.model.tok_emb.weight)
            expected = query_neighbours(tiny_lm.tokenizer, index, parse_query(word, tiny_lm.tokenizer), LIST_SIZE)
            rows = pane.neighbour_list.rows
            assert len(rows) >= 20 and pane.neighbour_list.option_count == len(rows)
            assert [r.key for r in rows] == [n.id for n in expected.neighbours]
            assert [r.similarity for r in rows] == pytest.approx([n.similarity for n in expected.neighbours])
            assert [r.similarity for r in rows] == sorted((r.similarity for r in rows), reverse=True)
            first = str(pane.neighbour_list.get_option_at_index(0).prompt)
            assert rows[0].label in first and f"{rows[0].similarity:.3f}" in first and "█" in first
            (token_id,) = tiny_lm.encode(" " + word)
            assert f"␣{word}" in pane.used and f"#{token_id}" in pane.used
            assert token_id not in [r.key for r in rows]  # the query itself is not its own neighbour

    async def test_the_index_is_built_once_per_model(self, tiny_lm, monkeypatch):
        """Queries reuse the normalised matrix: EmbeddingIndex is built once, not per query."""
        from llmtui.engine.studies import embeddings as analysis

        built = []
        original = analysis.EmbeddingIndex.__init__

        def counting(self, embeddings):
            built.append(embeddings.shape)
            original(self, embeddings)

        monkeypatch.setattr(analysis.EmbeddingIndex, "__init__", counting)
        app = make_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            index = pane.index
            for word in words_of(tiny_lm, 3):
                await ask(pilot, pane, word)
            await ask(pilot, pane, "a b c")
            assert len(built) == 1 and pane.index is index

    async def test_typing_answers_without_enter(self, tiny_lm):
        """Keys typed into the query are answered after a short pause; the last text wins."""
        app = make_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            pane.query_input.focus()
            await pilot.press("ctrl+u", *"the")
            await wait_for(pilot, lambda: pane.answer is not None and pane.answer.text == "the", what="the typed query")
            await settle(pilot)
            assert pane.query_input.value == "the" and pane.answer.query.terms[0].text == " the"
            assert "the" not in pane.history  # typing is not history; enter is

    async def test_selecting_a_neighbour_makes_it_the_query_and_back_returns(self, tiny_lm):
        word = words_of(tiny_lm, 1)[0]
        app = make_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await ask(pilot, pane, word)
            await pilot.press("down")  # from the query to the list
            assert app.focused is pane.neighbour_list
            await pilot.press("down", "down")
            row = pane.neighbour_list.rows[2]
            assert pane.scatter.highlight == row.key  # the list's cursor is marked on the map
            await pilot.press("enter")
            await settle(pilot)
            assert pane.query_input.value == row.query_text
            assert pane.answer.query.terms[0].ids == (row.key,)
            assert pane.history[-2:] == [word, row.query_text]
            await pilot.press("alt+left")
            await settle(pilot)
            assert pane.query_input.value == word and pane.answer.text == word
            await pilot.press("ctrl+f")
            await settle(pilot)
            assert pane.answer.text == row.query_text
            await pilot.press("ctrl+f")
            assert "Nothing further on" in pane.message

    async def test_a_click_on_a_row_that_is_gone_chooses_nothing(self, tiny_lm):
        """A click on a row drawn before the list was rebuilt shorter (a new query's neighbours, an
        arithmetic error): Textual's list looked its index up in the new list (IndexError stopped the app).
        Such a click chooses nothing; a click on a row that is there makes it the query."""
        from rich.style import Style
        from textual import events

        word = words_of(tiny_lm, 1)[0]
        app = make_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await ask(pilot, pane, word)
            neighbours = pane.neighbour_list

            def click(option: int) -> events.Click:
                x, y = neighbours.region.x + 2, neighbours.region.y
                return events.Click(neighbours, 2, 0, 0, 0, 1, False, False, False, x, y, style=Style(meta={"option": option}))

            neighbours.post_message(click(neighbours.option_count + 5))
            await settle(pilot)
            assert app._exception is None and pane.query_input.value == word
            row = neighbours.rows[1]
            neighbours.post_message(click(1))
            await settle(pilot)
            assert app._exception is None and pane.query_input.value == row.query_text

    async def test_leading_space_switch_offers_the_other_token(self, tiny_lm):
        """F2 looks bare words up without the leading space; the pane always says which token it used."""
        word = words_of(tiny_lm, 1)[0]
        spaced, plain = tiny_lm.encode(" " + word), tiny_lm.encode(word)
        app = make_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await ask(pilot, pane, word)
            assert pane.answer.query.terms[0].ids == tuple(spaced)
            assert "without the space" in pane.used and "F2" in pane.used
            await pilot.press("f2")
            await settle(pilot)
            assert not pane.leading_space and pane.answer.query.terms[0].ids == tuple(plain)
            assert "with a leading space" in pane.used and f"␣{word}" in pane.used

    async def test_text_is_shown_literally(self, tiny_lm):
        """Markup and control characters in a query or a token are shown as typed, never obeyed."""
        app = make_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await ask(pilot, pane, '"[bold]x[/bold]"')
            assert "[bold]x[/bold]" in pane.used.replace("·", "")  # its tokens, joined by '·', shown as text
            newline = tiny_lm.encode("\n")[0]
            pane.show_token(newline)
            await settle(pilot)
            assert pane.query_input.value == f"#{newline}"
            assert "\\n" in pane.used and "\n" not in pane.used.strip("\n")

    async def test_a_closing_tag_in_a_query_is_a_title_not_markup(self, tiny_lm):
        """An expression like "[/] + a" (found by the soak test) titles the neighbour list literally; as markup it
        raised MarkupError and stopped the app."""
        app = make_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await ask(pilot, pane, "[/] + a")
            assert app._exception is None
            assert "[/]" in str(pane.neighbour_list.border_title)


class TestArithmetic:
    async def test_an_expression_lists_its_neighbours_and_says_which_tokens(self, tiny_lm):
        a, b, c = words_of(tiny_lm, 3)
        app = make_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await ask(pilot, pane, f"{a} - {b} + {c}")
            answer = pane.answer
            assert answer.query.kind == "expression"
            inputs = answer.query.input_ids
            assert not inputs & {r.key for r in pane.neighbour_list.rows}  # inputs left out by default
            assert f"␣{a}" in pane.used and f"− ␣{b}" in pane.used and f"+ ␣{c}" in pane.used
            roles = [p.role for p in pane.scatter.points]
            assert roles.count("input") == 3 and roles.count("result") == 1
            await pilot.press("f3")  # list them too
            await settle(pilot)
            assert not pane.hide_inputs and "listed" in pane.used
            index = EmbeddingIndex(tiny_lm.model.tok_emb.weight)
            listed = query_neighbours(tiny_lm.tokenizer, index, answer.query, LIST_SIZE, hide_inputs=False)
            assert [r.key for r in pane.neighbour_list.rows] == [n.id for n in listed.neighbours]
            notes = {r.key: r.note for r in pane.neighbour_list.rows}
            assert all(notes[i] == "input" for i in inputs if i in notes)

    @pytest.mark.parametrize(
        "text, words",
        [
            ("", "empty"),
            ("   ", "empty"),
            ("king - - ", "Two signs in a row"),
            ("+", "needs a word after it"),
            ("king -", "needs a word after it"),
            ('"open', "not closed"),
        ],
    )
    async def test_empty_and_malformed_queries_get_a_clear_message(self, tiny_lm, text, words):
        app = make_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            before = pane.answer
            await ask(pilot, pane, text)
            assert words in pane.message
            assert pane.query_one("#emb-message").has_class("-error")
            assert pane.query_input.value == text  # what was typed is kept
            assert pane.answer is before  # the last good answer stays
            await ask(pilot, pane, words_of(tiny_lm, 1)[0])  # and the pane goes on working
            assert pane.answer is not before and not pane.query_one("#emb-message").has_class("-error")

    async def test_the_culprit_is_marked_in_what_was_typed(self, tiny_lm):
        app = make_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await ask(pilot, pane, "king - - man")
            assert "In what you typed: king - - man" in pane.used


class TestSeveralTokens:
    async def test_a_word_of_several_tokens_uses_their_mean_or_the_one_picked(self, tiny_lm):
        """A word that is not one token: its tokens are shown, the mean is used, and one can be picked."""
        text = '"Paris Rome"'
        ids = parse_query(text, tiny_lm.tokenizer).terms[0].ids
        assert len(ids) > 1
        index = EmbeddingIndex(tiny_lm.model.tok_emb.weight)
        app = make_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await ask(pilot, pane, text)
            choice = pane.query_one(TokenChoice)
            assert choice.display and len(choice.labels) == len(ids)
            assert f"{len(ids)} tokens" in pane.used and "their mean" in pane.used
            mean = query_neighbours(tiny_lm.tokenizer, index, pane.answer.query, LIST_SIZE)
            assert [r.key for r in pane.neighbour_list.rows] == [n.id for n in mean.neighbours]
            choice.focus()
            await pilot.press("right")  # the first token alone
            await settle(pilot)
            assert pane.answer.choice == 0 and "one of them" in pane.used
            first = query_neighbours(tiny_lm.tokenizer, index, pane.answer.query, LIST_SIZE, choice=0)
            assert [r.key for r in pane.neighbour_list.rows] == [n.id for n in first.neighbours]
            assert next(p for p in pane.scatter.points if p.role == "query").key == ids[0]
            await ask(pilot, pane, words_of(tiny_lm, 1)[0])
            assert not choice.display


class TestMap:
    async def test_the_map_draws_every_label(self, tiny_lm):
        words = words_of(tiny_lm, 6)
        app = make_app(tiny_lm)
        async with app.run_test(size=(80, 24)) as pilot:
            pane = await ready(pilot)
            await ask(pilot, pane, " ".join(words))
            assert pane.answer.query.kind == "list" and len(pane.scatter.points) == 6
            drawn = map_text(pane)
            for word in words:
                assert f"␣{word}" in drawn, word
            assert "PCA of 6 words" in pane.scatter.border_title

    async def test_a_word_s_map_holds_it_and_its_neighbours(self, tiny_lm):
        app = make_app(tiny_lm)
        async with app.run_test(size=(80, 24)) as pilot:
            pane = await ready(pilot)
            await ask(pilot, pane, words_of(tiny_lm, 1)[0])
            points = pane.scatter.points
            assert [p.role for p in points].count("query") == 1
            neighbours = [p.key for p in points if p.role == "neighbour"]
            assert neighbours == [r.key for r in pane.neighbour_list.rows[: len(neighbours)]] and len(neighbours) >= 6
            drawn = map_text(pane)
            for p in points:
                assert p.label in drawn

    @pytest.mark.parametrize("seed", range(5))
    def test_layout_keeps_labels_whole_and_apart(self, seed):
        """Labels never cover a point or each other; on a roomy map none is shortened."""
        rng = random.Random(seed)
        points = [MapPoint(f"w{i}" + "x" * rng.randrange(1, 8), rng.gauss(0, 1), rng.gauss(0, 1)) for i in range(16)]
        width, height = 60, 18
        placed = layout_map(points, width, height)
        assert [p.point for p in placed] == points
        cells: dict[tuple[int, int], str] = {}
        for p in placed:
            assert (p.col, p.row) not in cells or cells[(p.col, p.row)] == "point"
            cells[(p.col, p.row)] = "point"
        for p in placed:
            assert p.label == p.point.label
            for k in range(cell_len(p.label)):
                spot = (p.label_col + k, p.label_row)
                assert 0 <= spot[0] < width and spot not in cells, (p, cells.get(spot))
                cells[spot] = p.label

    def test_a_crowded_map_still_labels_every_point(self):
        points = [MapPoint(f"label{i:02d}", float(i % 3), float(i // 3)) for i in range(24)]
        placed = layout_map(points, 30, 8)
        assert all(p.label for p in placed) and len(placed) == 24

    @pytest.mark.parametrize("size", [(30, 1), (2, 1), (2, 2), (30, 2), (3, 5)])
    def test_a_tiny_map_keeps_every_point_on_its_grid(self, size):
        """A map one row high (a 91x13 terminal) placed points on a second row: an IndexError (the soak test)."""
        width, height = size
        spread = [MapPoint(f"w{i}", float(i % 4), float(i // 4)) for i in range(12)]  # both axes spread
        tall = [MapPoint(f"t{i}", 0.0, float(i)) for i in range(5)]  # spread only up and down
        wide = [MapPoint(f"v{i}", float(i), 0.0) for i in range(5)]  # only sideways
        for points in (spread, tall, wide):
            placed = layout_map(points, width, height)
            assert [p.point for p in placed] == points
            for p in placed:
                assert 0 <= p.col < width and 0 <= p.row < height, (size, p)


class TestShowToken:
    async def test_another_pane_opens_a_token_here(self, tiny_lm):
        word = words_of(tiny_lm, 1)[0]
        (token_id,) = tiny_lm.encode(" " + word)
        app = make_app(tiny_lm, pane="generate")
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            pane.show_token(token_id)
            await settle(pilot)
            assert pane.answer.query.terms[0].ids == (token_id,) and pane.query_input.value == word
            pane.show_token(10**6)
            assert "no token" in pane.message

    async def test_a_token_asked_for_while_loading_shows_when_ready(self, tiny_lm, monkeypatch):
        release = threading.Event()

        def slow_load(spec, *, device="cpu", progress=None, precision="exact"):
            release.wait(10)
            return tiny_lm

        monkeypatch.setattr(LanguageModel, "load", staticmethod(slow_load))
        app = LLMTuiApp(model="x", pane="embeddings")
        async with app.run_test(size=(100, 30)) as pilot:
            pane = app.query_one(EmbeddingsPane)
            pane.show_token(42)
            await pilot.pause()
            assert "still loading" in pane.message
            release.set()
            await wait_for(pilot, lambda: pane.answer is not None, what="the answer")
            await settle(pilot)
            assert pane.answer.query.terms[0].ids == (42,)

    async def test_no_model(self, monkeypatch):
        def failing_load(spec, *, device="cpu", progress=None, precision="exact"):
            raise ModelLoadError("no model called 'x'")

        monkeypatch.setattr(LanguageModel, "load", staticmethod(failing_load))
        app = LLMTuiApp(model="x", pane="embeddings")
        async with app.run_test(size=(100, 30)) as pilot:
            pane = app.query_one(EmbeddingsPane)
            await wait_for(pilot, lambda: app.model_state.phase == "failed", what="the failure")
            await pilot.press("ctrl+u", *"cat", "enter")
            assert "could not be loaded" in pane.message and pane.query_input.value == "cat"


class TestContext:
    async def test_a_word_in_two_sentences_layer_by_layer(self, tiny_lm):
        app = make_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await pilot.press("f4")
            assert pane.view == "context" and app.focused is pane.query_one("#emb-sentence-a")
            pane.query_one("#emb-sentence-a").value = "The capital of France"
            pane.query_one("#emb-sentence-b").value = "Hello there, the capital"
            pane.query_one("#emb-word").value = "capital"
            pane.query_one("#emb-word").focus()
            await pilot.press("enter")
            await settle(pilot)
            context = pane.context
            n_layer = tiny_lm.config.n_layer
            assert context.a.text == "The capital of France" and len(context.by_layer) == n_layer + 1
            assert context.by_layer[0] == pytest.approx(1.0) and context.layer == n_layer // 2
            chart = pane.query_one(LayerChart)
            assert chart.values == context.by_layer and chart.selected == context.layer
            columns = pane.query_one(NeighbourColumns).columns
            assert [label for label, _ in columns[0][1]] == [table_label(n.text) for n in context.near_a]
            # bug 9: the list is the layer's read-out as next tokens, and the chart fills its box (it filled half)
            assert str(pane.query_one(NeighbourColumns).border_title).startswith("Read as next tokens")
            bars = chart.render().split("\n")[0].plain  # a row of bars, its gutter included
            assert len(bars) >= 0.9 * chart.content_region.width
            assert "Layer 0 is the embedding" not in pane.context_message
            chart.focus()
            await pilot.press("home")
            await settle(pilot)
            assert pane.context.layer == 0 and "Layer 0 is the embedding" in pane.context_message
            assert pane.context.a is context.a  # the sentences were not run again
            await pilot.press("f4")
            assert pane.view == "vocab"

    async def test_a_word_missing_from_a_sentence(self, tiny_lm):
        app = make_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await pilot.press("f4")
            pane.query_one("#emb-word").value = "Rome"
            pane.query_one("#emb-word").focus()
            await pilot.press("enter")
            await settle(pilot)
            assert "Sentence A" in pane.context_message and "not a word of this sentence" in pane.context_message

    async def test_identical_prefixes_are_explained(self, tiny_lm):
        app = make_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await pilot.press("f4")
            pane.query_one("#emb-sentence-a").value = "The capital of France"
            pane.query_one("#emb-sentence-b").value = "The capital of Italy"
            pane.query_one("#emb-word").value = "capital"
            pane.query_one("#emb-word").focus()
            await pilot.press("enter")
            await settle(pilot)
            assert "only looks back" in pane.context_message


class TestLayout:
    @pytest.mark.parametrize("size", [(80, 24), (160, 45)])
    async def test_every_part_fits(self, tiny_lm, size):
        app = make_app(tiny_lm)
        async with app.run_test(size=size) as pilot:
            pane = await ready(pilot)
            for widget in (pane.query_input, pane.neighbour_list, pane.scatter):
                region = widget.region
                assert region.width > 10 and region.height >= 3 and region.right <= size[0], widget
            assert pane.scatter.content_region.height >= 8
            await pilot.press("f4")
            await settle(pilot)
            chart = pane.query_one(LayerChart)
            assert chart.content_region.width >= 5 + len(pane.context.by_layer)
            lines = str(chart.render()).split("\n")
            assert len(lines) == chart.content_region.height and all(
                cell_len(s) <= chart.content_region.width for s in lines
            )


@pytest.mark.default_model
class TestDefaultModel:
    async def test_dog_neighbours_include_dogs_and_puppy(self, default_lm):
        app = make_app(default_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await ask(pilot, pane, "dog")
            labels = [r.label for r in pane.neighbour_list.rows[:20]]
            assert "␣dogs" in labels and "␣puppy" in labels
            assert "Token ␣dog #2767" in pane.used

    async def test_king_minus_man_plus_woman_gives_queen(self, default_lm):
        app = make_app(default_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await ask(pilot, pane, "king - man + woman")
            assert pane.neighbour_list.rows[0].label == "␣queen"
            assert "␣king #4197 − ␣man #555 + ␣woman #4166" in pane.used
            assert "␣queen" in map_text(pane)


class TestFollowSelection:
    async def test_a_token_selected_elsewhere_becomes_the_query_once(self, tiny_lm):
        """The app's current token (chosen in another pane) is shown here; a query typed afterwards stays
        when the user comes back (the app hands each pane a selection once)."""
        from llmtui.app.selection import TokenSelected, TokenSelection

        app = make_app(tiny_lm, pane="embeddings")
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            app.post_message(TokenSelected(TokenSelection.at((5, 42), 1, "tokenizer", "Tokenizer")))
            await wait_for(pilot, lambda: pane.answer is not None and pane.answer.query.terms[0].ids == (42,),
                           what="the followed token")
            await settle(pilot)
            await ask(pilot, pane, "the")
            for pane_id in ("tokenizer", "embeddings"):  # away and back: the same selection is not shown again
                app.action_show_pane(pane_id)
                await settle(pilot)
            assert app.current_pane is pane and pane.answer.text == "the"

    async def test_the_tokenizer_s_message_opens_a_token_here(self, tiny_lm):
        """The app's ShowTokenInEmbeddings (sent by the Tokenizer pane) switches here and shows that token."""
        from llmtui.app.messages import ShowTokenInEmbeddings

        word = words_of(tiny_lm, 1)[0]
        (token_id,) = tiny_lm.encode(" " + word)
        app = make_app(tiny_lm, pane="tokenizer")
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            app.post_message(ShowTokenInEmbeddings(token_id, " " + word))
            await wait_for(pilot, lambda: pane.answer.query.terms[0].ids == (token_id,), what="the token")
            await settle(pilot)
            assert app.current_pane is pane and pane.query_input.value == word


class TestSafeText:
    async def test_control_characters_in_typed_text_are_escaped(self, tiny_lm):
        app = make_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await ready(pilot)
            await ask(pilot, pane, "cap\x1b[31m - - x")
            assert "\x1b" not in pane.used and "\\x1b[31m" in pane.used
            assert "\x1b" not in pane.message
            await ask(pilot, pane, "cap\x1b[31m - x")
            assert "\x1b" not in pane.answer.title and all("\x1b" not in p.label for p in pane.scatter.points)
