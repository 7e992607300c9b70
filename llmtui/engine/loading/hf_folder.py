"""Read Hugging Face model folders (config.json + safetensors) and download them by repo id.

Only safetensors are read: a pytorch_model.bin is a pickle, and unpickling a file from the
internet can run arbitrary code. GPT-2 checkpoints store their linear layers as `Conv1D`
(weights transposed, q/k/v fused in `c_attn`); Llama checkpoints are plain `nn.Linear`s
whose q/k rows already follow our RoPE convention (rotate halves), so they are used as is.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from llmtui.engine.model.config import ModelConfig, RopeScaling
from llmtui.engine.loading.common import ModelLoadError, Progress, check_state_dict, report
from llmtui.engine.loading.fetch import hub_errors

HF_ALLOW_PATTERNS = ["config.json", "*.safetensors", "*.json", "merges.txt", "vocab.json"]

# Keys that never change what the model computes: ids, training-only settings, bookkeeping.
_IGNORED_KEYS = frozenset(
    {"architectures", "model_type", "transformers_version", "torch_dtype", "dtype", "_name_or_path", "auto_map",
     "bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id", "decoder_start_token_id", "use_cache",
     "cache_implementation", "initializer_range", "initializer_factor", "init_std", "is_decoder", "is_llama_config",
     "tokenizer_class", "bad_words_ids", "max_length", "min_length", "do_sample", "temperature", "top_k", "top_p",
     "repetition_penalty", "num_beams", "output_attentions", "output_hidden_states", "return_dict", "torchscript",
     "id2label", "label2id", "problem_type", "finetuning_task", "task_specific_params", "summary_type",
     "summary_use_proj", "summary_activation", "summary_proj_to_labels", "summary_first_dropout",
     "gradient_checkpointing", "use_bfloat16", "chunk_size_feed_forward", "prefix", "tie_encoder_decoder",
     "_attn_implementation_autoset", "_sliding_window_pattern_autoset"}
)  # fmt: skip
_TRAINING_ONLY = re.compile(r".*(dropout|pdrop)$")  # dropout is off at inference

_WHOLE_NUMBERS = frozenset(
    {"vocab_size", "n_layer", "n_head", "n_embd", "n_inner", "n_positions", "num_hidden_layers",
     "num_attention_heads", "num_key_value_heads", "hidden_size", "intermediate_size", "max_position_embeddings",
     "head_dim", "sliding_window", "max_window_layers", "original_max_position_embeddings",
     "sliding_window_pattern", "_sliding_window_pattern"}
)  # fmt: skip
_NUMBERS = frozenset(
    {"layer_norm_epsilon", "layer_norm_eps", "rms_norm_eps", "rope_theta", "rope_local_base_freq", "rotary_pct",
     "rotary_emb_base", "partial_rotary_factor", "query_pre_attn_scalar", "attn_logit_softcapping",
     "final_logit_softcapping"}
)  # fmt: skip

# What transformers assumes when a key is absent, per model type (its config classes' defaults).
_CLASS_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": dict(hidden_act="silu", max_position_embeddings=2048, rms_norm_eps=1e-6),
    "mistral": dict(hidden_act="silu", max_position_embeddings=131072, rms_norm_eps=1e-6, sliding_window=4096,
                    num_key_value_heads=8),
    "qwen2": dict(hidden_act="silu", max_position_embeddings=32768, rms_norm_eps=1e-6, num_key_value_heads=32,
                  max_window_layers=28),
    "qwen3": dict(hidden_act="silu", max_position_embeddings=32768, rms_norm_eps=1e-6, num_key_value_heads=32,
                  max_window_layers=28, head_dim=128),
    "gemma2": dict(hidden_activation="gelu_pytorch_tanh", max_position_embeddings=8192, rms_norm_eps=1e-6,
                   num_key_value_heads=4, head_dim=256, sliding_window=4096, query_pre_attn_scalar=256,
                   attn_logit_softcapping=50.0, final_logit_softcapping=30.0, tie_word_embeddings=True),
    "gemma3_text": dict(vocab_size=262_208, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                        num_attention_heads=8, num_key_value_heads=4, head_dim=256,
                        hidden_activation="gelu_pytorch_tanh", max_position_embeddings=131072, rms_norm_eps=1e-6,
                        sliding_window=4096, query_pre_attn_scalar=256, tie_word_embeddings=True, rope_theta=1e6,
                        rope_local_base_freq=10000.0, sliding_window_pattern=6),
    "phi3": dict(hidden_act="silu", max_position_embeddings=4096, rms_norm_eps=1e-5),
    "olmo2": dict(hidden_act="silu", max_position_embeddings=2048, rms_norm_eps=1e-5),
    "gpt_neox": dict(hidden_act="gelu", max_position_embeddings=2048, layer_norm_eps=1e-5, rotary_pct=0.25,
                     rotary_emb_base=10000.0, use_parallel_residual=True, attention_bias=True),
}  # fmt: skip
SUPPORTED_TYPES = ("gpt2", *_CLASS_DEFAULTS, "gemma3")
# Our family name (llama.cpp's architecture names) for each model_type.
_FAMILY = {"gpt2": "gpt2", "llama": "llama", "mistral": "mistral", "qwen2": "qwen2", "qwen3": "qwen3",
           "gemma2": "gemma2", "gemma3_text": "gemma3", "phi3": "phi3", "olmo2": "olmo2",
           "gpt_neox": "gptneox"}  # fmt: skip

_ACTIVATIONS = {"silu": "silu", "swish": "silu", "gelu": "gelu", "gelu_pytorch_tanh": "gelu_tanh",
                "gelu_new": "gelu_tanh", "gelu_fast": "gelu_tanh"}  # fmt: skip
_ROPE_KEYS = {  # the keys each rope_type reads (besides rope_type/type, rope_theta, partial_rotary_factor)
    "default": set(),
    "linear": {"factor"},
    "dynamic": {"factor"},
    "llama3": {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"},
    "yarn": {"factor", "attention_factor", "beta_fast", "beta_slow", "mscale", "mscale_all_dim",
             "original_max_position_embeddings", "truncate"},
    "longrope": {"factor", "attention_factor", "short_factor", "long_factor", "original_max_position_embeddings"},
}  # fmt: skip
_LAYER_TYPES = {"sliding_attention": True, "full_attention": False}


def read_config_json(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ModelLoadError(f"{folder} has no config.json; pass a Hugging Face model folder or a .gguf file") from err
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"can't read {path} ({err}); the file is damaged") from err
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{path} holds a JSON {type(raw).__name__}, not an object; the file is damaged")
    return raw


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Config:
    """config.json's keys as read so far: every key must be read (understood) or known to be harmless.

    `get` returns the file's value, else transformers' default for the model type; `neutral`
    accepts a key only at values that change nothing; `unread` lists what nobody read.
    """

    def __init__(self, raw: dict[str, Any], model_type: str, where: str) -> None:
        self.raw, self.model_type, self.where = raw, model_type, where
        self.defaults = _CLASS_DEFAULTS.get(model_type, {})
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        if key not in self.raw:
            return self.defaults.get(key, default)
        value = self.raw[key]  # an explicit null is "none" (Mistral's sliding_window), not the class default
        return default if value is None else value

    def require(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            raise ModelLoadError(f"{self.where}: config.json lacks {key!r}; the file is incomplete")
        return value

    def neutral(self, key: str, *allowed: Any) -> None:
        value = self.get(key)
        if value is not None and value not in allowed:
            raise self.refuse(f"{key} = {_short(value)}", f"{key} = {' or '.join(_short(a) for a in allowed)}")

    def refuse(self, what: str, supported: str) -> ModelLoadError:
        return ModelLoadError(
            f"{self.where}: {self.model_type} config.json sets {what}, which llmtui does not implement "
            f"(it supports {supported})"
        )

    def check_all_read(self) -> None:
        for key, value in self.raw.items():
            if key in self.read or key in _IGNORED_KEYS or _TRAINING_ONLY.fullmatch(key) or value is None:
                continue
            raise self.refuse(f"{key} = {_short(value)}", f"these keys: {', '.join(sorted(self.read))}")


def hf_config(raw: dict[str, Any], where: str) -> ModelConfig:
    """ModelConfig from config.json, refusing every key that changes the computation and is not understood."""
    model_type = raw.get("model_type")
    if model_type == "gemma3" and isinstance(raw.get("text_config"), dict):  # the multimodal wrapper: its text model
        raw = {"model_type": "gemma3_text", **raw["text_config"]}
        model_type = "gemma3_text"
    for key, value in raw.items():  # types first, so that the arithmetic below can trust them
        if key in _WHOLE_NUMBERS and value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ModelLoadError(f"{where}: config.json has {key} = {_short(value)}, not a whole number")
        if key in _NUMBERS and value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ModelLoadError(f"{where}: config.json has {key} = {_short(value)}, not a number")
        if key in ("rope_scaling", "rope_parameters") and value is not None and not isinstance(value, dict):
            raise ModelLoadError(f"{where}: config.json has {key} = {_short(value)}, not an object")
    if model_type not in _FAMILY:
        raise ModelLoadError(
            f"{where}: model_type {model_type!r} is not supported; llmtui reads {', '.join(SUPPORTED_TYPES)}"
        )
    cfg = _Config(raw, model_type, where)
    try:
        fields = _gpt2_fields(cfg) if model_type == "gpt2" else _rope_model_fields(cfg)
        cfg.check_all_read()
        return ModelConfig(family=_FAMILY[model_type], **fields)
    except (ValueError, TypeError) as err:
        if isinstance(err, ModelLoadError):
            raise
        raise ModelLoadError(f"{where}: inconsistent config.json ({err})") from err


def _activation(cfg: _Config, key: str) -> str:
    name = cfg.get(key)
    if name not in _ACTIVATIONS:
        raise cfg.refuse(f"{key} = {_short(name)}", f"{key} = {', '.join(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]


def _gpt2_fields(cfg: _Config) -> dict[str, Any]:
    if _activation(cfg, "activation_function") != "gelu_tanh":
        raise cfg.refuse(f"activation_function = {_short(cfg.raw['activation_function'])}", "the tanh GELUs")
    for key in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "add_cross_attention"):
        cfg.neutral(key, False)
    cfg.neutral("scale_attn_weights", True)
    cfg.get("n_ctx")  # GPT-2's old name for n_positions, unused by transformers
    d_model = cfg.require("n_embd")
    return dict(
        vocab_size=cfg.require("vocab_size"),
        n_layer=cfg.require("n_layer"),
        n_head=cfg.require("n_head"),
        d_model=d_model,
        d_ff=cfg.get("n_inner") or 4 * d_model,
        context_length=cfg.get("n_positions", 1024),
        norm_eps=cfg.get("layer_norm_epsilon", 1e-5),
        tie_embeddings=cfg.get("tie_word_embeddings", True),
    )


def _rope_model_fields(cfg: _Config) -> dict[str, Any]:
    """Every model type but GPT-2: RoPE, and the flavours each type's config.json may set."""
    t = cfg.model_type
    gemma = t in ("gemma2", "gemma3_text")
    neox = t == "gpt_neox"
    n_head = cfg.require("num_attention_heads")
    d_model = cfg.require("hidden_size")
    n_layer = cfg.require("num_hidden_layers")
    context = cfg.get("max_position_embeddings")
    fields: dict[str, Any] = dict(
        vocab_size=cfg.require("vocab_size"),
        n_layer=n_layer,
        n_head=n_head,
        n_kv_head=0 if neox else cfg.get("num_key_value_heads") or n_head,
        d_model=d_model,
        d_ff=cfg.require("intermediate_size"),
        context_length=context,
        norm_eps=cfg.get("layer_norm_eps" if neox else "rms_norm_eps"),
        tie_embeddings=cfg.get("tie_word_embeddings", False),
        head_dim=0 if neox else cfg.get("head_dim") or 0,
    )
    if gemma:
        fields["activation"] = _activation(cfg, "hidden_activation")
        cfg.get("hidden_act")  # Gemma's config carries both; its model reads hidden_activation
        fields["query_pre_attn_scalar"] = float(cfg.get("query_pre_attn_scalar"))
        fields["attn_softcap"] = float(cfg.get("attn_logit_softcapping") or 0.0)
        fields["final_softcap"] = float(cfg.get("final_logit_softcapping") or 0.0)
        cfg.neutral("use_bidirectional_attention", False)
    else:
        fields["activation"] = _activation(cfg, "hidden_act")
    # Biases, as each modeling file decides them.
    if t in ("llama", "qwen3", "olmo2", "gemma2", "gemma3_text", "gpt_neox"):
        attention_bias = cfg.get("attention_bias", False)
        fields["qkv_bias"] = fields["o_bias"] = attention_bias
    if t == "llama":
        fields["mlp_bias"] = cfg.get("mlp_bias", False)
        cfg.neutral("pretraining_tp", 1)
        cfg.neutral("rope_interleaved", False)  # SmolLM2's config says so; true would be GPT-J-style RoPE
    if t == "phi3":  # Phi3's modeling file has no biases whatever these say; Phi-4-mini's configs set them false
        for key in ("attention_bias", "mlp_bias", "lm_head_bias"):
            cfg.neutral(key, False)
        cfg.neutral("full_attn_mod", 1)
        cfg.neutral("interpolate_factor", 1)
    if neox:
        fields["mlp_bias"] = True  # GPT-NeoX's MLP always has biases
        fields["parallel_residual"] = cfg.get("use_parallel_residual")
    fields.update(_rope_fields(cfg, fields))
    fields.update(_window_fields(cfg, n_layer))
    if not fields.get("sliding_window"):
        fields.pop("rope_local_theta", None)  # Gemma 3 with no sliding layer: every layer uses the global RoPE
    return fields


def _rope_fields(cfg: _Config, fields: dict[str, Any]) -> dict[str, Any]:
    """rope_theta, rotary_dim, rope_scaling (and Gemma 3's local base) from either config.json layout.

    transformers < 5 writes rope_theta and rope_scaling (Gemma 3: rope_local_base_freq);
    5.x writes rope_parameters, nested by layer type for Gemma 3.
    """
    t = cfg.model_type
    neox = t == "gpt_neox"
    params = cfg.get("rope_parameters") or {}
    scaling = cfg.get("rope_scaling") or {}
    local: dict[str, Any] | None = None
    if t == "gemma3_text":
        if "full_attention" in params or "sliding_attention" in params:
            local = params.get("sliding_attention") or {}
            params = params.get("full_attention") or {}
        else:
            local = {"rope_theta": cfg.get("rope_local_base_freq")}
    merged = {**params, **scaling}
    # The rope dict's values win over the top-level keys, as in transformers' standardize_rope_params.
    top_theta = cfg.get("rotary_emb_base" if neox else "rope_theta")
    top_partial = cfg.get("rotary_pct" if neox else "partial_rotary_factor")
    theta = merged.get("rope_theta") or top_theta or 10000.0
    partial = merged.get("partial_rotary_factor") or top_partial or 1.0
    head_dim = fields["head_dim"] or fields["d_model"] // fields["n_head"]
    out: dict[str, Any] = dict(rope_theta=float(theta), rotary_dim=int(head_dim * partial))
    out["rope_scaling"] = _rope_scaling(cfg, merged, fields["context_length"])
    if local is not None:
        kind = local.get("rope_type") or local.get("type") or "default"
        if kind != "default" or set(local) - {"rope_type", "type", "rope_theta", "partial_rotary_factor"}:
            raise cfg.refuse(f"RoPE scaling {_short(local)} on the sliding layers", "plain RoPE there")
        out["rope_local_theta"] = float(local.get("rope_theta") or 10000.0)
    return out


def _rope_scaling(cfg: _Config, rope: dict[str, Any], context: int) -> RopeScaling | None:
    kind = rope.get("rope_type") or rope.get("type") or "default"
    if kind not in _ROPE_KEYS:
        raise cfg.refuse(f"RoPE scaling {kind!r}", f"RoPE scaling {', '.join(_ROPE_KEYS)}")
    extra = set(rope) - _ROPE_KEYS[kind] - {"rope_type", "type", "rope_theta", "partial_rotary_factor"}
    if extra:
        key = sorted(extra)[0]
        raise cfg.refuse(f"RoPE {kind} key {key} = {_short(rope[key])}", f"{', '.join(sorted(_ROPE_KEYS[kind]))}")
    if kind == "default":
        return None
    # Phi-3 keeps original_max_position_embeddings beside rope_scaling; transformers prefers that one.
    original = cfg.get("original_max_position_embeddings") or rope.get("original_max_position_embeddings") or context
    factor = rope.get("factor")
    if factor is None:
        if kind in ("linear", "dynamic", "llama3"):
            raise cfg.refuse(f"RoPE scaling {kind} without a factor", "a factor")
        factor = context / original
    values: dict[str, Any] = dict(kind=kind, factor=float(factor), original_context=int(original))
    for key, ours in (("low_freq_factor", "low_freq_factor"), ("high_freq_factor", "high_freq_factor"),
                      ("beta_fast", "beta_fast"), ("beta_slow", "beta_slow"), ("mscale", "mscale"),
                      ("mscale_all_dim", "mscale_all_dim"), ("attention_factor", "attention_factor")):  # fmt: skip
        if rope.get(key) is not None:
            values[ours] = float(rope[key])
    if kind == "yarn":
        values["truncate"] = bool(rope.get("truncate", True))
    if kind == "longrope":
        values["short_factor"] = tuple(float(f) for f in rope.get("short_factor") or ())
        values["long_factor"] = tuple(float(f) for f in rope.get("long_factor") or ())
    return RopeScaling(**values)


def _window_fields(cfg: _Config, n_layer: int) -> dict[str, Any]:
    """sliding_window and which layers use it, as each model type's config class decides."""
    t = cfg.model_type
    if t in ("llama", "olmo2", "gpt_neox"):
        return {}
    window = cfg.get("sliding_window")
    if t in ("qwen2", "qwen3") and not cfg.get("use_sliding_window", False):
        window = None
        cfg.get("max_window_layers")  # says which layers would slide: none do
    layer_types = cfg.get("layer_types")
    if window is None:
        if layer_types is not None and any(_LAYER_TYPES.get(lt) for lt in layer_types):
            raise cfg.refuse("sliding_attention layers without a sliding_window", "a window with them")
        return {}
    if layer_types is None:
        if t in ("qwen2", "qwen3"):
            first = cfg.get("max_window_layers")
            layer_types = ["sliding_attention" if i >= first else "full_attention" for i in range(n_layer)]
        elif t == "gemma2":
            layer_types = ["sliding_attention" if (i + 1) % 2 else "full_attention" for i in range(n_layer)]
        elif t == "gemma3_text":
            pattern = cfg.get("sliding_window_pattern") or cfg.get("_sliding_window_pattern")
            layer_types = ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(n_layer)]
        else:  # Mistral, Phi-3: every layer
            layer_types = ["sliding_attention"] * n_layer
    else:  # the explicit list wins; the pattern keys are then unused (as in transformers)
        cfg.get("sliding_window_pattern")
        cfg.get("_sliding_window_pattern")
        cfg.get("max_window_layers")
    if not isinstance(layer_types, list) or len(layer_types) != n_layer:
        raise cfg.refuse(f"layer_types = {_short(layer_types)}", f"one entry per layer ({n_layer})")
    unknown = [lt for lt in layer_types if lt not in _LAYER_TYPES]
    if unknown:
        raise cfg.refuse(f"layer type {_short(unknown[0])}", ", ".join(_LAYER_TYPES))
    sliding = tuple(_LAYER_TYPES[lt] for lt in layer_types)
    if not any(sliding):
        return {}
    return dict(sliding_window=window, sliding_layers=sliding)


def safetensors_files(folder: Path) -> list[Path]:
    """The weight files, following model.safetensors.index.json for sharded checkpoints."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            shards = sorted({str(name) for name in weight_map.values()})
        except (OSError, ValueError, KeyError, AttributeError, TypeError) as err:
            raise ModelLoadError(f"can't read {index} ({err}); the file is damaged") from err
        if any(Path(name).name != name for name in shards):  # "../x": only files inside the folder
            raise ModelLoadError(f"{index.name} names a shard outside the folder; the file is damaged")
        missing = [name for name in shards if not (folder / name).is_file()]
        if missing:
            raise ModelLoadError(
                f"{folder.name} is missing {len(missing)} of its {len(shards)} weight shards ({missing[0]}); "
                "download the model again"
            )
        return [folder / name for name in shards]
    files = sorted(folder.glob("*.safetensors"))
    if files:
        return files
    pickles = [p.name for pattern in ("*.bin", "*.pt", "*.pth", "*.ckpt") for p in folder.glob(pattern)]
    if pickles:
        raise ModelLoadError(
            f"{folder.name} only has {pickles[0]}, a pickle file that could run code when loaded; llmtui only reads "
            "safetensors for safety — get the model's model.safetensors (most hub repos have one)"
        )
    raise ModelLoadError(f"{folder} has no *.safetensors weights; download the model's safetensors files")


def read_safetensors(files: list[Path], progress: Progress | None, message: str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError, safe_open

    tensors: dict[str, torch.Tensor] = {}
    for i, path in enumerate(files):
        report(progress, message, i / len(files))
        if not path.is_file():  # safe_open would say "No such device" of a folder
            raise ModelLoadError(f"{path.name} is a folder, not a safetensors file; download the model again")
        try:
            with safe_open(path, framework="pt") as f:
                for name in f.keys():
                    tensors[name] = f.get_tensor(name).to(torch.float32)
                    if not torch.isfinite(tensors[name]).all():
                        raise ModelLoadError(
                            f"{path.name}: tensor {name} holds NaN or infinite values; "
                            "the file is damaged — download it again"
                        )
        except (SafetensorError, OSError, RuntimeError, ValueError) as err:
            raise ModelLoadError(
                f"can't read {path.name} ({str(err).splitlines()[0][:120]}); the file is damaged — download it again"
            ) from err
    return tensors


# Buffers some checkpoints carry that are not weights.
_IGNORED = re.compile(r".*(\.(attn|attention)\.(bias|masked_bias)|rotary_emb\.inv_freq)$")


def gpt2_state_dict(hf: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """GPT-2 names -> ours; Conv1D weights (in, out) are transposed to Linear's (out, in)."""
    sd: dict[str, torch.Tensor] = {}
    renames = {
        "wte": "tok_emb",
        "wpe": "pos_emb",
        "ln_f": "final_norm",
        "ln_1": "attn_norm",
        "ln_2": "mlp_norm",
        "attn.c_proj": "attn.o_proj",
        "mlp.c_fc": "mlp.fc",
        "mlp.c_proj": "mlp.proj",
    }
    for name, w in hf.items():
        name = name.removeprefix("transformer.")
        if _IGNORED.fullmatch(name):
            continue
        if name == "lm_head.weight":
            if not config.tie_embeddings:
                sd[name] = w
            continue
        match = re.fullmatch(r"h\.(\d+)\.(.+)\.(weight|bias)", name)
        if match:
            block, module, kind = match.groups()
            if kind == "weight" and module in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"):
                w = w.t()  # Conv1D stores (in, out)
            if module == "attn.c_attn":  # fused: rows are [q | k | v] after the transpose
                for part, chunk in zip(("q_proj", "k_proj", "v_proj"), w.chunk(3, dim=0), strict=True):
                    sd[f"blocks.{block}.attn.{part}.{kind}"] = chunk.contiguous()
                continue
            sd[f"blocks.{block}.{renames.get(module, module)}.{kind}"] = w.contiguous()
        else:
            module, _, kind = name.rpartition(".")
            sd[f"{renames.get(module, module)}.{kind}"] = w.contiguous()
    return sd


def _llama_renames(config: ModelConfig) -> dict[str, str]:
    """Hugging Face module names -> ours for the Llama-shaped families (all but GPT-2 and GPT-NeoX)."""
    return {
        "embed_tokens": "tok_emb",
        "norm": "final_norm",
        "input_layernorm": "attn_norm",
        # Llama's norm before the MLP; Gemma's and OLMo 2's norm after attention (they have post-norms).
        "post_attention_layernorm": "attn_post_norm" if config.post_norm else "mlp_norm",
        "pre_feedforward_layernorm": "mlp_norm",
        "post_feedforward_layernorm": "mlp_post_norm",
        "self_attn.q_proj": "attn.q_proj",
        "self_attn.k_proj": "attn.k_proj",
        "self_attn.v_proj": "attn.v_proj",
        "self_attn.o_proj": "attn.o_proj",
        "self_attn.q_norm": "attn.q_norm",
        "self_attn.k_norm": "attn.k_norm",
        "mlp.gate_proj": "mlp.gate",
        "mlp.up_proj": "mlp.up",
        "mlp.down_proj": "mlp.down",
    }


_NEOX_RENAMES = {
    "embed_in": "tok_emb",
    "final_layer_norm": "final_norm",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "mlp_norm",
    "attention.dense": "attn.o_proj",
    "mlp.dense_h_to_4h": "mlp.fc",
    "mlp.dense_4h_to_h": "mlp.proj",
}


def _split_fused(module: str, w: torch.Tensor, config: ModelConfig) -> dict[str, torch.Tensor] | None:
    """Fused projections as our separate parts (views, no copy), or None for any other module.

    Phi-3 stacks q, k, v rows (qkv_proj) and gate, up rows (gate_up_proj); GPT-NeoX's
    query_key_value interleaves them per head: rows are [q_h0, k_h0, v_h0, q_h1, ...].
    """
    hd = config.head_dim
    if module == "self_attn.qkv_proj":
        q, k, v = w.split([config.n_head * hd, config.n_kv_head * hd, config.n_kv_head * hd])
        return {"attn.q_proj": q, "attn.k_proj": k, "attn.v_proj": v}
    if module == "mlp.gate_up_proj":
        gate, up = w.chunk(2)
        return {"mlp.gate": gate, "mlp.up": up}
    if module == "attention.query_key_value":
        per_head = w.reshape(config.n_head, 3, hd, *w.shape[1:])
        q, k, v = (per_head[:, i].reshape(config.n_head * hd, *w.shape[1:]) for i in range(3))
        return {"attn.q_proj": q, "attn.k_proj": k, "attn.v_proj": v}
    return None


def rope_model_state_dict(hf: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """Names of every RoPE family -> ours; weights are already (out, in) and in our rotate-half row order."""
    neox = config.family == "gptneox"
    renames = _NEOX_RENAMES if neox else _llama_renames(config)
    sd: dict[str, torch.Tensor] = {}
    for name, w in hf.items():
        if _IGNORED.fullmatch(name):
            continue
        if name in ("lm_head.weight", "embed_out.weight"):  # GPT-NeoX checkpoints call it embed_out
            if not config.tie_embeddings:  # some tied checkpoints still save a copy: ignore it
                sd["lm_head.weight"] = w
            continue
        name = name.removeprefix("gpt_neox." if neox else "model.")
        match = re.fullmatch(r"layers\.(\d+)\.(.+)\.(weight|bias)", name)
        if match:
            block, module, kind = match.groups()
            parts = _split_fused(module, w, config)
            for ours, part in (parts or {renames.get(module, module): w}).items():
                sd[f"blocks.{block}.{ours}.{kind}"] = part
        else:
            module, _, kind = name.rpartition(".")
            sd[f"{renames.get(module, module)}.{kind}"] = w
    return sd


def gemma3_text_weights(hf: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The language model's weights of a multimodal Gemma 3 checkpoint, named as a text-only one.

    transformers 4.x saves them as language_model.model.*, 5.x as model.language_model.*;
    the vision tower and its projector are dropped (llmtui reads text).
    """
    text: dict[str, torch.Tensor] = {}
    for name, w in hf.items():
        for prefix in ("language_model.model.", "model.language_model."):
            if name.startswith(prefix):
                text["model." + name.removeprefix(prefix)] = w
        if name in ("lm_head.weight", "language_model.lm_head.weight"):
            text["lm_head.weight"] = w
    return text


def read_hf_folder(folder: Path, progress: Progress | None = None) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """Config and float32 state dict (our names) of a Hugging Face model folder."""
    raw = read_config_json(folder)
    config = hf_config(raw, folder.name)
    hf = read_safetensors(safetensors_files(folder), progress, f"reading {folder.name}")
    if raw.get("model_type") == "gemma3":
        hf = gemma3_text_weights(hf)
    convert = gpt2_state_dict if config.family == "gpt2" else rope_model_state_dict
    state_dict = convert(hf, config)
    check_state_dict(state_dict, config, folder.name)
    report(progress, f"reading {folder.name}", 1.0)
    return config, state_dict


def download_hf_repo(repo_id: str, *, offline: bool, progress: Progress | None = None) -> Path:
    """The local snapshot folder of a hub repo: downloaded (safetensors + json) or, offline, from the HF cache."""
    import huggingface_hub

    report(progress, f"fetching {repo_id} from huggingface.co", 0.0)
    with hub_errors(repo_id, offline):
        folder = huggingface_hub.snapshot_download(repo_id, allow_patterns=HF_ALLOW_PATTERNS, local_files_only=offline)
    report(progress, f"fetching {repo_id} from huggingface.co", 1.0)
    return Path(folder)
