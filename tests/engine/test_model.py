"""The transformer against Hugging Face transformers (the reference), and its KV cache against recomputation."""

import pytest
import torch

from llmtui.engine.model.config import ModelConfig
from llmtui.engine.loading.load import load_weights
from llmtui.engine.model.transformer import Transformer

transformers = pytest.importorskip("transformers")  # a test dependency: pip install -e '.[test]'


def ours_and_theirs(folder):
    weights = load_weights(str(folder))
    ours = Transformer(weights.config)
    ours.load_state_dict(weights.state_dict, strict=True)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager")
    return ours.eval(), theirs.eval()


@pytest.mark.parametrize("fixture", ["tiny_hf_gpt2_dir", "tiny_hf_llama_dir"])
def test_logits_and_attention_match_transformers(fixture, request):
    folder = request.getfixturevalue(fixture)
    ours, theirs = ours_and_theirs(folder)
    ids = torch.randint(0, ours.config.vocab_size, (2, 17), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        mine = ours(ids, capture=True)
        ref = theirs(ids, output_attentions=True, output_hidden_states=True)
    torch.testing.assert_close(mine.logits, ref.logits, atol=1e-4, rtol=0)
    assert len(mine.attentions) == len(ref.attentions) == ours.config.n_layer
    for a, b in zip(mine.attentions, ref.attentions):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    # The residual stream before the last block's output matches HF's hidden states (the last one is after the final norm in HF).
    for mine_h, ref_h in zip(mine.residuals[:-1], ref.hidden_states[:-1]):
        torch.testing.assert_close(mine_h, ref_h, atol=1e-4, rtol=0)
    # Plain (fused) path gives the same logits as the capture path.
    with torch.no_grad():
        torch.testing.assert_close(ours(ids).logits, mine.logits, atol=1e-5, rtol=0)


def test_tiny_llama_uses_grouped_query_attention(tiny_hf_llama_dir):
    config = load_weights(str(tiny_hf_llama_dir)).config
    assert config.n_kv_head < config.n_head


def tiny(family: str) -> Transformer:
    torch.manual_seed(0)
    config = ModelConfig(
        family=family, vocab_size=97, n_layer=3, n_head=4, n_kv_head=2 if family == "llama" else 0,
        d_model=32, d_ff=48, context_length=40,
    )
    model = Transformer(config).eval()
    for p in model.parameters():  # the default init is too tame to catch position bugs
        torch.nn.init.normal_(p, std=0.3)
    return model


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_kv_cache_decoding_equals_recomputing_at_every_step(family):
    model = tiny(family)
    ids = torch.randint(0, 97, (1, 24), generator=torch.Generator().manual_seed(2))
    cache = model.new_cache()
    with torch.no_grad():
        step_logits = [model(ids[:, :5], cache).logits[0, -1]]
        for t in range(5, 24):
            step_logits.append(model(ids[:, t : t + 1], cache).logits[0, -1])
        for t, logits in enumerate(step_logits, start=5):
            full = model(ids[:, :t]).logits[0, -1]
            torch.testing.assert_close(logits, full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_cache_rewind_then_continue_matches(family):
    model = tiny(family)
    ids = torch.randint(0, 97, (1, 20), generator=torch.Generator().manual_seed(3))
    cache = model.new_cache()
    with torch.no_grad():
        model(ids[:, :15], cache)
        cache.truncate(8)
        several = model(ids[:, 8:20], cache).logits  # a multi-token chunk after a prefix: the masked path
        torch.testing.assert_close(several, model(ids).logits[:, 8:], atol=1e-5, rtol=0)


def test_capture_rows_are_causal_distributions():
    model = tiny("llama")
    with torch.no_grad():
        out = model(torch.arange(12)[None], capture=True)
    assert len(out.residuals) == model.config.n_layer + 1
    for probs in out.attentions:
        assert probs.shape == (1, 4, 12, 12)
        torch.testing.assert_close(probs.sum(-1), torch.ones(1, 4, 12))
        assert torch.all(probs.triu(diagonal=1) == 0)
    # The residual stream adds up: each layer's output is the previous plus its attention and MLP outputs.
    for i in range(model.config.n_layer):
        torch.testing.assert_close(out.residuals[i + 1], out.residuals[i] + out.attn_outputs[i] + out.mlp_outputs[i])
    # And the last residual through the final norm and unembedding is the logits.
    torch.testing.assert_close(model.unembed(out.residuals[-1]), out.logits)


def test_a_capture_without_logits_skips_the_unembedding_and_keeps_the_same_internals(monkeypatch):
    model = tiny("llama")
    ids = torch.arange(12)[None]
    with torch.no_grad():
        full = model(ids, capture=True)
        monkeypatch.setattr(model, "unembed", lambda x: pytest.fail("the unembedding ran"))
        bare = model(ids, capture=True, logits=False)
    assert bare.logits is None
    for name in ("attentions", "residuals", "attn_outputs", "mlp_outputs"):
        for mine, theirs in zip(getattr(bare, name), getattr(full, name)):
            assert torch.equal(mine, theirs), name


def test_a_capture_of_attention_weights_alone_skips_the_last_blocks_output_and_mlp(monkeypatch):
    """What the Attention pane captures (weights, no logits) needs neither the last block's attention output
    nor its MLP; its weights and the KV cache it fills are those of the full pass."""
    model = tiny("llama")
    ids = torch.arange(12)[None]
    with torch.no_grad():
        full_cache, bare_cache = model.new_cache(), model.new_cache()
        full = model(ids, full_cache, capture=True)
        last, ran = model.blocks[-1], []
        mlp, o_proj = last.mlp.forward, last.attn.o_proj.forward
        monkeypatch.setattr(last.mlp, "forward", lambda x: ran.append("mlp") or mlp(x))
        monkeypatch.setattr(last.attn.o_proj, "forward", lambda x: ran.append("o_proj") or o_proj(x))
        bare = model(ids, bare_cache, capture={"attn_weights"}, logits=False)
        assert ran == []
        for mine, theirs in zip(bare.attentions, full.attentions):
            assert torch.equal(mine, theirs)
        assert bare_cache.length == full_cache.length == 12
        more = torch.arange(12, 15)[None]  # the caches continue alike
        assert torch.equal(model(more, bare_cache, capture={"attn_weights"}, logits=False).attentions[-1],
                           model(more, full_cache, capture={"attn_weights"}, logits=False).attentions[-1])
        ran.clear()
        model(ids, capture={"attn_weights", "mlp_out"}, logits=False)  # anything else still runs the whole pass
        assert ran == ["o_proj", "mlp"]


def test_plain_forward_captures_nothing():
    out = tiny("gpt2")(torch.arange(5)[None])
    assert out.attentions == [] and out.residuals == [] and out.mlp_outputs == []


def test_context_window_is_enforced_with_a_message():
    model = tiny("gpt2")
    with pytest.raises(ValueError, match="context window of 40"):
        model(torch.zeros(1, 41, dtype=torch.long))
    cache = model.new_cache()
    model(torch.zeros(1, 40, dtype=torch.long), cache)
    with pytest.raises(ValueError, match="context window"):
        model(torch.zeros(1, 1, dtype=torch.long), cache)


def test_config_rejects_impossible_shapes():
    with pytest.raises(ValueError, match="multiple of n_kv_head"):
        ModelConfig(family="llama", vocab_size=10, n_layer=1, n_head=6, n_kv_head=4, d_model=24, d_ff=8, context_length=8)
    with pytest.raises(ValueError, match="unknown model family"):
        ModelConfig(family="mamba", vocab_size=10, n_layer=1, n_head=2, d_model=8, d_ff=8, context_length=8)  # type: ignore[arg-type]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none in CI); the device tool runs it")
def test_cuda_matches_cpu():
    model = tiny("llama")
    ids = torch.randint(0, 97, (1, 16))
    with torch.no_grad():
        cpu = model(ids).logits
        gpu = model.to("cuda")(ids.to("cuda")).logits.cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-4, rtol=0)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_cache_grows_across_its_boundary_and_equals_recomputing(family):
    """A cache that starts with room for 4 positions doubles as decoding needs more; logits stay exact."""
    model = tiny(family)
    ids = torch.randint(0, 97, (1, 30), generator=torch.Generator().manual_seed(4))
    cache = model.new_cache(initial=4)
    assert cache.capacity == 4
    capacities = []
    with torch.no_grad():
        step_logits = [model(ids[:, :3], cache).logits[0, -1]]
        for t in range(3, 30):
            step_logits.append(model(ids[:, t : t + 1], cache).logits[0, -1])
            capacities.append(cache.capacity)
        for t, logits in enumerate(step_logits, start=3):
            torch.testing.assert_close(logits, model(ids[:, :t]).logits[0, -1], atol=1e-5, rtol=0)
    assert sorted(set(capacities)) == [4, 8, 16, 32]  # doubled when 5, 9 and 17 positions were needed
    # A multi-token chunk that crosses the boundary after a rewind grows it too.
    cache = model.new_cache(initial=4)
    with torch.no_grad():
        model(ids[:, :3], cache)
        chunk = model(ids[:, 3:20], cache).logits
        torch.testing.assert_close(chunk, model(ids[:, :20]).logits[:, 3:], atol=1e-5, rtol=0)
        cache.truncate(2)
        again = model(ids[:, 2:25], cache).logits
        torch.testing.assert_close(again, model(ids[:, :25]).logits[:, 2:], atol=1e-5, rtol=0)
    assert cache.capacity == 32 and cache.length == 25


def test_cache_growth_stops_at_the_context_window_with_an_error():
    """Doubling is capped at the context length (40 here, not 64); past it a forward pass says why."""
    model = tiny("llama")
    cache = model.new_cache(initial=5)
    with torch.no_grad():
        model(torch.zeros(1, 21, dtype=torch.long), cache)  # 5 -> 10 -> 20 -> 40
        assert cache.capacity == 40
        for _ in range(19):
            model(torch.zeros(1, 1, dtype=torch.long), cache)
        assert cache.length == 40 and cache.capacity == 40
        with pytest.raises(ValueError, match="context window of 40"):
            model(torch.zeros(1, 1, dtype=torch.long), cache)
    assert cache.length == 40  # the failed call changed nothing
    # Used directly, the cache itself refuses past its cap (a ValueError, never an IndexError).
    small = model.new_cache(max_len=6, initial=2)
    k = torch.zeros(1, 2, 7, model.config.head_dim)
    with pytest.raises(ValueError, match="room for at most 6"):
        small.append(0, k, k)


def test_a_new_cache_is_small_until_it_is_used():
    model = tiny("llama")
    per_position = model.new_cache(initial=1).nbytes
    assert model.new_cache(initial=8).nbytes == 8 * per_position
    assert model.new_cache().capacity == model.config.context_length  # 40 < the default block
    assert model.new_cache(initial=1000).capacity == 40
