"""ModelConfig: family defaults fill the flavour fields; impossible or damaged values are refused."""

import dataclasses
import json
import math

import pytest

from llmtui.engine.model.config import FAMILY_DEFAULTS, ModelConfig, RopeScaling

SHAPE = dict(vocab_size=10, n_layer=2, n_head=2, d_model=8, d_ff=8, context_length=8)


def config(family: str = "llama", **overrides) -> ModelConfig:
    return ModelConfig(family=family, **{**SHAPE, **overrides})


def test_gpt2_and_llama_keep_their_flavours():
    gpt2, llama = config("gpt2"), config("llama")
    assert (gpt2.norm, gpt2.mlp, gpt2.activation, gpt2.positions) == ("layernorm", "plain", "gelu_tanh", "learned")
    assert (gpt2.qkv_bias, gpt2.o_bias, gpt2.mlp_bias, gpt2.norm_bias) == (True, True, True, True)
    assert (llama.norm, llama.mlp, llama.activation, llama.positions) == ("rmsnorm", "gated", "silu", "rope")
    assert (llama.qkv_bias, llama.o_bias, llama.mlp_bias, llama.norm_bias) == (False, False, False, False)
    for c in (gpt2, llama):
        assert (c.pre_norm, c.post_norm, c.parallel_residual, c.qk_norm) == (True, False, False, "none")
        assert (c.norm_offset, c.embed_scale, c.sliding_window, c.attn_softcap, c.final_softcap) == (0, 1, 0, 0, 0)
        assert c.rotary_dim == c.head_dim == 4 and c.query_pre_attn_scalar == 4 and c.rope_scaling is None


def test_family_defaults_are_the_families_flavours():
    assert config("qwen2").qkv_bias and not config("qwen2").o_bias
    assert config("qwen3").qk_norm == "head" and config("olmo2").qk_norm == "proj"
    gemma = config("gemma3")
    assert (gemma.norm_offset, gemma.embed_scale, gemma.activation) == (1.0, math.sqrt(8), "gelu_tanh")
    assert gemma.pre_norm and gemma.post_norm
    olmo = config("olmo2")
    assert not olmo.pre_norm and olmo.post_norm
    neox = config("gptneox")
    assert (neox.norm, neox.activation, neox.parallel_residual, neox.positions) == ("layernorm", "gelu", True, "rope")
    # Any default can be overridden: a NeoX without the parallel residual, a Llama with attention biases.
    assert not config("gptneox", parallel_residual=False).parallel_residual
    biased = config("llama", qkv_bias=True, o_bias=True)
    assert biased.qkv_bias and biased.o_bias and not biased.mlp_bias


def test_every_family_builds():
    for family in FAMILY_DEFAULTS:
        assert config(family).family == family


def test_sliding_window_per_layer():
    everywhere = config("mistral", sliding_window=4)
    assert [everywhere.is_sliding(i) for i in range(2)] == [True, True]
    alternating = config("gemma2", sliding_window=4, sliding_layers=(True, False))
    assert [alternating.is_sliding(i) for i in range(2)] == [True, False]
    assert not config().is_sliding(0)
    with pytest.raises(ValueError, match="one true/false per layer"):
        config(sliding_window=4, sliding_layers=(True,))
    with pytest.raises(ValueError, match="needs a sliding_window"):
        config(sliding_layers=(True, False))


def test_round_trips_through_json_as_the_weight_cache_stores_it():
    original = config(
        "phi3", sliding_window=3, sliding_layers=(True, False), rotary_dim=2,
        rope_scaling=RopeScaling("longrope", original_context=4, short_factor=(1.0,), long_factor=(2.0,)),
    )
    again = ModelConfig(**json.loads(json.dumps(dataclasses.asdict(original))))
    assert again == original and isinstance(again.rope_scaling, RopeScaling)


def test_configs_written_before_the_activation_field_still_read():
    """The weight cache holds configs with mlp='swiglu' / 'gelu' (no activation): same computation."""
    assert (config(mlp="swiglu").mlp, config(mlp="swiglu").activation) == ("gated", "silu")
    assert (config("gpt2", mlp="gelu").mlp, config("gpt2", mlp="gelu").activation) == ("plain", "gelu_tanh")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(family="mamba"), "unknown model family"),
        (dict(n_head=3, n_kv_head=2, d_model=6), "multiple of n_kv_head"),
        (dict(d_model=9), "not divisible"),
        (dict(n_layer=0), "n_layer must be positive"),
        (dict(sliding_window=-1), "sliding_window must be positive"),
        (dict(rope_theta=float("nan")), "rope_theta must be a finite"),
        (dict(attn_softcap=-1.0), "attn_softcap must be a finite, non-negative"),
        (dict(embed_scale=0.0), "embed_scale must be a finite, positive"),
        (dict(norm="batchnorm"), "norm must be one of layernorm, rmsnorm"),
        (dict(activation="relu"), "activation must be one of"),
        (dict(qk_norm="both"), "qk_norm must be one of"),
        (dict(family="gpt2", qk_norm="head"), "RMSNorm models only"),
        (dict(norm_bias=True), "RMSNorm has no bias"),
        (dict(pre_norm=False), "pre_norm, post_norm or both"),
        (dict(parallel_residual=True, post_norm=True), "pre-norm blocks only"),
        (dict(rotary_dim=3), "rotary_dim must be even"),
        (dict(rotary_dim=6), "at most head_dim"),
        (dict(family="gpt2", rope_scaling=RopeScaling("linear", factor=2.0)), "need positions='rope'"),
        (dict(rope_scaling=RopeScaling("longrope", short_factor=(1.0,), long_factor=(1.0,))), "needs 2"),
        (dict(pre_norm="yes"), "pre_norm must be true or false"),
    ],
)
def test_impossible_configs_are_refused_with_a_reason(overrides, message):
    family = overrides.pop("family", "llama")
    with pytest.raises(ValueError, match=message):
        config(family, **overrides)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(kind="ntk"), "unknown RoPE scaling 'ntk'"),
        (dict(kind="linear", factor=0.0), "factor must be a finite, positive"),
        (dict(kind="llama3", factor=8.0, low_freq_factor=4.0, high_freq_factor=1.0), "low_freq_factor <"),
        (dict(kind="longrope"), "needs short_factor and long_factor"),
        (dict(kind="longrope", short_factor=(1.0, float("inf")), long_factor=(1.0, 1.0)), "short_factor must be"),
    ],
)
def test_rope_scaling_is_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RopeScaling(**kwargs)
