"""The thread count follows the cores other processes leave free (llmtui/engine/threads.py)."""

from __future__ import annotations

import pytest
import torch

from llmtui.engine import threads


@pytest.fixture(autouse=True)
def no_fixed_count(monkeypatch):
    monkeypatch.delenv("LLMTUI_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "_GAP_S", 0.0)


@pytest.mark.parametrize(("others", "expected"), [(0, 2), (1, 1), (2, 1), (4, 1), (None, 2)])
def test_free_cores_of_two(others, expected):
    assert threads.choose_threads(2, others) == expected


def test_a_quiet_big_machine_keeps_torch_default():
    assert threads.choose_threads(16, 3) == 13 and threads.choose_threads(16, 0) == 16


def test_others_running_reads_the_kernels_count(tmp_path):
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("12.51 12.53 10.50 4/512 12345\n")  # 4 runnable: this thread and three others
    assert threads.others_running(loadavg) == 3
    loadavg.write_text("0.01 0.02 0.00 1/300 9\n")
    assert threads.others_running(loadavg) == 0
    assert threads.others_running(tmp_path / "missing") is None  # not Linux: torch's own choice stands


@pytest.mark.parametrize("name", ["LLMTUI_THREADS", "OMP_NUM_THREADS"])
def test_a_fixed_count_wins(monkeypatch, name):
    monkeypatch.setenv(name, "3")
    assert threads.choose_threads(2, 4) == 3


def test_adapt_sets_torch(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "others_running", lambda: 5.0)
    try:
        assert threads.adapt_threads() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
