"""What the Train pane draws, as pure functions of the run's records: no widgets, no torch.

Charts are one line per series: its first value, a sparkline of every step (resampled
to the width), and its last value, so the room reads "3.77 ▇▆▅▃▂▁ 1.34" at a glance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.style import Style
from rich.text import Text

from llmtui.app.display import table_label
from llmtui.app.palette import prob_style
from llmtui.engine.text import escape_controls

if TYPE_CHECKING:
    from llmtui.engine.training.loop import TrainStep  # torch: imported by the run, not by drawing

HELP = (
    "Training changes a model's weights a little at a time so that the text it is shown becomes more "
    "probable. Teach: type a sentence such as \"The capital of France is Lyon.\" and press F5; each step "
    "shows the loss and the probability of the taught word against the model's old answer; the other panes "
    "then use the tuned weights (the status line says TUNED) until F7 puts the original weights back. "
    "LoRA (F4) trains small low-rank adapters beside the attention and MLP matrices instead of every weight. "
    "After a lesson the table shows how related prompts moved: the side effects.\n\n"
    "Pretrain: a tiny transformer (4 layers, bytes as tokens) learns from scratch on the docstrings of your "
    "Python's standard library; the loss starts at ln(257) = 5.55 (a uniform guess) and the samples turn "
    "from noise into words. F3 saves it and opens it in every pane. "
    "Prefer: DPO pushes a chosen answer above a rejected one, measured against the model before training.\n\n"
    "F6 switches mode; Escape stops a run after its current step, F5 resumes it."
)
"""The help screen's text (F1)."""

SPARKS = "▁▂▃▄▅▆▇█"
MODES = ("teach", "pretrain", "prefer")
MODE_HELP = {  # the message line before a run: one line at 80 columns
    "teach": "Sentences to teach (| between them); F5 teaches them to the loaded model.",
    "pretrain": "A tiny model from scratch on a file, or this Python's docstrings; F5 starts.",
    "prefer": "A prompt, a chosen and a rejected answer; F5 pushes the chosen one up (DPO).",
}
WHAT_YOU_WILL_SEE = {
    "teach": "Each step: the loss over the sentences, and the probability of the taught word after the "
             "sentence's start against the model's old favourite. Then every pane uses the tuned weights "
             "(TUNED on the status line), and a table shows how related prompts moved. F7: the original.",
    "pretrain": "A 4-layer transformer (0.9M numbers) learns to predict the next byte. The loss starts at "
                "ln(257) = 5.55, a uniform guess; held-out text says whether it learned the language or the "
                "text; every 50 steps a sample. Escape pauses, F5 resumes, F3 saves and opens it everywhere.",
    "prefer": "Each step: the DPO loss and the margin log p(chosen) - log p(rejected), measured against "
              "the model before the run. Then the Generate pane shows what changed. F7: the original.",
}


def resample(values: Sequence[float], width: int) -> list[float]:
    """At most `width` values: the means of equal runs when there are more."""
    if len(values) <= width:
        return list(values)
    out = []
    for i in range(width):
        chunk = values[i * len(values) // width : (i + 1) * len(values) // width]
        out.append(sum(chunk) / len(chunk))
    return out


def sparkline(values: Sequence[float], width: int, low: float | None = None, high: float | None = None) -> str:
    """Eight heights of block between low and high (default: the values' own range)."""
    points = resample(values, max(1, width))
    if not points:
        return ""
    lo = min(points) if low is None else low
    hi = max(points) if high is None else high
    span = hi - lo
    return "".join(SPARKS[min(7, max(0, int((v - lo) / span * 7.999)))] if span > 0 else SPARKS[0] for v in points)


def duration(seconds: float) -> str:
    """'7 s', '2 min 05 s'."""
    seconds = max(0, round(seconds))
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"


def progress_line(record: TrainStep | None, state: str, width: int) -> Text:
    """'step 7/10 ━━━━━━━──── loss 1.603 · 1.0 steps/s · 3 s left', or the state alone before the first step."""
    if record is None:
        return Text(state)
    bar_width = max(4, min(30, width // 4))
    filled = round(bar_width * record.step / record.steps)
    text = Text(f"step {record.step}/{record.steps} ")
    text.append("━" * filled, style="bold").append("─" * (bar_width - filled), style="dim")
    text.append(f" loss {record.loss:.3f} · {record.steps_per_s:.2f} steps/s")
    if record.mode == "pretrain":
        text.append(f" · {record.tokens_per_s:,.0f} tok/s")
    text.append(f" · {duration(record.eta_s)} left" if record.step < record.steps else " · done")
    if state:
        text.append(f" · {state}", style="bold")
    return text


@dataclass(frozen=True)
class Series:
    label: str
    values: list[float]
    fmt: str = "{:.3f}"
    low: float | None = None
    high: float | None = None
    style: Style | None = None  # the last value's colour


def chart_lines(series: Sequence[Series], width: int) -> list[Text]:
    """One line per series: label, first value, sparkline, last value."""
    label_width = max((len(s.label) for s in series), default=0)
    lines = []
    for s in series:
        if not s.values:
            continue
        first, last = s.fmt.format(s.values[0]), s.fmt.format(s.values[-1])
        spark_width = max(4, width - label_width - len(first) - len(last) - 4)
        line = Text(f"{s.label:<{label_width}} ", style="bold")
        line.append(f"{first} ", style="dim")
        line.append(sparkline(s.values, spark_width, s.low, s.high))
        line.append(f" {last}", style=s.style or "bold")
        lines.append(line)
    return lines


def series_of(history: Sequence[TrainStep], uniform_loss: float | None = None) -> list[Series]:
    """What to chart for a run: the loss, then per mode the watched probabilities, the margin, or held-out loss."""
    if not history:
        return []
    # Pretraining's loss is drawn from 0 to the uniform guess (its fall is the story); the others on their own range.
    low = 0.0 if uniform_loss is not None else None
    out = [Series("loss", [r.loss for r in history], low=low, high=uniform_loss)]
    mode = history[0].mode
    if mode == "teach":
        for token in history[0].probs:
            values = [r.probs.get(token, 0.0) for r in history]
            out.append(Series(f"p({table_label(token)})", values, "{:.1%}", 0.0, 1.0, prob_style(values[-1])))
    elif mode == "prefer":
        out.append(Series("margin", [r.margin for r in history if r.margin is not None], "{:+.2f}"))
    else:
        held = [r.held_out_loss for r in history if r.held_out_loss is not None]
        out.append(Series("held-out", held, low=low, high=uniform_loss))
    return out


def samples_text(history: Sequence[TrainStep], limit: int) -> Text:
    """The latest samples, newest first: 'step 150 │ Return the value of the …' (controls escaped)."""
    text = Text()
    for r in [r for r in history if r.sample is not None][::-1][:limit]:
        text.append(f"step {r.step:>5} │ ", style="dim")
        text.append(escape_controls(r.sample.replace("\n", "⏎"), keep="") + "\n")
    return text


def effects_table(rows: Sequence[Sequence[str]]) -> Text:
    """The before/after table (prompt | before | after) as aligned lines."""
    if not rows:
        return Text()
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    text = Text(f"{'prompt':<{widths[0]}}  {'before':<{widths[1]}}  after\n", style="bold")
    for prompt, before, after in rows:
        changed = before.split(" ")[0] != after.split(" ")[0]
        text.append(f"{escape_controls(prompt, keep=''):<{widths[0]}}  {escape_controls(before, keep=''):<{widths[1]}}  ")
        text.append(escape_controls(after, keep="") + "\n", style="bold" if changed else "")
    return text


def settings_line(mode: str, method: str, rank: int, trained: int | None, total: int | None,
                  memory: int | None = None) -> Text:
    """'teach · LoRA r8 · 2.0M of 135M numbers trained · 25 MB' (F4 switches the method)."""
    from llmtui.app.state import human_count
    from llmtui.engine.training.memory import gigabytes

    text = Text()
    for m in MODES:
        text.append(f" {m} ", style="reverse bold" if m == mode else "dim")
    if mode != "pretrain":
        text.append(f"  F4 {'LoRA r' + str(rank) if method == 'lora' else 'full fine-tuning'}")
        if trained is not None and total:
            text.append(f" · {human_count(trained)} of {human_count(total)} numbers trained", style="dim")
        if memory is not None:
            text.append(f" · ~{gigabytes(memory)}", style="dim")
    return text


def tuned_label(method: str, rank: int, steps: int) -> str:
    """The status line's mark for a model whose weights were trained."""
    how = f"LoRA r{rank}" if method == "lora" else "full"
    return f"TUNED ({how}, {steps} steps; F7 in Train: original)"
