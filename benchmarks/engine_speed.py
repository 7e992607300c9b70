"""Engine speed on the default model, next to Hugging Face transformers on the same weights.

Measures: load time (first, which dequantizes the GGUF, and cached), prefill of a
200-token prompt, and greedy decoding of 128 tokens — plain, with the top-10
probability table built at every step (what the Generate pane shows), and with
attention capture at every step. transformers runs the same dequantized float32
weights in the same process, so the ratio is what counts on a noisy machine.

    .venv/bin/python benchmarks/engine_speed.py [--device cpu|cuda] [--random-weights]

--random-weights builds the same config with random weights and no download (for a
GPU machine that can't fetch the file; speed is the same).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from llmtui.engine.model.config import ModelConfig
from llmtui.engine.model.transformer import Transformer

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--random-weights", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    rows: list[tuple[str, str]] = []

    tokenizer = None
    if args.random_weights:
        config = ModelConfig(family="llama", vocab_size=49152, n_layer=30, n_head=9, n_kv_head=3, d_model=576,
                             d_ff=1536, context_length=8192, norm_eps=1e-5, rope_theta=100000.0)
        state_dict = Transformer(config).state_dict()

        class _Tok:
            def token_text(self, i: int) -> str:
                return str(i)

        tokenizer = _Tok()
    else:
        from llmtui.engine.loading.load import fetch_default_model, load_weights
        from llmtui.engine.tokenizer.tokenizer import tokenizer_from_gguf

        path = fetch_default_model()
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            weights = load_weights(str(path), cache_dir=Path(tmp))
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            weights = load_weights(str(path), cache_dir=Path(tmp))
            cached = time.perf_counter() - t0
        rows += [("load, first (dequantize GGUF)", f"{first:.2f} s"), ("load, cached", f"{cached:.2f} s")]
        config, state_dict = weights.config, weights.state_dict
        tokenizer = tokenizer_from_gguf(path)

    ours = Transformer(config)
    ours.load_state_dict(state_dict, strict=True)
    ours.to(device).eval()
    theirs = hf_model(config, state_dict, device)
    prompt = torch.randint(100, 40000, (1, PROMPT_TOKENS), generator=torch.Generator().manual_seed(0)).to(device)

    def prefill_ours() -> None:
        with torch.inference_mode():
            ours(prompt, ours.new_cache(initial=PROMPT_TOKENS), last_only=True)

    def prefill_hf() -> None:
        with torch.inference_mode():
            theirs(prompt, logits_to_keep=1)

    t = interleaved({
        "prefill_ours": prefill_ours,
        "prefill_hf": prefill_hf,
        "plain": lambda: our_decode(ours, prompt),
        "table": lambda: our_decode(ours, prompt, table=True, tokenizer=tokenizer),
        "capture": lambda: our_decode(ours, prompt, capture=True),
        "hf": lambda: hf_decode(theirs, prompt),
    })
    ours_prefill, hf_prefill, plain, table, capture, hf = (
        t[k] for k in ("prefill_ours", "prefill_hf", "plain", "table", "capture", "hf"))
    # Decode time = the whole run minus one prefill, per generated token.
    tps = lambda total, prefill: DECODE_TOKENS / (total - prefill)  # noqa: E731
    rows += [
        (f"prefill {PROMPT_TOKENS} tokens, llmtui", f"{ours_prefill * 1000:.0f} ms"),
        (f"prefill {PROMPT_TOKENS} tokens, transformers", f"{hf_prefill * 1000:.0f} ms"),
        ("decode, llmtui plain", f"{tps(plain, ours_prefill):.1f} tok/s"),
        ("decode, llmtui with top-10 table", f"{tps(table, ours_prefill):.1f} tok/s"),
        ("decode, llmtui with attention capture", f"{tps(capture, ours_prefill):.1f} tok/s"),
        ("decode, transformers", f"{tps(hf, hf_prefill):.1f} tok/s"),
        ("plain / transformers", f"{tps(plain, ours_prefill) / tps(hf, hf_prefill):.2f}x"),
        ("table cost (share of decode time)", f"{((table - plain) / (table - ours_prefill)) * 100:.1f} %"),
    ]
    import transformers

    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, device {device}, "
          f"torch {torch.__version__}, transformers {transformers.__version__}")
    print("| measure | value |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
