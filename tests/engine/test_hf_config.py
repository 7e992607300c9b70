"""config.json as the hub's models ship it (transformers 4.x layout) -> ModelConfig, and refusals.

The parity tests (test_families.py) read configs written by the installed transformers
(5.x layout); these are the shapes people download: each keeps the keys of the real file
(sizes shortened where that changes nothing).
"""

import pytest

from llmtui.engine.errors import ModelLoadError
from llmtui.engine.loading.hf_folder import hf_config

COMMON = {"architectures": ["X"], "torch_dtype": "bfloat16", "transformers_version": "4.45.0", "use_cache": True,
          "initializer_range": 0.02, "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2}  # fmt: skip

LLAMA_32_1B = COMMON | {
    "model_type": "llama", "attention_bias": False, "head_dim": 64, "hidden_act": "silu", "hidden_size": 2048,
    "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": False, "num_attention_heads": 32,
    "num_hidden_layers": 16, "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": True, "vocab_size": 128256,
}  # fmt: skip
SMOLLM2 = COMMON | {
    "model_type": "llama", "attention_bias": False, "hidden_act": "silu", "hidden_size": 576,
    "intermediate_size": 1536, "is_llama_config": True, "max_position_embeddings": 8192, "mlp_bias": False,
    "num_attention_heads": 9, "num_hidden_layers": 30, "num_key_value_heads": 3, "pretraining_tp": 1,
    "rms_norm_eps": 1e-05, "rope_interleaved": False, "rope_scaling": None, "rope_theta": 100000,
    "tie_word_embeddings": True, "vocab_size": 49152,
}  # fmt: skip
QWEN25_05B = COMMON | {
    "model_type": "qwen2", "hidden_act": "silu", "hidden_size": 896, "intermediate_size": 4864,
    "max_position_embeddings": 32768, "max_window_layers": 21, "num_attention_heads": 14, "num_hidden_layers": 24,
    "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768,
    "tie_word_embeddings": True, "use_sliding_window": False, "vocab_size": 151936,
}  # fmt: skip
QWEN3_06B = COMMON | {
    "model_type": "qwen3", "attention_bias": False, "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024,
    "intermediate_size": 3072, "max_position_embeddings": 40960, "max_window_layers": 28, "num_attention_heads": 16,
    "num_hidden_layers": 28, "num_key_value_heads": 8, "rms_norm_eps": 1e-06, "rope_scaling": None,
    "rope_theta": 1000000, "sliding_window": None, "tie_word_embeddings": True, "use_sliding_window": False,
    "vocab_size": 151936,
}  # fmt: skip
GEMMA3_1B = COMMON | {
    "model_type": "gemma3_text", "attention_bias": False, "attn_logit_softcapping": None,
    "cache_implementation": "hybrid", "final_logit_softcapping": None, "head_dim": 256,
    "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 1152, "intermediate_size": 6912,
    "max_position_embeddings": 32768, "num_attention_heads": 4, "num_hidden_layers": 26, "num_key_value_heads": 1,
    "pad_token_id": 0, "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_local_base_freq": 10000,
    "rope_scaling": None, "rope_theta": 1000000, "sliding_window": 512, "sliding_window_pattern": 6,
    "vocab_size": 262144,
}  # fmt: skip
GEMMA3_4B = {  # the multimodal wrapper: the text model's config is nested, mostly as class defaults
    "architectures": ["Gemma3ForConditionalGeneration"], "boi_token_index": 255999, "eoi_token_index": 256000,
    "image_token_index": 262144, "initializer_range": 0.02, "mm_tokens_per_image": 256, "model_type": "gemma3",
    "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text",
                    "num_hidden_layers": 34, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                    "sliding_window": 1024},
    "vision_config": {"model_type": "siglip_vision_model"},
}  # fmt: skip
GEMMA2_2B = COMMON | {
    "model_type": "gemma2", "attention_bias": False, "attn_logit_softcapping": 50.0,
    "cache_implementation": "hybrid", "final_logit_softcapping": 30.0, "head_dim": 256,
    "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 2304,
    "intermediate_size": 9216, "max_position_embeddings": 8192, "num_attention_heads": 8, "num_hidden_layers": 26,
    "num_key_value_heads": 4, "pad_token_id": 0, "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06,
    "rope_theta": 10000.0, "sliding_window": 4096, "vocab_size": 256000,
}  # fmt: skip
PHI35_MINI = COMMON | {
    "model_type": "phi3", "_name_or_path": "Phi-3.5-mini-instruct", "attention_bias": False,
    "auto_map": {"AutoConfig": "configuration_phi3.Phi3Config"}, "embd_pdrop": 0.0, "hidden_act": "silu",
    "hidden_size": 3072, "intermediate_size": 8192, "max_position_embeddings": 131072, "num_attention_heads": 32,
    "num_hidden_layers": 32, "num_key_value_heads": 32, "original_max_position_embeddings": 4096,
    "pad_token_id": 32000, "resid_pdrop": 0.0, "rms_norm_eps": 1e-05,
    "rope_scaling": {"long_factor": [1.08] * 48, "short_factor": [1.0] * 48, "type": "longrope"},
    "rope_theta": 10000.0, "sliding_window": 262144, "tie_word_embeddings": False, "vocab_size": 32064,
}  # fmt: skip
PHI4_MINI = PHI35_MINI | {
    "hidden_size": 3072, "num_attention_heads": 24, "num_key_value_heads": 8, "partial_rotary_factor": 0.75,
    "full_attn_mod": 1, "interpolate_factor": 1, "lm_head_bias": False, "mlp_bias": False,
    "rope_scaling": {"long_factor": [1.0] * 48, "short_factor": [1.0] * 48, "type": "longrope"},
    "sliding_window": 262144, "tie_word_embeddings": True, "vocab_size": 200064,
}  # fmt: skip
MISTRAL_V01 = COMMON | {
    "model_type": "mistral", "hidden_act": "silu", "hidden_size": 4096, "intermediate_size": 14336,
    "max_position_embeddings": 32768, "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096, "tie_word_embeddings": False,
    "vocab_size": 32000,
}  # fmt: skip
OLMO2_1B = COMMON | {
    "model_type": "olmo2", "attention_bias": False, "hidden_act": "silu", "hidden_size": 2048,
    "intermediate_size": 8192, "max_position_embeddings": 4096, "num_attention_heads": 16, "num_hidden_layers": 16,
    "num_key_value_heads": 16, "pad_token_id": 100277, "rms_norm_eps": 1e-06, "rope_scaling": None,
    "rope_theta": 500000, "tie_word_embeddings": False, "vocab_size": 100352,
}  # fmt: skip
PYTHIA_160M = COMMON | {
    "model_type": "gpt_neox", "classifier_dropout": 0.1, "hidden_act": "gelu", "hidden_dropout": 0.0,
    "hidden_size": 768, "intermediate_size": 3072, "layer_norm_eps": 1e-05, "max_position_embeddings": 2048,
    "num_attention_heads": 12, "num_hidden_layers": 12, "rotary_emb_base": 10000, "rotary_pct": 0.25,
    "tie_word_embeddings": False, "use_parallel_residual": True, "vocab_size": 50304,
}  # fmt: skip


def test_llama_32_with_llama3_rope_scaling():
    c = hf_config(LLAMA_32_1B, "llama-3.2-1b")
    assert (c.family, c.n_kv_head, c.head_dim, c.rope_theta, c.tie_embeddings) == ("llama", 8, 64, 500000.0, True)
    s = c.rope_scaling
    assert (s.kind, s.factor, s.low_freq_factor, s.high_freq_factor, s.original_context) == ("llama3", 32, 1, 4, 8192)


def test_smollm2_is_the_plain_llama_it_always_was():
    c = hf_config(SMOLLM2, "smollm2")
    assert (c.family, c.norm, c.mlp, c.activation, c.qkv_bias, c.rope_scaling, c.sliding_window) == (
        "llama", "rmsnorm", "gated", "silu", False, None, 0)
    assert (c.rope_theta, c.rotary_dim, c.head_dim, c.query_pre_attn_scalar) == (100000.0, 64, 64, 64)


def test_qwen25_has_qkv_biases_and_no_window():
    c = hf_config(QWEN25_05B, "qwen2.5")
    assert (c.family, c.qkv_bias, c.o_bias, c.mlp_bias, c.sliding_window, c.rope_theta) == (
        "qwen2", True, False, False, 0, 1e6)


def test_qwen3_has_per_head_qk_norm():
    c = hf_config(QWEN3_06B, "qwen3")
    assert (c.family, c.qk_norm, c.head_dim, c.d_model // c.n_head, c.qkv_bias) == ("qwen3", "head", 128, 64, False)


def test_gemma3_1b_local_and_global_layers():
    c = hf_config(GEMMA3_1B, "gemma-3-1b")
    assert (c.family, c.embed_scale, c.norm_offset, c.activation, c.pre_norm, c.post_norm) == (
        "gemma3", 1152**0.5, 1.0, "gelu_tanh", True, True)
    assert (c.sliding_window, c.rope_theta, c.rope_local_theta, c.query_pre_attn_scalar) == (512, 1e6, 1e4, 256)
    assert c.sliding_layers == tuple((i + 1) % 6 != 0 for i in range(26))
    assert (c.attn_softcap, c.final_softcap, c.qk_norm, c.tie_embeddings) == (0, 0, "head", True)


def test_gemma3_multimodal_wrapper_reads_its_text_model():
    c = hf_config(GEMMA3_4B, "gemma-3-4b")
    assert (c.family, c.d_model, c.n_layer, c.n_head, c.n_kv_head, c.vocab_size) == ("gemma3", 2560, 34, 8, 4, 262208)
    assert (c.rope_scaling.kind, c.rope_scaling.factor, c.sliding_window) == ("linear", 8.0, 1024)


def test_gemma2_soft_caps_and_alternating_windows():
    c = hf_config(GEMMA2_2B, "gemma-2-2b")
    assert (c.attn_softcap, c.final_softcap, c.sliding_window) == (50.0, 30.0, 4096)
    assert c.sliding_layers[:4] == (True, False, True, False) and c.rope_local_theta == 0


def test_phi35_longrope_and_window():
    c = hf_config(PHI35_MINI, "phi-3.5-mini")
    s = c.rope_scaling
    assert (s.kind, s.original_context, s.factor, len(s.short_factor)) == ("longrope", 4096, 32.0, 48)
    assert (c.sliding_window, c.sliding_layers, c.family) == (262144, (True,) * 32, "phi3")


def test_phi4_mini_partial_rotary():
    c = hf_config(PHI4_MINI, "phi-4-mini")
    assert (c.head_dim, c.rotary_dim, len(c.rope_scaling.long_factor)) == (128, 96, 48)


def test_mistral_window_on_every_layer():
    c = hf_config(MISTRAL_V01, "mistral")
    assert (c.family, c.sliding_window, c.sliding_layers) == ("mistral", 4096, (True,) * 32)
    assert hf_config(MISTRAL_V01 | {"sliding_window": None}, "mistral v0.3").sliding_window == 0


def test_olmo2_post_norms_only():
    c = hf_config(OLMO2_1B, "olmo-2")
    assert (c.pre_norm, c.post_norm, c.qk_norm, c.family) == (False, True, "proj", "olmo2")


def test_pythia_parallel_residual_and_partial_rotary():
    c = hf_config(PYTHIA_160M, "pythia-160m")
    assert (c.family, c.norm, c.norm_bias, c.activation, c.parallel_residual) == (
        "gptneox", "layernorm", True, "gelu", True)
    assert (c.rotary_dim, c.head_dim, c.qkv_bias, c.o_bias, c.mlp_bias, c.tie_embeddings) == (
        16, 64, True, True, True, False)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (LLAMA_32_1B | {"rope_scaling": {"rope_type": "mrope", "factor": 2}}, "RoPE scaling 'mrope'.*it supports"),
        (GEMMA3_1B | {"use_bidirectional_attention": True}, "use_bidirectional_attention = true"),
        (GEMMA3_1B | {"layer_types": ["chunked_attention"] * 26}, 'layer type "chunked_attention"'),
        (GEMMA3_1B | {"layer_types": ["full_attention"]}, "one entry per layer"),
        (PYTHIA_160M | {"hidden_act": "relu"}, "hidden_act"),
        (QWEN25_05B | {"use_mrope": True}, "use_mrope = true, which llmtui does not implement"),
        (QWEN25_05B | {"model_type": "qwen2_moe"}, "model_type 'qwen2_moe' is not supported; llmtui reads gpt2, llama"),
        (PHI35_MINI | {"rope_scaling": {"type": "longrope", "short_factor": [1.0], "long_factor": [1.0]}},
         "short_factor has 1 values"),
        (GEMMA3_1B | {"rope_parameters": {"sliding_attention": {"rope_type": "linear", "factor": 2.0}}},
         "on the sliding layers"),
    ],
)
def test_what_is_not_implemented_is_refused_in_one_line(raw, message):
    with pytest.raises(ModelLoadError, match=message) as err:
        hf_config(raw, "model")
    assert "\n" not in str(err.value)
