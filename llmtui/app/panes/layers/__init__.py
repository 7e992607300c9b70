"""The Layers pane (the logit lens): `pane.py` lays it out and runs the lens; `view.py` says what it draws."""

from llmtui.app.panes.layers.pane import LayersPane

__all__ = ["LayersPane"]
