"""The Attention pane, driven with Pilot on a tiny random Llama (2 layers, 4 heads): weights, keys, modes, overviews."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from app_fixtures import finished, greedy, make_app, ready, settle, wait_for

from llmtui.app.panes.attention import AttentionPane
from llmtui.app.panes.generate import GeneratePane
from llmtui.app.widgets.head_overview import HeadOverview
from llmtui.app.widgets.heatmap import Heatmap

PROMPT = "The cat sat on the mat. The cat sat."


def engine_weights(lm, text: str) -> torch.Tensor:
    """(n_layer, n_head, T, T): the model's own attention probabilities for a text."""
    out = lm.run(lm.encode(text), capture=True)
    return torch.stack([a[0] for a in out.attentions])


def rendered_lines(widget) -> list[str]:
    """What a line-API widget draws, as text, line by line."""
    return ["".join(seg.text for seg in widget.render_line(y)) for y in range(widget.scrollable_content_region.height)]


def cell_backgrounds(heatmap: Heatmap, row: int, n_cols: int) -> list:
    """The background colour drawn in each cell of one row (the row must be on screen, unpooled)."""
    geometry = heatmap._geometry
    cw, ch = heatmap.cell_size
    y = geometry.header + row * ch + (ch - 1) // 2 - (int(heatmap.scroll_offset.y) if heatmap.zoom else 0)
    backgrounds = []
    for seg in heatmap.render_line(y):
        backgrounds += [seg.style.bgcolor if seg.style else None] * len(seg.text)
    left = geometry.label_width - (int(heatmap.scroll_offset.x) if heatmap.zoom else 0)
    return [backgrounds[left + col * cw] for col in range(n_cols)]


async def captured(pilot, pane: AttentionPane | None = None) -> AttentionPane:
    """Wait until the pane shows a captured text and every worker has finished."""
    pane = pane or pilot.app.query_one(AttentionPane)
    await wait_for(pilot, lambda: pane.attention is not None and pane.attention.partial is None,
                   what="the attention capture")
    await settle(pilot)
    return pane


def attention_app(lm, prompt: str | None = PROMPT, **kwargs):
    return make_app(lm, pane="attention", prompt=prompt, **kwargs)


class TestWeights:
    async def test_shown_weights_are_the_engines_for_every_layer_and_head(self, tiny_lm):
        """Walking every layer and head with the keys shows exactly the model's probabilities."""
        reference = engine_weights(tiny_lm, PROMPT)
        app = attention_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await captured(pilot)
            assert app.focused is pane.heatmap
            n_layer, n_head = reference.shape[:2]
            for layer in range(n_layer):
                for head in range(n_head):
                    assert (pane.layer_index, pane.head_index) == (layer, head)
                    np.testing.assert_allclose(pane.shown_weights, reference[layer, head].numpy(), atol=1e-6)
                    if head < n_head - 1:
                        await pilot.press("full_stop")
                if layer < n_layer - 1:
                    await pilot.press("right_square_bracket")
                    for _ in range(n_head):
                        await pilot.press("comma")

    async def test_rows_sum_to_one_and_the_upper_triangle_is_zero_and_blank(self, tiny_lm):
        app = attention_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await captured(pilot)
            await pilot.press("right_square_bracket", "full_stop", "full_stop")
            weights = pane.shown_weights
            T = weights.shape[0]
            np.testing.assert_allclose(weights.sum(1), np.ones(T), atol=1e-5)
            assert np.all(np.triu(weights, 1) == 0)
            values, mask = pane.heatmap.shown
            assert np.array_equal(mask, np.triu(np.ones((T, T), dtype=bool), 1))  # masked: drawn blank
            # on screen: a masked cell is plain background, an allowed one has a colour of the scale
            colours = {style.bgcolor for style in pane.heatmap.scale.styles}
            for row in range(T):
                pane.heatmap.select(row, 0)  # scrolls the row into view when the map scrolls
                await pilot.pause()
                drawn = cell_backgrounds(pane.heatmap, row, T)
                assert [bg in colours for bg in drawn] == [col <= row for col in range(T)], row

    async def test_average_mode_is_the_mean_of_the_heads(self, tiny_lm):
        reference = engine_weights(tiny_lm, PROMPT)
        app = attention_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await captured(pilot)
            await pilot.press("right_square_bracket", "a")
            assert pane.average
            np.testing.assert_allclose(pane.shown_weights, reference[1].mean(0).numpy(), atol=1e-6)
            np.testing.assert_allclose(pane.shown_weights.sum(1), 1.0, atol=1e-5)
            assert "mean of its 4 heads" in str(pane.heatmap.border_title)
            await pilot.press("a")
            assert not pane.average
            np.testing.assert_allclose(pane.shown_weights, reference[1, 0].numpy(), atol=1e-6)

    async def test_changing_head_or_layer_runs_no_model(self, tiny_lm, monkeypatch):
        """The capture is once per text: the next head only redraws."""
        app = attention_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await captured(pilot)
            # Count this pane's captures only: other panes (Generate's preview, Layers' grid) may
            # still run the shared model in the background on a slow machine.
            import llmtui.engine.studies.attention as engine

            calls = []
            capture = engine.capture_attention
            monkeypatch.setattr(engine, "capture_attention", lambda *a, **k: calls.append(1) or capture(*a, **k))
            await pilot.press("full_stop", "full_stop", "right_square_bracket", "a", "o", "escape", "O", "escape")
            await settle(pilot)
            assert calls == []
            assert pane.head_index == 2 and pane.layer_index == 1


class TestKeys:
    async def test_layer_and_head_keys_stop_at_the_ends_with_a_message(self, tiny_lm):
        app = attention_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await captured(pilot)
            for _ in range(5):
                await pilot.press("right_square_bracket")
            assert pane.layer_index == 1
            assert "Layer 1 is the last layer (layers 0–1)" in pane.message
            for _ in range(5):
                await pilot.press("left_square_bracket")
            assert pane.layer_index == 0
            assert "first layer" in pane.message
            for _ in range(7):
                await pilot.press("full_stop")
            assert pane.head_index == 3
            assert "Head 3 is the last head (heads 0–3)" in pane.message
            for _ in range(7):
                await pilot.press("comma")
            assert pane.head_index == 0
            assert "first head" in pane.message

    async def test_ctrl_l_edits_the_prompt_and_escape_goes_back_to_the_map(self, tiny_lm):
        app = attention_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await captured(pilot)
            await pilot.press("ctrl+l")
            assert app.focused is pane.prompt
            await pilot.press("escape")
            assert app.focused is pane.heatmap
            assert pane.prompt.value == PROMPT

    async def test_the_nav_line_is_clickable(self, tiny_lm):
        app = attention_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await captured(pilot)
            nav = pane.query_one("#att-nav")
            text = str(nav.render())
            next_layer = text.index("▶]")
            await pilot.click(nav, offset=(1 + next_layer, 0))  # the nav line has one cell of padding
            assert pane.layer_index == 1
            next_head = text.index("▶.")
            await pilot.click(nav, offset=(1 + next_head, 0))
            assert pane.head_index == 1
            await pilot.click(nav, offset=(1 + text.index("a mean"), 0))
            assert pane.average

    async def test_arrows_and_clicks_select_a_cell_and_the_side_panel_lists_its_keys(self, tiny_lm):
        """The bar list is the selected token's keys, strongest first, with the engine's weights."""
        app = attention_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await captured(pilot)
            T = pane.attention.n_tokens
            assert pane.heatmap.cursor[0] == T - 1  # opens on the last token
            await pilot.press("up", "up", "left")
            row, _ = pane.heatmap.cursor
            assert row == T - 3
            keys = pane.attention.top_keys(0, 0, row)
            listed = pane.bars.rows
            assert [r.index for r in listed] == [j for j, _ in keys][: len(listed)]
            assert [r.weight for r in listed] == sorted((r.weight for r in listed), reverse=True)
            for r in listed:
                assert r.weight == pytest.approx(float(pane.shown_weights[row, r.index]))
            assert f"query {row}" in pane.bars.text
            # a click on a cell selects it
            heatmap = pane.heatmap
            cw, ch = heatmap.cell_size
            geometry = heatmap._geometry
            top = int(heatmap.scroll_offset.y) if heatmap.zoom else 0  # the map may scroll: pick a row on screen
            target = top // ch + 1
            y = geometry.header + target * ch - top
            await pilot.click(heatmap, offset=(1 + geometry.label_width + 2 * cw, 1 + y))  # 1: the border
            assert heatmap.cursor == (target, 2)
            assert pane.bars.rows[0].index == pane.attention.top_keys(0, 0, target)[0][0]


    async def test_a_cursor_move_of_a_longer_text_before_still_queued(self, tiny_lm):
        """A cursor move on a longer text handled after a shorter one is shown (found by the soak test's
        10,000-event walk, seed 7): row 32 of a 12-token text made the app's token selection raise
        ValueError and stopped the app. A stale move selects nothing; a live one still does."""
        app = attention_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await captured(pilot)
            n = pane.attention.n_tokens
            before = app.selection
            pane.heatmap.post_message(Heatmap.CursorMoved(pane.heatmap, n + 20, 0))  # the old text's row
            await settle(pilot)
            assert app._exception is None and app.selection == before
            pane.heatmap.focus()
            await pilot.press("up")  # a move on the shown text still becomes the app's token
            await wait_for(pilot, lambda: app.selection is not None and app.selection.source == "attention",
                           timeout=5, what="the selection")
            assert app.selection.position == pane.heatmap.cursor[0] < n


class TestOverview:
    async def test_the_layer_overview_opens_the_chosen_head(self, tiny_lm):
        reference = engine_weights(tiny_lm, PROMPT)
        app = attention_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await captured(pilot)
            await pilot.press("right_square_bracket", "o")
            overview = pane.query_one(HeadOverview)
            assert pane.view == "layer" and app.focused is overview
            assert [t.title for t in overview.thumbs] == ["head 0", "head 1", "head 2", "head 3"]
            for head, thumb in enumerate(overview.thumbs):
                np.testing.assert_allclose(thumb.values, reference[1, head].numpy(), atol=1e-6)
            await pilot.press("right", "right", "enter")
            assert pane.view == "map" and app.focused is pane.heatmap
            assert (pane.layer_index, pane.head_index) == (1, 2)
            np.testing.assert_allclose(pane.shown_weights, reference[1, 2].numpy(), atol=1e-6)

    async def test_a_click_on_a_thumbnail_of_the_model_overview_opens_it(self, tiny_lm):
        reference = engine_weights(tiny_lm, PROMPT)
        app = attention_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await captured(pilot)
            await pilot.press("O")
            overview = pane.query_one(HeadOverview)
            assert pane.view == "all"
            assert len(overview.thumbs) == 2 * 4
            grid = overview._grid
            index = 1 * 4 + 3  # layer 1, head 3
            x = grid.label_width + 3 * grid.tile_width + 1
            y = 1 * grid.tile_height + 1
            await pilot.click(overview, offset=(1 + x, 1 + y))
            assert pane.view == "map"
            assert (pane.layer_index, pane.head_index) == divmod(index, 4)
            np.testing.assert_allclose(pane.shown_weights, reference[1, 3].numpy(), atol=1e-6)

    async def test_a_choice_in_the_model_overview_handled_after_the_layer_overview_shows(self, tiny_lm):
        """A thumbnail chosen in the model overview (layer 1, head 1: index 5) and 'o' pressed before the choice
        was handled (found by the soak test, seeds 2 and 3): the layer overview read index 5 as head 5 of 4
        (IndexError stopped the app). A choice among thumbnails since replaced opens nothing."""
        app = attention_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await captured(pilot)
            await pilot.press("O")
            overview = pane.query_one(HeadOverview)
            assert pane.view == "all" and len(overview.thumbs) == 8
            overview.cursor = 5
            overview.action_open()  # the choice is queued ...
            pane.action_overview("layer")  # ... and "o" is handled before it
            await settle(pilot)
            assert app._exception is None
            assert pane.view == "layer" and (pane.layer_index, pane.head_index) == (0, 0)
            await pilot.press("right", "enter")  # a choice in the overview shown still opens
            assert pane.view == "map" and (pane.layer_index, pane.head_index) == (0, 1)

    async def test_escape_goes_back_and_labels_come_from_the_scores(self, tiny_lm):
        app = attention_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await captured(pilot)
            await pilot.press("o")
            overview = pane.query_one(HeadOverview)
            for head, thumb in enumerate(overview.thumbs):
                label = pane.attention.scores.label(0, head)
                assert (thumb.note != "") == (label is not None)
            await pilot.press("escape")
            assert pane.view == "map" and app.focused is pane.heatmap


class TestPrompts:
    async def test_an_empty_prompt_gets_a_message(self, tiny_lm):
        app = attention_app(tiny_lm, prompt=None)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = app.query_one(AttentionPane)
            await wait_for(pilot, lambda: pane.lm is not None, what="the model")
            assert app.focused is pane.prompt
            await pilot.press("enter")
            assert "The prompt is empty" in pane.message
            pane.heatmap.focus()
            await pilot.press("full_stop")
            assert "Nothing to show yet" in pane.message
            assert not pane.heatmap.has_data

    async def test_a_prompt_longer_than_the_context_gets_a_message_and_is_kept(self, tiny_lm):
        text = " ".join(["word"] * 300)  # > 128 positions of the tiny model
        app = attention_app(tiny_lm, prompt=text)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = app.query_one(AttentionPane)
            await wait_for(pilot, lambda: "context window" in pane.message, what="the message")
            await settle(pilot)
            assert "context window holds 128" in pane.message
            assert pane.attention is None and not pane.heatmap.has_data
            assert pane.prompt.value == text

    async def test_a_long_prompt_is_never_cut(self, tiny_lm):
        """100 tokens at 80x24: zoomed out the whole map is there (pooled); zoomed in, every row scrolls into view."""
        words = [f"w{i % 17}" for i in range(200)]
        n = next(n for n in range(1, 200) if len(tiny_lm.encode(" ".join(words[:n]))) >= 100)
        text = " ".join(words[:n])
        assert len(tiny_lm.encode(text)) < tiny_lm.config.context_length
        app = attention_app(tiny_lm, prompt=text)
        async with app.run_test(size=(80, 24)) as pilot:
            pane = await captured(pilot)
            heatmap = pane.heatmap
            T = pane.attention.n_tokens
            assert T >= 100
            assert heatmap.values.shape == (T, T)
            while heatmap.zoom:
                await pilot.press("minus")
            await pilot.pause()
            assert heatmap.pooled
            geometry = heatmap._geometry
            assert geometry.row_edges[0] == 0 and geometry.row_edges[-1] == T  # every row in some block
            assert geometry.col_edges[-1] == T
            assert "whole" in heatmap.view_note
            await pilot.press("plus")
            await pilot.pause()
            assert not heatmap.pooled and heatmap.zoom == 1
            await pilot.press("end")
            for _ in range(3):
                await pilot.press("pagedown")
            await pilot.pause()
            row, col = heatmap.cursor
            assert row == T - 1 and col == T - 1
            assert heatmap.scroll_offset.y > 0
            lines = rendered_lines(heatmap)
            assert any(pane.labels[T - 1] in line for line in lines)
            assert f"of {T}" in heatmap.view_note

    async def test_markup_and_control_characters_are_shown_literally(self, tiny_lm):
        text = "[bold]x[/] \x1b[31m red"
        app = attention_app(tiny_lm, prompt=text)
        async with app.run_test(size=(120, 30)) as pilot:
            pane = await captured(pilot)
            joined = "".join(pane.labels).replace("␣", " ")
            assert joined == "[bold]x[/] \\x1b[31m red"  # every token, markup and escape shown as typed
            pane.heatmap.select(1, 0)
            await pilot.pause()
            screen = "\n".join(rendered_lines(pane.heatmap)) + pane.bars.text
            assert pane.labels[1] in screen and "\x1b" not in screen
            assert pane.prompt.value == text

    async def test_a_stale_capture_never_lands(self, tiny_lm, monkeypatch):
        """A slow capture that finishes after a newer request is dropped: only the newer text is shown."""
        import threading

        import llmtui.engine.studies.attention as engine

        original = engine.capture_attention
        newer_asked = threading.Event()  # the first capture ends only once the second is asked for, however loaded

        def slow_for_the_first(lm, ids, *args, **kwargs):
            if lm.tokenizer.decode(ids).startswith("first"):
                newer_asked.wait(10)
            return original(lm, ids, *args, **kwargs)

        monkeypatch.setattr(engine, "capture_attention", slow_for_the_first)
        app = attention_app(tiny_lm, prompt=None)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = app.query_one(AttentionPane)
            await wait_for(pilot, lambda: pane.lm is not None, what="the model")
            shown = []
            set_matrix = pane.heatmap.set_matrix
            monkeypatch.setattr(pane.heatmap, "set_matrix", lambda values, rows, *a, **k: (
                shown.append("".join(rows)), set_matrix(values, rows, *a, **k))[1])
            pane.capture_text("first text")
            await pilot.pause(0.05)
            pane.capture_text("second text")
            newer_asked.set()
            await wait_for(pilot, lambda: pane.attention is not None and pane.attention.partial is None,
                           what="the second capture")
            await settle(pilot)
            await pilot.pause(0.4)
            assert pane.attention.ids == tuple(tiny_lm.encode("second text"))
            assert shown == ["second␣text"]


class TestShownLayerFirst:
    async def test_the_shown_layer_is_drawn_while_the_others_run(self, tiny_lm, monkeypatch):
        """On the map, layer 0 is drawn before the last layer's block has run. Meanwhile the cursor moves, a
        later layer and the overviews wait with a message; the whole map then lands with the cursor kept."""
        import threading

        reference = engine_weights(tiny_lm, PROMPT)
        last = tiny_lm.model.blocks[-1]
        release = threading.Event()
        attention_weights = last.attention_weights  # the capture runs the last block's attention alone

        def held(*args, **kwargs):
            release.wait(10)
            return attention_weights(*args, **kwargs)

        monkeypatch.setattr(last, "attention_weights", held)
        app = attention_app(tiny_lm, prompt=None)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = app.query_one(AttentionPane)
            await wait_for(pilot, lambda: pane.lm is not None, what="the model")
            pane.set_prompt(PROMPT)
            pane.prompt.focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: pane.attention is not None, what="the first layer")
            assert pane.attention.partial == 1 and not release.is_set()
            assert "layers 1–1 still running" in pane.message
            np.testing.assert_allclose(pane.shown_weights, reference[0, 0].numpy(), atol=1e-6)
            assert app.focused is pane.heatmap
            await pilot.press("up")  # the cursor moves on the partial map
            cursor = pane.heatmap.cursor
            await pilot.press("right_square_bracket")
            assert pane.layer_index == 1 and "Layer 1 is still running" in pane.message
            np.testing.assert_allclose(pane.shown_weights, reference[0, 0].numpy(), atol=1e-6)  # not drawn yet
            await pilot.press("o")
            assert pane.view == "map" and "still running" in pane.message
            release.set()
            await captured(pilot, pane)
            assert pane.layer_index == 1 and pane.heatmap.cursor == cursor
            np.testing.assert_allclose(pane.shown_weights, reference[1, 0].numpy(), atol=1e-6)
            assert "still running" not in pane.message
            await pilot.press("o")  # every head of layer 1, now that it has run
            assert pane.view == "layer"


class TestFollowGeneration:
    async def test_g_shows_the_generate_panes_whole_text(self, tiny_lm):
        app = make_app(tiny_lm, prompt="Once upon a time", settings=greedy(max_new_tokens=6))
        async with app.run_test(size=(100, 30)) as pilot:
            generate = await ready(pilot)
            await pilot.press("f5")
            await finished(pilot, generate)
            expected = tuple(generate.session.prompt_ids) + tuple(s.token_id for s in generate.steps)
            app.action_show_pane("attention")
            await pilot.pause()
            pane = app.query_one(AttentionPane)
            pane.heatmap.focus()
            await pilot.press("g")
            await wait_for(pilot, lambda: pane.source.startswith("the Generate"), what="the Generate text's capture")
            await settle(pilot)
            assert pane.attention.ids == expected
            assert "Generate" in pane.source
            assert pane.prompt.value == "Once upon a time"  # the pane's own prompt box is left alone

    async def test_a_token_selected_elsewhere_opens_its_row_in_its_whole_text(self, tiny_lm, monkeypatch):
        """The app's current token (from another pane): its text is captured once, its row selected."""
        from llmtui.app.selection import TokenSelection

        app = attention_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await captured(pilot)
            ids = tuple(tiny_lm.encode("Once upon a time there was"))
            pane.follow_selection(TokenSelection.at(ids, 3, "generate", "Generate"))
            await wait_for(pilot, lambda: pane.attention.ids == ids, what="the selection's text")
            await settle(pilot)
            assert pane.heatmap.cursor[0] == 3
            assert "Generate" in pane.source
            # Count this pane's captures only: other panes (Generate's preview, Layers' grid) may
            # still run the shared model in the background on a slow machine.
            import llmtui.engine.studies.attention as engine

            calls = []
            capture = engine.capture_attention
            monkeypatch.setattr(engine, "capture_attention", lambda *a, **k: calls.append(1) or capture(*a, **k))
            pane.follow_selection(TokenSelection.at(ids, 5, "generate", "Generate"))  # the same text: only the row moves
            await settle(pilot)
            assert pane.heatmap.cursor[0] == 5 and calls == []

    async def test_g_before_any_generation_says_so(self, tiny_lm):
        app = attention_app(tiny_lm)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await captured(pilot)
            assert app.query_one(GeneratePane).session is None
            await pilot.press("g")
            assert "Nothing generated yet" in pane.message


def test_heatmap_widget_rejects_bad_shapes():
    heatmap = Heatmap()
    with pytest.raises(ValueError, match="2-D"):
        heatmap.set_values(np.zeros(3))
    with pytest.raises(ValueError, match="mask"):
        Heatmap._check(np.zeros((2, 2)), np.zeros((3, 3)))


class TestSnapshots:
    """Pictures of the pane (pytest-textual-snapshot): accept a change on purpose with --snapshot-update."""

    def test_heatmap_at_80x24(self, snap_compare, tiny_lm):
        """80x24, dark: layer 1 head 2 of a short prompt, a cell selected, its keys listed."""
        app = attention_app(tiny_lm, prompt="The cat sat on the mat.")

        async def run_before(pilot) -> None:
            pane = await captured(pilot)
            pane.prompt.cursor_blink = False
            await pilot.press("right_square_bracket", "full_stop", "full_stop", "up", "left")
            await pilot.pause()

        assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)

    def test_head_overview_at_100x30_light(self, snap_compare, tiny_lm):
        """100x30, light: every head of layer 0, the second highlighted."""
        app = attention_app(tiny_lm, prompt="The cat sat on the mat.", theme="light")

        async def run_before(pilot) -> None:
            pane = await captured(pilot)
            pane.prompt.cursor_blink = False
            await pilot.press("o", "right")
            await pilot.pause()

        assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)


class TestHeatmapGeometry:
    """The widgets' pure helpers: block edges, pooling, the colour scale."""

    def test_edges_cut_into_nearly_equal_runs(self):
        from llmtui.app.widgets.heatmap import edges

        assert edges(10, 3).tolist() == [0, 3, 6, 10]
        assert edges(5, 5).tolist() == [0, 1, 2, 3, 4, 5]
        e = edges(551, 38)
        assert e[0] == 0 and e[-1] == 551 and np.all(np.diff(e) >= 14)

    def test_pooling_mass_keeps_rows_summing_to_one(self):
        from llmtui.app.widgets.heatmap import edges, pool

        rng = np.random.default_rng(0)
        w = np.tril(rng.random((40, 40)).astype(np.float32))
        w /= w.sum(1, keepdims=True)
        mask = np.triu(np.ones((40, 40), dtype=bool), 1)
        values, pooled_mask = pool(w, mask, edges(40, 7), edges(40, 9), "mass")
        assert values.shape == (7, 9)
        np.testing.assert_allclose(values.sum(1), 1.0, atol=1e-5)
        assert pooled_mask[0, -1] and not pooled_mask[-1, 0]  # top right block: all masked

    def test_pooling_mean_and_max_skip_masked_cells(self):
        from llmtui.app.widgets.heatmap import pool

        values = np.array([[1.0, 9.0], [3.0, 5.0]], dtype=np.float32)
        mask = np.array([[False, True], [False, False]])
        e = np.array([0, 2])
        mean, m = pool(values, mask, e, e, "mean")
        assert mean[0, 0] == pytest.approx(3.0) and not m[0, 0]  # (1 + 3 + 5) / 3: the masked 9 left out
        top, _ = pool(values, mask, e, e, "max")
        assert top[0, 0] == 5.0

    def test_a_stack_pools_like_each_matrix(self):
        from llmtui.app.widgets.heatmap import edges, pool, resample_stack

        rng = np.random.default_rng(1)
        stack = np.tril(rng.random((5, 30, 30))).astype(np.float32)
        mask = np.triu(np.ones((30, 30), dtype=bool), 1)
        pooled, pooled_mask = resample_stack(stack, mask, 6, 6, "mass")
        for i in range(5):
            one, one_mask = pool(stack[i], mask, edges(30, 6), edges(30, 6), "mass")
            np.testing.assert_allclose(pooled[i], one, rtol=1e-5)
            assert np.array_equal(pooled_mask, one_mask)
        small, small_mask = resample_stack(stack[:, :3, :3], mask[:3, :3], 6, 6, "mass")
        assert small.shape == (5, 6, 6) and small[0, 0, 0] == stack[0, 0, 0] and small[0, 5, 5] == stack[0, 2, 2]
        assert small_mask[0, 5] and not small_mask[5, 0]

    def test_colour_scale_bins_and_contrast(self):
        from llmtui.app.widgets.heatmap import ATTENTION_SCALE, ColorScale

        values = np.array([0.0, 0.005, 0.01, 0.2, 0.5, 0.99, 1.0])
        bins = ATTENTION_SCALE.bins(values)
        assert bins.tolist() == [ATTENTION_SCALE.bin(float(v)) for v in values]
        assert bins.tolist() == sorted(bins.tolist()) and bins[0] == 0 and bins[-1] == len(ATTENTION_SCALE.bounds) - 1
        dark, light = ATTENTION_SCALE.styles[0], ATTENTION_SCALE.styles[-1]
        assert dark.color.get_truecolor() == (255, 255, 255) and light.color.get_truecolor() == (0, 0, 0)
        assert ATTENTION_SCALE.legend().plain.split() == ["weight", "%", *ATTENTION_SCALE.labels]
        with pytest.raises(ValueError, match="go up"):
            ColorScale((0.5, 0.1), ("#000000", "#ffffff"), ("a", "b"))


class TestSmallScreens:
    @pytest.mark.parametrize("size", [(80, 24), (60, 18), (40, 12)])
    @pytest.mark.parametrize("prompt", ["The cat chased the dog", PROMPT])
    async def test_the_map_keeps_its_key_labels_or_says_where_they_went(self, tiny_lm, size, prompt):
        """Bug 8: at 80x24 the map had no key (column) labels and said nothing of them."""
        app = attention_app(tiny_lm, prompt=prompt)
        async with app.run_test(size=size) as pilot:
            pane = await captured(pilot)
            heatmap = pane.heatmap
            lines = [heatmap.render_line(y).text for y in range(heatmap.scrollable_content_region.height)]
            if heatmap._geometry.header > 1:
                labels = [label.strip("␣ ") for label in heatmap.col_labels[:2]]
                assert all(any(label[:1] in line for line in lines[1:3]) for label in labels), lines[:3]
            else:
                assert "above" in heatmap.view_note and "key" in lines[0], (heatmap.view_note, lines[0])


def test_the_palette_shows_keys_as_typed():
    """Bug 9: the palette said "key: full_stop" and "key: left_square_bracket"."""
    from llmtui.app.panes.attention import AttentionPane

    helps = [help_text for _, help_text, _ in AttentionPane().commands()]
    assert {"key: .", "key: ,", "key: [", "key: ]"} <= set(helps)
    assert not any("_" in h for h in helps if h.startswith("key: "))


async def test_a_model_with_bos_is_captured_with_it(tiny_hf_llama_bos_dir):
    """The pane runs the model on what it reads (BOS first, as transformers' tokenizer(text) gives) and shows that."""
    from llmtui.engine.lm import LanguageModel

    lm = LanguageModel.load(str(tiny_hf_llama_bos_dir))
    ids = lm.prompt_ids(PROMPT)
    assert ids[0] == lm.tokenizer.bos_id and ids[1:] == lm.encode(PROMPT)
    async with attention_app(lm).run_test(size=(100, 30)) as pilot:
        pane = await captured(pilot)
        assert list(pane.attention.ids) == ids
        expected = lm.run(ids, capture=True).attentions[0][0, 0]
        np.testing.assert_allclose(pane.shown_weights, expected.numpy(), atol=1e-6)
