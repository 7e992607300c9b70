"""Decoding speed when other processes want the CPUs: busy neighbours x torch threads x OpenMP wait policy.

Each neighbour is a process spinning on one core (what a test suite or a build looks
like to us). Each configuration runs in a fresh process (OMP_WAIT_POLICY is read when
OpenMP starts), loads the default model (exact, packed) and decodes greedily after a
short prompt; configurations take turns within each neighbour count, round after round.

    .venv/bin/python benchmarks/busy_machine.py [--neighbours 0 1 2 4] [--tokens 32] [--rounds 2] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

PROBE = """
import sys, time, torch
import llmtui; assert llmtui.__file__.startswith(sys.path[0] or __import__("os").getcwd()), llmtui.__file__
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

BASELINE: list[str] = []  # --baseline's directory
FIXED = {"LLMTUI_THREADS": "fixed"}  # every step on torch's thread count
WAITS = {  # how an OpenMP thread waits for work, as environment settings (libgomp reads them when it starts)
    "ACTIVE": {"OMP_WAIT_POLICY": "ACTIVE", **FIXED},  # spin for good
    "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE", **FIXED},  # sleep at once (a futex)
    "default": FIXED,  # libgomp's default: spin 300,000 times, then sleep
    "spin 10k": {"GOMP_SPINCOUNT": "10000", **FIXED},  # spin 10,000 times (tens of microseconds), then sleep
    "PASSIVE, adaptive": {"OMP_WAIT_POLICY": "PASSIVE"},  # and the decoder's tuner (thread_tuner.py): llmtui's
}
CONFIGS = [(1, "PASSIVE"), (2, "PASSIVE"), (2, "default"), (2, "PASSIVE, adaptive")]


def decode_rate(threads: int, wait: str, tokens: int) -> float:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT", "LLMTUI_THREADS")}
    env.update(WAITS[wait])
    if wait.startswith("before"):  # another checkout's llmtui (--baseline)
        env["PYTHONPATH"] = BASELINE[0]
    # run from the checkout whose llmtui it times: `python -c` puts the working directory first on sys.path
    cwd = BASELINE[0] if wait.startswith("before") else str(Path(__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", PROBE, str(threads), str(tokens)], env=env, capture_output=True,
                         text=True, check=True, cwd=cwd)
    return float(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--neighbours", type=int, nargs="+", default=[0, 1, 2, 4])
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline", help="another checkout (git archive REV llmtui models | tar -x -C DIR): its "
                        "decoding with OMP_WAIT_POLICY=PASSIVE is added as a column")
    args = parser.parse_args()
    if args.baseline:
        BASELINE.append(str(Path(args.baseline).resolve()))
        WAITS["before, PASSIVE"] = {"OMP_WAIT_POLICY": "PASSIVE"}
        CONFIGS.insert(2, (2, "before, PASSIVE"))
    print(f"cores: {os.cpu_count()}, load average before: {os.getloadavg()[0]:.1f}")
    print("| busy neighbours | " + " | ".join(f"{t} thread{'s' * (t > 1)}, {p} wait"
                                            for t, p in CONFIGS) + " |")
    print("| --- " * (len(CONFIGS) + 1) + "|")
    for n in args.neighbours:
        spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
        try:
            rates: dict[tuple[int, str], list[float]] = {c: [] for c in CONFIGS}
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
