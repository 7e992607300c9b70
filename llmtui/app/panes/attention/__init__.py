"""The Attention pane: `pane.py` lays it out, with its parts `capture.py` (running the model) and
`navigation.py` (layer, head, overviews); `maps.py` draws the weights; `view.py` says what it draws."""

from llmtui.app.panes.attention.pane import AttentionPane

__all__ = ["AttentionPane"]
