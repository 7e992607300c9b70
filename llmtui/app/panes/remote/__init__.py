"""The panes on a served model (--endpoint): Generate and Tokenizer through the server, the rest say they need weights."""

from llmtui.app.panes import PANES, Pane
from llmtui.app.panes.remote.generate import RemoteGeneratePane
from llmtui.app.panes.remote.needs_weights import NeedsWeightsPane, needs_weights
from llmtui.app.panes.remote.tokenizer import RemoteTokenizerPane

_THROUGH_THE_SERVER: dict[str, type[Pane]] = {"generate": RemoteGeneratePane, "tokenizer": RemoteTokenizerPane}

REMOTE_PANES: tuple[type[Pane], ...] = tuple(_THROUGH_THE_SERVER.get(p.PANE_ID) or needs_weights(p) for p in PANES)
"""In PANES' order, so tabs and number keys are the same as with a local model."""

__all__ = ["REMOTE_PANES", "NeedsWeightsPane", "RemoteGeneratePane", "RemoteTokenizerPane"]
