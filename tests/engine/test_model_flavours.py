"""The flavour fields in the model itself: KV-cache decoding equals recomputing for every family's
flavour (sliding windows included), the residual rules add up, and internals are captured by name.
Parity with transformers, family by family, is in test_families.py."""

import pytest
import torch

from llmtui.engine.model.config import ModelConfig, RopeScaling
from llmtui.engine.model.transformer import CAPTURE_NAMES, Capture, Transformer

FLAVOURS = {
    "llama": dict(family="llama", n_kv_head=2),
    "mistral (window 5)": dict(family="mistral", n_kv_head=2, sliding_window=5),
    "qwen2": dict(family="qwen2", n_kv_head=2),
    "qwen3": dict(family="qwen3", n_kv_head=2),
    "gemma2": dict(family="gemma2", sliding_window=5, sliding_layers=(True, False, True), attn_softcap=3.0,
                   final_softcap=5.0, query_pre_attn_scalar=6.0),
    "gemma3": dict(family="gemma3", n_kv_head=2, sliding_window=5, sliding_layers=(True, True, False),
                   rope_local_theta=500.0, rope_scaling=RopeScaling("linear", factor=2.0)),
    "olmo2": dict(family="olmo2"),
    "gptneox": dict(family="gptneox", rotary_dim=4),
    "gptneox (sequential)": dict(family="gptneox", rotary_dim=4, parallel_residual=False),
    "llama3 rope": dict(family="llama", rope_scaling=RopeScaling("llama3", factor=8.0, original_context=16)),
    "yarn rope": dict(family="llama", rope_scaling=RopeScaling("yarn", factor=4.0, original_context=16)),
    "dynamic rope": dict(family="llama", rope_scaling=RopeScaling("dynamic", factor=2.0)),
}  # fmt: skip


def tiny(flavour: str, **overrides) -> Transformer:
    torch.manual_seed(0)
    fields = dict(vocab_size=97, n_layer=3, n_head=4, d_model=32, d_ff=48, context_length=40)
    model = Transformer(ModelConfig(**{**fields, **FLAVOURS[flavour], **overrides})).eval()
    for p in model.parameters():  # the default init is too tame to catch position bugs
        torch.nn.init.normal_(p, std=0.3)
    return model


def ids(n: int, seed: int = 2) -> torch.Tensor:
    return torch.randint(0, 97, (1, n), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_kv_cache_decoding_equals_recomputing_past_the_window(flavour):
    model, tokens = tiny(flavour), ids(24)
    cache = model.new_cache(initial=4)
    with torch.no_grad():
        step_logits = [model(tokens[:, :3], cache).logits[0, -1]]
        for t in range(3, 24):
            step_logits.append(model(tokens[:, t : t + 1], cache).logits[0, -1])
        assert cache.length == 24
        for t, logits in enumerate(step_logits, start=3):
            torch.testing.assert_close(logits, model(tokens[:, :t]).logits[0, -1], atol=1e-4, rtol=0)
        # A multi-token chunk after a rewind: the masked path, window included.
        cache.truncate(9)
        chunk = model(tokens[:, 9:20], cache).logits
        torch.testing.assert_close(chunk, model(tokens[:, :20]).logits[:, 9:], atol=1e-4, rtol=0)


def test_the_sliding_window_hides_older_keys_only():
    windowed, full = tiny("mistral (window 5)"), tiny("mistral (window 5)", sliding_window=0)
    with torch.no_grad():
        a, b = windowed(ids(12)).logits[0], full(ids(12)).logits[0]
        out = windowed(ids(12), capture={"attn_weights"})
    torch.testing.assert_close(a[:5], b[:5])  # the first five positions see no older key
    assert not torch.allclose(a[5:], b[5:], atol=1e-3)
    for probs in out.attentions:  # query i sees keys i-4 .. i
        mask = probs[0, 0] > 0
        assert mask.sum(-1).tolist() == [1, 2, 3, 4, 5, 5, 5, 5, 5, 5, 5, 5]
        assert not mask.triu(1).any() and not mask.tril(-5).any()


@pytest.mark.parametrize("flavour", ["llama", "gemma2", "olmo2", "gptneox", "gptneox (sequential)"])
def test_each_residual_rule_adds_up(flavour):
    """Whatever the rule (pre-norm, pre+post, post only, parallel), resid_post = resid_pre + attn_out + mlp_out."""
    model = tiny(flavour)
    with torch.no_grad():
        out = model(ids(12), capture=True)
        plain = model(ids(12)).logits
    for i in range(model.config.n_layer):
        torch.testing.assert_close(out.residuals[i + 1], out.residuals[i] + out.attn_outputs[i] + out.mlp_outputs[i])
    torch.testing.assert_close(model.unembed(out.residuals[-1]), out.logits)
    torch.testing.assert_close(plain, out.logits, atol=1e-5, rtol=0)  # the fused path agrees


def test_capture_by_name_keeps_only_what_is_asked():
    model = tiny("llama")
    with torch.no_grad():
        everything = model(ids(8), capture=True)
        weights = model(ids(8), capture={"attn_weights"})
        one_layer = model(ids(8), capture=Capture(frozenset({"resid_post", "mlp_out"}), layers=frozenset({1})))
        nothing = model(ids(8))
    assert len(weights.attentions) == 3 and weights.residuals == weights.attn_outputs == weights.mlp_outputs == []
    for a, b in zip(weights.attentions, everything.attentions, strict=True):
        torch.testing.assert_close(a, b)
    assert one_layer.attentions == [] and one_layer.attn_outputs == []
    assert [r is None for r in one_layer.residuals] == [False, True, False, True]  # embeddings, then layer 1 only
    torch.testing.assert_close(one_layer.residuals[2], everything.residuals[2])
    assert [m is None for m in one_layer.mlp_outputs] == [True, False, True]
    assert nothing.attentions == nothing.residuals == nothing.attn_outputs == nothing.mlp_outputs == []
    assert Capture.of(True).names == set(CAPTURE_NAMES) and Capture.of("attn_weights").names == {"attn_weights"}
    with pytest.raises(ValueError, match="can't capture resid_mid: capture names are attn_weights"):
        model(ids(4), capture={"resid_mid"})


def test_the_cache_counts_positions_when_every_layer_has_appended():
    model = tiny("llama")
    cache = model.new_cache()
    k = torch.zeros(1, 2, 3, model.config.head_dim)
    cache.append(0, k, k)
    cache.append(1, k, k)
    assert cache.length == 0  # a step half done (an error in layer 2) leaves the cache as it was
    cache.append(2, k, k)
    assert cache.length == 3
    with pytest.raises(AttributeError):
        cache.length = 5  # only the cache moves its length
