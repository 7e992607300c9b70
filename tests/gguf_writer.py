"""GGUF files written by the tests (gguf's own writer, llama.cpp's layout), for the loader's tests and the model-fault tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from gguf import GGMLQuantizationType as Q
from gguf import GGUFWriter
from gguf.quants import quantize


def llama_cpp_permute(w: np.ndarray, n_head: int, n_head_kv: int | None = None) -> np.ndarray:
    """Verbatim from llama.cpp convert_hf_to_gguf.py `LlamaModel.permute`."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _add_tokenizer(writer: GGUFWriter, tokenizer) -> None:
    spec = json.loads(tokenizer.to_str())
    vocab = spec["model"]["vocab"] | {t["content"]: t["id"] for t in spec["added_tokens"]}
    tokens = sorted(vocab, key=vocab.get)
    specials = {t["content"] for t in spec["added_tokens"]}
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in specials else 1 for t in tokens])  # 3: control, 1: normal
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]])
    writer.add_bos_token_id(vocab["<|im_start|>"])
    writer.add_eos_token_id(vocab["<|im_end|>"])


def _add(writer: GGUFWriter, name: str, w: torch.Tensor, qtype: Q) -> None:
    """Like llama.cpp: vectors stay F32, matrices take the file's type."""
    data = w.detach().float().numpy()
    if data.ndim == 1 or qtype == Q.F32:
        writer.add_tensor(name, data)
    elif qtype == Q.F16:
        writer.add_tensor(name, data.astype(np.float16))
    else:
        writer.add_tensor(name, quantize(data, qtype), raw_dtype=qtype)


def write_llama_gguf(path: Path, model, tokenizer, qtype: Q = Q.F32, tie: bool = False) -> Path:
    """A transformers LlamaForCausalLM as llama.cpp would convert it."""
    c = model.config
    sd = model.state_dict()
    writer = GGUFWriter(str(path), arch="llama")
    writer.add_block_count(c.num_hidden_layers)
    writer.add_context_length(c.max_position_embeddings)
    writer.add_embedding_length(c.hidden_size)
    writer.add_feed_forward_length(c.intermediate_size)
    writer.add_head_count(c.num_attention_heads)
    writer.add_head_count_kv(c.num_key_value_heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_rope_dimension_count(c.hidden_size // c.num_attention_heads)
    writer.add_layer_norm_rms_eps(c.rms_norm_eps)
    _add_tokenizer(writer, tokenizer)
    _add(writer, "token_embd.weight", sd["model.embed_tokens.weight"], qtype)
    for i in range(c.num_hidden_layers):
        hf = f"model.layers.{i}."
        q = llama_cpp_permute(sd[hf + "self_attn.q_proj.weight"].numpy(), c.num_attention_heads, c.num_attention_heads)
        k = llama_cpp_permute(sd[hf + "self_attn.k_proj.weight"].numpy(), c.num_attention_heads, c.num_key_value_heads)
        for name, w in [
            ("attn_norm", sd[hf + "input_layernorm.weight"]),
            ("attn_q", torch.from_numpy(q)),
            ("attn_k", torch.from_numpy(k)),
            ("attn_v", sd[hf + "self_attn.v_proj.weight"]),
            ("attn_output", sd[hf + "self_attn.o_proj.weight"]),
            ("ffn_norm", sd[hf + "post_attention_layernorm.weight"]),
            ("ffn_gate", sd[hf + "mlp.gate_proj.weight"]),
            ("ffn_up", sd[hf + "mlp.up_proj.weight"]),
            ("ffn_down", sd[hf + "mlp.down_proj.weight"]),
        ]:
            _add(writer, f"blk.{i}.{name}.weight", w, qtype)
    _add(writer, "output_norm.weight", sd["model.norm.weight"], qtype)
    if not tie:
        _add(writer, "output.weight", sd["lm_head.weight"], qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_gpt2_gguf(path: Path, model, tokenizer, qtype: Q = Q.F32) -> Path:
    """A transformers GPT2LMHeadModel as llama.cpp would convert it (Conv1D transposed, output duplicated)."""
    c = model.config
    sd = {k.removeprefix("transformer."): v for k, v in model.state_dict().items()}
    writer = GGUFWriter(str(path), arch="gpt2")
    writer.add_block_count(c.n_layer)
    writer.add_context_length(c.n_positions)
    writer.add_embedding_length(c.n_embd)
    writer.add_feed_forward_length(4 * c.n_embd)
    writer.add_head_count(c.n_head)
    writer.add_layer_norm_eps(c.layer_norm_epsilon)
    _add_tokenizer(writer, tokenizer)
    _add(writer, "token_embd.weight", sd["wte.weight"], qtype)
    _add(writer, "position_embd.weight", sd["wpe.weight"], Q.F32)
    for i in range(c.n_layer):
        for gguf_name, hf_name in [
            ("attn_norm", "ln_1"),
            ("attn_qkv", "attn.c_attn"),
            ("attn_output", "attn.c_proj"),
            ("ffn_norm", "ln_2"),
            ("ffn_up", "mlp.c_fc"),
            ("ffn_down", "mlp.c_proj"),
        ]:
            w, b = sd[f"h.{i}.{hf_name}.weight"], sd[f"h.{i}.{hf_name}.bias"]
            _add(writer, f"blk.{i}.{gguf_name}.weight", w if w.ndim == 1 else w.t().contiguous(), qtype)
            _add(writer, f"blk.{i}.{gguf_name}.bias", b, qtype)
    _add(writer, "output_norm.weight", sd["ln_f.weight"], qtype)
    _add(writer, "output_norm.bias", sd["ln_f.bias"], qtype)
    _add(writer, "output.weight", sd["wte.weight"], qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
