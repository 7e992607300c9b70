"""What the Generate pane draws, from the generation's steps (a study) and the pane's state: pure functions.

No widgets here: the probability table's views (a past step's, the preview's), labels,
the line that says how a run ended, the export, so they are tested without an app
(tests/views).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING

from llmtui.app.display import count, table_label
from llmtui.app.widgets.prob_table import TableView

if TYPE_CHECKING:
    from llmtui.app.panes.generate.run import PromptRequest
    from llmtui.engine.generation import Candidate, GenerationSession, Step
    from llmtui.engine.settings import SamplingSettings
    from llmtui.engine.tokenizer.tokenizer import Tokenizer

HELP = (
    "A language model writes one token at a time: it gives every token of its vocabulary a probability, "
    "one is drawn, appended, and the loop repeats. The table shows a step's top candidates with the model's "
    "probability and the one after the knobs (temperature, top-k, top-p, min-p, repetition penalty); struck-out "
    "rows are the ones a knob cut away. Pick a past token in the output to see its table, and press enter on "
    "another candidate to fork the text there; in chat mode the output shows the raw text the model really continues."
)
"""The help screen's text (F1)."""

MORE_KEYS = [
    ("tab", "Move between the prompt, the knobs, the output and the table"),
    ("←/→, −/+, wheel", "On a knob: turn it (or click its − and +)"),
    ("enter", "On a knob: type an exact value"),
    ("r, f", "On the seed knob: random seed, or fix the last seed used"),
    ("←/→, home/end", "In the output: pick a past token (end: follow the newest)"),
    ("↑/↓, enter", "In the table: choose a candidate, fork the text there"),
    ("x", "In the table: ban the highlighted token (again: unban)"),
    ("F2", "Compare these knobs with others, token by token (KL, TV, top-1)"),
    ("F3", "Branches: every generation and fork; reopen, rename, delete, save, load"),
    ("ctrl+z, ctrl+y", "Undo or redo the last fork (outside the prompt box)"),
    ("F4, ctrl+b", "The chat's system prompt; stop strings"),
]
"""The widgets' own keys, for the help screen."""


def token_label(tokenizer: Tokenizer, token_id: int, text: str) -> str:
    """A candidate as a one-line label; a piece of a character shows its bytes."""
    if "\ufffd" in text and hasattr(tokenizer, "token_display"):
        return tokenizer.token_display(token_id)
    return table_label(text)


def step_view(tokenizer: Tokenizer, step: Step, n_steps: int) -> TableView:
    """The table of a step already drawn: its candidates, the drawn one marked."""
    drawn = table_label(tokenizer.token_display(step.token_id) if hasattr(tokenizer, "token_display") else step.text)
    how = "forced" if step.forced else f"drew {drawn}"
    return TableView(
        title=f"Token {step.index + 1} of {n_steps} · {how}",
        index=step.index,
        candidates=step.candidates,
        labels=tuple(token_label(tokenizer, c.id, c.text) for c in step.candidates),
        drawn=step.token_id,
        settings=step.settings,
    )


def preview_view(tokenizer: Tokenizer, position: int, candidates: Sequence[Candidate],
                 settings: SamplingSettings) -> TableView:
    """The table of the token that would come next, under the given knobs."""
    return TableView(
        title=f"Next token · preview (token {position + 1})" if position else "Next token · preview",
        index=position,
        candidates=tuple(candidates),
        labels=tuple(token_label(tokenizer, c.id, c.text) for c in candidates),
        drawn=None,
        settings=settings,
        preview=True,
    )


def ended_line(reason: str, steps: Sequence[Step], seed: int | None, context_used: int,
               window: int) -> tuple[str, str]:
    """What the message line says when a run ends, and how it is coloured."""
    n, seed_text = count(len(steps), "token"), f"seed {seed}"
    if reason == "stopped":
        return f"Stopped after {n} · {seed_text} · F7 goes on", "info"
    if reason == "paused":
        return f"{n} · {seed_text} · F6 one more, F7 go on", "info"
    if reason == "forked":
        return (f"Forked at token {steps[-1].index + 1} · F6 one more, F7 go on" if steps else "Forked"), "info"
    if reason == "max new tokens":
        return f"Max tokens reached: {n} · {seed_text} · raise it and F7 goes on", "info"
    if reason == "context window full":
        return f"Context window full: {context_used:,} of {window:,} tokens · fork earlier or ctrl+n clears", "error"
    return f"Finished ({reason}): {n} · {seed_text}", "info"


def export_data(model: str | None, table: TableView | None, shown: PromptRequest | None,
                session: GenerationSession | None, prompt: PromptRequest | None, steps: Sequence[Step],
                tokenizer: Tokenizer | None) -> dict | None:
    """The probability table shown (and `shown`, the prompt it is for), and the whole generation with every
    step's candidates (`prompt`: the session's)."""
    if table is None and session is None:
        return None
    return {
        "model": model,
        "prompt": {"text": shown.text if shown else None, "chat": bool(shown and shown.chat)},  # the table's
        "table": None if table is None else {
            "title": table.title,
            "step_index": table.index,
            "preview": table.preview,
            "drawn": table.drawn,
            "settings": asdict(table.settings),
            "candidates": [{**c.to_json(), "label": label} for c, label in zip(table.candidates, table.labels)],
        },
        "generation": None if session is None else {
            "prompt": prompt.text if prompt else None,
            "chat": bool(prompt and prompt.chat),
            "prompt_ids": list(session.prompt_ids),
            "seed": session.seed,
            "steps": [s.to_json() for s in steps],
            "text": tokenizer.decode([s.token_id for s in steps]) if tokenizer else None,
        },
    }


def export_table(table: TableView) -> tuple[list[str], list[list]]:
    """The table shown: a row per candidate."""
    header = ["rank", "id", "token", "model p", "knobs p", "cut by", "drawn"]
    rows = [[n, c.id, c.text, c.raw_prob, c.prob, c.cut_by or "", c.id == table.drawn]
            for n, c in enumerate(table.candidates, start=1)]
    return header, rows
