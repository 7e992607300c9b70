"""A tiny model's byte-level vocabulary, and its save format: a Hugging Face Llama folder.

Token b (0..255) is the byte b and token 256 ends a document, so any text can be
trained on with no tokenizer to learn. Saved as config.json + model.safetensors +
tokenizer.json (a byte-level BPE with no merges), the folder opens with `--model PATH`
like any other model.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn


EOS_ID = 256
EOS_TEXT = "<|endoftext|>"


def encode_bytes(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def decode_bytes(ids: list[int]) -> str:
    return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


def _byte_chars() -> list[str]:
    """GPT-2's printable stand-in for each byte (the alphabet of every byte-level BPE vocabulary)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def tokenizer_json() -> dict:
    """tokenizer.json of the byte vocabulary: each byte its own token, no merges."""
    vocab = {c: b for b, c in enumerate(_byte_chars())}
    return {
        "version": "1.0",
        "added_tokens": [{"id": EOS_ID, "content": EOS_TEXT, "special": True, "single_word": False,
                          "lstrip": False, "rstrip": False, "normalized": False}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": []},
    }


# Our parameter names -> Hugging Face Llama's (the loader's llama_state_dict reads them back).
_HF_NAMES = {"attn_norm": "input_layernorm", "mlp_norm": "post_attention_layernorm",
             "attn.o_proj": "self_attn.o_proj", "mlp.down": "mlp.down_proj"}  # fmt: skip


def hf_llama_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights under Llama's names, fused qkv and gate_up split again."""
    out: dict[str, torch.Tensor] = {}
    c = model.config
    for name, w in model.state_dict().items():
        w = w.detach().float().contiguous()
        if name == "tok_emb.weight":
            out["model.embed_tokens.weight"] = w
        elif name == "final_norm.weight":
            out["model.norm.weight"] = w
        elif name.startswith("blocks."):
            _, layer, rest = name.split(".", 2)
            module, kind = rest.rsplit(".", 1)
            prefix = f"model.layers.{layer}"
            if module == "attn.qkv":
                q, k, v = w.split([c.n_head * c.head_dim, c.n_kv_head * c.head_dim, c.n_kv_head * c.head_dim])
                for part, t in (("q_proj", q), ("k_proj", k), ("v_proj", v)):
                    out[f"{prefix}.self_attn.{part}.{kind}"] = t.contiguous()
            elif module == "mlp.gate_up":
                gate, up = w.chunk(2)
                out[f"{prefix}.mlp.gate_proj.{kind}"] = gate.contiguous()
                out[f"{prefix}.mlp.up_proj.{kind}"] = up.contiguous()
            elif module in _HF_NAMES:
                out[f"{prefix}.{_HF_NAMES[module]}.{kind}"] = w
            else:
                raise ValueError(f"don't know Llama's name for {name}")
        elif name == "lm_head.weight":
            out[name] = w
        else:
            raise ValueError(f"don't know Llama's name for {name}")
    return out


def save_llama_folder(model: nn.Module, folder: Path) -> Path:
    """Write a byte-level Llama as a Hugging Face folder (safetensors, never a pickle)."""
    from safetensors.torch import save_file

    c = model.config
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": c.vocab_size,
        "hidden_size": c.d_model, "intermediate_size": c.d_ff, "num_hidden_layers": c.n_layer,
        "num_attention_heads": c.n_head, "num_key_value_heads": c.n_kv_head, "max_position_embeddings": c.context_length,
        "rms_norm_eps": c.norm_eps, "rope_theta": c.rope_theta, "tie_word_embeddings": c.tie_embeddings,
        "hidden_act": "silu", "bos_token_id": EOS_ID, "eos_token_id": EOS_ID, "torch_dtype": "float32",
    }  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_file(hf_llama_state_dict(model), str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer_json(), ensure_ascii=False))
    (folder / "tokenizer_config.json").write_text(json.dumps({"bos_token": EOS_TEXT, "eos_token": EOS_TEXT,
                                                              "model_max_length": c.context_length}))
    return folder
