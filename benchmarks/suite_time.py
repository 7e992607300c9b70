"""The test suite's wall time, one process against `pytest -n 2` (pytest-xdist), rounds interleaved.

    .venv/bin/python benchmarks/suite_time.py                      # the whole suite, 1 round
    .venv/bin/python benchmarks/suite_time.py --rounds 3 tests/engine tests/views -m "not default_model"

Extra arguments go to pytest as they are. Each round runs the one-process suite, then the
two-worker one, so a change in the machine's load falls on both; the load average is printed
before each run (the figures only mean something next to it). A run that fails is reported as
such: a suite that does not pass has no time worth comparing.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"1 process": [], "-n 2": ["-n", "2"]}


def run_once(extra: list[str], pytest_args: list[str]) -> tuple[float, str]:
    """Seconds of wall time and pytest's last line (the counts of passed/failed)."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra, *pytest_args]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    summary = lines[-1].strip("= ") if lines else f"exit {done.returncode}"
    if done.returncode != 0:
        summary = f"FAILED ({summary})"
    return seconds, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    args, pytest_args = parser.parse_known_args()
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for round_ in range(1, args.rounds + 1):
        for name, extra in VARIANTS.items():
            load = os.getloadavg()[0]
            seconds, summary = run_once(extra, pytest_args)
            times[name].append(seconds)
            print(f"round {round_}  {name:9}  load {load:5.2f}  {seconds:7.1f} s  {summary}", flush=True)
    base = statistics.median(times["1 process"])
    for name, values in times.items():
        best, median = min(values), statistics.median(values)
        print(f"{name:9}  best {best:7.1f} s  median {median:7.1f} s  ({base / median:.2f}x of 1 process)")


if __name__ == "__main__":
    main()
