"""The Layers pane (the logit lens): `pane.py` lays it out and runs the lens, `cursor.py` is what
the grid's cursor shows and picks, `view.py` says what it draws."""

from llmtui.app.panes.layers.pane import LayersPane

__all__ = ["LayersPane"]
