"""Does decoding speed scale with model size? A random-weight model of a bigger model's shape, three engines.

Writes a GGUF of Qwen2.5-1.5B's shape (28 layers, d_model 1536, 12 heads / 2 KV heads, d_ff 8960,
151,936 tokens, tied, q/k/v biases) with random blocks laid out like llama.cpp's Q4_K_M (Q4_K
matrices, attn_v and ffn_down in Q6_K, the embedding in Q6_K), then times, rounds interleaved
(engine_speed.py's method): llmtui exact (its packed kernels on the file's blocks), Hugging Face
transformers on the same weights dequantized to float32, and llama.cpp on the same file.

    .venv/bin/python benchmarks/model_shapes.py [--shape qwen2.5-1.5b] [--threads N] [--rounds R]
        [--prompt-tokens 64] [--tokens 32] [--no-transformers] [--llama-python PATH]

Random weights: the text is meaningless, the work per token is the real model's. The file
(about 1.1 GB) is written to a temporary folder and deleted at the end. transformers holds the
float32 weights: 6.2 GB of memory for this shape (--no-transformers leaves it out).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the app runs (llmtui/cli.py); before torch loads OpenMP

import numpy as np  # noqa: E402
import torch  # noqa: E402
from gguf import GGMLQuantizationType as Q  # noqa: E402
from gguf import GGUFWriter  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))
import engine_speed  # noqa: E402

from llmtui.engine.kernels.blocks import _HALF_OFFSETS, BLOCK_BYTES, BLOCK_SIZES  # noqa: E402
from llmtui.engine.model.config import ModelConfig  # noqa: E402


@dataclass(frozen=True)
class Shape:
    n_layer: int
    d_model: int
    n_head: int
    n_kv_head: int
    d_ff: int
    vocab: int
    rope_theta: float
    context: int


SHAPES = {
    "qwen2.5-1.5b": Shape(n_layer=28, d_model=1536, n_head=12, n_kv_head=2, d_ff=8960, vocab=151936,
                          rope_theta=1e6, context=32768),
    "tiny": Shape(n_layer=2, d_model=256, n_head=4, n_kv_head=2, d_ff=512, vocab=512, rope_theta=1e6, context=512),
}
# float16 scale sizes giving weights of about 0.01-0.03, as trained models have: Q4_K's 6-bit
# sub-scales times 4-bit codes reach ~900, Q6_K's 8-bit sub-scales times 6-bit codes ~4000.
SCALE = {Q.Q4_K: 3e-5, Q.Q6_K: 6e-6}


def random_matrix(rng: np.random.Generator, qtype: Q, rows: int, columns: int) -> np.ndarray:
    """Random blocks of qtype (rows, bytes per row) with small float16 scales."""
    n_blocks = rows * columns // BLOCK_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(n_blocks, BLOCK_BYTES[qtype]), dtype=np.uint8)
    for start in _HALF_OFFSETS[qtype]:
        scales = rng.uniform(0.5, 1.0, size=n_blocks).astype(np.float32) * SCALE[qtype]
        blocks[:, start : start + 2] = scales.astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
    return blocks.reshape(rows, -1)


def write_q4_k_m_like(path: Path, s: Shape, seed: int = 0) -> Path:
    """A Qwen2 GGUF of shape s with random Q4_K_M-like blocks and a placeholder vocabulary llama.cpp accepts."""
    rng = np.random.default_rng(seed)
    writer = GGUFWriter(str(path), arch="qwen2")
    writer.add_block_count(s.n_layer)
    writer.add_context_length(s.context)
    writer.add_embedding_length(s.d_model)
    writer.add_feed_forward_length(s.d_ff)
    writer.add_head_count(s.n_head)
    writer.add_head_count_kv(s.n_kv_head)
    writer.add_rope_freq_base(s.rope_theta)
    writer.add_layer_norm_rms_eps(1e-6)
    specials = ["<unk>", "<s>", "</s>"]
    tokens = specials + [f"<0x{b:02X}>" for b in range(256)]
    tokens += [f"\u2581t{i}" for i in range(s.vocab - len(tokens))]
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * len(tokens))
    writer.add_token_types([2, 3, 3] + [6] * 256 + [1] * (len(tokens) - 259))  # unknown, control, byte, normal
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)

    def vector(name: str, n: int, value: float | None = None) -> None:
        data = np.full(n, value, np.float32) if value is not None else rng.normal(0, 0.02, n).astype(np.float32)
        writer.add_tensor(name, data)

    def matrix(name: str, qtype: Q, rows: int, columns: int) -> None:
        writer.add_tensor(name, random_matrix(rng, qtype, rows, columns), raw_dtype=qtype)

    hd = s.d_model // s.n_head
    matrix("token_embd.weight", Q.Q6_K, s.vocab, s.d_model)
    for i in range(s.n_layer):
        b = f"blk.{i}."
        vector(b + "attn_norm.weight", s.d_model, 1.0)
        matrix(b + "attn_q.weight", Q.Q4_K, s.n_head * hd, s.d_model)
        matrix(b + "attn_k.weight", Q.Q4_K, s.n_kv_head * hd, s.d_model)
        matrix(b + "attn_v.weight", Q.Q6_K, s.n_kv_head * hd, s.d_model)
        for part, n in (("q", s.n_head * hd), ("k", s.n_kv_head * hd), ("v", s.n_kv_head * hd)):
            vector(b + f"attn_{part}.bias", n)
        matrix(b + "attn_output.weight", Q.Q4_K, s.d_model, s.n_head * hd)
        vector(b + "ffn_norm.weight", s.d_model, 1.0)
        matrix(b + "ffn_gate.weight", Q.Q4_K, s.d_ff, s.d_model)
        matrix(b + "ffn_up.weight", Q.Q4_K, s.d_ff, s.d_model)
        matrix(b + "ffn_down.weight", Q.Q6_K, s.d_model, s.d_ff)
    vector("output_norm.weight", s.d_model, 1.0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def transformers_qwen2(config: ModelConfig, state_dict: dict[str, torch.Tensor]):
    """transformers' Qwen2 holding our float32 tensors themselves (no second copy of 6 GB)."""
    import transformers

    hf_config = transformers.Qwen2Config(
        vocab_size=config.vocab_size, hidden_size=config.d_model, intermediate_size=config.d_ff,
        num_hidden_layers=config.n_layer, num_attention_heads=config.n_head, num_key_value_heads=config.n_kv_head,
        max_position_embeddings=config.context_length, rms_norm_eps=config.norm_eps, rope_theta=config.rope_theta,
        tie_word_embeddings=True, torch_dtype="float32",
    )
    names = {"tok_emb": "model.embed_tokens", "final_norm": "model.norm", "attn_norm": "input_layernorm",
             "mlp_norm": "post_attention_layernorm", "attn.": "self_attn.", "mlp.gate.": "mlp.gate_proj.",
             "mlp.up.": "mlp.up_proj.", "mlp.down.": "mlp.down_proj.", "blocks.": "model.layers."}
    hf_sd = {}
    for key, value in state_dict.items():
        for a, b in names.items():
            key = key.replace(a, b)
        hf_sd[key] = value
    with torch.device("meta"):
        model = transformers.Qwen2ForCausalLM(hf_config)
    missing, unexpected = model.load_state_dict(hf_sd, strict=False, assign=True)
    assert not unexpected and all("lm_head" in m for m in missing), (missing, unexpected)
    model.tie_weights()
    model.model.rotary_emb = type(model.model.rotary_emb)(config=hf_config)  # its buffers were on meta
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", choices=SHAPES, default="qwen2.5-1.5b")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=32, help="greedy tokens decoded per run")
    parser.add_argument("--no-transformers", action="store_true", help="leave out transformers (float32 weights)")
    parser.add_argument("--llama-python", type=Path, default=engine_speed.LLAMA_PYTHON)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # engine_speed's helpers (our_decode, hf_decode, the llama.cpp peer) read these when called
    engine_speed.PROMPT_TOKENS, engine_speed.DECODE_TOKENS = args.prompt_tokens, args.tokens
    from llmtui.engine.kernels.native import KERNELS
    from llmtui.engine.loading.gguf_header import read_gguf_header
    from llmtui.engine.loading.gguf_packed import build_packed_transformer
    from llmtui.engine.loading.gguf_weights import gguf_config, gguf_state_dict
    from llmtui.engine.loading.load import load_weights

    shape = SHAPES[args.shape]
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = write_q4_k_m_like(Path(tmp) / f"{args.shape}-random-q4_k_m.gguf", shape)
        rows.append(("file (random Q4_K_M-like blocks)", f"{path.stat().st_size / 2**20:.0f} MB, written in "
                                                          f"{time.perf_counter() - t0:.1f} s"))
        KERNELS.start()
        t0 = time.perf_counter()
        weights = load_weights(str(path), packed=True)
        exact = build_packed_transformer(weights.config, weights.state_dict, weights.packed).eval()
        rows.append(("load, llmtui exact (packed)", f"{time.perf_counter() - t0:.2f} s"))
        rows.append(("packed kernels", KERNELS.wait().describe()))
        config = weights.config
        del weights
        prompt = torch.randint(300, config.vocab_size, (1, args.prompt_tokens),
                               generator=torch.Generator().manual_seed(0))

        def prefill_ours() -> None:
            with torch.inference_mode():
                exact(prompt, exact.new_cache(initial=args.prompt_tokens), last_only=True)

        variants = {"prefill exact": prefill_ours, "plain exact": lambda: engine_speed.our_decode(exact, prompt)}
        theirs = None
        if not args.no_transformers:
            t0 = time.perf_counter()
            theirs = transformers_qwen2(config, gguf_state_dict(read_gguf_header(path), config))
            rows.append(("load, transformers (dequantized to float32)", f"{time.perf_counter() - t0:.2f} s"))
            with torch.inference_mode():  # the same function: transformers read our weights right
                ours_p = exact(prompt, last_only=True).logits[0, -1].softmax(-1)
                theirs_p = theirs(prompt, logits_to_keep=1).logits[0, -1].softmax(-1)
            rows.append(("exact vs transformers, the prompt's next-token probabilities",
                         f"max gap {(ours_p - theirs_p).abs().max().item():.1e}, top-1 "
                         f"{'equal' if ours_p.argmax() == theirs_p.argmax() else 'differs'}"))

            def prefill_hf() -> None:
                with torch.inference_mode():
                    theirs(prompt, logits_to_keep=1)

            variants |= {"prefill transformers": prefill_hf,
                         "plain transformers": lambda: engine_speed.hf_decode(theirs, prompt)}
        peer = None
        if engine_speed.has_llama_cpp(args.llama_python):
            peer = engine_speed.LlamaCppPeer(args.llama_python, path, args.threads, prompt[0].tolist())
            variants |= {"prefill llama.cpp": lambda: peer.ask("prefill"), "plain llama.cpp": lambda: peer.ask("decode")}
        load_before = os.getloadavg()[0]
        t = engine_speed.interleaved(variants, args.rounds)
        if peer is not None:
            peer.close()
    engines = [k.removeprefix("plain ") for k in t if k.startswith("plain ")]
    tps = {k: args.tokens / (t[f"plain {k}"] - t[f"prefill {k}"]) for k in engines}
    for k in engines:
        rows.append((f"prefill {args.prompt_tokens} tokens, {k}", f"{t[f'prefill {k}'] * 1000:.0f} ms"))
    for k in engines:
        rows.append((f"decode, {k}", f"{tps[k]:.2f} tok/s"))
    for k in engines[1:]:
        rows.append((f"**exact / {k}**", f"**{tps['exact'] / tps[k]:.2f}x**"))
    print(f"shape {args.shape}: {config.n_layer} layers, d_model {config.d_model}, d_ff {config.d_ff}, "
          f"{config.vocab_size} tokens; machine: {platform.machine()} {platform.processor()}, "
          f"{torch.get_num_threads()} torch threads, torch {torch.__version__}; load average {load_before:.1f} "
          f"before timing, {os.getloadavg()[0]:.1f} at the end; {args.rounds} rounds, medians, "
          f"{args.tokens} greedy tokens after a {args.prompt_tokens}-token prompt")
    print("| measure | value |\n| --- | --- |")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
