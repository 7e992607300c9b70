"""The Train pane's view-model: sparklines, the progress line, the series per mode, tables with hostile text."""

from __future__ import annotations

from llmtui.app.panes.train import view
from llmtui.engine.training.loop import TrainStep


def step(mode: str = "teach", n: int = 1, of: int = 10, **fields) -> TrainStep:
    return TrainStep(mode, n, of, fields.pop("loss", 1.0), steps_per_s=2.0, eta_s=(of - n) / 2.0, **fields)


def test_sparkline_spans_the_range_and_resamples_to_the_width():
    assert view.sparkline([0, 1, 2, 3, 4, 5, 6, 7], 8) == "▁▂▃▄▅▆▇█"
    assert view.sparkline([5.0] * 3, 3) == "▁▁▁"  # no range: flat, no division by zero
    assert len(view.sparkline(list(range(1000)), 20)) == 20
    assert view.resample([1, 3, 5, 7], 2) == [2, 6]
    assert view.sparkline([1.0, 0.5], 2, low=0.0, high=1.0) == "█▄"


def test_progress_line_says_step_rate_and_time_left():
    line = view.progress_line(step(n=3, of=10), "", 80).plain
    assert line.startswith("step 3/10 ") and "loss 1.000" in line and "2.00 steps/s" in line and "4 s left" in line
    done = view.progress_line(step(n=10, of=10), "stopped: F5 resumes", 80).plain
    assert "done" in done and "stopped: F5 resumes" in done
    assert "tok/s" in view.progress_line(step("pretrain", tokens_per_s=2048.0), "", 80).plain
    assert view.progress_line(None, "Starting…", 80).plain == "Starting…"
    assert view.duration(125) == "2 min 05 s" and view.duration(7.4) == "7 s"


def test_series_per_mode():
    teach = [step(n=i, probs={" Lyon": i / 10, " Paris": 1 - i / 10}) for i in range(1, 4)]
    assert [s.label for s in view.series_of(teach)] == ["loss", "p(␣Lyon)", "p(␣Paris)"]
    prefer = [step("prefer", n=i, margin=float(i)) for i in range(1, 3)]
    assert [s.label for s in view.series_of(prefer)] == ["loss", "margin"]
    pretrain = [step("pretrain", n=1, held_out_loss=5.0), step("pretrain", n=2)]
    series = view.series_of(pretrain, uniform_loss=5.55)
    assert series[1].values == [5.0] and (series[0].low, series[0].high) == (0.0, 5.55)
    lines = view.chart_lines(series, 60)
    assert lines[0].plain.startswith("loss ") and all(line.cell_len <= 60 for line in lines)


def test_tables_and_samples_show_hostile_text_literally():
    rows = [["[bold]x[/] \x1b[31m", "'\\n' 50.0%", "'[red]' 60.0%"]]
    table = view.effects_table(rows).plain
    assert "[bold]x[/]" in table and "\x1b" not in table and "[red]" in table
    samples = view.samples_text([step("pretrain", n=50, sample="a\nb\x07[i]")], 5).plain
    assert "step    50" in samples and "a⏎b" in samples and "\x07" not in samples and "[i]" in samples


def test_settings_line_and_tuned_label():
    line = view.settings_line("teach", "lora", 8, 2_027_520, 134_515_008, 25_000_000).plain
    assert "LoRA r8" in line and "2.0M of 135M numbers trained" in line and "25 MB" in line
    assert "F4" not in view.settings_line("pretrain", "lora", 8, None, None).plain
    assert view.tuned_label("full", 8, 10).startswith("TUNED (full, 10 steps")
