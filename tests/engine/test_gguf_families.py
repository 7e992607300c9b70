"""GGUF files of every architecture llmtui reads, written from tiny transformers models.

For each family a transformers model with seeded random weights (large initializer_range, so the
next-token distribution is peaked) is written as GGUF the way llama.cpp's convert_hf_to_gguf.py
writes it: its tensor names, q/k rows permuted for arch `llama`, 1 added to Gemma's norm weights,
GPT-NeoX's per-head q/k/v regrouped, Llama 3's RoPE scaling as a `rope_freqs` tensor, Phi-3's
LongRoPE as `rope_factors_long/short`, and each architecture's metadata keys. llmtui reads
the file back; its config, its weights, and its next-token probabilities must match.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as Q, GGUFWriter
from gguf.quants import dequantize
from test_gguf import _add, _add_tokenizer, llama_cpp_permute

from llmtui.engine.loading.gguf_weights import gguf_config, gguf_state_dict, read_gguf_header, supported_types
from llmtui.engine.loading.load import ModelLoadError, load_weights

TINY = dict(vocab_size=320, hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=64, initializer_range=0.5, tie_word_embeddings=False,
            bos_token_id=1, eos_token_id=2, pad_token_id=0)  # fmt: skip
WINDOW = 5  # shorter than the prompt, so sliding layers see less than global ones

FAMILIES: dict[str, tuple[str, str, dict]] = {
    # name: (transformers model_type, GGUF architecture, config overrides)
    "llama3": ("llama", "llama", dict(num_hidden_layers=2, rope_parameters=dict(
        rope_type="llama3", rope_theta=10000.0, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
        original_max_position_embeddings=64))),
    "mistral": ("mistral", "llama", dict(num_hidden_layers=2, sliding_window=WINDOW)),
    "qwen2": ("qwen2", "qwen2", dict(num_hidden_layers=2, tie_word_embeddings=True)),
    "qwen3": ("qwen3", "qwen3", dict(num_hidden_layers=2, head_dim=16)),
    "gemma2": ("gemma2", "gemma2", dict(num_hidden_layers=2, head_dim=8, query_pre_attn_scalar=8,
                                        sliding_window=WINDOW, attn_logit_softcapping=50.0,
                                        final_logit_softcapping=30.0, tie_word_embeddings=True)),
    "gemma3": ("gemma3_text", "gemma3", dict(num_hidden_layers=6, head_dim=8, query_pre_attn_scalar=8,
                                             sliding_window=WINDOW, tie_word_embeddings=True)),
    "phi3": ("phi3", "phi3", dict(num_hidden_layers=2, num_key_value_heads=4, partial_rotary_factor=0.5,
                                  max_position_embeddings=64, original_max_position_embeddings=16,
                                  rope_parameters=dict(rope_type="longrope", rope_theta=10000.0,
                                                       short_factor=[1.0, 1.5], long_factor=[2.0, 4.0]))),
    "olmo2": ("olmo2", "olmo2", dict(num_hidden_layers=2)),
    "gptneox": ("gpt_neox", "gptneox", dict(num_hidden_layers=2, partial_rotary_factor=0.25,
                                            use_parallel_residual=True)),
}  # fmt: skip


def _hf_model(name: str, **sizes):
    from transformers import AutoConfig, AutoModelForCausalLM

    model_type, _, overrides = FAMILIES[name]
    config = AutoConfig.for_model(model_type, **{**TINY, **overrides, **sizes})
    config._attn_implementation = "eager"
    torch.manual_seed(sum(map(ord, name)))
    return AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()


# ---------------------------------------------------------------------------------------------
# The converter, after llama.cpp's convert_hf_to_gguf.py


def _rope(config) -> dict:
    params = dict(getattr(config, "rope_parameters", None) or {})
    return params.get("full_attention", params)


def _llama3_factors(config, head_dim: int) -> np.ndarray:
    """LlamaModel.generate_extra_tensors: one frequency divisor per rotated pair."""
    rope = _rope(config)
    freqs = 1.0 / (rope["rope_theta"] ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim))
    old = rope["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old / rope["low_freq_factor"], old / rope["high_freq_factor"]
    factors = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            factors.append(1.0)
        elif wavelen > low_wavelen:
            factors.append(rope["factor"])
        else:
            smooth = (old / wavelen - rope["low_freq_factor"]) / (rope["high_freq_factor"] - rope["low_freq_factor"])
            factors.append(1 / ((1 - smooth) / rope["factor"] + smooth))
    return np.array(factors, dtype=np.float32)


def _tensor_names(name: str, n_layer: int) -> dict[str, str]:
    """HF parameter -> GGUF tensor (gguf-py's TensorNameMap for these architectures)."""
    if name == "gptneox":
        top = {"gpt_neox.embed_in": "token_embd", "gpt_neox.final_layer_norm": "output_norm", "embed_out": "output",
               "lm_head": "output"}  # transformers 5 calls embed_out lm_head
        block = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
                 "attention.query_key_value": "attn_qkv", "attention.dense": "attn_output",
                 "mlp.dense_h_to_4h": "ffn_up", "mlp.dense_4h_to_h": "ffn_down"}  # fmt: skip
        prefix = "gpt_neox.layers"
    else:
        top = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output"}
        post_attention = "post_attention_norm" if name in ("gemma2", "gemma3", "olmo2") else "ffn_norm"
        block = {"input_layernorm": "attn_norm", "post_attention_layernorm": post_attention,
                 "pre_feedforward_layernorm": "ffn_norm", "post_feedforward_layernorm": "post_ffw_norm",
                 "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                 "self_attn.qkv_proj": "attn_qkv", "self_attn.o_proj": "attn_output",
                 "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
                 "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.gate_up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down"}  # fmt: skip
        prefix = "model.layers"
    names = dict(top)
    for i in range(n_layer):
        names.update({f"{prefix}.{i}.{hf}": f"blk.{i}.{g}" for hf, g in block.items()})
    return names


def _partial_rotary(config) -> float:
    return getattr(config, "partial_rotary_factor", None) or _rope(config).get("partial_rotary_factor") or 1.0


def write_family_gguf(
    path: Path, name: str, model, tokenizer, qtype: Q = Q.F32, add=_add, add_vocabulary=_add_tokenizer
) -> Path:
    """`model` as llama.cpp's converter writes it; `add(writer, name, tensor, qtype)` stores each tensor,
    `add_vocabulary(writer, tokenizer)` the vocabulary."""
    c = model.config
    _, arch, _ = FAMILIES[name]
    n_head = c.num_attention_heads
    n_kv = n_head if name == "gptneox" else c.num_key_value_heads  # GPT-NeoX has no grouped-query attention
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // n_head
    writer = GGUFWriter(str(path), arch=arch)
    writer.add_block_count(c.num_hidden_layers)
    writer.add_context_length(c.max_position_embeddings)
    writer.add_embedding_length(c.hidden_size)
    writer.add_feed_forward_length(c.intermediate_size)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_freq_base(_rope(c)["rope_theta"])
    writer.add_rope_dimension_count(int(_partial_rotary(c) * head_dim))
    if name == "gptneox":
        writer.add_layer_norm_eps(c.layer_norm_eps)
        writer.add_parallel_residual(c.use_parallel_residual)
    else:
        writer.add_layer_norm_rms_eps(c.rms_norm_eps)
    if getattr(c, "sliding_window", None) and name in ("mistral", "gemma2", "gemma3"):
        writer.add_sliding_window(c.sliding_window)
    for key in ("attn_logit_softcapping", "final_logit_softcapping"):
        if getattr(c, key, None):
            getattr(writer, f"add_{key}")(getattr(c, key))
    add_vocabulary(writer, tokenizer)

    names = _tensor_names(name, c.num_hidden_layers)
    for hf, w in model.state_dict().items():
        stem, _, kind = hf.rpartition(".")
        if stem == "lm_head" and c.tie_word_embeddings:
            continue
        gguf_name = f"{names[stem]}.{kind}"
        if name in ("gemma2", "gemma3") and hf.endswith("norm.weight"):
            w = w + 1  # Gemma's (1 + w) norm, folded as the converter does
        if arch == "llama" and gguf_name.endswith(("attn_q.weight", "attn_k.weight")):
            heads = n_head if "attn_q" in gguf_name else n_kv
            w = torch.from_numpy(llama_cpp_permute(w.numpy(), n_head, heads))
        if name == "gptneox" and "attn_qkv" in gguf_name:  # per head [q k v] -> [all q; all k; all v]
            w = w.reshape(n_head, 3, head_dim, *w.shape[1:]).transpose(0, 1).reshape(w.shape)
        add(writer, gguf_name, w, qtype)
    if name == "llama3":
        writer.add_tensor("rope_freqs.weight", _llama3_factors(c, head_dim))
    if name == "phi3":
        rope = _rope(c)
        writer.add_rope_scaling_orig_ctx_len(c.original_max_position_embeddings)
        scale = c.max_position_embeddings / c.original_max_position_embeddings
        writer.add_rope_scaling_attn_factors(math.sqrt(1 + math.log(scale) / math.log(c.original_max_position_embeddings)))
        writer.add_tensor("rope_factors_long.weight", np.array(rope["long_factor"], dtype=np.float32))
        writer.add_tensor("rope_factors_short.weight", np.array(rope["short_factor"], dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request, tiny_tokenizer, tmp_path_factory):
    """(name, transformers model, GGUF path) for each family."""
    name = request.param
    model = _hf_model(name)
    path = write_family_gguf(tmp_path_factory.mktemp(name) / f"{name}.gguf", name, model, tiny_tokenizer)
    return name, model, path


# ---------------------------------------------------------------------------------------------
# What the file says


EXPECTED_FLAVOURS = {
    "llama3": dict(family="llama", qkv_bias=False, sliding_window=0),
    "mistral": dict(family="mistral", sliding_window=WINDOW, sliding_layers=()),
    "qwen2": dict(family="qwen2", qkv_bias=True, o_bias=False, tie_embeddings=True),
    "qwen3": dict(family="qwen3", qk_norm="head", head_dim=16),
    "gemma2": dict(family="gemma2", norm_offset=1.0, post_norm=True, attn_softcap=50.0, final_softcap=30.0,
                   sliding_window=WINDOW, sliding_layers=(True, False), query_pre_attn_scalar=8.0),
    "gemma3": dict(family="gemma3", qk_norm="head", rope_local_theta=10000.0, rope_theta=1_000_000.0,
                   sliding_layers=(True,) * 5 + (False,)),
    "phi3": dict(family="phi3", rotary_dim=4, qkv_bias=False),
    "olmo2": dict(family="olmo2", qk_norm="proj", pre_norm=False, post_norm=True),
    "gptneox": dict(family="gptneox", norm="layernorm", rotary_dim=2, parallel_residual=True, qkv_bias=True,
                    o_bias=True, mlp_bias=True),
}  # fmt: skip


def test_metadata_becomes_the_config(family):
    name, model, path = family
    config = gguf_config(read_gguf_header(path))
    c = model.config
    assert (config.n_layer, config.d_model, config.n_head, config.vocab_size, config.d_ff) == (
        c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.vocab_size, c.intermediate_size,
    )  # fmt: skip
    assert config.n_kv_head == (c.num_attention_heads if name == "gptneox" else c.num_key_value_heads)
    assert config.tie_embeddings == bool(c.tie_word_embeddings)
    for field, value in EXPECTED_FLAVOURS[name].items():
        assert getattr(config, field) == value, field


def test_llama3_rope_freqs_and_phi3_longrope_become_rope_scaling(tiny_tokenizer, tmp_path):
    llama = _hf_model("llama3")
    config = gguf_config(read_gguf_header(write_family_gguf(tmp_path / "l.gguf", "llama3", llama, tiny_tokenizer)))
    factors = _llama3_factors(llama.config, 8)
    assert config.rope_scaling.kind == "longrope" and config.rope_scaling.attention_factor == 1.0
    assert config.rope_scaling.short_factor == config.rope_scaling.long_factor == tuple(factors.tolist())
    assert {1.0, 8.0} < set(factors.tolist())  # high frequencies kept, low ones divided, a ramp between
    phi = _hf_model("phi3")
    config = gguf_config(read_gguf_header(write_family_gguf(tmp_path / "p.gguf", "phi3", phi, tiny_tokenizer)))
    assert config.rope_scaling.short_factor == (1.0, 1.5) and config.rope_scaling.long_factor == (2.0, 4.0)
    assert (config.rope_scaling.original_context, config.rope_scaling.factor) == (16, 4.0)
    assert config.rope_scaling.attention_factor == pytest.approx(math.sqrt(1 + math.log(4) / math.log(16)))


# ---------------------------------------------------------------------------------------------
# What llmtui computes from it


# Longer than WINDOW and than Phi-3's original context (16), so sliding layers and long factors both act.
PROMPT = torch.tensor([[1, 5, 77, 200, 3, 319, 42, 42, 9, 130, 17, 250, 64, 8, 99, 101, 7, 300, 12, 45]])


def our_model(path: Path, tmp_path: Path):
    from llmtui.engine.model.transformer import Transformer

    weights = load_weights(str(path), cache_dir=tmp_path / "cache")
    model = Transformer(weights.config)
    model.load_state_dict(weights.state_dict, strict=True)
    return model.eval()


def test_probabilities_equal_transformers(family, tmp_path):
    name, hf, path = family
    ours = our_model(path, tmp_path)
    with torch.no_grad():
        expected = torch.softmax(hf(PROMPT).logits.double(), dim=-1)
        got = torch.softmax(ours(PROMPT).logits.double(), dim=-1)
    assert expected[0, -1].max() > 0.1  # peaked enough that a wrong weight would show
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)


def test_attention_weights_and_greedy_tokens_equal_transformers(family, tmp_path):
    name, hf, path = family
    ours = our_model(path, tmp_path)
    with torch.no_grad():
        expected = hf(PROMPT, output_attentions=True).attentions
        got = ours(PROMPT, capture={"attn_weights"}).attentions
        for layer, (a, b) in enumerate(zip(got, expected, strict=True)):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5, msg=f"layer {layer}")
        hf.generation_config.eos_token_id = None  # 20 tokens, whatever they are
        reference = hf.generate(PROMPT[:, :4], max_new_tokens=20, do_sample=False)[0, 4:]
        ids = PROMPT[:, :4]
        for _ in range(20):
            ids = torch.cat([ids, ours(ids).logits[:, -1:].argmax(-1)], dim=1)
    assert ids[0, 4:].tolist() == reference.tolist()


def test_gemma_gguf_with_its_sentencepiece_vocabulary_loads_whole(tmp_path, isolated_cache):
    """The app's path: a gemma3 GGUF whose vocabulary is SentencePiece (tokenizer.ggml.model "llama")."""
    from test_sentencepiece import TOKENS, add_spm_vocabulary, from_transformers, write_spm_gguf

    from llmtui.engine.lm import LanguageModel
    from llmtui.engine.tokenizer.sentencepiece import SentencePieceTokenizer

    hf = _hf_model("gemma3", vocab_size=len(TOKENS))
    path = write_family_gguf(tmp_path / "gemma.gguf", "gemma3", hf, None,
                             add_vocabulary=lambda writer, _: add_spm_vocabulary(writer, add_space_prefix=False))
    vocab_file = write_spm_gguf(tmp_path / "vocab.gguf", "gemma3", add_space_prefix=False)  # transformers' input
    lm = LanguageModel.load(str(path))
    assert isinstance(lm.tokenizer, SentencePieceTokenizer)
    text = "The capital of France is Paris 🍕"
    ids = lm.encode(text)
    assert ids == from_transformers(tmp_path, gguf_file=vocab_file.name)[False](text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        expected = torch.softmax(hf(torch.tensor([ids])).logits[0, -1].double(), -1)
    got = torch.softmax(lm.run(ids, capture=False).logits[0, -1].double(), -1)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# Every tensor type gguf can dequantize


@pytest.mark.parametrize("qtype", sorted(supported_types()), ids=lambda t: Q(t).name)
def test_every_dequantizable_type_loads(qtype, tiny_tokenizer, tmp_path):
    """A llama-architecture GGUF whose matrices are stored as qtype: each comes back as gguf's own dequantization."""
    qtype = Q(qtype)
    block, _ = GGML_QUANT_SIZES[qtype]
    expected: dict[str, np.ndarray] = {}

    def add(writer: GGUFWriter, name: str, w: torch.Tensor, _qtype: Q) -> None:
        data = w.detach().float().numpy()
        if data.ndim == 2 and qtype == Q.F16:
            raw, stored = data.astype(np.float16), None
        elif data.ndim == 2 and qtype == Q.BF16:
            raw, stored = (data.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).reshape(len(data), -1), qtype
        elif data.ndim == 2 and qtype != Q.F32 and data.shape[1] % block == 0:
            raw, stored = _finite_blocks(qtype, data.size // block, len(expected)).reshape(len(data), -1), qtype
        else:
            raw, stored = data, None
        writer.add_tensor(name, raw, raw_dtype=stored)
        expected[name] = dequantize(raw.view(np.uint8) if stored else raw, stored or Q(0 if raw.dtype == np.float32 else 1))

    model = _hf_model("mistral", hidden_size=256, intermediate_size=256)  # rows of whole 256-weight blocks
    path = write_family_gguf(tmp_path / "q.gguf", "mistral", model, tiny_tokenizer, add=add)
    header = read_gguf_header(path)
    assert sum(info.type_id == qtype for info in header.tensors.values()) >= 7 * 2  # every matrix of both blocks
    sd = gguf_state_dict(header, gguf_config(header))
    for gguf_name, ours in [("blk.1.attn_v.weight", "blocks.1.attn.v_proj.weight"),
                            ("blk.0.ffn_down.weight", "blocks.0.mlp.down.weight"),
                            ("token_embd.weight", "tok_emb.weight")]:  # fmt: skip
        assert np.array_equal(sd[ours].numpy().ravel(), expected[gguf_name].ravel()), gguf_name


def _finite_blocks(qtype: Q, n_blocks: int, seed: int) -> np.ndarray:
    """Random bytes for n_blocks of qtype, every byte below 0x7C: any float16/bfloat16/E8M0 scale they
    spell is finite, and every grid index (IQ types) is in range."""
    _, type_size = GGML_QUANT_SIZES[qtype]
    return np.random.default_rng(seed).integers(0, 0x7C, n_blocks * type_size, dtype=np.uint8)


# ---------------------------------------------------------------------------------------------
# What is refused, in one line


def test_unknown_rope_scaling_is_one_line(tiny_tokenizer, tmp_path):
    header = read_gguf_header(write_family_gguf(tmp_path / "q.gguf", "qwen2", _hf_model("qwen2"), tiny_tokenizer))
    header.metadata["qwen2.rope.scaling.type"] = "mystery"
    with pytest.raises(ModelLoadError, match="RoPE scaling 'mystery'.*linear, yarn"):
        gguf_config(header)


def test_linear_and_yarn_scaling_and_window_patterns_from_metadata(tiny_tokenizer, tmp_path):
    """Keys the converter writes for other checkpoints than the tiny ones above, set on a parsed header."""
    from llmtui.engine.model.config import RopeScaling

    header = read_gguf_header(write_family_gguf(tmp_path / "q.gguf", "qwen2", _hf_model("qwen2"), tiny_tokenizer))
    meta = header.metadata
    meta.update({"qwen2.rope.scaling.type": "linear", "qwen2.rope.scaling.factor": 4.0})
    assert gguf_config(header).rope_scaling == RopeScaling("linear", factor=4.0)
    meta.update({"qwen2.rope.scaling.type": "yarn", "qwen2.rope.scaling.original_context_length": 16,
                 "qwen2.rope.scaling.yarn_beta_fast": 16.0})  # fmt: skip
    assert gguf_config(header).rope_scaling == RopeScaling(
        "yarn", factor=4.0, original_context=16, beta_fast=16.0, beta_slow=1.0
    )
    del meta["qwen2.rope.scaling.type"]
    meta["qwen2.attention.sliding_window"] = 3
    assert gguf_config(header).sliding_layers == ()  # no pattern: every layer slides
    meta["qwen2.attention.sliding_window_pattern"] = [True, False]
    assert gguf_config(header).sliding_layers == (True, False)
    meta["qwen2.attention.sliding_window_pattern"] = 2
    assert gguf_config(header).sliding_layers == (True, False)


def test_unsupported_architecture_lists_the_supported_ones(tmp_path):
    writer = GGUFWriter(str(tmp_path / "m.gguf"), arch="mamba")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelLoadError, match="'mamba' is not supported.*llama, qwen2, qwen3, gemma2, gemma3, phi3"):
        gguf_config(read_gguf_header(tmp_path / "m.gguf"))
