"""Decoding speed when other processes want the CPUs: busy neighbours x torch threads x OpenMP wait policy.

Each neighbour is a process spinning on one core (what a test suite or a build looks
like to us). Each configuration runs in a fresh process (OMP_WAIT_POLICY is read when
OpenMP starts), loads the default model (exact, packed) and decodes greedily after a
short prompt; configurations take turns within each neighbour count, round after round.

    .venv/bin/python benchmarks/busy_machine.py [--neighbours 0 1 2 4] [--tokens 32] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

PROBE = """
import sys, time, torch
from llmtui.engine.kernels.native import KERNELS
from llmtui.engine.lm import LanguageModel
torch.set_num_threads(int(sys.argv[1]))
lm = LanguageModel.load(); KERNELS.wait()
n = int(sys.argv[2])
prompt = torch.randint(100, 40000, (1, 32), generator=torch.Generator().manual_seed(0))
with torch.inference_mode():
    cache = lm.model.new_cache(initial=64 + n)
    logits = lm.model(prompt, cache, last_only=True).logits[0, -1]
    t0 = time.perf_counter()
    for _ in range(n):
        logits = lm.model(logits.argmax().view(1, 1), cache, last_only=True).logits[0, -1]
print(n / (time.perf_counter() - t0))
"""

CONFIGS = [(1, "ACTIVE"), (1, "PASSIVE"), (2, "ACTIVE"), (2, "PASSIVE"), (2, None)]  # None: libgomp's default


def decode_rate(threads: int, policy: str | None, tokens: int) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run([sys.executable, "-c", PROBE, str(threads), str(tokens)], env=env, capture_output=True,
                         text=True, check=True)
    return float(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--neighbours", type=int, nargs="+", default=[0, 1, 2, 4])
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.1f}")
    print("| busy neighbours | " + " | ".join(f"{t} thread{'s' * (t > 1)}, {p or 'default'} wait"
                                            for t, p in CONFIGS) + " |")
    print("| --- " * (len(CONFIGS) + 1) + "|")
    for n in args.neighbours:
        spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
        try:
            rates: dict[tuple[int, str | None], list[float]] = {c: [] for c in CONFIGS}
            for _ in range(args.rounds):
                for threads, policy in CONFIGS:
                    rates[(threads, policy)].append(decode_rate(threads, policy, args.tokens))
        finally:
            for s in spinners:
                s.kill()
                s.wait()
        cells = " | ".join(f"{statistics.median(rates[c]):.1f} tok/s" for c in CONFIGS)
        print(f"| {n} | {cells} |  (load average {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
