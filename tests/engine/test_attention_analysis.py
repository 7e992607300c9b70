"""The attention engine: one capture per text, per-head and mean matrices, top keys, head-pattern scores."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from llmtui.engine.studies.attention import (
    MAX_TOKENS,
    PATTERNS,
    AttentionMap,
    capture_attention,
    check_length,
    head_scores,
)
from llmtui.engine.lm import LanguageModel

TEXT = "The cat sat on the mat. The cat sat on the rug."


@pytest.fixture(scope="module")
def lm(tiny_hf_llama_dir) -> LanguageModel:
    """A tiny random Llama: 2 layers, 4 heads (2 key/value heads), 128 positions."""
    return LanguageModel.load(str(tiny_hf_llama_dir))


class TestCapture:
    def test_weights_are_the_forward_pass_probabilities(self, lm):
        """The stacked tensor holds exactly what the model's capture gives, layer by layer."""
        ids = lm.encode(TEXT)
        attention = capture_attention(lm, ids)
        reference = lm.run(ids, capture=True).attentions
        c = lm.config
        assert attention.weights.shape == (c.n_layer, c.n_head, len(ids), len(ids))
        assert attention.ids == tuple(ids)
        for layer in range(c.n_layer):
            torch.testing.assert_close(attention.weights[layer], reference[layer][0])

    def test_one_forward_pass_per_capture(self, lm, monkeypatch):
        calls = []
        forward = lm.model.forward

        def counting(ids, *args, **kwargs):
            calls.append(ids.shape)
            return forward(ids, *args, **kwargs)

        monkeypatch.setattr(lm.model, "forward", counting)
        attention = capture_attention(lm, lm.encode(TEXT))
        for layer in range(attention.n_layer):
            for head in range(attention.n_head):
                attention.matrix(layer, head)
            attention.matrix(layer, None)
        assert len(calls) == 1

    def test_early_gets_the_first_layers_before_the_others_run(self, lm, monkeypatch):
        """With `early`, a partial map of layers 0..first comes out before the next block runs; its weights
        and scores are the whole map's for those layers, the later ones unscored."""
        ids = lm.encode(TEXT)
        events, partials = [], []
        last_block = lm.model.blocks[-1]
        forward = last_block.forward
        monkeypatch.setattr(last_block, "forward", lambda *a, **k: (events.append("last block"), forward(*a, **k))[1])
        # (the capture runs the last block's attention alone: weights only, no logits)
        attention_weights = last_block.attention_weights
        monkeypatch.setattr(last_block, "attention_weights",
                            lambda *a, **k: (events.append("last block"), attention_weights(*a, **k))[1])

        def early(partial: AttentionMap) -> None:
            events.append("early")
            partials.append((partial, partial.weights[0].clone()))

        whole = capture_attention(lm, ids, first=0, early=early)
        assert events == ["early", "last block"]
        (partial, layer0), = partials
        assert partial.ready == 1 and partial.partial == 1 and whole.ready == whole.n_layer and whole.partial is None
        assert partial.ids == whole.ids and partial.continuation is None
        torch.testing.assert_close(layer0, whole.weights[0], rtol=0, atol=0)
        torch.testing.assert_close(partial.scores.values[0], whole.scores.values[0], equal_nan=True)
        assert torch.isnan(partial.scores.values[1:]).all()

    def test_early_is_not_called_for_the_last_layer_or_a_whole_reuse(self, lm):
        """Nothing runs after the last layer, so a partial map of it would be the whole one."""
        ids = lm.encode(TEXT)
        calls = []
        first = capture_attention(lm, ids, first=lm.config.n_layer - 1, early=calls.append)
        capture_attention(lm, ids, previous=first, first=0, early=calls.append)  # the same text: nothing runs
        assert calls == []

    def test_rows_sum_to_one_and_never_look_ahead(self, lm):
        attention = capture_attention(lm, lm.encode(TEXT))
        w = attention.weights
        T = attention.n_tokens
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))
        assert torch.all(w.triu(1) == 0)
        assert torch.all(w.diagonal(dim1=-2, dim2=-1)[..., 0] == 1)  # the first token can only look at itself
        assert T > 5

    def test_mean_of_heads(self, lm):
        attention = capture_attention(lm, lm.encode(TEXT))
        for layer in range(attention.n_layer):
            mean = attention.matrix(layer, None)
            heads = [attention.weights[layer, h] for h in range(attention.n_head)]
            torch.testing.assert_close(mean, sum(heads) / attention.n_head)
            torch.testing.assert_close(mean.sum(-1), torch.ones(attention.n_tokens))

    def test_top_keys_strongest_first(self, lm):
        attention = capture_attention(lm, lm.encode(TEXT))
        query = attention.n_tokens - 1
        keys = attention.top_keys(1, 2, query)
        assert len(keys) == query + 1  # every earlier key and itself, never a later one
        weights = [w for _, w in keys]
        assert weights == sorted(weights, reverse=True)
        assert math.isclose(sum(weights), 1.0, rel_tol=1e-5)
        row = attention.weights[1, 2, query]
        for j, w in keys:
            assert w == pytest.approx(float(row[j]))
        assert attention.top_keys(1, 2, query, k=3) == keys[:3]
        early = attention.top_keys(0, 0, 3)
        assert sorted(j for j, _ in early) == [0, 1, 2, 3]

    def test_bad_indices_say_the_range(self, lm):
        attention = capture_attention(lm, lm.encode("a b c"))
        with pytest.raises(IndexError, match=r"layer 2 does not exist \(0..1\)"):
            attention.matrix(2, 0)
        with pytest.raises(IndexError, match=r"head 4 does not exist \(0..3\)"):
            attention.matrix(0, 4)
        with pytest.raises(IndexError, match="query"):
            attention.top_keys(0, 0, attention.n_tokens)

    def test_empty_and_too_long_texts_are_refused_with_a_reason(self, lm):
        with pytest.raises(ValueError, match="empty"):
            capture_attention(lm, [])
        too_long = [5] * (lm.config.context_length + 1)
        with pytest.raises(ValueError, match=f"context window holds {lm.config.context_length}"):
            capture_attention(lm, too_long)
        with pytest.raises(ValueError, match="up to 10"):
            capture_attention(lm, [5] * 11, max_tokens=10)
        check_length(MAX_TOKENS, context_length=8192)  # the default model's limit case passes
        with pytest.raises(ValueError, match=f"up to {MAX_TOKENS}"):
            check_length(MAX_TOKENS + 1, context_length=8192)

    def test_from_weights_checks_the_shape(self):
        with pytest.raises(ValueError, match="n_layer, n_head, T, T"):
            AttentionMap.from_weights([1, 2, 3], torch.zeros(1, 1, 2, 2))


def _pattern_heads(ids: list[int]) -> torch.Tensor:
    """One layer of four heads that each do exactly one thing: previous, first, self, same token earlier."""
    T = len(ids)
    w = torch.zeros(1, 4, T, T)
    for i in range(T):
        w[0, 0, i, max(i - 1, 0)] = 1.0  # previous token (the first token: itself)
        w[0, 1, i, 0] = 1.0  # first token
        w[0, 2, i, i] = 1.0  # itself
        earlier = [j for j in range(i) if ids[j] == ids[i]]
        for j in earlier or [i]:  # every earlier copy, shared; else itself
            w[0, 3, i, j] = 1.0 / len(earlier or [i])
    return w


class TestHeadPatterns:
    IDS = [7, 3, 4, 5, 3, 4, 5, 9]

    def test_each_pattern_head_scores_one_on_its_own_pattern(self):
        scores = head_scores(_pattern_heads(self.IDS), self.IDS)
        for head, pattern in enumerate(PATTERNS):
            own = scores.of(0, head)[pattern]
            assert own == pytest.approx(1.0), (head, pattern)
            assert scores.label(0, head) == (pattern, pytest.approx(1.0))

    def test_scores_measure_shares(self):
        """A head splitting each row between the previous and the first token scores 0.5 on each."""
        ids = list(range(10))
        w = torch.zeros(1, 1, 10, 10)
        w[0, 0, 0, 0] = 1
        w[0, 0, 1, 0] = 1
        for i in range(2, 10):
            w[0, 0, i, i - 1] = 0.5
            w[0, 0, i, 0] = 0.5
        s = head_scores(w, ids).of(0, 0)
        assert s["previous"] == pytest.approx(0.5) and s["first"] == pytest.approx(0.5)
        assert s["self"] == pytest.approx(0.0)
        assert math.isnan(s["same"])  # no token repeats: can't tell

    def test_scores_match_a_query_by_query_reference(self):
        """Every pattern on random causal weights (several layers and heads, tokens repeated up to three
        times) equals the definition spelled out one query at a time."""
        g = torch.Generator().manual_seed(3)
        ids = [5, 1, 5, 2, 1, 5, 3, 2, 7, 1, 4, 4]
        T = len(ids)
        w = torch.rand(3, 2, T, T, generator=g).tril()
        w = w / w.sum(-1, keepdim=True)
        got = head_scores(w, ids).values
        for layer in range(3):
            for head in range(2):
                m = w[layer, head].tolist()
                same_rows = [sum(m[i][j] for j in range(i) if ids[j] == ids[i])
                             for i in range(T) if ids[i] in ids[:i]]
                want = [sum(m[i][i - 1] for i in range(2, T)) / (T - 2), sum(m[i][0] for i in range(2, T)) / (T - 2),
                        sum(m[i][i] for i in range(1, T)) / (T - 1), sum(same_rows) / len(same_rows)]
                assert got[layer, head].tolist() == pytest.approx(want, abs=1e-6), (layer, head)

    def test_labels_need_the_threshold(self):
        ids = list(range(6))
        w = torch.full((1, 1, 6, 6), 0.0)
        for i in range(6):
            w[0, 0, i, : i + 1] = 1.0 / (i + 1)  # spread evenly: no pattern
        scores = head_scores(w, ids)
        assert scores.label(0, 0) is None
        best = max((v, k) for k, v in scores.of(0, 0).items() if not math.isnan(v))
        assert scores.label(0, 0, threshold=best[0]) == (best[1], pytest.approx(best[0]))

    def test_short_texts_are_not_measurable(self):
        w = torch.tensor([[[[1.0, 0.0], [0.5, 0.5]]]])
        s = head_scores(w, [1, 2]).of(0, 0)
        assert math.isnan(s["previous"]) and math.isnan(s["first"]) and math.isnan(s["same"])
        assert s["self"] == pytest.approx(0.5)
        assert head_scores(w, [1, 2]).label(0, 0) == ("self", pytest.approx(0.5))

    def test_a_one_token_text_has_no_measurable_pattern(self):
        """One token (a prompt of one character): every score is NaN, no range error (found by the soak test)."""
        s = head_scores(torch.ones(2, 3, 1, 1), [7])
        assert s.values.shape == (2, 3, len(PATTERNS))
        assert all(math.isnan(v) for v in s.of(1, 2).values())
        assert s.label(0, 0) is None

    def test_a_one_token_capture(self, lm):
        attention = capture_attention(lm, lm.encode("a")[:1])
        assert attention.n_tokens == 1
        assert attention.matrix(0, None).tolist() == [[pytest.approx(1.0)]]


class TestContinuation:
    """A text that continues the last capture runs only its new tokens, from the KV cache the capture kept."""

    @staticmethod
    def counting(lm, monkeypatch) -> list[int]:
        """The number of tokens each forward pass of lm's model runs."""
        runs: list[int] = []
        forward = lm.model.forward

        def counted(ids, *args, **kwargs):
            runs.append(ids.shape[1])
            return forward(ids, *args, **kwargs)

        monkeypatch.setattr(lm.model, "forward", counted)
        return runs

    def test_a_continuation_equals_a_fresh_capture(self, lm, monkeypatch):
        ids = lm.encode(TEXT)
        first = capture_attention(lm, ids[:7])
        runs = self.counting(lm, monkeypatch)
        longer = capture_attention(lm, ids, previous=first)
        assert runs == [len(ids) - 7]  # only the new tokens
        monkeypatch.undo()
        fresh = capture_attention(lm, ids)
        torch.testing.assert_close(longer.weights, fresh.weights, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(longer.scores.values, fresh.scores.values, rtol=1e-5, atol=1e-6, equal_nan=True)
        assert longer.ids == fresh.ids

    def test_continuing_twice_and_a_prefix(self, lm, monkeypatch):
        """Typing on, then deleting back: the prefix is a slice of the last map, no model runs for it."""
        ids = lm.encode(TEXT)
        a = capture_attention(lm, ids[:4])
        b = capture_attention(lm, ids[:9], previous=a)
        c = capture_attention(lm, ids, previous=b)
        runs = self.counting(lm, monkeypatch)
        d = capture_attention(lm, ids[:6], previous=c)
        assert runs == []
        assert capture_attention(lm, ids[:6], previous=d) is d  # the same text: the same map
        monkeypatch.undo()
        for got in (c, d):
            fresh = capture_attention(lm, list(got.ids))
            torch.testing.assert_close(got.weights, fresh.weights, rtol=1e-5, atol=1e-6)

    def test_two_continuations_of_one_map_never_share_its_cache(self, lm, monkeypatch):
        """The cache moves to the first continuation; a second one from the same map runs in full (and is right)."""
        ids = lm.encode(TEXT)
        other = lm.encode("The cat sat on the sofa, then left.")
        base = capture_attention(lm, ids[:5])
        assert other[:5] == ids[:5]
        capture_attention(lm, ids, previous=base)
        runs = self.counting(lm, monkeypatch)
        second = capture_attention(lm, other, previous=base)
        assert runs == [len(other)]
        monkeypatch.undo()
        torch.testing.assert_close(second.weights, capture_attention(lm, other).weights, rtol=1e-5, atol=1e-6)

    def test_changed_weights_run_in_full(self, tiny_hf_llama_dir, monkeypatch):
        """Training (an in-place change of a parameter) makes the old keys and values stale: nothing is reused."""
        from llmtui.engine.lm import LanguageModel

        lm = LanguageModel.load(str(tiny_hf_llama_dir))
        ids = lm.encode(TEXT)
        before = capture_attention(lm, ids)
        with torch.no_grad():
            lm.model.blocks[0].attn.qkv.weight.mul_(1.5)
        runs = self.counting(lm, monkeypatch)
        after = capture_attention(lm, ids, previous=before)
        assert runs == [len(ids)] and after is not before
        assert not torch.allclose(after.weights, before.weights)


def test_engine_module_imports_neither_textual_nor_rich():
    code = ("import sys, llmtui.engine.studies.attention\n"
            "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.default_model
def test_smollm2_has_previous_token_and_first_token_heads(default_lm):
    """On the real model, heads specialise: some look at the previous token, many at the first one."""
    text = "The cat sat on the mat. The dog sat on the rug. The cat and the dog sat together on the mat."
    ids = default_lm.encode(text)
    attention = capture_attention(default_lm, ids)
    values = attention.scores.values  # (30, 9, patterns)
    assert values.shape == (30, 9, len(PATTERNS))
    previous, first = PATTERNS.index("previous"), PATTERNS.index("first")
    assert float(values[..., previous].max()) > 0.6
    assert float(values[..., first].max()) > 0.9
    labels = [attention.scores.label(layer, head) for layer in range(30) for head in range(9)]
    assert sum(1 for x in labels if x and x[0] == "previous") >= 2


@pytest.mark.default_model
def test_smollm2_continuation_equals_a_fresh_capture(default_lm):
    """On the packed default model: the new rows of a continuation (its few tokens through the matrix-vector
    kernel, the old keys from the cache) equal a fresh capture's."""
    ids = default_lm.encode("The cat sat on the mat. The dog sat on the rug. The cat and the dog sat together.")
    continued = capture_attention(default_lm, ids, previous=capture_attention(default_lm, ids[:-5]))
    fresh = capture_attention(default_lm, ids)
    torch.testing.assert_close(continued.weights, fresh.weights, rtol=1e-4, atol=1e-5)
