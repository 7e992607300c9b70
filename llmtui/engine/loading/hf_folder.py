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

from llmtui.engine.model.config import ModelConfig
from llmtui.engine.loading.common import ModelLoadError, Progress, check_state_dict, report
from llmtui.engine.loading.fetch import hub_errors

HF_ALLOW_PATTERNS = ["config.json", "*.safetensors", "*.json", "merges.txt", "vocab.json"]
LLAMA_LIKE = ("llama", "mistral")
GELU_TANH = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")  # our GPT-2 MLP uses the tanh GELU


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


_WHOLE_NUMBERS = frozenset(
    {"vocab_size", "n_layer", "n_head", "n_embd", "n_inner", "n_positions", "num_hidden_layers",
     "num_attention_heads", "num_key_value_heads", "hidden_size", "intermediate_size", "max_position_embeddings",
     "head_dim", "sliding_window"}
)  # fmt: skip
_NUMBERS = frozenset({"layer_norm_epsilon", "rms_norm_eps", "rope_theta"})


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def hf_config(raw: dict[str, Any], where: str) -> ModelConfig:
    """ModelConfig from config.json, refusing options our model does not implement."""
    model_type = raw.get("model_type")

    def refuse(what: str) -> ModelLoadError:
        return ModelLoadError(f"{where}: {what}, which llmtui does not implement; pick a plain GPT-2 or Llama model")

    for key, value in raw.items():  # types first, so that the arithmetic below can trust them
        if key in _WHOLE_NUMBERS and value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ModelLoadError(f"{where}: config.json has {key} = {_short(value)}, not a whole number")
        if key in _NUMBERS and value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ModelLoadError(f"{where}: config.json has {key} = {_short(value)}, not a number")
        if key in ("rope_scaling", "rope_parameters") and value is not None and not isinstance(value, dict):
            raise ModelLoadError(f"{where}: config.json has {key} = {_short(value)}, not an object")
    try:
        if model_type == "gpt2":
            if raw.get("activation_function", "gelu_new") not in GELU_TANH:
                raise refuse(f"activation {raw['activation_function']!r}")
            if (
                raw.get("scale_attn_by_inverse_layer_idx")
                or raw.get("reorder_and_upcast_attn")
                or raw.get("add_cross_attention")
            ):
                raise refuse(
                    "a GPT-2 attention variant "
                    "(scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn / cross-attention)"
                )
            if raw.get("scale_attn_weights") is False:
                raise refuse("unscaled attention (scale_attn_weights=false)")
            d_model = raw["n_embd"]
            return ModelConfig(
                family="gpt2",
                vocab_size=raw["vocab_size"],
                n_layer=raw["n_layer"],
                n_head=raw["n_head"],
                d_model=d_model,
                d_ff=raw.get("n_inner") or 4 * d_model,
                context_length=raw.get("n_positions", 1024),
                norm_eps=raw.get("layer_norm_epsilon", 1e-5),
                tie_embeddings=raw.get("tie_word_embeddings", True),
            )
        if model_type in LLAMA_LIKE:
            if raw.get("hidden_act", "silu") != "silu":
                raise refuse(f"activation {raw['hidden_act']!r}")
            if raw.get("attention_bias") or raw.get("mlp_bias"):
                raise refuse("biases in attention or MLP")
            window = raw.get("sliding_window")
            if window is not None and window < raw.get("max_position_embeddings", 2048):
                raise refuse(f"sliding-window attention ({window} tokens)")
            # transformers < 5 writes rope_theta / rope_scaling; 5.x writes rope_parameters.
            rope = raw.get("rope_parameters") or {}
            scaling = raw.get("rope_scaling") or {}
            rope_type = scaling.get("rope_type") or scaling.get("type") or rope.get("rope_type") or "default"
            if rope_type != "default":
                raise refuse(f"RoPE scaling {rope_type!r}")
            n_head = raw["num_attention_heads"]
            return ModelConfig(
                family="llama",
                vocab_size=raw["vocab_size"],
                n_layer=raw["num_hidden_layers"],
                n_head=n_head,
                n_kv_head=raw.get("num_key_value_heads") or n_head,
                d_model=raw["hidden_size"],
                d_ff=raw["intermediate_size"],
                context_length=raw.get("max_position_embeddings", 2048),
                norm_eps=raw.get("rms_norm_eps", 1e-6),
                rope_theta=raw.get("rope_theta") or rope.get("rope_theta") or 10000.0,
                tie_embeddings=raw.get("tie_word_embeddings", False),  # LlamaConfig's default
                head_dim=raw.get("head_dim") or 0,
            )
    except KeyError as err:
        raise ModelLoadError(f"{where}: config.json lacks {err.args[0]!r}; the file is incomplete") from err
    except (ValueError, TypeError) as err:
        raise ModelLoadError(f"{where}: inconsistent config.json ({err})") from err
    raise ModelLoadError(
        f"{where}: model_type {model_type!r} is not supported; llmtui reads gpt2 and llama (also mistral) models"
    )


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
_IGNORED = re.compile(r".*(\.attn\.bias|\.attn\.masked_bias|rotary_emb\.inv_freq)$")


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


def llama_state_dict(hf: dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """Llama names -> ours; weights are already (out, in) and in our RoPE row order."""
    sd: dict[str, torch.Tensor] = {}
    renames = {
        "embed_tokens": "tok_emb",
        "norm": "final_norm",
        "input_layernorm": "attn_norm",
        "post_attention_layernorm": "mlp_norm",
        "self_attn.q_proj": "attn.q_proj",
        "self_attn.k_proj": "attn.k_proj",
        "self_attn.v_proj": "attn.v_proj",
        "self_attn.o_proj": "attn.o_proj",
        "mlp.gate_proj": "mlp.gate",
        "mlp.up_proj": "mlp.up",
        "mlp.down_proj": "mlp.down",
    }
    for name, w in hf.items():
        if _IGNORED.fullmatch(name):
            continue
        if name == "lm_head.weight":
            if not config.tie_embeddings:  # some tied checkpoints still save a copy: ignore it
                sd[name] = w
            continue
        name = name.removeprefix("model.")
        match = re.fullmatch(r"layers\.(\d+)\.(.+)\.(weight|bias)", name)
        if match:
            block, module, kind = match.groups()
            sd[f"blocks.{block}.{renames.get(module, module)}.{kind}"] = w
        else:
            module, _, kind = name.rpartition(".")
            sd[f"{renames.get(module, module)}.{kind}"] = w
    return sd


def read_hf_folder(folder: Path, progress: Progress | None = None) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """Config and float32 state dict (our names) of a Hugging Face model folder."""
    config = hf_config(read_config_json(folder), folder.name)
    hf = read_safetensors(safetensors_files(folder), progress, f"reading {folder.name}")
    convert = gpt2_state_dict if config.family == "gpt2" else llama_state_dict
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
