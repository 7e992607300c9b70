"""Load time and decode speed of every family llmtui reads, next to transformers on the same weights.

Each family is a tiny random model (d_model 128, 4 layers, 2,048 tokens; sliding windows of
64, shorter than the prompt), and one random model has Qwen2.5-0.5B's config (494 M
parameters, about 2 GB of float32 safetensors and 4 GB of memory while it runs), so a later
speed change can be compared family by family. transformers (a test dependency) writes each
Hugging Face folder and is the peer: the same float32 weights, its own KV cache, greedy.
Rounds are interleaved (every model in turn, round after round; median), so the machine's
noise falls on all alike. One command, from the repository root, on a quiet machine (about
5 minutes there; the table is printed to paste into benchmarks/RESULTS.md):

    OMP_NUM_THREADS=<cores> .venv/bin/python benchmarks/families.py

    [--rounds 3] [--tiny-only] [--only NAME ...]

Load is llmtui's whole path: config.json, safetensors to float32, the state dict checked,
the Transformer built and filled.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import transformers

from llmtui.engine.loading.load import load_weights
from llmtui.engine.model.transformer import Transformer

TINY = dict(vocab_size=2048, hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=512, bos_token_id=None, eos_token_id=None,
            pad_token_id=None)  # fmt: skip
WINDOW = 64
FAMILIES: dict[str, tuple[str, dict]] = {
    "gpt2": ("GPT2Config", dict(vocab_size=2048, n_embd=128, n_layer=4, n_head=4, n_positions=512,
                                bos_token_id=None, eos_token_id=None)),
    "llama": ("LlamaConfig", TINY),
    "llama (llama3 rope)": ("LlamaConfig", TINY | dict(rope_scaling=dict(
        rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
        original_max_position_embeddings=128))),
    "mistral (window)": ("MistralConfig", TINY | dict(sliding_window=WINDOW)),
    "qwen2": ("Qwen2Config", TINY),
    "qwen3": ("Qwen3Config", TINY | dict(head_dim=32)),
    "gemma2": ("Gemma2Config", TINY | dict(head_dim=32, sliding_window=WINDOW)),
    "gemma3": ("Gemma3TextConfig", TINY | dict(head_dim=32, sliding_window=WINDOW, sliding_window_pattern=2)),
    "phi3 (longrope)": ("Phi3Config", TINY | dict(original_max_position_embeddings=128, rope_scaling=dict(
        rope_type="longrope", short_factor=[1.0] * 16, long_factor=[2.0] * 16))),
    "olmo2": ("Olmo2Config", TINY),
    "gpt-neox": ("GPTNeoXConfig",
                 {k: v for k, v in TINY.items() if k != "num_key_value_heads"} | dict(rotary_pct=0.25)),
}  # fmt: skip
MID = ("Qwen2Config", dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                           num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                           rope_theta=1e6, tie_word_embeddings=True, bos_token_id=None, eos_token_id=None,
                           pad_token_id=None))  # fmt: skip


def write_folder(folder: Path, config_class: str, fields: dict) -> transformers.PreTrainedModel:
    config = getattr(transformers, config_class)(**fields)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager").eval()
    model.save_pretrained(folder)
    return model


def load(folder: Path) -> Transformer:
    weights = load_weights(str(folder))
    model = Transformer(weights.config)
    model.load_state_dict(weights.state_dict, strict=True)
    return model.eval()


@torch.inference_mode()
def our_decode(model: Transformer, prompt: torch.Tensor, n: int) -> None:
    cache = model.new_cache(initial=prompt.shape[1] + n)
    logits = model(prompt, cache, last_only=True).logits
    for _ in range(n):
        logits = model(logits[:, -1].argmax(-1, keepdim=True), cache, last_only=True).logits


@torch.inference_mode()
def their_decode(model: transformers.PreTrainedModel, prompt: torch.Tensor, n: int) -> None:
    model.generate(prompt, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tiny-only", action="store_true", help="leave out the random model with Qwen2.5-0.5B's config")
    parser.add_argument("--only", nargs="*", help="run these rows alone (names as in the table)")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    models = {name: (cls, fields, 96, 64) for name, (cls, fields) in FAMILIES.items()}  # prompt 96, decode 64
    if not args.tiny_only:
        models["qwen2.5-0.5B shape (random)"] = (*MID, 64, 32)
    if args.only:
        models = {name: spec for name, spec in models.items() if name in args.only}
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: python {platform.python_version()}, "
          f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} threads "
          f"of {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        theirs, folders = {}, {}
        for name, (cls, fields, _, _) in models.items():
            folders[name] = Path(tmp) / name.replace(" ", "_")
            theirs[name] = write_folder(folders[name], cls, fields)
        loads: dict[str, list[float]] = {name: [] for name in models}
        ours_s: dict[str, list[float]] = {name: [] for name in models}
        theirs_s: dict[str, list[float]] = {name: [] for name in models}
        for r in range(args.rounds + 1):  # round 0 warms up
            for name, (_, _, prompt_len, n) in models.items():
                prompt = torch.randint(0, 2048, (1, prompt_len), generator=torch.Generator().manual_seed(r))
                start = time.perf_counter()
                ours = load(folders[name])
                loaded = time.perf_counter() - start
                ours_t = timed(lambda: our_decode(ours, prompt, n))
                theirs_t = timed(lambda: their_decode(theirs[name], prompt, n))
                del ours
                if r:
                    loads[name].append(loaded)
                    ours_s[name].append(ours_t)
                    theirs_s[name].append(theirs_t)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}\n")
    print("| model | parameters | load | prompt + tokens | llmtui | transformers | llmtui / transformers |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, (_, _, prompt_len, n) in models.items():
        params = sum(p.numel() for p in theirs[name].parameters())
        ours_rate = n / statistics.median(ours_s[name])
        theirs_rate = n / statistics.median(theirs_s[name])
        load_ms = statistics.median(loads[name]) * 1000
        print(f"| {name} | {params / 1e6:.2f} M | {load_ms:.0f} ms | {prompt_len} + {n} | "
              f"{ours_rate:.1f} tok/s | {theirs_rate:.1f} tok/s | {ours_rate / theirs_rate:.2f}x |")  # fmt: skip
    print(f"\n(tok/s: generated tokens over the time of prefill and decoding; median of {args.rounds} rounds)")


if __name__ == "__main__":
    main()
