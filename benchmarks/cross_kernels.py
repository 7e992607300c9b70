"""The packed kernels built for another CPU and run under qemu-user, compared bit for bit with this machine's.

    apt-get install qemu-user g++-aarch64-linux-gnu     # Debian: a cross compiler and the emulator
    .venv/bin/python benchmarks/cross_kernels.py [--target aarch64-linux-gnu] [--march armv8-a]

The same source (llmtui/engine/kernels/*.cpp, with the flags native.py builds with) is compiled
three times: for this CPU (-march=native), portable (no -march: what the app falls back to), and
for the target CPU (on aarch64, the 16-lane vector types become four NEON registers each). Each
build runs benchmarks/cross/check_kernels.cpp on the same random cases of every packed block type
(threads on: rows split among them): the products with float32 activations (1 and 3 rows) and the
unpacked weights. The script then checks that

- every build's unpacked weights equal gguf.quants.dequantize's, bit for bit;
- every build's products lie within float32 rounding of the float64 product of those weights,
  and equal this CPU's build's bit for bit where the target has an FMA instruction (the same
  operations in the same order: the vector types fix the lanes, -ffp-contract=off every other
  rounding); x86-64's portable baseline has none, so its multiplies and adds round apart.

It says nothing about speed: an emulator's speed is not the CPU's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf.quants import dequantize

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmtui.engine.kernels.blocks import BLOCK_BYTES, BLOCK_SIZES, PACKED_TYPES, _HALF_OFFSETS
from llmtui.engine.kernels.native import _COMMON_FLAGS, SOURCES

DRIVER = Path(__file__).with_name("cross") / "check_kernels.cpp"
K, N = 512, 48  # two K-quant super-blocks per row; rows enough for two threads


def random_blocks(qtype: int, rows: int, columns: int, rng: np.random.Generator) -> np.ndarray:
    """Random codes with finite float16 scales of a realistic size, a fifth of them -0.0 (as tests/engine/test_packed.py)."""
    n_blocks = rows * columns // BLOCK_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(n_blocks, BLOCK_BYTES[qtype]), dtype=np.uint8)
    for start in _HALF_OFFSETS[qtype]:
        scales = rng.uniform(-0.02, 0.02, size=n_blocks).astype(np.float16)
        scales[::5] = -0.0
        blocks[:, start : start + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
    return blocks.reshape(rows, -1)


def write_cases(folder: Path) -> list[tuple[str, int, int, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(17)
    cases = []
    for qtype in sorted(PACKED_TYPES):
        for M in (1, 3):
            name = f"{Q(qtype).name}-m{M}"
            x = rng.standard_normal((M, K)).astype(np.float32)
            w = random_blocks(qtype, N, K, rng)
            with open(folder / f"{name}.in", "wb") as f:
                f.write(np.int32(qtype).tobytes() + np.array([M, K, N], dtype=np.int64).tobytes())
                f.write(x.tobytes() + w.tobytes())
            cases.append((name, qtype, M, x, w))
    return cases


def build(compiler: str, flags: list[str], target: Path) -> None:
    flags = [f for f in _COMMON_FLAGS if f not in ("-shared", "-fPIC")] + flags
    subprocess.run([compiler, *flags, "-o", str(target), *map(str, SOURCES), str(DRIVER)], check=True)


def run(command: list[str], folder: Path, cases, tag: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    args = [a for name, *_ in cases for a in (str(folder / f"{name}.in"), str(folder / f"{name}.{tag}"))]
    subprocess.run([*command, *args], check=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    out = {}
    for name, _, M, _, _ in cases:
        data = np.fromfile(folder / f"{name}.{tag}", dtype=np.float32)
        out[name] = (data[: M * N].reshape(M, N), data[M * N :].reshape(N, K))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="aarch64-linux-gnu", help="the cross toolchain's prefix")
    parser.add_argument("--march", default="armv8-a", help="the target's -march")
    args = parser.parse_args()
    cross, emulator = f"{args.target}-g++", f"qemu-{args.target.split('-')[0]}"
    for tool in ("g++", cross, emulator):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (Debian: apt-get install qemu-user g++-{args.target})")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cases = write_cases(folder)
        # (compiler, flags, how to run it, whether its products must equal this CPU's bit for bit: a build with an
        # FMA instruction must; x86-64's portable baseline has none, so its multiply and add round apart)
        builds = {
            "this CPU (-march=native)": ("g++", ["-fopenmp", "-march=native"], [], True),
            "this CPU, portable (no FMA instruction)": ("g++", ["-fopenmp"], [], False),
            f"{args.target} (-march={args.march}), under {emulator}": (
                cross, ["-fopenmp", f"-march={args.march}"], [emulator, "-L", f"/usr/{args.target}"], True),
        }
        results, must_equal = {}, {}
        for n, (label, (compiler, flags, prefix, equal)) in enumerate(builds.items()):
            exe = folder / f"check{n}"
            build(compiler, [*flags, "-Wno-psabi"], exe)
            results[label], must_equal[label] = run([*prefix, str(exe)], folder, cases, f"out{n}"), equal
        here = next(iter(results.values()))
        failures = 0
        print(f"{len(cases)} cases: every packed type ({', '.join(Q(t).name for t in sorted(PACKED_TYPES))}), "
              f"{N} rows x {K} columns, 1 and 3 activation rows, 2 threads\n")
        for label, outputs in results.items():
            unpacked_ok = product_same = product_bound = 0
            for name, qtype, M, x, w in cases:
                product, weights = outputs[name]
                reference = dequantize(w, Q(qtype)).astype(np.float32)
                unpacked_ok += np.array_equal(weights.view(np.uint32), reference.view(np.uint32))
                product_same += np.array_equal(product.view(np.uint32), here[name][0].view(np.uint32))
                exact = x.astype(np.float64) @ reference.astype(np.float64).T
                bound = 1e-5 * (np.abs(x).astype(np.float64) @ np.abs(reference).astype(np.float64).T) + 1e-12
                product_bound += bool((np.abs(product - exact) <= bound).all())
            n = len(cases)
            failures += (n - unpacked_ok) + (n - product_bound) + (n - product_same if must_equal[label] else 0)
            expected = "" if must_equal[label] else " (not required: no FMA)"
            print(f"{label}:\n  unpacked weights equal to gguf's, bit for bit: {unpacked_ok}/{n}\n"
                  f"  products equal to this CPU's build, bit for bit: {product_same}/{n}{expected}\n"
                  f"  products within float32 rounding of the float64 product: {product_bound}/{n}")
        print("\nall as required" if not failures else f"\n{failures} checks failed")
        sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
