"""Read llama.cpp's GGUF files into our ModelConfig and float32 state dict.

GGUF stores tensors with its own names (`blk.0.attn_q.weight`), often quantized in blocks
(Q4_1: 32 weights share a scale and a minimum), and the model's shape as metadata keys under
its architecture (`qwen2.attention.head_count`). Per architecture this module knows:
- which keys become which config fields, and what the file leaves unsaid (Gemma's alternating
  sliding-window layers, Gemma 3's local rope base), as llama.cpp itself assumes them;
- the tensor names, and the changes llama.cpp's converter (convert_hf_to_gguf.py) makes that
  must be undone: q/k rows reordered for arch `llama` (its RoPE kernel rotates adjacent pairs,
  ours the two halves of each head), 1 added to every Gemma norm weight, q/k/v and gate/up
  stored fused (gpt2, gptneox, phi3);
- RoPE scaling kept as tensors: Llama 3's `rope_freqs` and Phi-3's `rope_factors_long/short`
  (divisors per frequency, which is what `RopeScaling("longrope")` applies).
Every tensor type the `gguf` package can dequantize is read with its reference code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType
from gguf.quants import dequantize

from llmtui.engine.errors import ModelLoadError
from llmtui.engine.loading.common import Progress, check_state_dict, report
from llmtui.engine.loading.gguf_header import KNOWN_TYPES, GGUFFile, GGUFTensorInfo, read_gguf_header
from llmtui.engine.model.config import ModelConfig, RopeScaling

Q = GGMLQuantizationType

# GGUF name -> our name, for whole-model tensors and for the part after `blk.N.`.
TOP_NAMES = {"token_embd": "tok_emb", "position_embd": "pos_emb", "output_norm": "final_norm", "output": "lm_head"}
_ATTENTION = {
    "attn_q": "attn.q_proj",
    "attn_k": "attn.k_proj",
    "attn_v": "attn.v_proj",
    "attn_output": "attn.o_proj",
}
_GATED_MLP = {"ffn_gate": "mlp.gate", "ffn_up": "mlp.up", "ffn_down": "mlp.down"}
_PRE_NORMS = {"attn_norm": "attn_norm", "ffn_norm": "mlp_norm"}
_POST_NORMS = {"post_attention_norm": "attn_post_norm", "post_ffw_norm": "mlp_post_norm"}
_QK_NORMS = {"attn_q_norm": "attn.q_norm", "attn_k_norm": "attn.k_norm"}
_FUSED_QKV = {"attn_qkv": "attn.qkv"}  # q, k, v rows stacked: split below
_PLAIN_MLP = {"ffn_up": "mlp.fc", "ffn_down": "mlp.proj"}

# Tensors that hold RoPE scaling, read into the config rather than the state dict.
ROPE_TENSORS = ("rope_freqs", "rope_factors_long", "rope_factors_short")


@dataclass(frozen=True)
class Architecture:
    """What one llama.cpp architecture means for us."""

    family: str  # our ModelConfig family
    blocks: dict[str, str]  # GGUF block tensor name -> ours
    interleaved_rope: bool = False  # q/k rows in llama.cpp's adjacent-pair order (arch llama only)
    norm_shift: float = 0.0  # added to every norm weight by the converter (Gemma: 1)
    layernorm: bool = False  # LayerNorm (epsilon key layer_norm_epsilon) rather than RMSNorm
    sliding_period: int = 0  # every layer but each period-th slides (Gemma 2: 2, Gemma 3: 6); 0: all alike
    local_rope_base: float = 0.0  # sliding layers' rope base where llama.cpp fixes it (Gemma 3: 10000)


ARCHITECTURES: dict[str, Architecture] = {
    "llama": Architecture("llama", {**_PRE_NORMS, **_ATTENTION, **_GATED_MLP}, interleaved_rope=True),
    "qwen2": Architecture("qwen2", {**_PRE_NORMS, **_ATTENTION, **_GATED_MLP}),
    "qwen3": Architecture("qwen3", {**_PRE_NORMS, **_ATTENTION, **_QK_NORMS, **_GATED_MLP}),
    "gemma2": Architecture(
        "gemma2", {**_PRE_NORMS, **_POST_NORMS, **_ATTENTION, **_GATED_MLP}, norm_shift=1.0, sliding_period=2
    ),
    "gemma3": Architecture(
        "gemma3",
        {**_PRE_NORMS, **_POST_NORMS, **_ATTENTION, **_QK_NORMS, **_GATED_MLP},
        norm_shift=1.0,
        sliding_period=6,
        local_rope_base=10000.0,
    ),
    "phi3": Architecture(
        "phi3", {**_PRE_NORMS, **_ATTENTION, **_FUSED_QKV, "ffn_up": "mlp.gate_up", "ffn_down": "mlp.down"}
    ),  # ffn_up holds gate then up
    "olmo2": Architecture("olmo2", {**_POST_NORMS, **_ATTENTION, **_QK_NORMS, **_GATED_MLP}),
    "gptneox": Architecture("gptneox", {**_PRE_NORMS, **_FUSED_QKV, "attn_output": "attn.o_proj", **_PLAIN_MLP},
                            layernorm=True),
    "gpt2": Architecture("gpt2", {**_PRE_NORMS, **_FUSED_QKV, "attn_output": "attn.o_proj", **_PLAIN_MLP},
                         layernorm=True),
}  # fmt: skip
_TENSOR_NAME = re.compile(r"(?:blk\.(?P<block>\d+)\.)?(?P<name>\w+)\.(?P<kind>weight|bias)")


@cache
def supported_types() -> frozenset[int]:
    """The tensor types `gguf.quants.dequantize` reads (F32, F16, BF16, Q*_0/1, K-quants, IQ*, TQ*, MXFP4, ...)."""
    readable = set()
    for qtype in Q:
        if qtype not in GGML_QUANT_SIZES:
            continue
        block, size = GGML_QUANT_SIZES[qtype]
        try:  # one block of zeros: cheap, and the only sure test of what this gguf version implements
            dequantize(np.zeros(size, dtype=np.uint8), qtype)
        except (NotImplementedError, ValueError, TypeError):
            continue
        readable.add(int(qtype))
    return frozenset(readable)


def _short(value: Any) -> str:
    """A metadata value for a message: a damaged file can hold megabytes where a name belongs."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(type_id: int) -> str:
    return Q(type_id).name if type_id in KNOWN_TYPES else f"type number {type_id}"


def _dequantized(gguf: GGUFFile, info: GGUFTensorInfo) -> torch.Tensor:
    """One tensor as float32, in its PyTorch shape; damaged scales (inf, NaN) refused."""
    with np.errstate(over="ignore", invalid="ignore"):  # checked below, not a RuntimeWarning on stderr
        values = dequantize(gguf.raw(info), Q(info.type_id))
    if not np.isfinite(values).all():
        raise ModelLoadError(
            f"{gguf.path.name}: tensor {info.name} holds NaN or infinite values; the file is damaged — download it again"
        )
    # F32 comes back as a view into the memory-mapped file: copy so it outlives the map.
    return torch.from_numpy(values.copy() if info.type_id == Q.F32 else values).reshape(info.shape)


# ---------------------------------------------------------------------------------------------
# Metadata -> ModelConfig


def gguf_config(gguf: GGUFFile) -> ModelConfig:
    """ModelConfig from the `{arch}.*` metadata keys (and the RoPE-scaling tensors)."""
    where, meta = gguf.path.name, gguf.metadata
    arch_name = meta.get("general.architecture")
    if not isinstance(arch_name, str) or arch_name not in ARCHITECTURES:
        raise ModelLoadError(
            f"{where}: architecture {_short(arch_name)} is not supported; "
            f"llmtui reads {', '.join(ARCHITECTURES)} GGUF files"
        )
    arch = ARCHITECTURES[arch_name]
    get = _metadata_getter(where, arch_name, meta)
    tokens = meta.get("tokenizer.ggml.tokens")
    embd = gguf.tensors.get("token_embd.weight")
    vocab = len(tokens) if isinstance(tokens, list) else (embd.shape[0] if embd is not None else 0)
    eps_key = "attention.layer_norm_epsilon" if arch.layernorm else "attention.layer_norm_rms_epsilon"
    try:  # int() of a NaN or an infinity read from a damaged file raises too
        n_head = int(get("attention.head_count", required=True))
        d_model = int(get("embedding_length", required=True))
        n_layer = int(get("block_count", required=True))
        head_dim = int(get("attention.key_length") or d_model // max(n_head, 1))
        if get("attention.value_length") not in (None, head_dim):
            raise ModelLoadError(f"{where}: keys and values of different widths, which llmtui does not implement")
        fields = dict(
            family=arch.family,
            vocab_size=vocab,
            n_layer=n_layer,
            n_head=n_head,
            n_kv_head=int(get("attention.head_count_kv") or n_head),
            d_model=d_model,
            d_ff=int(get("feed_forward_length", required=True)),
            context_length=int(get("context_length", required=True)),
            norm_eps=float(get(eps_key, required=True)),
            rope_theta=float(get("rope.freq_base") or 10000.0),
            tie_embeddings="output.weight" not in gguf.tensors,
            head_dim=head_dim,
            **_biases(gguf),
            **_attention_fields(arch, get, n_layer, d_model, n_head, head_dim),
        )
        rope_dims = get("rope.dimension_count")
        if rope_dims is not None and arch.family != "gpt2":
            fields["rotary_dim"] = int(rope_dims)
        if arch.family == "gptneox":
            fields["parallel_residual"] = bool(meta.get("gptneox.use_parallel_residual", True))
        if arch.family == "llama" and fields.get("sliding_window"):
            fields["family"] = "mistral"  # Mistral converts as llama; its window is the difference
        scaling = _rope_scaling(gguf, get, fields["context_length"])
        if scaling is not None:
            fields["rope_scaling"] = scaling
        config = ModelConfig(**fields)
    except ModelLoadError:
        raise
    except (ValueError, TypeError, OverflowError) as err:
        raise ModelLoadError(f"{where}: inconsistent model metadata ({err})") from err
    if arch.interleaved_rope and config.rotary_dim != config.head_dim:
        raise ModelLoadError(
            f"{where} rotates {config.rotary_dim} of {config.head_dim} head dimensions in llama.cpp's interleaved "
            "layout (partial RoPE), which llmtui does not implement"
        )
    return config


def _metadata_getter(where: str, arch: str, meta: dict[str, Any]) -> Callable[..., Any]:
    """`get(key, required=False)`: the number stored under `{arch}.{key}`, or None; damaged values refused."""

    def get(key: str, required: bool = False, per_layer: bool = False) -> Any:
        value = meta.get(f"{arch}.{key}")
        if value is None and required:
            raise ModelLoadError(
                f"{where} lacks the metadata key {arch}.{key}; the file is incomplete or from an unusual converter"
            )
        if isinstance(value, (list, np.ndarray)):
            if per_layer:
                return value
            raise ModelLoadError(
                f"{where}: {arch}.{key} differs per layer, which llmtui does not implement (its layers are all alike)"
            )
        # A damaged file can hold a string or a bool where a number belongs: say which key, not int()'s error.
        if value is not None and (isinstance(value, (bool, str)) or not np.isreal(value)):
            raise ModelLoadError(f"{where}: {arch}.{key} is {_short(value)}, not a number; the file is corrupt")
        return value

    return get


def _biases(gguf: GGUFFile) -> dict[str, bool]:
    """Which projections carry biases, as the tensors say (Qwen2: q, k, v only; GPT-2: all)."""
    has = lambda *names: any(f"blk.0.{n}.bias" in gguf.tensors for n in names)  # noqa: E731
    return dict(
        qkv_bias=has("attn_q", "attn_qkv"),
        o_bias=has("attn_output"),
        mlp_bias=has("ffn_down"),
    )


def _attention_fields(
    arch: Architecture, get: Callable[..., Any], n_layer: int, d_model: int, n_head: int, head_dim: int
) -> dict[str, Any]:
    """Sliding window, soft-caps and the score scale."""
    fields: dict[str, Any] = {}
    window = int(get("attention.sliding_window") or 0)
    if window:
        fields["sliding_window"] = window
        pattern = get("attention.sliding_window_pattern", per_layer=True) or arch.sliding_period
        if isinstance(pattern, (list, np.ndarray)):  # newer converters: one flag per layer
            fields["sliding_layers"] = tuple(bool(p) for p in pattern)
        elif pattern:  # transformers' rule: layer i slides unless (i + 1) is a multiple of the period
            fields["sliding_layers"] = tuple(bool((i + 1) % int(pattern)) for i in range(n_layer))
        if arch.local_rope_base:
            fields["rope_local_theta"] = arch.local_rope_base
    for key, name in (("attn_logit_softcapping", "attn_softcap"), ("final_logit_softcapping", "final_softcap")):
        if get(key):
            fields[name] = float(get(key))
    if arch.norm_shift:  # Gemma: llama.cpp scales queries by 1/sqrt(d_model / n_head) in its 27B models only
        big = {"gemma2": 46, "gemma3": 62}.get(arch.family) == n_layer
        fields["query_pre_attn_scalar"] = float(d_model // n_head if big else head_dim)
    return fields


def _rope_scaling(gguf: GGUFFile, get: Callable[..., Any], context: int) -> RopeScaling | None:
    """RopeScaling from `rope.scaling.*` keys and the per-frequency factor tensors; None for plain RoPE."""
    where = gguf.path.name
    kind = gguf.metadata.get(f"{gguf.metadata['general.architecture']}.rope.scaling.type")
    original = int(get("rope.scaling.original_context_length") or 0)
    factors = {name: gguf.tensors[f"{name}.weight"] for name in ROPE_TENSORS if f"{name}.weight" in gguf.tensors}
    if factors and kind not in (None, "none"):
        raise ModelLoadError(f"{where} has both RoPE scaling {kind!r} and per-frequency factors; llmtui can't tell which")
    if "rope_freqs" in factors:  # Llama 3.x: one divisor per frequency, whatever the length
        freqs = tuple(float(x) for x in _dequantized(gguf, factors["rope_freqs"]).flatten())
        return RopeScaling("longrope", factor=1.0, short_factor=freqs, long_factor=freqs, attention_factor=1.0)
    if factors:  # Phi-3 LongRoPE: short factors within the original context, long ones past it
        if set(factors) != {"rope_factors_long", "rope_factors_short"}:
            raise ModelLoadError(f"{where} has only one of rope_factors_long and rope_factors_short")
        long, short = (tuple(float(x) for x in _dequantized(gguf, factors[n]).flatten()) for n in
                       ("rope_factors_long", "rope_factors_short"))  # fmt: skip
        original = original or context
        return RopeScaling(
            "longrope",
            factor=context / original,
            original_context=original,
            short_factor=short,
            long_factor=long,
            attention_factor=float(get("rope.scaling.attn_factor") or 0.0),
        )
    if kind in (None, "none"):
        return None
    factor = float(get("rope.scaling.factor") or 1.0)
    if kind == "linear":
        return RopeScaling("linear", factor=factor)
    if kind == "yarn":
        return RopeScaling(
            "yarn",
            factor=factor,
            original_context=original,
            beta_fast=float(get("rope.scaling.yarn_beta_fast") or 32.0),
            beta_slow=float(get("rope.scaling.yarn_beta_slow") or 1.0),
        )
    raise ModelLoadError(f"{where} uses RoPE scaling {_short(kind)}, which llmtui does not implement (it reads linear, yarn, "
                         "Llama 3's rope_freqs and Phi-3's LongRoPE factors)")  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Tensors -> our state dict


def unpermute_rope_rows(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Undo llama.cpp's q/k row order: per head, interleaved pairs back to two halves.

    llama.cpp's converter (`LlamaModel.permute`) moves head row `half * hd/2 + j` to
    `2 * j + half`. Rows of one head, hd = 4: GGUF [a0, b0, a1, b1] -> ours [a0, a1, b0, b1].
    """
    hd = w.shape[0] // n_heads
    return w.reshape(n_heads, hd // 2, 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def _check_types(gguf: GGUFFile) -> None:
    readable = supported_types()
    for info in gguf.tensors.values():
        if info.type_id not in readable:
            names = ", ".join(sorted(Q(t).name for t in readable))
            raise ModelLoadError(
                f"{gguf.path.name}: tensor {info.name} is stored as {_type_name(info.type_id)}, which llmtui can't read "
                f"(it reads {names})"
            )


def gguf_state_dict(gguf: GGUFFile, config: ModelConfig, progress: Progress | None = None) -> dict[str, torch.Tensor]:
    """All tensors dequantized to float32, under our names, checked against the config."""
    where = gguf.path.name
    _check_types(gguf)
    arch = ARCHITECTURES[gguf.metadata["general.architecture"]]
    state_dict: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for i, info in enumerate(gguf.tensors.values()):
        report(progress, f"dequantizing {where}", i / len(gguf.tensors))
        match = _TENSOR_NAME.fullmatch(info.name)
        if match and match["block"] is None and match["name"] in ROPE_TENSORS:
            continue  # read into the config
        table = TOP_NAMES if match and match["block"] is None else arch.blocks
        if match is None or match["name"] not in table:
            unknown.append(info.name)
            continue
        prefix = f"blocks.{match['block']}." if match["block"] is not None else ""
        ours = f"{prefix}{table[match['name']]}.{match['kind']}"
        w = _dequantized(gguf, info)
        if arch.norm_shift and ours.endswith("norm.weight"):
            w = w - arch.norm_shift  # the converter stored 1 + w; our norm adds norm_offset itself
        if arch.interleaved_rope and ours.endswith((".attn.q_proj.weight", ".attn.k_proj.weight")):
            heads = config.n_head if ".q_proj." in ours else config.n_kv_head
            if w.shape[0] % (2 * heads):
                raise ModelLoadError(f"{where}: {info.name} has {w.shape[0]} rows, not a whole number of heads")
            w = unpermute_rope_rows(w, heads)
        for name, part in _split_fused(ours, w, config, where):
            state_dict[name] = part
    if unknown:
        raise ModelLoadError(
            f"{where} has tensors llmtui has no place for ({', '.join(unknown[:3])}); "
            f"it is not a plain {config.family} model"
        )
    check_state_dict(state_dict, config, where)
    report(progress, f"dequantizing {where}", 1.0)
    return state_dict


def _split_fused(ours: str, w: torch.Tensor, config: ModelConfig, where: str) -> list[tuple[str, torch.Tensor]]:
    """Fused q/k/v rows (gpt2, gptneox, phi3) and gate/up rows (phi3) as our separate tensors."""
    if ".attn.qkv." in ours:
        q_rows, kv_rows = config.n_head * config.head_dim, config.n_kv_head * config.head_dim
        names, sizes = ("q_proj", "k_proj", "v_proj"), [q_rows, kv_rows, kv_rows]
        fused = ".qkv."
    elif ".mlp.gate_up." in ours:
        names, sizes, fused = ("gate", "up"), [config.d_ff, config.d_ff], ".gate_up."
    else:
        return [(ours, w.contiguous())]
    if w.shape[0] != sum(sizes):
        raise ModelLoadError(
            f"{where}: {ours} has {w.shape[0]} rows, expected {sum(sizes)} for {', '.join(names)}"
        )
    return [(ours.replace(fused, f".{n}."), part.clone()) for n, part in zip(names, w.split(sizes), strict=True)]


def read_gguf(path: Any, progress: Progress | None = None) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """Config and float32 state dict (our names) of a GGUF file."""
    gguf = read_gguf_header(path)
    config = gguf_config(gguf)
    return config, gguf_state_dict(gguf, config, progress)
