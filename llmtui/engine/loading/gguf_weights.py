"""Read llama.cpp's GGUF files (architectures llama and gpt2) into our float32 state dict.

GGUF stores tensors with its own names (`blk.0.attn_q.weight`), often quantized in blocks
(Q4_1: 32 weights share a scale and a minimum). We dequantize with the `gguf` package's
reference code, rename to our names, and undo the one layout change llama.cpp makes:
its converter reorders the rows of q and k so its RoPE kernel can rotate adjacent pairs,
while our model (like Hugging Face's) rotates the two halves of each head.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import torch
from gguf import GGMLQuantizationType
from gguf.quants import dequantize

from llmtui.engine.model.config import ModelConfig
from llmtui.engine.errors import ModelLoadError
from llmtui.engine.loading.gguf_header import KNOWN_TYPES, GGUFFile
from llmtui.engine.loading.common import Progress, check_state_dict, report

Q = GGMLQuantizationType
SUPPORTED_TYPES = frozenset(
    {Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K}
)

# GGUF name -> our name, for whole-model tensors and for the part after `blk.N.`.
TOP_NAMES = {"token_embd": "tok_emb", "position_embd": "pos_emb", "output_norm": "final_norm", "output": "lm_head"}
BLOCK_NAMES = {
    "llama": {
        "attn_norm": "attn_norm",
        "attn_q": "attn.q_proj",
        "attn_k": "attn.k_proj",
        "attn_v": "attn.v_proj",
        "attn_output": "attn.o_proj",
        "ffn_norm": "mlp_norm",
        "ffn_gate": "mlp.gate",
        "ffn_up": "mlp.up",
        "ffn_down": "mlp.down",
    },
    "gpt2": {
        "attn_norm": "attn_norm",
        "attn_qkv": "attn.qkv",  # fused q, k, v rows: split below
        "attn_output": "attn.o_proj",
        "ffn_norm": "mlp_norm",
        "ffn_up": "mlp.fc",
        "ffn_down": "mlp.proj",
    },
}
_TENSOR_NAME = re.compile(r"(?:blk\.(?P<block>\d+)\.)?(?P<name>\w+)\.(?P<kind>weight|bias)")


def gguf_config(gguf: GGUFFile) -> ModelConfig:
    """ModelConfig from the `{arch}.*` metadata keys."""
    where, meta = gguf.path.name, gguf.metadata
    arch = meta.get("general.architecture")
    if not isinstance(arch, str) or arch not in BLOCK_NAMES:
        raise ModelLoadError(
            f"{where}: architecture {_short(arch)} is not supported; llmtui reads llama and gpt2 GGUF files"
        )

    def get(key: str, default: Any = None, required: bool = False) -> Any:
        value = meta.get(f"{arch}.{key}", default)
        if value is None and required:
            raise ModelLoadError(
                f"{where} lacks the metadata key {arch}.{key}; the file is incomplete or from an unusual converter"
            )
        if isinstance(value, (list, np.ndarray)):
            raise ModelLoadError(
                f"{where}: {arch}.{key} differs per layer, which llmtui does not implement (its layers are all alike)"
            )
        # A damaged file can hold a string or a bool where a number belongs: say which key, not int()'s error.
        if value is not None and key != "rope.scaling.type" and (isinstance(value, (bool, str)) or not np.isreal(value)):
            raise ModelLoadError(f"{where}: {arch}.{key} is {_short(value)}, not a number; the file is corrupt")
        return value

    scaling = get("rope.scaling.type")
    if scaling not in (None, "none"):
        raise ModelLoadError(
            f"{where} uses RoPE scaling {scaling!r}, which llmtui does not implement; pick a model without it"
        )
    if "rope_freqs.weight" in gguf.tensors:
        raise ModelLoadError(
            f"{where} carries per-frequency RoPE factors (Llama 3.1-style scaling), which llmtui does not implement"
        )
    tokens = meta.get("tokenizer.ggml.tokens")
    embd = gguf.tensors.get("token_embd.weight")
    vocab = len(tokens) if isinstance(tokens, list) else (embd.shape[0] if embd is not None else 0)

    eps_key = "attention.layer_norm_rms_epsilon" if arch == "llama" else "attention.layer_norm_epsilon"
    try:  # int() of a NaN or an infinity read from a damaged file raises too
        n_head = int(get("attention.head_count", required=True))
        d_model = int(get("embedding_length", required=True))
        head_dim = int(get("attention.key_length") or d_model // max(n_head, 1))
        config = ModelConfig(
            family=arch,
            vocab_size=vocab,
            n_layer=int(get("block_count", required=True)),
            n_head=n_head,
            n_kv_head=int(get("attention.head_count_kv") or n_head),
            d_model=d_model,
            d_ff=int(get("feed_forward_length", required=True)),
            context_length=int(get("context_length", required=True)),
            norm_eps=float(get(eps_key, required=True)),
            rope_theta=float(get("rope.freq_base") or 10000.0),
            tie_embeddings="output.weight" not in gguf.tensors,
            head_dim=head_dim,
        )
    except ModelLoadError:
        raise
    except (ValueError, TypeError, OverflowError) as err:
        raise ModelLoadError(f"{where}: inconsistent model metadata ({err})") from err
    rope_dims = get("rope.dimension_count")  # checked once the config is known to be sane (n_head > 0)
    if arch == "llama" and rope_dims not in (None, config.head_dim):
        raise ModelLoadError(
            f"{where} rotates {rope_dims} of {config.head_dim} head dimensions (partial RoPE), "
            "which llmtui does not implement"
        )
    return config


def _short(value: Any) -> str:
    """A metadata value for a message: a damaged file can hold megabytes where a name belongs."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def unpermute_rope_rows(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Undo llama.cpp's q/k row order: per head, interleaved pairs back to two halves.

    llama.cpp's converter (`LlamaModel.permute`) moves head row `half * hd/2 + j` to
    `2 * j + half`. Rows of one head, hd = 4: GGUF [a0, b0, a1, b1] -> ours [a0, a1, b0, b1].
    """
    hd = w.shape[0] // n_heads
    return w.reshape(n_heads, hd // 2, 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def _type_name(type_id: int) -> str:
    return Q(type_id).name if type_id in KNOWN_TYPES else f"type number {type_id}"


def gguf_state_dict(gguf: GGUFFile, config: ModelConfig, progress: Progress | None = None) -> dict[str, torch.Tensor]:
    """All tensors dequantized to float32, under our names, checked against the config."""
    where = gguf.path.name
    for info in gguf.tensors.values():
        if info.type_id not in SUPPORTED_TYPES:
            raise ModelLoadError(
                f"{where}: tensor {info.name} is stored as {_type_name(info.type_id)}, which llmtui can't read; "
                "use a GGUF quantized as F32, F16, Q8_0, Q4_0, Q4_1 or a K-quant"
            )
    block_names = BLOCK_NAMES[config.family]
    state_dict: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for i, info in enumerate(gguf.tensors.values()):
        report(progress, f"dequantizing {where}", i / len(gguf.tensors))
        match = _TENSOR_NAME.fullmatch(info.name)
        table = TOP_NAMES if match and match["block"] is None else block_names
        if match is None or match["name"] not in table:
            unknown.append(info.name)
            continue
        prefix = f"blocks.{match['block']}." if match["block"] is not None else ""
        ours = f"{prefix}{table[match['name']]}.{match['kind']}"
        # Damaged scales overflow to inf in numpy (a RuntimeWarning on stderr): checked below instead.
        with np.errstate(over="ignore", invalid="ignore"):
            values = dequantize(gguf.raw(info), Q(info.type_id))
        if not np.isfinite(values).all():
            raise ModelLoadError(
                f"{where}: tensor {info.name} holds NaN or infinite values; the file is damaged — download it again"
            )
        # F32 comes back as a view into the memory-mapped file: copy so it outlives the map.
        w = torch.from_numpy(values.copy() if info.type_id == Q.F32 else values).reshape(info.shape)
        if ours.endswith((".attn.q_proj.weight", ".attn.k_proj.weight")):  # llama; gpt2 has a fused qkv
            heads = config.n_head if ".q_proj." in ours else config.n_kv_head
            if w.shape[0] % (2 * heads):
                raise ModelLoadError(f"{where}: {info.name} has {w.shape[0]} rows, not a whole number of heads")
            w = unpermute_rope_rows(w, heads)
        if ".attn.qkv." in ours:
            q_rows, kv_rows = config.n_head * config.head_dim, config.n_kv_head * config.head_dim
            if w.shape[0] != q_rows + 2 * kv_rows:
                raise ModelLoadError(
                    f"{where}: {info.name} has {w.shape[0]} rows, expected {q_rows + 2 * kv_rows} for q, k and v"
                )
            for part, chunk in zip(("q_proj", "k_proj", "v_proj"), w.split([q_rows, kv_rows, kv_rows]), strict=True):
                state_dict[ours.replace(".qkv.", f".{part}.")] = chunk.clone()
        else:
            state_dict[ours] = w.contiguous()
    if unknown:
        raise ModelLoadError(
            f"{where} has tensors llmtui has no place for ({', '.join(unknown[:3])}); "
            f"it is not a plain {config.family} model"
        )
    check_state_dict(state_dict, config, where)
    report(progress, f"dequantizing {where}", 1.0)
    return state_dict
