"""The matrix products of one decoded token: packed GGUF blocks (C++ and plain torch) against float32.

All 121 matrix-vector products of the default model for one token (30 layers x q/k/v,
o, gate/up, down, and the tied unembedding), in model order so no weight is still in
the cache when it is read again, and a 100-row product per layer (a prompt, the BLAS
path). Variants take turns round after round; medians.

    .venv/bin/python benchmarks/packed_kernels.py [--threads 1 2] [--rounds 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

from llmtui.engine.kernels.native import KERNELS, NativeKernels
from llmtui.engine.lm import LanguageModel
from llmtui.engine.model import packed as packed_module
from llmtui.engine.model.packed import PackedWeight


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    lm = LanguageModel.load()
    print(KERNELS.wait().describe())
    layers = [m for m in lm.model.modules() if isinstance(m, PackedWeight)]
    layers = layers[1:] + layers[:1]  # the embedding, tied, is the unembedding: last in a token
    floats = [m.weight for m in layers]
    xs = [torch.randn(1, m.in_features) for m in layers]
    prompts = [torch.randn(100, m.in_features) for m in layers]
    no_kernels = NativeKernels()

    def token_packed() -> None:
        for m, x in zip(layers, xs):
            m.linear(x)

    def token_float() -> None:
        for w, x in zip(floats, xs):
            F.linear(x, w)

    def token_torch_fallback() -> None:
        packed_module.KERNELS = no_kernels
        try:
            token_packed()
        finally:
            packed_module.KERNELS = KERNELS

    def prompt_packed() -> None:
        for m, x in zip(layers[:-1], prompts[:-1]):
            m.linear(x)

    def prompt_float() -> None:
        for w, x in zip(floats[:-1], prompts[:-1]):
            F.linear(x, w)

    variants = {"one token, packed C++": token_packed, "one token, float32": token_float,
                "one token, packed plain torch (no compiler)": token_torch_fallback,
                "100-token prompt (layers only), packed": prompt_packed,
                "100-token prompt (layers only), float32": prompt_float}
    print(f"load average {os.getloadavg()[0]:.1f}; {len(layers)} matrices, "
          f"{sum(m.packed_nbytes for m in layers) / 2**20:.0f} MB packed, "
          f"{sum(w.numel() * 4 for w in floats) / 2**20:.0f} MB float32")
    print("| products | " + " | ".join(f"{t} thread{'s' * (t > 1)}" for t in args.threads) + " |")
    print("| --- " * (len(args.threads) + 1) + "|")
    results: dict[str, list[str]] = {name: [] for name in variants}
    for threads in args.threads:
        torch.set_num_threads(threads)
        times: dict[str, list[float]] = {name: [] for name in variants}
        with torch.inference_mode():
            for fn in variants.values():
                fn()
            for _ in range(args.rounds):
                for name, fn in variants.items():
                    t0 = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t0)
        for name in variants:
            results[name].append(f"{statistics.median(times[name]) * 1000:.1f} ms")
    for name, cells in results.items():
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
