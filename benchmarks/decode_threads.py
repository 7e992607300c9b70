"""The fused decoding step before and after one OpenMP region per token: threads 1 and 2 x OpenMP wait policy.

Before: the C++ step of a given git revision (default 71e6387, the region-per-product
kernel), exported with `git archive` to a temporary folder and run from there. After: this
tree. Each cell is a fresh process (OMP_WAIT_POLICY is read when OpenMP starts) that loads
the default model (exact, packed), prefills a 32-token prompt, decodes 8 tokens to warm up,
then times --tokens greedy tokens: wall-clock rate, CPU time per token (every thread of
the process: spinning shows here) and voluntary context switches per token (a thread going to
sleep in the kernel: a passive OpenMP wait; each costs a wake-up on the critical path). Cells take turns round after round; the table shows the
best round of each (the least disturbed), and the load average around the run. Optional
neighbours: processes spinning on a core each, as in busy_machine.py.

    .venv/bin/python benchmarks/decode_threads.py [--rounds 3] [--tokens 64] [--neighbours 0] [--before REV]
        [--threads 1 2] [--policies PASSIVE default ACTIVE spin:1000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import resource, sys, time, torch
from llmtui.engine.kernels.native import KERNELS
from llmtui.engine.lm import LanguageModel
torch.set_num_threads(int(sys.argv[1]))
lm = LanguageModel.load(); KERNELS.wait()
n = int(sys.argv[2])
prompt = torch.randint(100, 40000, (1, 32), generator=torch.Generator().manual_seed(0))
with torch.inference_mode():
    cache = lm.model.new_cache(initial=64 + n)
    logits = lm.model(prompt, cache, last_only=True).logits[0, -1]
    for _ in range(8):
        logits = lm.model(logits.argmax().view(1, 1), cache, last_only=True).logits[0, -1]
    t0, c0, s0 = time.perf_counter(), time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
    for _ in range(n):
        logits = lm.model(logits.argmax().view(1, 1), cache, last_only=True).logits[0, -1]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    sleeps = resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw - s0
print(n / wall, 1000 * cpu / n, sleeps / n)
"""
# OMP_WAIT_POLICY values; "default": libgomp's own (spin 300,000 times, then sleep); "spin:N": no policy and
# GOMP_SPINCOUNT=N (spin N times at a barrier or between regions, then sleep).
POLICIES = ("PASSIVE", "default", "ACTIVE")


def probe(tree: Path, threads: int, policy: str, tokens: int) -> tuple[float, float, float]:
    """(tokens per second, CPU ms per token, sleeps per token) of one fresh process running `tree`'s code."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT")}
    env["PYTHONPATH"] = str(tree)
    if policy.startswith("spin:"):
        env["GOMP_SPINCOUNT"] = policy.removeprefix("spin:")
    elif policy != "default":
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run([sys.executable, "-c", PROBE, str(threads), str(tokens)], env=env, cwd=tree,
                         capture_output=True, text=True, check=True)
    rate, cpu, sleeps = out.stdout.split()[-3:]
    return float(rate), float(cpu), float(sleeps)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--neighbours", type=int, default=0, help="processes spinning on a core each, meanwhile")
    parser.add_argument("--before", default="71e6387", help="git revision of the 'before' kernel")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), help="PASSIVE, ACTIVE, default, spin:N")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp)
        archive = subprocess.run(["git", "archive", args.before, "llmtui", "models"], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive.stdout, check=True)
        cells = [(name, tree, t, p) for t in args.threads for p in args.policies
                 for name, tree in (("before", before), ("after", ROOT))]
        results: dict[tuple, list[tuple[float, float, float]]] = {c[::2] + (c[3],): [] for c in cells}
        loads = [os.getloadavg()[0]]
        spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.neighbours)]
        try:
            for _ in range(args.rounds):
                for name, tree, threads, policy in cells:
                    results[(name, threads, policy)].append(probe(tree, threads, policy, args.tokens))
                loads.append(os.getloadavg()[0])
        finally:
            for s in spinners:
                s.kill()
                s.wait()
    print(f"cores: {os.cpu_count()}, neighbours: {args.neighbours}, rounds: {args.rounds}, tokens: {args.tokens}, "
          f"load average (1 min) during the run: {min(loads):.1f}-{max(loads):.1f}")
    print("| threads | wait policy | before tok/s | after tok/s | after/before | CPU ms/token before, after "
          "| sleeps/token before, after |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for threads in args.threads:
        for policy in args.policies:
            b, a = results[("before", threads, policy)], results[("after", threads, policy)]
            rb, ra = max(r[0] for r in b), max(r[0] for r in a)
            cb, ca = min(r[1] for r in b), min(r[1] for r in a)
            sb, sa = min(r[2] for r in b), min(r[2] for r in a)
            print(f"| {threads} | {policy} | {rb:.1f} | {ra:.1f} | {ra / rb:.2f}x | {cb:.1f}, {ca:.1f} "
                  f"| {sb:.0f}, {sa:.0f} |")


if __name__ == "__main__":
    main()
