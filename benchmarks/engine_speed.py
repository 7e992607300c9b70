"""Engine speed on the default model: llmtui exact (packed GGUF blocks, the default), llmtui on
float32 weights, Hugging Face transformers on the same float32 weights, and llama.cpp on the same
Q4_1 file.

Measures: load time, prefill of a 200-token prompt, and greedy decoding of 128 tokens (the
packed model with its fused C++ decoding step, and again with each step as torch operations) —
plain, with the top-10 probability table built at every step (what the Generate pane
shows), and with attention capture at every step; then how far each engine's
probabilities are from float32 weights' over the 128 greedy steps, and the memory a
fresh process holds after loading. The variants run in turn, round after round, so the
machine's noise falls on all of them and the ratios hold. One command prints the table:

    .venv/bin/python benchmarks/engine_speed.py [--threads N] [--llama-python PATH] [--rounds R]

llama.cpp runs in its own environment (--llama-python, default /work/bench-venv/bin/python;
skipped when absent): python3 -m venv /work/bench-venv && /work/bench-venv/bin/pip install
torch==2.13.0 numpy transformers 'llama-cpp-python==0.3.36' (a source build, 10-20 min).
--random-weights: float32 only, the same config with random weights and no download (a GPU box).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the app runs (llmtui/cli.py); before torch loads OpenMP

import torch  # noqa: E402

from llmtui.engine.model.config import ModelConfig  # noqa: E402
from llmtui.engine.model.transformer import Transformer  # noqa: E402

PROMPT_TOKENS, DECODE_TOKENS, ROUNDS = 200, 128, 5


def interleaved(variants: dict[str, object], rounds: int = ROUNDS) -> dict[str, float]:
    """Median seconds of each variant, run in turn round after round (after one warm-up each).

    Interleaving spreads the machine's noise over all variants, so their ratios hold.
    """
    for fn in variants.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


@torch.inference_mode()
def our_decode(model: Transformer, prompt: torch.Tensor, *, table: bool = False, capture: bool = False, tokenizer=None) -> None:
    from llmtui.engine.generation import candidates
    from llmtui.engine.sampling import SamplingSettings, distribution

    greedy = SamplingSettings(temperature=0)
    cache = model.new_cache(initial=PROMPT_TOKENS + DECODE_TOKENS + 1)
    logits = model(prompt, cache, last_only=True).logits[0, -1]
    ids = prompt[0].tolist()
    lm = type("LM", (), {"tokenizer": tokenizer})
    for _ in range(DECODE_TOKENS):
        if table:
            dist = distribution(logits, greedy, ids)
            token = int(dist.final.argmax())
            candidates(lm, dist, 10, include=token)
        else:
            token = int(logits.argmax())
        ids.append(token)
        logits = model(torch.tensor([[token]], device=prompt.device), cache, capture=capture, last_only=True).logits[0, -1]


def torch_steps(decode, *args) -> None:
    """Run decode with every decoding step as torch operations (the path without the fused C++ step)."""
    from llmtui.engine.model import decode_step

    fused, decode_step.FUSED = decode_step.FUSED, False
    try:
        decode(*args)
    finally:
        decode_step.FUSED = fused


def hf_model(config: ModelConfig, state_dict: dict[str, torch.Tensor], device: torch.device):
    import transformers

    hf_config = transformers.LlamaConfig(
        vocab_size=config.vocab_size, hidden_size=config.d_model, intermediate_size=config.d_ff,
        num_hidden_layers=config.n_layer, num_attention_heads=config.n_head, num_key_value_heads=config.n_kv_head,
        max_position_embeddings=config.context_length, rms_norm_eps=config.norm_eps, rope_theta=config.rope_theta,
        tie_word_embeddings=config.tie_embeddings, torch_dtype="float32",
    )
    names = {"tok_emb": "model.embed_tokens", "final_norm": "model.norm", "attn_norm": "input_layernorm",
             "mlp_norm": "post_attention_layernorm", "attn.": "self_attn.", "mlp.gate": "mlp.gate_proj",
             "mlp.up": "mlp.up_proj", "mlp.down": "mlp.down_proj", "blocks.": "model.layers."}
    hf_sd = {}
    for key, value in state_dict.items():
        for a, b in names.items():
            key = key.replace(a, b)
        hf_sd[key] = value
    model = transformers.LlamaForCausalLM(hf_config)
    missing, unexpected = model.load_state_dict(hf_sd, strict=False)
    assert not unexpected and all("lm_head" in m for m in missing), (missing, unexpected)
    model.tie_weights()
    return model.to(device).eval()


@torch.inference_mode()
def hf_decode(model, prompt: torch.Tensor) -> None:
    from transformers import DynamicCache

    cache = DynamicCache()
    out = model(prompt, past_key_values=cache, use_cache=True, logits_to_keep=1)
    for _ in range(DECODE_TOKENS):
        token = out.logits[0, -1].argmax().view(1, 1)
        out = model(token, past_key_values=out.past_key_values, use_cache=True)


LLAMA_PYTHON = Path("/work/bench-venv/bin/python")  # where llama-cpp-python was built (benchmarks/RESULTS.md)


class LlamaCppPeer:
    """llama.cpp on the same GGUF file, in its own environment (llama_cpp_peer.py), driven round by round."""

    def __init__(self, python: Path, model: Path, threads: int, prompt: list[int]) -> None:
        script = Path(__file__).with_name("llama_cpp_peer.py")
        ids = ",".join(map(str, prompt))
        self.proc = subprocess.Popen([str(python), str(script), str(model), str(threads), ids, str(DECODE_TOKENS)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.ask(None) == "ready"

    def ask(self, command: str | None) -> str:
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def has_llama_cpp(python: Path) -> bool:
    if python.exists() and subprocess.run([str(python), "-c", "import llama_cpp"], capture_output=True).returncode == 0:
        return True
    print(f"llama.cpp peer skipped: no llama_cpp importable by {python}", file=sys.stderr)
    return False


@torch.inference_mode()
def greedy_probs(model: Transformer, prompt: torch.Tensor) -> tuple[list[int], torch.Tensor]:
    """The greedy tokens after the prompt and each step's probabilities (steps, vocab)."""
    cache = model.new_cache(initial=PROMPT_TOKENS + DECODE_TOKENS + 1)
    logits = model(prompt, cache, last_only=True).logits[0, -1]
    tokens, probs = [], []
    for _ in range(DECODE_TOKENS):
        probs.append(logits.softmax(-1))
        tokens.append(int(logits.argmax()))
        logits = model(torch.tensor([[tokens[-1]]]), cache, last_only=True).logits[0, -1]
    return tokens, torch.stack(probs)


def agreement(tokens: list[int], probs: torch.Tensor, exact_tokens: list[int], exact_probs: torch.Tensor) -> str:
    """Greedy tokens equal to exact's before the first difference, and the largest probability gap up to it."""
    same = next((i for i, (a, b) in enumerate(zip(tokens, exact_tokens)) if a != b), len(tokens))
    upto = min(same + 1, len(tokens))  # the step that differs still had the same context
    gap = (probs[:upto] - exact_probs[:upto]).abs().max().item()
    return f"{same}/{len(tokens)} tokens equal; max probability gap {gap:.1e}"


MEMORY_PROBE = """
import sys, torch
from llmtui.engine.lm import LanguageModel
from llmtui.engine.loading.load import fetch_default_model, load_weights
from llmtui.engine.model.transformer import Transformer
mode = sys.argv[1]
if mode == "packed":
    lm = LanguageModel.load()
elif mode == "float32":
    w = load_weights(str(fetch_default_model()))
    m = Transformer(w.config); m.load_state_dict(w.state_dict); del w
status = dict(l.split(":", 1) for l in open("/proc/self/status"))
print(int(status["VmRSS"].split()[0]) // 1024, int(status["VmHWM"].split()[0]) // 1024)
"""


def memory_after_load(mode: str) -> tuple[int, int]:
    """(MB resident after loading, MB at the peak) in a fresh process; mode 'none' loads no weights."""
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, mode], capture_output=True, text=True, check=True)
    rss, peak = out.stdout.split()
    return int(rss), int(peak)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--random-weights", action="store_true", help="float32 only, no download (a GPU box)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--llama-python", type=Path, default=LLAMA_PYTHON,
                        help="a Python with llama-cpp-python for the llama.cpp peer (skipped if absent)")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows: list[tuple[str, str]] = []
    prompt = torch.randint(100, 40000, (1, PROMPT_TOKENS), generator=torch.Generator().manual_seed(0)).to(device)

    tokenizer = None
    packed = None
    path = None
    if args.random_weights:
        config = ModelConfig(family="llama", vocab_size=49152, n_layer=30, n_head=9, n_kv_head=3, d_model=576,
                             d_ff=1536, context_length=8192, norm_eps=1e-5, rope_theta=100000.0)
        state_dict = Transformer(config).state_dict()

        class _Tok:
            def token_text(self, i: int) -> str:
                return str(i)

        tokenizer = _Tok()
    else:
        from llmtui.engine.kernels.native import KERNELS
        from llmtui.engine.lm import LanguageModel
        from llmtui.engine.loading.load import fetch_default_model, load_weights

        path = fetch_default_model()
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            weights = load_weights(str(path), cache_dir=Path(tmp))
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            weights = load_weights(str(path), cache_dir=Path(tmp))
            cached = time.perf_counter() - t0
        t0 = time.perf_counter()
        lm = LanguageModel.load(str(path))
        packed_load = time.perf_counter() - t0
        kernels = KERNELS.wait()
        packed, tokenizer = lm.model, lm.tokenizer
        rows += [("load, float32 first (dequantize GGUF, write the cache)", f"{first:.2f} s"),
                 ("load, float32 cached", f"{cached:.2f} s"),
                 ("load, exact packed (the default: read the GGUF's blocks)", f"{packed_load:.2f} s"),
                 ("packed kernels", kernels.describe()),
                 ("decoding step", lm.compute.get("decode", "torch operations"))]
        config, state_dict = weights.config, weights.state_dict

    ours = Transformer(config)
    ours.load_state_dict(state_dict, strict=True)
    ours.to(device).eval()
    theirs = hf_model(config, state_dict, device)
    models = {"float32": ours} if packed is None else {"exact": packed, "float32": ours}

    def prefill(model: Transformer):
        def run() -> None:
            with torch.inference_mode():
                model(prompt, model.new_cache(initial=PROMPT_TOKENS), last_only=True)
        return run

    def prefill_hf() -> None:
        with torch.inference_mode():
            theirs(prompt, logits_to_keep=1)

    variants = {}
    for name, model in models.items():
        variants[f"prefill {name}"] = prefill(model)
        variants[f"plain {name}"] = lambda model=model: our_decode(model, prompt)
    if packed is not None:  # the same packed model with each step as torch operations (LLMTUI_DECODE=torch)
        variants["prefill exact, torch step"] = prefill(packed)
        variants["plain exact, torch step"] = lambda: torch_steps(our_decode, packed, prompt)
    first = next(iter(models.values()))
    variants["table"] = lambda: our_decode(first, prompt, table=True, tokenizer=tokenizer)
    variants["capture"] = lambda: our_decode(first, prompt, capture=True)
    variants["prefill hf"] = prefill_hf
    variants["plain hf"] = lambda: hf_decode(theirs, prompt)
    peer = None
    if path is not None and has_llama_cpp(args.llama_python):
        peer = LlamaCppPeer(args.llama_python, path, args.threads, prompt[0].tolist())
        variants["prefill llama.cpp"] = lambda: peer.ask("prefill")
        variants["plain llama.cpp"] = lambda: peer.ask("decode")
    t = interleaved(variants, args.rounds)
    # Decode time = the whole run minus one prefill, per generated token.
    tps = {k: DECODE_TOKENS / (t[f"plain {k}"] - t[f"prefill {k}"])
           for k in [*models, "exact, torch step", "hf", "llama.cpp"]
           if f"plain {k}" in t}
    first_name = next(iter(models))
    for k in tps:
        rows.append((f"prefill {PROMPT_TOKENS} tokens, {k}", f"{t[f'prefill {k}'] * 1000:.0f} ms"))
    for k, v in tps.items():
        rows.append((f"decode, {k}", f"{v:.1f} tok/s"))
    table_tps = DECODE_TOKENS / (t["table"] - t[f"prefill {first_name}"])
    capture_tps = DECODE_TOKENS / (t["capture"] - t[f"prefill {first_name}"])
    rows += [(f"decode, {first_name} with the top-10 table", f"{table_tps:.1f} tok/s"),
             (f"decode, {first_name} with attention capture", f"{capture_tps:.1f} tok/s")]
    for k in tps:
        if k != first_name:
            rows.append((f"**{first_name} / {k}**", f"**{tps[first_name] / tps[k]:.2f}x**"))
    rows.append(("table cost (share of decode time)", f"{(1 - table_tps / tps[first_name]) * 100:.1f} %"))

    if packed is not None and device.type == "cpu":
        exact_tokens, exact_probs = greedy_probs(ours, prompt)  # float32 weights: the reference
        tokens, probs = greedy_probs(packed, prompt)
        rows.append(("exact (packed) vs float32 weights, 128 greedy steps", agreement(tokens, probs, exact_tokens,
                                                                                    exact_probs)))
        if peer is not None:
            with tempfile.TemporaryDirectory() as tmp:
                peer.ask(f"probs {tmp}/p.npy")
                import numpy as np

                llama_probs = torch.from_numpy(np.load(f"{tmp}/p.npy"))
            llama_tokens = [int(i) for i in peer.ask("tokens").split(",")]
            rows.append(("llama.cpp (same Q4_1 file) vs float32 weights", agreement(llama_tokens, llama_probs,
                                                                                 exact_tokens, exact_probs)))
        base, _ = memory_after_load("none")
        size = path.stat().st_size // 2**20
        for mode in ("packed", "float32"):
            rss, peak = memory_after_load(mode)
            rows.append((f"memory after load, {mode} (a process with torch and llmtui imported: {base} MB; "
                         f"file {size} MB)", f"{rss} MB ({rss - base} MB more, tokenizer included; peak {peak} MB)"))
    if peer is not None:
        peer.close()
    import transformers

    print(f"machine: {platform.machine()} {platform.processor()}, {torch.get_num_threads()} torch threads, "
          f"device {device}, torch {torch.__version__}, transformers {transformers.__version__}, "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    print("| measure | value |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")

if __name__ == "__main__":
    main()
