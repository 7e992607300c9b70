"""The Embeddings pane's context view (F4): a word's vector after each layer, compared between two sentences.

Both sentences run through the model once (an exclusive worker awaiting the model
thread); picking another layer on the chart reuses them and reads that layer only.
What it computes and the lines it draws are in view.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, Label, Static

from llmtui.app.display import table_label
from llmtui.app.model_thread import call
from llmtui.app.panes.base import Debounce, Pane
from llmtui.app.panes.embeddings.context_answer import (DEFAULT_SENTENCES, ContextAnswer, compute_context, context_note,
                                                        sentence_line)
from llmtui.app.panes.embeddings.view import TYPING_DELAY
from llmtui.app.widgets.layer_chart import LayerChart
from llmtui.app.widgets.neighbour_list import NeighbourColumns
from llmtui.app.widgets.safe_input import SafeInput

if TYPE_CHECKING:
    from llmtui.app.panes.embeddings.pane import EmbeddingsPane
    from llmtui.engine.studies.embeddings import SentenceVectors

MESSAGE_LINE = "#emb-ctx-message"


class ContextView(Vertical):
    """Sentence A, sentence B and a word of both; the cosine of the word's vectors by layer, and a layer's read-outs."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.answer: ContextAnswer | None = None
        """What the view shows now."""
        self._typing = Debounce(self, TYPING_DELAY * 2, lambda: self.request(None))

    def compose(self) -> ComposeResult:
        a, b, word = DEFAULT_SENTENCES
        for label, value, field in (("Sentence A", a, "emb-sentence-a"), ("Sentence B", b, "emb-sentence-b"),
                                    ("Word", word, "emb-word")):
            with Horizontal(classes="emb-row"):
                yield Label(label, classes="emb-label")
                yield SafeInput(value, id=field, compact=True, select_on_focus=False)
                if field == "emb-word":
                    yield Static("  a word of both sentences · tab: chart", id="emb-word-hint")
        yield Static(id="emb-ctx-message")
        yield Static(id="emb-ctx-tokens")
        with Horizontal(id="emb-ctx-main"):
            yield LayerChart(id="emb-layers")
            yield NeighbourColumns(id="emb-ctx-neighbours")

    def on_mount(self) -> None:
        self.chart.border_title = "Cosine by layer"
        self.neighbours.border_title = "Read as next tokens"

    @property
    def pane(self) -> EmbeddingsPane:
        return cast("EmbeddingsPane", self.query_ancestor(Pane))

    @property
    def chart(self) -> LayerChart:
        return self.query_one("#emb-layers", LayerChart)

    @property
    def neighbours(self) -> NeighbourColumns:
        return self.query_one("#emb-ctx-neighbours", NeighbourColumns)

    @property
    def first_field(self) -> Input:
        return self.query_one("#emb-sentence-a", Input)

    def _rows(self) -> int:
        """How many nearest tokens the read-outs panel has room for."""
        return max(5, min(30, (self.neighbours.content_region.height or 11) - 1))

    def fit(self) -> None:
        """The answer was computed while hidden: read its layer again for the panel's real height."""
        if self.answer is not None and len(self.answer.near_a) != self._rows() and not self._typing.pending:
            self.request(self.answer.layer)

    def request(self, layer: int | None) -> None:
        """Compare the word in the sentences as typed (at `layer`, or the one shown); the sentences run once."""
        self._typing.cancel()
        if not self.pane.need_model("shown", MESSAGE_LINE):
            return
        a, b, word = (self.query_one(f"#{field}", Input).value for field in ("emb-sentence-a", "emb-sentence-b", "emb-word"))
        shown = self.answer
        cached = (shown.a, shown.b) if shown is not None and (shown.a.text, shown.b.text, shown.word) == (a, b, word) else None
        if cached is None:
            self.pane.say("Running both sentences through the model…", "busy", MESSAGE_LINE)
        if layer is None and shown is not None:
            layer = shown.layer
        self._compare(a, b, word, layer, cached, self._rows())

    @work(exclusive=True, group="emb-context", exit_on_error=False)
    async def _compare(self, a: str, b: str, word: str, layer: int | None,
                       cached: tuple[SentenceVectors, SentenceVectors] | None, k: int) -> None:
        pane = self.pane
        lm, index = pane.lm, pane.index
        assert lm is not None and index is not None
        with pane.reporting(where=MESSAGE_LINE):
            self._show(await call(compute_context, lm, index, a, b, word, layer, cached, k))

    def _show(self, answer: ContextAnswer) -> None:
        lm = self.pane.lm
        assert lm is not None
        self.answer = answer
        tokenizer, layer = lm.tokenizer, answer.layer
        self.chart.show(answer.by_layer, answer.others, layer)
        same = answer.by_layer[layer]
        word = table_label(tokenizer.decode(answer.a.ids[answer.a.span[0] : answer.a.span[1]]))
        self.chart.border_title = Text(f"{word} A·B · layer {layer}: {same:.2f}")  # the word literally
        self.chart.border_subtitle = f"muted: other words of B ({answer.others[layer]:.2f})" if answer.others else ""
        lines = sentence_line("A", tokenizer, answer.a)
        lines.append("\n")
        lines.append_text(sentence_line("B", tokenizer, answer.b, answer.to_tokens_b))
        self.query_one("#emb-ctx-tokens", Static).update(lines)
        self.neighbours.border_title = f"Read as next tokens · layer {layer}"  # the logit lens's read-out, not neighbours
        self.neighbours.border_subtitle = "final norm, then the nearest token rows"
        self.neighbours.show([
            (f"A: {word}", [(table_label(n.text), n.similarity) for n in answer.near_a]),
            (f"B: {word}", [(table_label(n.text), n.similarity) for n in answer.near_b]),
        ])  # fmt: skip
        self.pane.say(context_note(layer, same, word), "info", MESSAGE_LINE)
        self.call_after_refresh(self.fit)

    @on(Input.Changed, "#emb-sentence-a, #emb-sentence-b, #emb-word")
    def _changed(self, event: Input.Changed) -> None:
        self._typing.restart()

    @on(Input.Submitted, "#emb-sentence-a, #emb-sentence-b, #emb-word")
    def _submitted(self, event: Input.Submitted) -> None:
        self.request(None)

    @on(LayerChart.Selected)
    def _layer_selected(self, event: LayerChart.Selected) -> None:
        self.request(event.layer)
