"""Embedding analysis: the normalised index, query parsing, vector arithmetic, PCA maps, vectors in context.

Most tests run on a tiny random Llama (fast, every token id checked); the facts about
meaning (" dog" near " puppy", king - man + woman = " queen") on the real default model.
"""

from __future__ import annotations

import pytest
import torch

from llmtui.engine.studies.embeddings import (
    EmbeddingIndex,
    QueryError,
    cosine_by_layer,
    cosine_to_others_by_layer,
    cosine_to_tokens,
    layer_neighbours,
    locate_word,
    map_vectors,
    neighbours,
    parse_query,
    pca_2d,
    query_neighbours,
    query_vector,
    sentence_vectors,
    term_vector,
    token_query_text,
)


@pytest.fixture(scope="module")
def tiny_index(tiny_lm) -> EmbeddingIndex:
    return EmbeddingIndex(tiny_lm.model.tok_emb.weight)


def single_token_words(lm, n: int = 8) -> list[str]:
    """Words of the tiny vocabulary that are one token with a leading space (" capital", ...)."""
    out = []
    for i in range(lm.tokenizer.vocab_size):
        text = lm.tokenizer.token_text(i)
        if text.startswith(" ") and text[1:].isalpha() and len(text) > 3:
            out.append(text[1:])
    assert len(out) >= n, out
    return out[:n]


# -- the index ------------------------------------------------------------------------------------


class TestIndex:
    def test_rows_are_unit_vectors_of_the_embedding_matrix(self, tiny_lm, tiny_index):
        weight = tiny_lm.model.tok_emb.weight.detach()
        assert tiny_index.unit.shape == weight.shape
        torch.testing.assert_close(tiny_index.unit.norm(dim=-1), torch.ones(weight.shape[0]))
        torch.testing.assert_close(tiny_index.unit * weight.norm(dim=-1, keepdim=True), weight)

    def test_neighbours_are_the_most_cosine_similar_tokens_sorted(self, tiny_lm, tiny_index):
        weight = tiny_lm.model.tok_emb.weight.detach()
        token = 100
        expected = torch.nn.functional.cosine_similarity(weight[token].unsqueeze(0), weight, dim=-1)
        expected[token] = -2  # itself is left out
        result = neighbours(tiny_lm, tiny_index, token, k=20)
        assert [n.id for n in result] == torch.topk(expected, 20).indices.tolist()
        sims = [n.similarity for n in result]
        assert sims == sorted(sims, reverse=True)
        torch.testing.assert_close(torch.tensor(sims), torch.topk(expected, 20).values)
        assert all(n.text == tiny_lm.tokenizer.token_text(n.id) for n in result)

    def test_a_query_does_not_renormalise_the_matrix(self, tiny_lm, tiny_index, monkeypatch):
        calls: list[tuple[int, ...]] = []
        original = torch.nn.functional.normalize

        def counting(x, *args, **kwargs):
            calls.append(tuple(x.shape))
            return original(x, *args, **kwargs)

        monkeypatch.setattr(torch.nn.functional, "normalize", counting)
        unit = tiny_index.unit
        query = parse_query(single_token_words(tiny_lm)[0], tiny_lm.tokenizer)
        query_neighbours(tiny_lm.tokenizer, tiny_index, query, k=30)
        neighbours(tiny_lm, tiny_index, 7, k=5)
        assert tiny_index.unit is unit
        assert calls and all(len(shape) == 1 or shape[0] < tiny_index.vocab_size for shape in calls), calls

    def test_excluded_tokens_never_appear_and_k_is_kept(self, tiny_index):
        exclude = frozenset(range(0, 320, 3))
        pairs = tiny_index.nearest(tiny_index.vector(5), 25, exclude)
        assert len(pairs) == 25 and not {i for i, _ in pairs} & exclude


# -- queries ---------------------------------------------------------------------------------------


class TestParse:
    def test_a_bare_word_gets_a_leading_space_by_default(self, tiny_lm):
        word = single_token_words(tiny_lm)[0]
        query = parse_query(word, tiny_lm.tokenizer)
        assert query.kind == "word" and len(query.terms) == 1
        term = query.terms[0]
        assert term.text == " " + word and term.ids == tuple(tiny_lm.encode(" " + word))
        assert term.alt_text == word and term.alt_ids == tuple(tiny_lm.encode(word))
        plain = parse_query(word, tiny_lm.tokenizer, leading_space=False).terms[0]
        assert plain.text == word and plain.ids == tuple(tiny_lm.encode(word)) and plain.alt_text == " " + word

    def test_quotes_are_exact_and_hash_is_an_id(self, tiny_lm):
        exact = parse_query('" capital"', tiny_lm.tokenizer, leading_space=False).terms[0]
        assert exact.kind == "exact" and exact.text == " capital" and exact.ids == tuple(tiny_lm.encode(" capital"))
        by_id = parse_query("#42", tiny_lm.tokenizer).terms[0]
        assert by_id.kind == "id" and by_id.ids == (42,) and by_id.text == tiny_lm.tokenizer.token_text(42)

    @pytest.mark.parametrize(
        "text", ["king - man + woman", "king-man+woman", "king − man + woman", "  king -man+ woman "]
    )
    def test_expressions(self, tiny_lm, text):
        query = parse_query(text, tiny_lm.tokenizer)
        assert query.kind == "expression"
        assert [(t.sign, t.source) for t in query.terms] == [(1, "king"), (-1, "man"), (1, "woman")]
        assert query.input_ids == frozenset(i for t in query.terms for i in t.ids)

    def test_a_list_is_words_without_signs_and_repeats_count_once(self, tiny_lm):
        query = parse_query("cat dog puppy dog", tiny_lm.tokenizer)
        assert query.kind == "list" and [t.source for t in query.terms] == ["cat", "dog", "puppy"]
        assert parse_query("-cat", tiny_lm.tokenizer).kind == "expression"

    @pytest.mark.parametrize(
        "text, words",
        [
            ("", "empty"),
            ("   ", "empty"),
            ("king - - ", "two signs in a row"),
            ("+", "needs a word after it"),
            ("king -", "needs a word after it"),
            ("king +", "needs a word after it"),
            ("- - king", "two signs in a row"),
            ("king man - woman", "needs + or -"),
            ('"king', "not closed"),
            ('""', "empty quotes"),
            ("#99999", "no token #99999"),
        ],
    )
    def test_malformed_queries_say_what_is_wrong(self, tiny_lm, text, words):
        with pytest.raises(QueryError) as error:
            parse_query(text, tiny_lm.tokenizer)
        assert words in str(error.value)
        assert 0 <= error.value.start <= error.value.end <= max(len(text), 0)

    def test_the_error_points_at_the_culprit(self, tiny_lm):
        with pytest.raises(QueryError) as error:
            parse_query("king - - man", tiny_lm.tokenizer)
        assert "king - - man"[error.value.start : error.value.end] == "- -"

    def test_too_many_words(self, tiny_lm):
        with pytest.raises(QueryError, match="at most 3"):
            parse_query("a b c d", tiny_lm.tokenizer, max_terms=3)

    @pytest.mark.parametrize("leading_space", [True, False])
    def test_every_token_can_be_typed_back(self, tiny_lm, leading_space):
        tokenizer = tiny_lm.tokenizer
        for token_id in range(tokenizer.vocab_size):
            text = token_query_text(tokenizer, token_id, leading_space)
            query = parse_query(text, tokenizer, leading_space)
            assert query.kind == "word" and query.terms[0].ids == (token_id,), (token_id, text)
            assert text.isprintable()


class TestVectors:
    def test_a_term_of_several_tokens_is_their_normalised_mean(self, tiny_lm, tiny_index):
        ids = [3, 50, 77]
        expected = tiny_index.unit[ids].mean(dim=0)
        torch.testing.assert_close(term_vector(tiny_index, ids), expected / expected.norm())

    def test_a_word_of_several_tokens_uses_the_chosen_one_or_the_mean(self, tiny_lm, tiny_index):
        query = parse_query('"Paris Rome"', tiny_lm.tokenizer)
        ids = query.terms[0].ids
        assert len(ids) > 1
        torch.testing.assert_close(query_vector(tiny_index, query, 1), tiny_index.vector(ids[1]))
        torch.testing.assert_close(query_vector(tiny_index, query), term_vector(tiny_index, ids))

    def test_an_expression_is_the_signed_sum_of_unit_vectors(self, tiny_lm, tiny_index):
        a, b, c = single_token_words(tiny_lm, 3)
        query = parse_query(f"{a} - {b} + {c}", tiny_lm.tokenizer)
        va, vb, vc = (
            tiny_index.vector(t.ids[0]) if len(t.ids) == 1 else term_vector(tiny_index, t.ids) for t in query.terms
        )
        torch.testing.assert_close(query_vector(tiny_index, query), va - vb + vc)

    def test_inputs_are_left_out_only_when_asked(self, tiny_lm, tiny_index):
        a, b, c = single_token_words(tiny_lm, 3)
        query = parse_query(f"{a} - {b} + {c}", tiny_lm.tokenizer)
        hidden = query_neighbours(tiny_lm.tokenizer, tiny_index, query, k=320)
        assert not {n.id for n in hidden.neighbours} & query.input_ids and hidden.excluded == query.input_ids
        shown = query_neighbours(tiny_lm.tokenizer, tiny_index, query, k=320, hide_inputs=False)
        assert query.input_ids <= {n.id for n in shown.neighbours}

    def test_a_list_has_no_single_vector(self, tiny_lm, tiny_index):
        with pytest.raises(ValueError):
            query_vector(tiny_index, parse_query("cat dog", tiny_lm.tokenizer))


# -- PCA -------------------------------------------------------------------------------------------


class TestPCA:
    def test_matches_an_svd_of_the_centred_points(self):
        torch.manual_seed(0)
        x = torch.randn(30, 64, dtype=torch.float64) * torch.linspace(3, 0.1, 64, dtype=torch.float64)
        projection = pca_2d(x)
        centred = x - x.mean(dim=0)
        u, s, _ = torch.linalg.svd(centred, full_matrices=False)
        expected = u[:, :2] * s[:2]
        got = torch.tensor(projection.xy, dtype=torch.float64)
        for j in range(2):  # the same axes, up to their sign
            sign = torch.sign((got[:, j] * expected[:, j]).sum())
            torch.testing.assert_close(got[:, j], sign * expected[:, j], atol=1e-6, rtol=1e-6)
        ratios = (s**2 / (s**2).sum())[:2]
        torch.testing.assert_close(torch.tensor(projection.explained, dtype=torch.float64), ratios)

    def test_the_same_points_give_the_same_map(self):
        x = torch.randn(12, 32)
        assert pca_2d(x) == pca_2d(x.clone())
        flipped = pca_2d(-x)  # a mirrored cloud: the signs are fixed, so the map is the same
        for (a, b), (c, d) in zip(pca_2d(x).xy, flipped.xy):
            assert abs(a - c) < 1e-6 and abs(b - d) < 1e-6

    def test_degenerate_sets(self):
        assert pca_2d(torch.zeros(0, 5)).xy == ()
        assert pca_2d(torch.randn(1, 5)).xy == ((0.0, 0.0),)
        two = pca_2d(torch.tensor([[0.0, 0.0], [3.0, 4.0]]))
        assert (
            two.xy[0][1] == 0.0 and abs(abs(two.xy[0][0] - two.xy[1][0]) - 5.0) < 1e-9 and two.explained == (1.0, 0.0)
        )
        assert pca_2d(torch.ones(4, 3)).xy == ((0.0, 0.0),) * 4

    def test_two_clusters_fall_apart_on_the_first_axis(self):
        torch.manual_seed(1)
        centre = torch.randn(16)
        x = torch.cat([centre + 0.05 * torch.randn(5, 16), -centre + 0.05 * torch.randn(5, 16)])
        xs = [p[0] for p in pca_2d(x).xy]
        assert (max(xs[:5]) < min(xs[5:])) or (min(xs[:5]) > max(xs[5:]))

    def test_map_vectors_uses_unit_vectors_and_extras(self, tiny_index):
        ids = [[1], [2], [3, 4]]
        extra = torch.randn(tiny_index.unit.shape[1]) * 100
        got = map_vectors(tiny_index, ids, extra=[extra])
        rows = torch.stack([term_vector(tiny_index, i) for i in ids] + [extra / extra.norm()])
        expected = pca_2d(rows)
        assert len(got.xy) == 4
        torch.testing.assert_close(torch.tensor(got.xy), torch.tensor(expected.xy), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(torch.tensor(got.explained), torch.tensor(expected.explained))


# -- vectors in context ----------------------------------------------------------------------------


class TestContext:
    def test_residuals_per_layer_and_the_word_found(self, tiny_lm):
        a = sentence_vectors(tiny_lm, "The capital of France is Paris", "France")
        ids = tiny_lm.encode("The capital of France is Paris")
        assert a.ids == tuple(ids)
        assert a.residuals.shape == (tiny_lm.config.n_layer + 1, len(ids), tiny_lm.config.d_model)
        assert tiny_lm.tokenizer.decode(ids[a.span[0] : a.span[1]]) == " France"
        torch.testing.assert_close(a.residuals[0], tiny_lm.model.tok_emb.weight[ids].detach())  # layer 0: embeddings
        torch.testing.assert_close(a.word_vector(2), a.residuals[2, a.position])

    def test_a_causal_model_gives_the_same_vector_while_the_sentences_agree(self, tiny_lm):
        a = sentence_vectors(tiny_lm, "The capital of France is Paris", "capital")
        b = sentence_vectors(tiny_lm, "The capital of Italy is Rome", "capital")
        same = cosine_by_layer(a, b)
        assert len(same) == tiny_lm.config.n_layer + 1 and all(abs(s - 1) < 1e-5 for s in same)
        c = sentence_vectors(tiny_lm, "Hello world! The capital", "capital")  # other words before it
        other = cosine_by_layer(a, c)
        assert abs(other[0] - 1) < 1e-5 and other[-1] < 0.9999

    def test_comparisons(self, tiny_lm):
        a = sentence_vectors(tiny_lm, "The capital of France", "capital")
        b = sentence_vectors(tiny_lm, "Hello there, the capital", "capital")
        layer = 1
        sims = cosine_to_tokens(a.word_vector(layer), b, layer)
        assert len(sims) == len(b.ids)
        assert abs(sims[b.position] - cosine_by_layer(a, b)[layer]) < 1e-5
        others = cosine_to_others_by_layer(a, b)
        rest = [s for p, s in enumerate(sims) if not b.span[0] <= p < b.span[1]]
        assert others is not None and abs(others[layer] - sum(rest) / len(rest)) < 1e-5
        alone = sentence_vectors(tiny_lm, "capital", "capital")
        assert cosine_to_others_by_layer(a, alone) is None

    def test_words_not_in_the_sentence(self, tiny_lm):
        with pytest.raises(ValueError, match="not a word of this sentence"):
            sentence_vectors(tiny_lm, "The capital of France", "Rome")
        with pytest.raises(ValueError, match="empty"):
            sentence_vectors(tiny_lm, "  ", "Rome")
        with pytest.raises(ValueError, match="empty"):
            locate_word(tiny_lm.tokenizer, tiny_lm.encode("The capital"), "  ")
        assert locate_word(tiny_lm.tokenizer, tiny_lm.encode("capital of"), "capital")[0] == 0  # no space at the start

    def test_layer_neighbours_read_through_the_final_norm(self, tiny_lm, tiny_index):
        a = sentence_vectors(tiny_lm, "The capital of France", "France")
        vector = a.word_vector(2)
        got = layer_neighbours(tiny_lm, tiny_index, vector, 5)
        normed = tiny_lm.model.final_norm(vector.unsqueeze(0))[0].detach()
        assert [n.id for n in got] == [i for i, _ in tiny_index.nearest(normed, 5)]


# -- the facts on the real model -------------------------------------------------------------------


@pytest.mark.default_model
class TestDefaultModel:
    @pytest.fixture(scope="class")
    def index(self, default_lm) -> EmbeddingIndex:
        return EmbeddingIndex(default_lm.model.tok_emb.weight)

    def test_dog_is_near_dogs_puppy_and_cat(self, default_lm, index):
        (dog,) = default_lm.encode(" dog")
        texts = [n.text for n in neighbours(default_lm, index, dog, 20)]
        assert {" dogs", " puppy", " cat"} <= set(texts), texts

    def test_king_minus_man_plus_woman_is_queen(self, default_lm, index):
        query = parse_query("king - man + woman", default_lm.tokenizer)
        assert [t.text for t in query.terms] == [" king", " man", " woman"]
        result = query_neighbours(default_lm.tokenizer, index, query, 10)
        assert result.neighbours[0].text == " queen"

    def test_without_the_space_the_words_are_other_tokens(self, default_lm):
        spaced = parse_query("dog", default_lm.tokenizer).terms[0]
        plain = parse_query("dog", default_lm.tokenizer, leading_space=False).terms[0]
        assert spaced.ids != plain.ids and spaced.alt_ids == plain.ids

    def test_cat_in_two_sentences(self, default_lm, index):
        a = sentence_vectors(default_lm, "The cat chased the dog", "cat")
        b = sentence_vectors(default_lm, "I pet the cat", "cat")
        by_layer = cosine_by_layer(a, b)
        assert abs(by_layer[0] - 1) < 1e-5 and by_layer[-1] < 0.95  # the same embedding, then context pulls apart
        others = cosine_to_others_by_layer(a, b)
        middle = a.n_layers // 2
        assert others is not None and by_layer[middle] > others[middle]  # still closer than B's other words
        assert layer_neighbours(default_lm, index, a.word_vector(0), 1)[0].text == " cat"
