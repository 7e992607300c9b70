"""The matrix products of one decoded token: packed GGUF blocks (C++ and plain torch) against float32.

All 121 matrix-vector products of the default model for one token (30 layers x q/k/v,
o, gate/up, down, and the tied unembedding), in model order so no weight is still in
the cache when it is read again, and a 100-row product per layer (a prompt, the BLAS
path). Variants take turns round after round; medians.

    .venv/bin/python benchmarks/packed_kernels.py [--threads 1 2] [--rounds 9]

--per-type: G weights/s of llmtui_gemv per block type (one 8960 x 1536 matrix, Qwen2.5-1.5B's
ffn_gate, one row of x), for this checkout's kernels and those of a git revision (--baseline),
each built with every --flags set (native: -march=native; haswell: AVX2 without AVX-512;
portable: the compiler's default target), taking turns round after round; best of the rounds.
On one core:

    taskset -c 0 .venv/bin/python benchmarks/packed_kernels.py --per-type --threads 1 \
        --baseline 71e6387 --flags native haswell portable --rounds 15
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's llmtui, not an installed one
from llmtui.engine.kernels.blocks import _HALF_OFFSETS, BLOCK_BYTES, BLOCK_SIZES, PACKED_TYPES
from llmtui.engine.kernels.native import _COMMON_FLAGS, KERNELS, SOURCES, NativeKernels, _bind, find_compiler
from llmtui.engine.lm import LanguageModel
from llmtui.engine.model import packed as packed_module
from llmtui.engine.model.packed import PackedWeight


FLAGS = {"native": ["-fopenmp", "-march=native"], "haswell": ["-fopenmp", "-march=haswell"], "portable": ["-fopenmp"]}
TYPE_NAMES = {2: "Q4_0", 3: "Q4_1", 8: "Q8_0", 12: "Q4_K", 14: "Q6_K"}


def build_library(folder: Path, sources: dict[str, str], flags: list[str]) -> ctypes.CDLL:
    """Compile the given kernel sources (file name -> text) with flags into folder; load and bind."""
    for name, text in sources.items():
        (folder / name).write_text(text)
    target = folder / f"kernels-{abs(hash((tuple(sources.values()), tuple(flags))))}.so"
    subprocess.run([find_compiler(), *_COMMON_FLAGS, *flags, "-o", str(target), *(str(folder / n) for n in sources)],
                   check=True)
    return _bind(ctypes.CDLL(str(target)))


def random_rows(qtype: int, rows: int, columns: int, rng: np.random.Generator) -> np.ndarray:
    """Random blocks with float16 scales of about 1e-3 (finite: the kernels' speed does not depend on them)."""
    n_blocks = rows * columns // BLOCK_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(n_blocks, BLOCK_BYTES[qtype]), dtype=np.uint8)
    for start in _HALF_OFFSETS[qtype]:
        scales = rng.uniform(-1e-3, 1e-3, size=n_blocks).astype(np.float16)
        blocks[:, start : start + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
    return blocks.reshape(rows, -1)


def per_type(args: argparse.Namespace) -> None:
    """G weights/s of llmtui_gemv per block type: baseline against this checkout, for each flag set."""
    rows, columns = 8960, 1536
    rng = np.random.default_rng(0)
    x = torch.randn(args.x_rows, columns)
    mats = {t: torch.from_numpy(random_rows(t, rows, columns, rng)) for t in sorted(PACKED_TYPES)}
    out = torch.empty(args.x_rows, rows)
    now = {s.name: s.read_text() for s in SOURCES}
    versions = {"this checkout": now}
    if args.baseline:
        versions[args.baseline] = {s.name: subprocess.run(["git", "show", f"{args.baseline}:llmtui/engine/kernels/{s.name}"],
                                                          capture_output=True, text=True, check=True).stdout
                                   for s in SOURCES}
    with tempfile.TemporaryDirectory() as tmp:
        libs = {}
        for flag_name in args.flags:
            for version, sources in versions.items():
                folder = Path(tmp) / f"{flag_name}-{len(libs)}"
                folder.mkdir()
                libs[(flag_name, version)] = build_library(folder, sources, FLAGS[flag_name])
        torch.set_num_threads(args.threads[0])
        best: dict[tuple, float] = {}
        for _ in range(args.rounds):
            for key, lib in libs.items():
                for t, w in mats.items():
                    t0 = time.process_time() if args.cpu_time else time.perf_counter()
                    rc = lib.llmtui_gemv(t, x.data_ptr(), args.x_rows, columns, w.data_ptr(), rows, out.data_ptr(), rows)
                    took = (time.process_time() if args.cpu_time else time.perf_counter()) - t0
                    assert rc == 0, rc
                    best[(*key, t)] = min(best.get((*key, t), float("inf")), took)
    print(f"load average {os.getloadavg()[0]:.1f}; {args.threads[0]} thread(s), {args.x_rows} row(s) of x, "
          f"{rows} x {columns} matrix; best of {args.rounds}; G weights/s")
    print("| build | kernels | " + " | ".join(TYPE_NAMES[t] for t in mats) + " |")
    print("| --- " * (len(mats) + 2) + "|")
    for flag_name, version in libs:
        cells = [f"{rows * columns / best[(flag_name, version, t)] / 1e9:.1f}" for t in mats]
        print(f"| {flag_name} | {version} | " + " | ".join(cells) + " |")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--per-type", action="store_true", help="G weights/s per block type (see the docstring)")
    parser.add_argument("--baseline", help="git revision whose kernels to compare with (--per-type)")
    parser.add_argument("--flags", nargs="+", default=["native"], choices=sorted(FLAGS))
    parser.add_argument("--x-rows", type=int, default=1, help="rows of x per product, 1-8 (--per-type)")
    parser.add_argument("--cpu-time", action="store_true", help="process CPU time instead of wall time (--per-type)")
    args = parser.parse_args()
    if args.per_type:
        with torch.inference_mode():
            per_type(args)
        return
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
