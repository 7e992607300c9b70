"""Reusable widgets: knob, probability table, token text, status line, loading notice."""

from llmtui.app.widgets.knob import KNOBS, Knob, KnobSpec
from llmtui.app.widgets.loading import LoadingNotice
from llmtui.app.widgets.prob_table import ProbabilityTable, TableView
from llmtui.app.widgets.status_line import StatusLine
from llmtui.app.widgets.token_text import Piece, TokenText

__all__ = ["KNOBS", "Knob", "KnobSpec", "LoadingNotice", "Piece", "ProbabilityTable", "StatusLine", "TableView", "TokenText"]
