"""How many threads torch decodes with: the cores nobody else is using, read again before each generation.

Decoding one token runs hundreds of small parallel regions, and at the end of each
OpenMP's threads wait for one another. When another process holds one of the cores,
the thread that lost it is descheduled and every region waits for it: on this
project's 2-core box under load, 2 threads decoded at 0.4 tok/s where 1 thread gave
3.6 (benchmarks/busy_machine.py, benchmarks/RESULTS.md). So the thread count follows
the free cores: the processes running right now (/proc/loadavg, sampled a few times),
less this one, leave the rest. OMP_NUM_THREADS or LLMTUI_THREADS fix the count instead;
where /proc/loadavg is missing (macOS, Windows) torch's own choice stands.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import torch

_DEFAULT = torch.get_num_threads()  # torch's choice at start: the physical cores
_SAMPLES, _GAP_S = 5, 0.002


def fixed_threads() -> int | None:
    """The count the user fixed (LLMTUI_THREADS, else OMP_NUM_THREADS), or None to adapt."""
    for name in ("LLMTUI_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def others_running(loadavg: Path = Path("/proc/loadavg")) -> float | None:
    """Processes of others running now (median of a few samples), or None where the kernel doesn't say."""
    counts = []
    for i in range(_SAMPLES):
        try:
            running = loadavg.read_text().split()[3].split("/")[0]  # "runnable/total"
        except (OSError, IndexError):
            return None
        counts.append(int(running) - 1)  # the thread reading the file is one of them
        if i < _SAMPLES - 1:
            time.sleep(_GAP_S)
    return max(0.0, statistics.median(counts))


def choose_threads(cores: int = _DEFAULT, others: float | None = None) -> int:
    """Threads for the next generation: the free cores, at least one, at most torch's default."""
    fixed = fixed_threads()
    if fixed is not None:
        return fixed
    if others is None:
        return cores
    return max(1, min(cores, cores - round(others)))


def adapt_threads() -> int:
    """Set torch's thread count for what the machine is doing now; returns it."""
    fixed = fixed_threads()
    n = fixed if fixed is not None else choose_threads(_DEFAULT, others_running())
    if n != torch.get_num_threads():
        torch.set_num_threads(n)
    return n
