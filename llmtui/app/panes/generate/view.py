"""What the Generate pane draws, from the generation's steps (a study) and the pane's state: pure functions.

No widgets here: the probability table's views (a past step's, the preview's), labels,
the line that says how a run ended, the export, so they are tested without an app
(tests/views).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING

from rich.style import Style

from llmtui.app.display import count, table_label
from llmtui.app.palette import prob_style
from llmtui.app.widgets.prob_table import TableView, percent
from llmtui.app.widgets.token_text import Piece
from llmtui.engine.remote import UNDECIDED

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
    "another candidate to fork the text there; in chat mode the output shows the raw text the model really continues. "
    "On a served model (--endpoint) the table lists the server's top candidates only, with '?' where a cut depends "
    "on the unlisted rest, and stepping or forking sends the text so far as the prompt."
)
"""The help screen's text (F1)."""

MORE_KEYS = [
    ("tab", "Move between the prompt, the knobs, the output and the table"),
    ("←/→, −/+, wheel", "On a knob: turn it (or click its − and +)"),
    ("enter", "On a knob: type an exact value"),
    ("r, f", "On the seed knob: random seed, or fix the last seed used"),
    ("←/→, home/end", "In the output: pick a past token (end: follow the newest)"),
    ("↑/↓, enter", "In the table: choose a candidate, fork the text there"),
    ("t", "In the output or the table: type the text that replaces the shown token and what follows, and go on from it"),
    ("x", "In the table: ban the highlighted token (again: unban)"),
    ("+, −", "In the table: raise or lower the highlighted token's logit by 2 (its logit bias)"),
    ("F2", "Compare these knobs with others, or with another model (F4 there), token by token (KL, TV, top-1)"),
    ("F3", "Branches: every generation and fork; reopen, rename, delete, save, load; m marks two, c compares them"),
    ("ctrl+z, ctrl+y", "Undo or redo the last fork (outside the prompt box)"),
    ("F4, ctrl+b", "The chat's system prompt; stop strings"),
]
"""The widgets' own keys, for the help screen."""


UNKNOWN_STYLE = Style(dim=True, italic=True)
"""A token whose probability after the knobs a served model's list does not decide."""


def output_pieces(steps: Sequence[Step], texts: Sequence[tuple[str, bool]], by_model: bool, first: int = 0) -> list[Piece]:
    """The generated tokens (`texts`: each one's text and whether it is a special token), coloured by the
    model's probability or the one after the knobs (dim where a served model's list does not decide it);
    `first`: the index of the first step given."""
    pieces = []
    for i, (step, (text, special)) in enumerate(zip(steps, texts), start=first):
        p = step.raw_prob if by_model else step.prob
        style = prob_style(p) if p is not None and not math.isnan(p) else UNKNOWN_STYLE
        if step.forced:
            style += Style(underline=True, italic=True)
        if special:
            style += Style(bold=True)
        pieces.append(Piece(text.replace("\n", "↵\n"), style, i))
    return pieces


def token_label(tokenizer: Tokenizer | None, token_id: int, text: str) -> str:
    """A candidate as a one-line label; a piece of a character shows its bytes (where the tokenizer is here)."""
    if "\ufffd" in text and hasattr(tokenizer, "token_display"):
        return tokenizer.token_display(token_id)
    return table_label(text)


def candidate_labels(tokenizer: Tokenizer, candidates: Sequence[Candidate], settings: SamplingSettings) -> tuple[str, ...]:
    """Each candidate's label, with its logit bias where the knobs give it one (the table's bias stage): '␣Paris +2'."""
    biases = dict(settings.logit_bias)
    return tuple(token_label(tokenizer, c.id, c.text) + (f" {biases[c.id]:+g}" if c.id in biases else "")
                 for c in candidates)


def step_view(tokenizer: Tokenizer, step: Step, n_steps: int) -> TableView:
    """The table of a step already drawn: its candidates, the drawn one marked."""
    drawn = table_label(tokenizer.token_display(step.token_id) if hasattr(tokenizer, "token_display") else step.text)
    how = "forced" if step.forced else f"drew {drawn}"
    return TableView(
        title=f"Token {step.index + 1} of {n_steps} · {how}",
        index=step.index,
        candidates=step.candidates,
        labels=candidate_labels(tokenizer, step.candidates, step.settings),
        drawn=step.token_id,
        settings=step.settings,
    )


def served_step_view(step: Step, n_steps: int) -> TableView:
    """A served model's step: its listed candidates, titled with the drawn token and the mass the server did not list."""
    if not step.candidates:  # a typed text the server could not score (RemoteSession.append_unscored)
        how = "your text, unscored"
    else:
        how = "forced" if step.forced else f"drew {table_label(step.text)}"
    # the unlisted mass before the drawn token: at 80 columns the title is cut at its end, and ▶ marks the drawn row
    unlisted = f" · {percent(step.unlisted)} unlisted" if step.unlisted is not None else ""
    return TableView(
        title=f"Token {step.index + 1} of {n_steps}{unlisted} · {how}",
        index=step.index,
        candidates=step.candidates,
        labels=tuple(table_label(c.text) for c in step.candidates),
        drawn=step.token_id,
        settings=step.settings,
    )


def undecided_note(step: Step) -> str | None:
    """Why some rows of a served model's table show '?' (or why it has none), in one line; None when every row is decided."""
    if not step.candidates:
        return "Your text: the server can't score a given text, so it has no probabilities (the text goes on from it)"
    if not any(c.cut_by == UNDECIDED or c.prob is None for c in step.candidates):
        return None
    if step.settings.repetition_penalty != 1:
        return "?: a repetition penalty moves tokens the server did not list, so their fate is unknown"
    tail = percent(step.unlisted) if step.unlisted is not None else "some"
    return f"?: decided by the {tail} the server did not list (its tail is unknown, never guessed)"


def preview_view(tokenizer: Tokenizer, position: int, candidates: Sequence[Candidate],
                 settings: SamplingSettings) -> TableView:
    """The table of the token that would come next, under the given knobs."""
    return TableView(
        title=f"Next token · preview (token {position + 1})" if position else "Next token · preview",
        index=position,
        candidates=tuple(candidates),
        labels=candidate_labels(tokenizer, candidates, settings),
        drawn=None,
        settings=settings,
        preview=True,
    )


def ended_line(reason: str, steps: Sequence[Step], seed: int | None, context_used: int,
               window: int | None) -> tuple[str, str]:
    """What the message line says when a run ends, and how it is coloured (window None: a served model's)."""
    n, seed_text = count(len(steps), "token"), f"seed {seed}" if seed is not None else "the server's seed"
    if reason == "stopped":
        return f"Stopped after {n} · {seed_text} · F7 goes on", "info"
    if reason == "paused":
        return f"{n} · {seed_text} · F6 one more, F7 go on", "info"
    if reason == "forked":
        return (f"Forked at token {steps[-1].index + 1} · F6 one more, F7 go on" if steps else "Forked"), "info"
    if reason == "typed":
        return f"Forked to your text: {n} now · F6 one more, F7 go on", "info"
    if reason == "max new tokens":
        return f"Max tokens reached: {n} · {seed_text} · raise it and F7 goes on", "info"
    if reason == "context window full" and window is None:
        return f"Context window full (the server's): {n} · fork earlier or ctrl+n clears", "error"
    if reason == "context window full":
        return f"Context window full: {context_used:,} of {window:,} tokens · fork earlier or ctrl+n clears", "error"
    return f"Finished ({reason}): {n} · {seed_text}", "info"


def failed_line(error: str, finish_reason: str | None) -> str:
    """What the message line says when a run fails; a served model's dropped stream kept its tokens and can go on."""
    return f"{error} · F7 goes on" if (finish_reason or "").startswith("dropped") else error


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
            # a served model's session has neither: its server keeps the prompt's tokens and its seed
            "prompt_ids": list(session.prompt_ids) if hasattr(session, "prompt_ids") else None,
            "seed": getattr(session, "seed", None),
            "steps": [s.to_json() for s in steps],
            "text": tokenizer.decode([s.token_id for s in steps]) if tokenizer else "".join(s.text for s in steps),
        },
    }


def export_table(table: TableView) -> tuple[list[str], list[list]]:
    """The table shown: a row per candidate."""
    header = ["rank", "id", "token", "model p", "knobs p", "cut by", "drawn"]
    rows = [[n, c.id, c.text, c.raw_prob, c.prob, c.cut_by or "", c.id == table.drawn]
            for n, c in enumerate(table.candidates, start=1)]
    return header, rows
