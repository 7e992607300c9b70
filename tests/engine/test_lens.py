"""The logit lens (llmtui.engine.studies.lens) against a direct computation from the engine's residual stream."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from gguf import GGMLQuantizationType as Q

from gguf_writer import write_llama_gguf
from test_gguf import hf_llama  # noqa: F401 (a fixture found by name)

from llmtui.engine.studies import lens as lens_module
from llmtui.engine.studies.lens import LogitLens, logit_lens
from llmtui.engine.lm import LanguageModel
from llmtui.engine.loading.gguf_packed import build_packed_transformer
from llmtui.engine.loading.load import load_weights
from llmtui.engine.model.packed import PackedWeight
from llmtui.engine.model.transformer import Transformer

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def tiny(tiny_hf_llama_dir) -> LanguageModel:
    """The tiny random Llama, its unembedding sharpened so that its distributions have clear winners."""
    lm = LanguageModel.load(str(tiny_hf_llama_dir))
    with torch.no_grad():
        lm.model.unembedding.mul_(8.0)
    return lm


def direct(lm: LanguageModel, ids: list[int], row: int, position: int) -> torch.Tensor:
    """The next-token probabilities of one cell, computed alone: residual -> final norm -> unembedding -> softmax."""
    with torch.inference_mode():
        out = lm.run(ids, capture=True)
        return torch.softmax(lm.model.unembed(out.residuals[row][0, position]), dim=-1)


def check_cell(lm: LanguageModel, ids: list[int], grid, row: int, position: int) -> None:
    probs = direct(lm, ids, row, position)
    top_p, top_i = probs.topk(grid.top_ids.shape[-1])
    assert grid.top_ids[row, position].tolist() == top_i.tolist(), (row, position)
    torch.testing.assert_close(grid.top_probs[row, position], top_p, rtol=1e-4, atol=1e-6)
    answer = int(grid.answer_ids[position])
    assert int(grid.answer_ranks[row, position]) == int((probs > probs[answer]).sum())
    torch.testing.assert_close(grid.answer_probs[row, position], probs[answer], rtol=1e-4, atol=1e-7)


class TestTinyModel:
    def test_last_row_is_the_models_prediction(self, tiny):
        ids = tiny.encode("The capital of Italy is Rome. Hello world!")
        grid = logit_lens(tiny, ids)
        logits = tiny.run(ids, capture=False).logits[0]  # the plain (fused attention) path
        assert grid.top_ids[-1, :, 0].tolist() == logits.argmax(-1).tolist()
        assert grid.answer_ids.tolist() == logits.argmax(-1).tolist()
        assert (grid.answer_ranks[-1] == 0).all()
        assert grid.n_rows == tiny.config.n_layer + 1 and grid.complete

    def test_every_cell_equals_a_direct_computation(self, tiny):
        ids = tiny.encode("Hello there, how are you today?")
        grid = logit_lens(tiny, ids)
        for row in range(grid.n_rows):
            for position in range(len(ids)):
                check_cell(tiny, ids, grid, row, position)
        probs = grid.top_probs
        assert (probs[..., :-1] >= probs[..., 1:]).all(), "top-k sorted, most probable first"

    def test_slices_and_blocks_give_the_same_grid(self, tiny, monkeypatch):
        """Slice and block boundaries anywhere (and blocks out of order) change nothing."""
        ids = tiny.encode("The capital of Spain is Madrid. Numbers like 12345")
        whole = logit_lens(tiny, ids)
        monkeypatch.setattr(lens_module, "SLICE_WEIGHTS", 7 * tiny.config.d_model)  # 7 vocabulary rows a slice
        lens = LogitLens(tiny, ids)
        grid = lens.empty_grid()
        starts = []
        for block in lens.blocks(first=9, size=4):
            starts.append(block.start)
            grid.add(block)
        assert starts == [8, 0, 4] + list(range(12, len(ids), 4))
        assert grid.complete
        assert torch.equal(grid.top_ids, whole.top_ids)
        assert torch.equal(grid.answer_ranks, whole.answer_ranks)
        torch.testing.assert_close(grid.top_probs, whole.top_probs)

    def test_small_slices_keep_every_cells_top_k_exact(self, tiny, monkeypatch):
        """With 7 vocabulary rows a slice, a cell's top-k changes in some slices only (the others are skipped
        after a max pass): every cell still equals a direct computation."""
        monkeypatch.setattr(lens_module, "SLICE_WEIGHTS", 7 * tiny.config.d_model)
        ids = tiny.encode("Hello there, how are you today?")
        grid = logit_lens(tiny, ids)
        for row in range(grid.n_rows):
            for position in range(len(ids)):
                check_cell(tiny, ids, grid, row, position)

    def test_a_partly_computed_grid_says_so(self, tiny):
        ids = tiny.encode("Hello world! Hello there")
        lens = LogitLens(tiny, ids)
        grid = lens.empty_grid()
        grid.add(lens.block(0, 2))
        assert grid.computed.tolist() == [True, True] + [False] * (len(ids) - 2)
        assert not grid.complete
        assert grid.prediction(0, 1) is not None and grid.prediction(0, 2) is None
        assert grid.answer_layer(len(ids) - 1) is None
        assert grid.top(1, len(ids) - 1) == []

    def test_one_token(self, tiny):
        ids = tiny.encode("Hello")[:1]
        grid = logit_lens(tiny, ids)
        assert grid.top_ids.shape == (tiny.config.n_layer + 1, 1, 10)
        assert grid.top_ids[-1, 0, 0] == tiny.run(ids).logits[0, 0].argmax()
        layer = grid.answer_layer(0)
        assert layer is not None and 0 <= layer <= grid.n_layers
        assert all(rank == 0 for rank, _ in grid.answer_track(0)[layer:])
        check_cell(tiny, ids, grid, 0, 0)

    def test_the_longest_prompt_never_holds_all_logits_at_once(self, tiny, monkeypatch):
        """A full context window (128 tokens here): each block's cells go through the unembedding together,
        one slice of its rows at a time, never more than SLICE_LOGITS logits at once; each row once a block."""
        ids = (tiny.encode("The capital of France is Paris. ") * 20)[: tiny.config.context_length]
        assert len(ids) == tiny.config.context_length
        monkeypatch.setattr(lens_module, "SLICE_LOGITS", 4096)
        products: list[tuple[int, int]] = []
        logits = lens_module._logits

        def recording(cells, weight, cap, rowwise=False):
            if not rowwise:
                products.append((cells.shape[0], weight.shape[0]))
            return logits(cells, weight, cap, rowwise)

        monkeypatch.setattr(lens_module, "_logits", recording)
        lens = LogitLens(tiny, ids)
        final_walk, products[:] = list(products), []
        grid = lens.empty_grid()
        for block in lens.blocks(size=32):
            grid.add(block)
        V = tiny.config.vocab_size
        assert sum(rows for _, rows in final_walk) == V  # the final row: every position in one walk
        cells = tiny.config.n_layer * 32
        assert {n for n, _ in products} == {cells}  # a block's hidden cells in one batched product
        assert sum(rows for _, rows in products) == V * 4  # the unembedding walked once per block
        assert max(n * rows for n, rows in products) <= 4096
        monkeypatch.setattr(lens_module, "_logits", logits)
        for row, position in [(0, 0), (1, 70), (2, 127)]:
            check_cell(tiny, ids, grid, row, position)

    def test_contributions_are_block_outputs_over_the_residual(self, tiny):
        ids = tiny.encode("A transformer reads tokens")
        grid = logit_lens(tiny, ids)
        out = tiny.run(ids, capture=True)
        for layer in range(1, tiny.config.n_layer + 1):
            for position in range(len(ids)):
                before = out.residuals[layer - 1][0, position]
                a, m = out.attn_outputs[layer - 1][0, position], out.mlp_outputs[layer - 1][0, position]
                share = grid.contribution(layer, position)
                assert share.attention == pytest.approx(float(a.norm() / before.norm()), rel=1e-4)
                assert share.mlp == pytest.approx(float(m.norm() / (before + a).norm()), rel=1e-4)
                # the residual after the layer is what the blocks added to it
                torch.testing.assert_close(out.residuals[layer][0, position], before + a + m)

    def test_bad_prompts_raise_a_clear_error(self, tiny):
        with pytest.raises(ValueError, match="empty"):
            LogitLens(tiny, [])
        with pytest.raises(ValueError, match="context window"):
            LogitLens(tiny, [1] * (tiny.config.context_length + 1))


@pytest.mark.parametrize("qtype, tie", [(Q.Q8_0, True), (Q.Q4_1, False)], ids=["tied-q8_0", "untied-q4_1"])
def test_a_packed_unembedding_reads_as_its_float32_weights(qtype, tie, tiny, hf_llama, tiny_tokenizer, tmp_path,
                                                            monkeypatch):
    """The lens of a model whose unembedding stays packed (unpacked slice by slice, 50 rows a slice) equals
    the lens of the same model with float32 dequantized weights."""
    path = write_llama_gguf(tmp_path / "m.gguf", hf_llama, tiny_tokenizer, qtype, tie=tie)
    floats = load_weights(str(path), cache_dir=tmp_path / "cache")
    reference = Transformer(floats.config).eval()
    reference.load_state_dict(floats.state_dict)
    weights = load_weights(str(path), packed=True)
    packed = build_packed_transformer(weights.config, weights.state_dict, weights.packed)
    head = packed.tok_emb if tie else packed.lm_head
    assert isinstance(head, PackedWeight)
    monkeypatch.setattr(lens_module, "SLICE_WEIGHTS", 50 * floats.config.d_model)
    ids = tiny.encode("The capital of Spain is Madrid. Numbers like 12345")
    grids = [logit_lens(dataclasses.replace(tiny, model=m), ids) for m in (reference, packed)]
    assert torch.equal(grids[1].answer_ids, grids[0].answer_ids)
    assert torch.equal(grids[1].top_ids[:, :, :3], grids[0].top_ids[:, :, :3])
    torch.testing.assert_close(grids[1].top_probs, grids[0].top_probs, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(grids[1].answer_probs, grids[0].answer_probs, rtol=1e-4, atol=1e-6)
    assert (grids[1].answer_ranks - grids[0].answer_ranks).abs().max() <= 1  # ties within float32 rounding


@pytest.mark.default_model
class TestDefaultModel:
    def test_last_row_is_the_models_prediction(self, default_lm):
        ids = default_lm.encode("A transformer reads tokens, mixes them with attention, and predicts the next token.")
        grid = logit_lens(default_lm, ids)
        logits = default_lm.run(ids, capture=False).logits[0]
        assert grid.n_rows == 31
        assert grid.top_ids[-1, :, 0].tolist() == logits.argmax(-1).tolist()

    def test_cells_equal_a_direct_computation(self, default_lm):
        ids = default_lm.encode(PROMPT)
        grid = logit_lens(default_lm, ids)
        for row, position in [(0, 0), (1, 2), (12, 4), (24, 4), (29, 4), (30, 4), (17, 1)]:
            check_cell(default_lm, ids, grid, row, position)

    def test_a_long_prompt(self, default_lm):
        """300 tokens: 9,300 cells, in chunks; the last row is still the model's prediction, cells still exact."""
        text = "The capital of France is Paris. The capital of Italy is Rome. " * 40
        ids = default_lm.encode(text)[:300]
        grid = logit_lens(default_lm, ids)
        logits = default_lm.run(ids, capture=False).logits[0]
        assert grid.complete and grid.top_ids.shape == (31, 300, 10)
        assert grid.top_ids[-1, :, 0].tolist() == logits.argmax(-1).tolist()
        for row, position in [(3, 150), (20, 299), (29, 64)]:
            check_cell(default_lm, ids, grid, row, position)

    def test_paris_takes_the_lead_only_at_the_last_layer(self, default_lm):
        """The example the pane's help tells: " Paris" climbs from the hundreds into the top ten, then to the top."""
        ids = default_lm.encode(PROMPT)
        grid = logit_lens(default_lm, ids)
        paris = default_lm.encode(" Paris")
        assert len(paris) == 1 and int(grid.answer_ids[-1]) == paris[0]
        ranks = [rank for rank, _ in grid.answer_track(len(ids) - 1)]
        assert grid.answer_layer(len(ids) - 1) == 30
        assert min(ranks[:24]) >= 1000 and 100 <= ranks[24] < 1000  # "thousands ... until layer 23, about 400th at 24"
        assert ranks[27] >= 10 and ranks[28] < 10 and ranks[30] == 0
        assert grid.answer_probs[-1, -1] == pytest.approx(0.77, abs=0.01)
