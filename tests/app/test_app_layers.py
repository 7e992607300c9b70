"""The Layers pane (the logit lens) driven with Pilot: the grid, the cursor, the side panel, bad input, long prompts."""

from __future__ import annotations

import unicodedata

import pytest
import torch
from app_fixtures import make_app, settle, wait_for
from textual.geometry import Region

from llmtui.app.display import table_label
from llmtui.app.panes.layers import pane as layers_module
from llmtui.app.panes.layers import LayersPane
from llmtui.app.widgets.lens_grid import Cursor
from llmtui.engine.studies import lens as lens_module

PROMPT = "The capital of France is"


def rendered_lines(widget) -> list[str]:
    """What a line-API widget draws, as text, line by line."""
    widget.render_lines(Region(0, 0, *widget.size))  # sets the styles render_line uses
    return ["".join(seg.text for seg in widget.render_line(y)) for y in range(widget.content_region.height)]


def label(lm, token_id: int) -> str:
    text = lm.tokenizer.token_text(token_id)
    return lm.tokenizer.token_display(token_id) if "\ufffd" in text else table_label(text)


async def lens_ready(pilot, timeout: float = 60.0) -> LayersPane:
    """Wait until the Layers pane shows a complete grid for the editor's text and every worker is done."""
    pane = pilot.app.query_one(LayersPane)
    await wait_for(pilot, lambda: pane.lm is not None, what="the model")
    await settle(pilot, timeout)
    await wait_for(pilot, lambda: pane.data is not None and pane.data.complete, timeout, what="the lens")
    await settle(pilot, timeout)
    return pane


def layers_app(lm, **kwargs):
    kwargs.setdefault("pane", "layers")
    return make_app(lm, **kwargs)


class TestGrid:
    async def test_rows_are_layers_and_the_last_is_the_models_prediction(self, tiny_lm):
        app = layers_app(tiny_lm, prompt=PROMPT)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await lens_ready(pilot)
            ids = tiny_lm.encode(PROMPT)
            assert pane.data.ids == tuple(ids)
            grid = pane.grid
            assert grid.data.n_rows == tiny_lm.config.n_layer + 1
            logits = tiny_lm.run(ids, capture=False).logits[0]
            assert grid.row_text(grid.data.n_rows - 1) == [label(tiny_lm, int(i)) for i in logits.argmax(-1)]
            # the first row: what the embeddings alone predict
            out = tiny_lm.run(ids, capture=True)
            emb = tiny_lm.model.unembed(out.residuals[0][0]).argmax(-1)
            assert grid.row_text(0) == [label(tiny_lm, int(i)) for i in emb]
            lines = rendered_lines(grid)
            assert lines[1].startswith("emb") and lines[2].startswith("L1")
            assert label(tiny_lm, ids[-1]) in lines[0]  # the header names the prompt's tokens (the last one selected)

    async def test_the_cursor_starts_on_the_answer_and_keys_move_it(self, tiny_lm):
        app = layers_app(tiny_lm, prompt=PROMPT)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await lens_ready(pilot)
            grid, data = pane.grid, pane.data
            last_row, last_pos = data.n_rows - 1, data.n_positions - 1
            assert grid.cursor == Cursor(last_row, last_pos)  # the model's real next-token prediction
            assert grid.has_focus
            await pilot.press("up", "left")
            assert grid.cursor == Cursor(last_row - 1, last_pos - 1)
            await pilot.press("home")
            assert grid.cursor.position == 0
            await pilot.press("end", "ctrl+home")
            assert grid.cursor == Cursor(0, last_pos)
            await pilot.press("space")  # the demo's step key: one layer down
            assert grid.cursor == Cursor(1, last_pos)
            await pilot.press("down", "down", "down", "right")
            assert grid.cursor == Cursor(last_row, last_pos)  # clamped at the edges

    async def test_the_embeddings_row_says_what_it_reads(self, tiny_lm):
        """Bug 9: the embeddings row showed "<filename>" for " France" with no hint why."""
        app = layers_app(tiny_lm, prompt=PROMPT)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await lens_ready(pilot)
            side = pane.query_one("#lens-cell")
            assert "raw embedding" not in str(side.render())
            await pilot.press("ctrl+home")
            await pilot.pause()
            assert "raw embedding read through the unembedding" in str(side.render()).replace("\n", " ")

    async def test_the_side_panel_shows_the_cells_top_10_and_the_answer_layer_by_layer(self, tiny_lm):
        app = layers_app(tiny_lm, prompt=PROMPT)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await lens_ready(pilot)
            ids = list(pane.data.ids)
            await pilot.press("up", "left")
            row, pos = pane.grid.cursor.row, pane.grid.cursor.position
            with torch.inference_mode():
                out = tiny_lm.run(ids, capture=True)
                probs = torch.softmax(tiny_lm.model.unembed(out.residuals[row][0, pos]), -1)
            top_p, top_i = probs.topk(10)
            cell = pane.cell_text
            lines = cell.splitlines()
            listed = [line for line in lines if line[:2].strip().isdigit()]
            assert len(listed) == 10
            for n, (line, token_id, p) in enumerate(zip(listed, top_i.tolist(), top_p.tolist()), start=1):
                assert line.split()[0] == str(n)
                assert label(tiny_lm, token_id)[:6] in line
                assert f"{p:.1%}" in line or p < 0.001
            answer = int(tiny_lm.run(ids).logits[0, pos].argmax())
            assert f"Answer: {label(tiny_lm, answer)}" in cell
            track = pane.answer_text.splitlines()
            assert f"{label(tiny_lm, answer)} layer by layer:" in track[1]
            rows = track[2:]
            assert len(rows) == pane.data.n_rows
            assert rows[row].startswith("▶")  # the selected layer is marked
            rank_at_row = int((probs > probs[answer]).sum()) + 1
            assert rows[row].split()[1] == f"#{rank_at_row}"

    async def test_a_jumps_to_the_answer_layer_and_c_changes_the_colours(self, tiny_lm):
        app = layers_app(tiny_lm, prompt=PROMPT)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await lens_ready(pilot)
            grid = pane.grid
            await pilot.press("ctrl+home", "a")
            assert grid.cursor.row == pane.data.answer_layer(grid.cursor.position)
            assert "top" in str(grid.border_subtitle)
            before = grid.cell(0, 0)
            await pilot.press("c")
            assert grid.colour_by == "answer" and "answer" in str(grid.border_subtitle)
            assert grid.cell(0, 0)[1] == pytest.approx(float(pane.data.answer_probs[0, 0]))
            assert grid.cell(0, 0)[0] == before[0]  # same token shown, another colour

    async def test_the_advance_key_walks_down_the_layers_then_to_the_next_token(self, tiny_lm):
        app = layers_app(tiny_lm, prompt=PROMPT)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await lens_ready(pilot)
            await pilot.press("home", "ctrl+home")
            n_rows = pane.data.n_rows
            seen = [pane.grid.cursor]
            for _ in range(n_rows + 1):
                assert pane.advance()
                seen.append(pane.grid.cursor)
            assert [c.row for c in seen] == [*range(n_rows), 0, 1]
            assert [c.position for c in seen] == [0] * n_rows + [1, 1]

    async def test_a_click_selects_a_cell_and_posts_the_token(self, tiny_lm):
        app = layers_app(tiny_lm, prompt=PROMPT)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await lens_ready(pilot)
            grid = pane.grid
            await pilot.press("home")
            # content offset of row 1 (y: header + row), column 2; +1 for the border
            x = grid.fixed_width + 2 * grid._cell + 1 + 1
            y = 1 + 1 - grid.scroll_offset.y + 1
            await pilot.click(grid, offset=(x, y))
            assert grid.cursor == Cursor(1, 2)
            assert app.selection is not None and app.selection.position == 2 and app.selection.source == "layers"

    async def test_a_cell_selected_in_a_text_that_was_replaced_is_dropped(self, tiny_lm):
        """A click or key queued on the grid of a longer text, handled once a shorter one shows (found by the
        soak test): it used to raise ValueError (position outside the text); now it is stale and dropped."""
        from llmtui.app.widgets.lens_grid import LensGrid

        app = layers_app(tiny_lm, prompt=PROMPT + " and then some more words")
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await lens_ready(pilot)
            grid = pane.grid
            old = pane.data
            late = LensGrid.CellSelected(grid, Cursor(1, old.n_positions - 1), True, old)
            pane.editor.load_text("Hi")
            await wait_for(pilot, lambda: pane.data is not old and pane.data.complete, what="the new lens")
            assert pane.data.n_positions < old.n_positions
            grid.post_message(late)
            await pilot.pause()
            await pilot.pause()
            assert app._exception is None
            assert app.selection is None


class TestPrompt:
    async def test_editing_the_prompt_recomputes_and_stale_results_never_land(self, tiny_lm, monkeypatch):
        app = layers_app(tiny_lm, prompt="Hello")
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await lens_ready(pilot)
            pane.editor.focus()
            pane.editor.move_cursor(pane.editor.document.end)
            for ch in " world!":
                await pilot.press(ch if ch != " " else "space")
            expected = tuple(tiny_lm.encode("Hello world!"))
            await wait_for(
                pilot,
                lambda: pane.data is not None and pane.data.ids == expected and pane.data.complete,
                what="the new lens",
            )
            await settle(pilot)
            assert pane.editor.text == "Hello world!"
            # a request overtaken by a newer one is cancelled: its grid never shows
            shown = []
            show = pane.grid.show
            monkeypatch.setattr(pane.grid, "show", lambda data, *a, **k: (shown.append(data.ids), show(data, *a, **k)))
            for text in ("Hello there", "Hello again"):
                pane.editor.load_text(text)
                pane._request()
            await wait_for(pilot, lambda: pane.data.ids == tuple(tiny_lm.encode("Hello again")) and pane.data.complete,
                           what="the newest lens")
            await settle(pilot)
            assert shown == [tuple(tiny_lm.encode("Hello again"))]

    async def test_new_weights_are_read_again_for_the_same_prompt(self, tiny_hf_llama_dir):
        """Training (or F7) changes the weights of the same model: the app hands it down again (WeightsChanged)
        and the grid shows the new weights' predictions, not the old ones kept as 'already read'."""
        from llmtui.app.messages import WeightsChanged
        from llmtui.engine.lm import LanguageModel

        lm = LanguageModel.load(str(tiny_hf_llama_dir))  # its own: the test changes its weights
        app = layers_app(lm, prompt=PROMPT)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await lens_ready(pilot)
            before, cursor = pane.data, Cursor(1, 2)
            pane.grid.cursor = cursor
            with torch.no_grad():
                lm.model.unembedding.mul_(-1.0)  # every prediction becomes the least likely token
            app.post_message(WeightsChanged("tuned"))
            await wait_for(pilot, lambda: pane.data not in (None, before) and pane.data.complete, what="the new lens")
            await settle(pilot)
            assert pane.data.ids == before.ids
            logits = lm.run(list(before.ids), capture=False).logits[0]
            assert pane.data.answer_ids.tolist() == logits.argmax(-1).tolist() != before.answer_ids.tolist()
            assert pane.grid.cursor == cursor  # the cell looked at stays

    async def test_an_empty_prompt_says_so_and_nothing_breaks(self, tiny_lm):
        app = layers_app(tiny_lm, prompt="Hi")
        async with app.run_test(size=(80, 24)) as pilot:
            pane = await lens_ready(pilot)
            pane.editor.load_text("")
            await wait_for(pilot, lambda: pane.data is None, what="the empty prompt")
            await settle(pilot)
            assert "empty" in pane.grid.placeholder
            await pilot.press("down", "a", "c")  # keys on an empty grid do nothing harmful
            pane.editor.load_text("Hi again")
            pane = await lens_ready(pilot)
            assert pane.data.ids == tuple(tiny_lm.encode("Hi again"))

    async def test_a_prompt_over_the_limit_is_refused_with_the_reason_and_kept(self, tiny_lm, monkeypatch):
        monkeypatch.setattr(layers_module, "MAX_TOKENS", 12)
        text = "Hello world! " * 10
        app = layers_app(tiny_lm, prompt="Hello")
        async with app.run_test(size=(80, 24)) as pilot:
            pane = await lens_ready(pilot)
            pane.editor.load_text(text)
            await wait_for(pilot, lambda: pane.data is None, what="the refusal")
            await settle(pilot)
            assert "at most 12" in pane.grid.placeholder and "shorten" in pane.grid.placeholder
            assert "Your prompt is kept" in pane.message
            assert pane.editor.text == text

    async def test_a_prompt_past_the_context_window_is_refused(self, tiny_lm):
        text = "Hello world! " * 60  # the tiny model holds 128 tokens
        app = layers_app(tiny_lm, prompt=text)
        async with app.run_test(size=(80, 24)) as pilot:
            pane = app.query_one(LayersPane)
            await wait_for(
                pilot, lambda: pane.grid.placeholder and "context window" in pane.grid.placeholder, what="the refusal"
            )
            assert pane.editor.text == text

    async def test_markup_ansi_and_controls_are_shown_literally(self, tiny_lm):
        text = "[bold]x[/] \x1b[31mred\x07"
        app = layers_app(tiny_lm, prompt=text)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await lens_ready(pilot)
            grid = pane.grid
            await pilot.press("home")
            # the column tokens, joined, are the text as typed: markup not parsed, controls escaped
            assert "".join(grid._header) == "[bold]x[/]␣\\x1b[31mred\\x07"
            assert rendered_lines(grid)[0].split("│", 1)[1].startswith("[ ")
            assert pane.editor.text == text
            drawn = "".join(rendered_lines(grid)) + pane.cell_text + pane.answer_text + pane.message
            assert not {ch for ch in drawn if unicodedata.category(ch) == "Cc" and ch != "\n"}

    async def test_a_long_prompt_fills_in_block_by_block_from_the_selected_end(self, tiny_lm, monkeypatch):
        monkeypatch.setattr(lens_module, "BLOCK_POSITIONS", 16)
        text = "The capital of France is Paris. The capital of Italy is Rome. " * 3
        ids = tiny_lm.encode(text)
        assert 64 < len(ids) <= 128 and len(ids) % 16
        starts = []
        block = lens_module.LogitLens.block
        monkeypatch.setattr(lens_module.LogitLens, "block", lambda lens, start, stop: (starts.append(start),
                                                                                        block(lens, start, stop))[1])
        app = layers_app(tiny_lm, prompt=text)
        async with app.run_test(size=(80, 24)) as pilot:
            pane = await lens_ready(pilot)
            assert starts[0] == (len(ids) - 1) // 16 * 16  # the block of the selected (last) token first
            assert sorted(starts) == list(range(0, len(ids), 16))
            grid = pane.grid
            assert grid.scroll_offset.x > 0  # scrolled to the selected last column
            await pilot.press("home")
            assert grid.scroll_offset.x == 0
            await pilot.press("end")
            lines = rendered_lines(grid)
            assert grid.scroll_offset.x > 0
            # the layer names and the header stay in place while the columns and rows scroll
            n = tiny_lm.config.n_layer
            assert lines[n + 1].startswith(f"L{n}") and lines[1].startswith("emb")
            assert label(tiny_lm, ids[-1])[:5] in lines[0]


@pytest.mark.default_model
class TestDefaultModel:
    async def test_paris_appears_at_the_layer_the_help_says(self, default_lm):
        app = layers_app(default_lm, prompt=PROMPT)
        async with app.run_test(size=(100, 30)) as pilot:
            pane = await lens_ready(pilot)
            assert pane.grid.row_text(30)[-1] == "␣Paris"
            layer = pane.data.answer_layer(4)
            assert f"top from layer {layer} (last)" in pane.cell_text
            assert f"top prediction only at layer {layer}" in " ".join(LayersPane.HELP.split())
            ranks = [rank for rank, _ in pane.data.answer_track(4)]
            help_text = " ".join(LayersPane.HELP.split())
            assert "top ten at layer 28" in help_text and ranks[28] < 10 <= ranks[27]
            assert "until layer 23, about 400th at layer 24" in help_text
            assert min(ranks[:24]) >= 1000 and 350 <= ranks[24] < 450


class TestSnapshot:
    def test_grid_snapshot(self, snap_compare, tiny_lm):
        """100x30, dark: the lens of a short prompt, a cell in the middle selected."""
        app = layers_app(tiny_lm, prompt=PROMPT)

        async def run_before(pilot) -> None:
            await lens_ready(pilot)
            for area in pilot.app.query("TextArea"):
                area.cursor_blink = False
            await pilot.press("up", "up", "left")
            await pilot.pause()

        assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)

    def test_grid_snapshot_small_light(self, snap_compare, tiny_lm):
        """80x24, light, coloured by the final answer's probability."""
        app = layers_app(tiny_lm, prompt=PROMPT, theme="light")

        async def run_before(pilot) -> None:
            await lens_ready(pilot)
            for area in pilot.app.query("TextArea"):
                area.cursor_blink = False
            await pilot.press("c")
            await pilot.pause()

        assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


async def test_a_model_with_bos_is_read_with_it(tiny_hf_llama_bos_dir):
    """The lens runs the model on what it reads (BOS first, as transformers' tokenizer(text) gives)."""
    from llmtui.engine.lm import LanguageModel

    lm = LanguageModel.load(str(tiny_hf_llama_bos_dir))
    ids = lm.prompt_ids(PROMPT)
    assert ids[0] == lm.tokenizer.bos_id and ids[1:] == lm.encode(PROMPT)
    async with layers_app(lm, prompt=PROMPT).run_test(size=(100, 30)) as pilot:
        pane = await lens_ready(pilot)
        assert pane.data.ids == tuple(ids)
        logits = lm.run(ids, capture=False).logits[0]
        grid = pane.grid
        assert grid.row_text(grid.data.n_rows - 1) == [label(lm, int(i)) for i in logits.argmax(-1)]
