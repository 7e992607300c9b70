"""How long building a model's tokenizer from its GGUF takes: SentencePiece next to byte-level BPE.

A SentencePiece GGUF (Gemma, Llama 2, Mistral v0.x, Phi-3) has no merges: they are rebuilt
from the token scores in Python (`merges_from_scores`), then handed to `tokenizers`. This
times that for synthetic vocabularies of Llama 2's size (32,000) and Gemma 3's (262,144),
with the default model's byte-level tokenizer (49,152 tokens, tiktoken) as the peer, in
rounds (median of 3), and the encoding speed of each on the same 12,000-character text. The
262,144 vocabulary is timed twice: built, and read back from the tokenizer cache (built_cache;
a temporary cache folder, filled once before the rounds).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/tokenizer_build.py
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time

from llmtui.engine.loading.fetch import fetch_default_model
from llmtui.engine.tokenizer import built_cache
from llmtui.engine.tokenizer.sentencepiece import sentencepiece_from_gguf
from llmtui.engine.tokenizer.tokenizer import read_gguf_metadata, tokenizer_from_gguf

TEXT = "The capital of France is Paris. Once upon a time, in a land far away, 12345 ünïcödé 東京. " * 140


def synthetic_vocabulary(size: int, seed: int = 0) -> dict[str, object]:
    """GGUF metadata for a SentencePiece vocabulary of `size` tokens: pieces of 1-16 letters built
    by joining earlier ones (as BPE grows its vocabulary), scored by their order."""
    rng = random.Random(seed)
    specials = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256))]
    pieces = list("abcdefghijklmnopqrstuvwxyz▁")
    seen = set(pieces)
    while len(specials) + len(pieces) < size:
        joined = pieces[rng.randrange(len(pieces))] + pieces[rng.randrange(min(len(pieces), 2000))]
        if len(joined) <= 16 and joined not in seen:
            seen.add(joined)
            pieces.append(joined)
    tokens = specials + pieces
    return {
        "general.architecture": "llama",
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.scores": [0.0] * len(specials) + [-float(i) for i in range(len(pieces))],
        "tokenizer.ggml.token_type": [2, 3, 3] + [6] * 256 + [1] * len(pieces),
        "tokenizer.ggml.bos_token_id": 1,
        "tokenizer.ggml.eos_token_id": 2,
    }


def main() -> None:
    default = read_gguf_metadata(fetch_default_model())
    gemma_sized = synthetic_vocabulary(262_144)
    cache = tempfile.TemporaryDirectory(prefix="llmtui-tokenizer-cache-")
    builders = {
        "byte-level BPE, SmolLM2 (49,152)": lambda: tokenizer_from_gguf(default),
        "SentencePiece, synthetic 32,000": (lambda meta: lambda: sentencepiece_from_gguf("sp32k", meta))(
            synthetic_vocabulary(32_000)
        ),
        "SentencePiece, synthetic 262,144": lambda: uncached(lambda: sentencepiece_from_gguf("sp262k", gemma_sized)),
        "SentencePiece, synthetic 262,144, cached": lambda: sentencepiece_from_gguf("sp262k", gemma_sized),
    }
    os.environ["LLMTUI_CACHE_DIR"] = cache.name
    sentencepiece_from_gguf("sp262k", gemma_sized)  # fills the cache
    build: dict[str, list[float]] = {name: [] for name in builders}
    encode: dict[str, list[float]] = {name: [] for name in builders}
    for _ in range(3):
        for name, make in builders.items():
            start = time.perf_counter()
            tokenizer = make()
            build[name].append(time.perf_counter() - start)
            start = time.perf_counter()
            tokenizer.encode(TEXT)
            encode[name].append(time.perf_counter() - start)
    print("| tokenizer | build (median of 3) | encode 12,000 characters |")
    print("| --- | --- | --- |")
    for name in builders:
        print(f"| {name} | {statistics.median(build[name]):.2f} s | {statistics.median(encode[name]) * 1000:.1f} ms |")
    cache.cleanup()


def uncached(build):
    """`build()` with the tokenizer cache off (every vocabulary counts as too small to cache)."""
    saved, built_cache.MIN_TOKENS = built_cache.MIN_TOKENS, 1 << 62
    try:
        return build()
    finally:
        built_cache.MIN_TOKENS = saved


if __name__ == "__main__":
    main()
