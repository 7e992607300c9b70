"""The panes on a served model (--endpoint): Generate (the same pane, on the server's model) and Tokenizer through
the server; the rest say they need weights."""

from llmtui.app.panes import PANES, Pane
from llmtui.app.panes.remote.needs_weights import NeedsWeightsPane, needs_weights
from llmtui.app.panes.remote.tokenizer import RemoteTokenizerPane

_ON_THE_SERVER = {"generate"}  # panes that take a served model themselves (GeneratePane: its served backend)
_THROUGH_THE_SERVER: dict[str, type[Pane]] = {"tokenizer": RemoteTokenizerPane}

REMOTE_PANES: tuple[type[Pane], ...] = tuple(
    p if p.PANE_ID in _ON_THE_SERVER else _THROUGH_THE_SERVER.get(p.PANE_ID) or needs_weights(p) for p in PANES)
"""In PANES' order, so tabs and number keys are the same as with a local model."""

__all__ = ["REMOTE_PANES", "NeedsWeightsPane", "RemoteTokenizerPane"]
