"""The Embeddings pane: `pane.py` lays it out and runs the queries; `view.py` computes and describes the answers."""

from llmtui.app.panes.embeddings.pane import EmbeddingsPane
from llmtui.app.panes.embeddings.view import LIST_SIZE

__all__ = ["LIST_SIZE", "EmbeddingsPane"]
