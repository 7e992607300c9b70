"""A loaded language model: the transformer, its tokenizer and where it runs, in one object.

Everything above the engine (CLI, panes, benchmarks) holds a `LanguageModel`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable, Iterable

import torch

from llmtui.engine.model.config import ModelConfig
from llmtui.engine.errors import DeviceError, ModelLoadError
from llmtui.engine.model.transformer import Capture, ForwardOutput, Transformer
from llmtui.engine.tokenizer.tokenizer import Tokenizer

DEFAULT_MODEL = "smollm2-135m-instruct"

Progress = Callable[[str, float], None]


def resolve_device(name: str) -> torch.device:
    """'cpu', 'cuda' or 'cuda:N' as a torch.device, or DeviceError with what to do."""
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {name} asked for, but no CUDA GPU is available here; use --device cpu")
        return torch.device(name)
    raise DeviceError(f"unknown device {name!r}: use cpu or cuda")


def load_tokenizer(source: Path, vocab_size: int) -> Tokenizer:
    """The tokenizer stored with a model (a .gguf file or a Hugging Face folder), checked against its vocabulary.

    The tokenizer readers raise ValueError, KeyError or OSError on a damaged or unsupported
    vocabulary; for a model being loaded that is the file's fault, so it becomes a ModelLoadError.
    """
    from llmtui.engine.tokenizer.tokenizer import tokenizer_from_gguf, tokenizer_from_hf_folder

    try:
        tokenizer = tokenizer_from_gguf(source) if source.suffix == ".gguf" else tokenizer_from_hf_folder(source)
    except ModelLoadError:
        raise
    except KeyError as err:
        raise ModelLoadError(f"{source.name}: the tokenizer lacks {err}; the file is incomplete or damaged") from err
    except (ValueError, TypeError, OSError) as err:
        why = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        raise ModelLoadError(f"{source.name}: can't read its tokenizer ({why})") from err
    if tokenizer.vocab_size > vocab_size:  # ids the embedding has no row for: an IndexError mid-generation
        raise ModelLoadError(
            f"{source.name}: the tokenizer has {tokenizer.vocab_size} tokens but the model only {vocab_size}; "
            "the tokenizer belongs to another model"
        )
    return tokenizer


@dataclass
class LanguageModel:
    """A transformer and its tokenizer, ready to run on one device."""

    name: str
    source: str
    model: Transformer
    tokenizer: Tokenizer
    device: torch.device
    notes: tuple[str, ...] = ()  # what loading wants the user to know that is no error (see LoadedWeights)
    precision: str = "exact"  # the mode its matrix products run in (model/precision.py)

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def n_params(self) -> int:
        return self.model.n_params()

    @property
    def compute(self) -> dict[str, str]:
        """How this model computes, for --json, exports and the log: precision, weights, kernels (and why)."""
        from llmtui.engine.kernels.native import KERNELS
        from llmtui.engine.model.packed import PackedWeight
        from llmtui.engine.model.precision import describe

        if self.precision != "exact":
            return describe(self.precision)
        if not any(isinstance(m, PackedWeight) for m in self.model.modules()):
            return {"precision": "exact", "weights": "float32", "kernels": "torch"}
        from llmtui.engine.model.decode_step import why_not_fused

        path = KERNELS.path
        compute = {"precision": "exact", "weights": "packed GGUF blocks", "kernels": path.name, "why": path.why}
        if path.name == "native":  # one C++ call per decoded token, or torch's small operations (and why)
            why_not = why_not_fused(self.model)
            compute["decode"] = "fused C++ step" if why_not is None else f"torch operations ({why_not})"
        return compute

    @property
    def compute_label(self) -> str:
        """A few words for the status line: 'exact, packed C++', or 'int8, p not exact' in a faster mode."""
        c = self.compute
        if self.precision != "exact":
            return f"{self.precision}, p not exact"
        weights = "packed" if c["weights"].startswith("packed") else c["weights"]
        return f"{c['precision']}, {weights}" + (" C++" if c["kernels"] == "native" else "")

    @property
    def stop_ids(self) -> list[int]:
        """Tokens that end a generation: the tokenizer's end-of-sequence token."""
        return [self.tokenizer.eos_id] if self.tokenizer.eos_id is not None else []

    @classmethod
    def load(
        cls,
        spec: str = DEFAULT_MODEL,
        *,
        device: str = "cpu",
        progress: Progress | None = None,
        precision: str = "exact",
    ) -> LanguageModel:
        """Load a catalogue name, a local path (GGUF file or Hugging Face folder) or a repo id.

        precision: exact (default) or a faster mode (model/precision.py); a mode this machine
        can't run is said in `notes` and exact runs. Raises ModelLoadError (or DeviceError,
        PrecisionError for an unknown precision) with a one-line, user-facing message.
        """
        from llmtui.engine.kernels.native import KERNELS
        from llmtui.engine.loading.gguf_packed import build_packed_transformer
        from llmtui.engine.loading.load import load_weights
        from llmtui.engine.model import precision as modes
        from llmtui.engine.precision_names import check_precision

        precision = check_precision(precision)
        dev = resolve_device(device)
        why_not = modes.unavailable(precision, dev)
        if why_not:
            precision = "exact"
        if dev.type == "cpu":
            KERNELS.start()  # build or load the packed weights' kernels while the file is read
        weights = load_weights(spec, progress=progress, packed=dev.type == "cpu")  # GPUs get float32 weights
        tokenizer = load_tokenizer(Path(weights.tokenizer_source), weights.config.vocab_size)
        if progress:
            progress("building the model", 0.95)
        if weights.packed:
            model = build_packed_transformer(weights.config, weights.state_dict, weights.packed)
        else:
            model = Transformer(weights.config)
            model.load_state_dict(weights.state_dict, strict=True)
        notes = weights.notes + ((f"{why_not}; running exact",) if why_not else ())
        if precision != "exact":
            if progress:
                progress(f"rounding the weights to {precision}", 0.97)
            kept = modes.apply_precision(model, precision)[1]
            if kept:
                notes += (f"{kept} layers' shapes don't fit the {precision} kernel; they stay exact",)
        model.to(dev).eval()
        if progress:
            progress("ready", 1.0)
        if weights.packed and KERNELS.settled and KERNELS.lib is None:  # said once: slower, same numbers
            notes += (KERNELS.path.describe() + "; the numbers are the same, decoding is slower",)
        return cls(name=weights.name, source=weights.source, model=model, tokenizer=tokenizer, device=dev,
                   notes=notes, precision=precision)

    def encode(self, text: str, allow_special: bool = False) -> list[int]:
        """The text's own tokens (what the Tokenizer pane shows): never BOS; see `prompt_ids`."""
        return self.tokenizer.encode(text, allow_special=allow_special)

    def prompt_ids(self, text: str) -> list[int]:
        """The ids the model runs on for a plain prompt: BOS first where the tokenizer says (see Tokenizer.prompt_ids)."""
        return self.tokenizer.prompt_ids(text)

    def chat_prompt(self, user_text: str, history: list[dict[str, str]] | None = None) -> str:
        """The raw text the model continues for a chat turn, template tokens included."""
        messages = list(history or []) + [{"role": "user", "content": user_text}]
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True)

    def encode_chat(self, user_text: str, history: list[dict[str, str]] | None = None) -> list[int]:
        """Token ids of a chat prompt, the user's text never special (see Tokenizer.encode_chat)."""
        return self.tokenizer.encode_chat(list(history or []) + [{"role": "user", "content": user_text}])

    @torch.inference_mode()
    def run(
        self, ids: list[int], *, capture: bool | Iterable[str] | Capture = True, logits: bool = True
    ) -> ForwardOutput:
        """One forward pass over ids (no cache), every internal captured by default (or the named ones,
        see transformer.CAPTURE_NAMES); logits=False skips the unembedding. Tensors are on the CPU."""
        if not ids:
            raise ValueError("the prompt is empty: type some text first")
        if len(ids) > self.config.context_length:
            raise ValueError(f"the prompt is {len(ids)} tokens; the model's context window holds {self.config.context_length}")
        out = self.model(torch.tensor([ids], device=self.device), capture=capture, logits=logits)
        if self.device.type != "cpu":
            def cpu(kept: list[torch.Tensor | None]) -> list[torch.Tensor | None]:
                return [None if t is None else t.cpu() for t in kept]

            out = ForwardOutput(
                logits=None if out.logits is None else out.logits.cpu(),
                attentions=cpu(out.attentions),
                residuals=cpu(out.residuals),
                attn_outputs=cpu(out.attn_outputs),
                mlp_outputs=cpu(out.mlp_outputs),
            )
        return out
