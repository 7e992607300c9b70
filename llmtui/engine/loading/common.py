"""What every weight loader shares: the error type, the cache folder and the state-dict layout.

The layout is the contract with `llmtui.engine.model.transformer.Transformer`: every loader turns its
source (GGUF, Hugging Face safetensors, our own cache) into exactly these names and shapes,
and `check_state_dict` refuses anything else instead of guessing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import platformdirs
import torch

from llmtui.engine.model.config import ModelConfig
from llmtui.engine.errors import ModelLoadError

Progress = Callable[[str, float], None]
"""progress(message, fraction): fraction in [0, 1] of the current stage."""


def user_cache_dir() -> Path:
    """Where downloads and dequantized weights live; LLMTUI_CACHE_DIR overrides it."""
    override = os.environ.get("LLMTUI_CACHE_DIR")
    return Path(override).expanduser() if override else Path(platformdirs.user_cache_dir("llmtui"))


def report(progress: Progress | None, message: str, fraction: float) -> None:
    if progress is not None:
        progress(message, min(max(fraction, 0.0), 1.0))


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor name our Transformer's state dict holds, with its (PyTorch) shape.

    Linear weights are (out_features, in_features); `lm_head.weight` only when untied.
    """
    D, hd, V = config.d_model, config.head_dim, config.vocab_size
    q_out, kv_out = config.n_head * hd, config.n_kv_head * hd
    shapes: dict[str, tuple[int, ...]] = {"tok_emb.weight": (V, D)}
    if config.positions == "learned":
        shapes["pos_emb.weight"] = (config.context_length, D)

    def norm(name: str, dim: int = D) -> None:
        shapes[f"{name}.weight"] = (dim,)
        if config.norm_bias:
            shapes[f"{name}.bias"] = (dim,)

    def linear(name: str, out_features: int, in_features: int, bias: bool) -> None:
        shapes[f"{name}.weight"] = (out_features, in_features)
        if bias:
            shapes[f"{name}.bias"] = (out_features,)

    for i in range(config.n_layer):
        b = f"blocks.{i}"
        for where, wanted in (("", config.pre_norm), ("_post", config.post_norm)):
            if wanted:
                norm(f"{b}.attn{where}_norm")
                norm(f"{b}.mlp{where}_norm")
        linear(f"{b}.attn.q_proj", q_out, D, config.qkv_bias)
        linear(f"{b}.attn.k_proj", kv_out, D, config.qkv_bias)
        linear(f"{b}.attn.v_proj", kv_out, D, config.qkv_bias)
        linear(f"{b}.attn.o_proj", D, q_out, config.o_bias)
        if config.qk_norm != "none":
            norm(f"{b}.attn.q_norm", hd if config.qk_norm == "head" else q_out)
            norm(f"{b}.attn.k_norm", hd if config.qk_norm == "head" else kv_out)
        if config.mlp == "gated":
            linear(f"{b}.mlp.gate", config.d_ff, D, config.mlp_bias)
            linear(f"{b}.mlp.up", config.d_ff, D, config.mlp_bias)
            linear(f"{b}.mlp.down", D, config.d_ff, config.mlp_bias)
        else:
            linear(f"{b}.mlp.fc", config.d_ff, D, config.mlp_bias)
            linear(f"{b}.mlp.proj", D, config.d_ff, config.mlp_bias)
    norm("final_norm")
    if not config.tie_embeddings:
        shapes["lm_head.weight"] = (V, D)
    return shapes


MAX_CONTEXT = 1 << 20
"""Longest context window accepted: the RoPE tables hold every position (512 MB at this length)."""


def check_state_dict(state_dict: dict[str, torch.Tensor], config: ModelConfig, where: str) -> None:
    """Raise ModelLoadError unless the names and shapes are exactly what the config implies."""
    # Absurd numbers from a damaged file: refused before anything is sized by them.
    if config.n_layer > len(state_dict):  # every layer has several tensors
        raise ModelLoadError(
            f"{where} says the model has {config.n_layer:,} layers but holds only {len(state_dict)} tensors; "
            "the file is incomplete or corrupt"
        )
    if config.context_length > MAX_CONTEXT:
        raise ModelLoadError(
            f"{where} says the context window is {config.context_length:,} tokens; llmtui handles up to "
            f"{MAX_CONTEXT:,} (the file is corrupt, or the model is beyond what llmtui runs)"
        )
    expected = expected_shapes(config)
    missing = [name for name in expected if name not in state_dict]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ModelLoadError(
            f"{where} lacks the weights for {missing[0]}{more}; the file is incomplete or not a {config.family} model"
        )
    unexpected = [name for name in state_dict if name not in expected]
    if unexpected:
        raise ModelLoadError(
            f"{where} has weights this model has no place for ({', '.join(unexpected[:3])}); "
            f"it is probably not a plain {config.family} model"
        )
    for name, shape in expected.items():
        if tuple(state_dict[name].shape) != shape:
            raise ModelLoadError(
                f"{where}: {name} has shape {tuple(state_dict[name].shape)} but the config implies {shape}; "
                "config and weights disagree"
            )
