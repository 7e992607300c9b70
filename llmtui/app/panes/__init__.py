"""The panes, one per concept, in tab order. Add a pane here to give it a tab and a number key."""

from llmtui.app.panes.attention import AttentionPane
from llmtui.app.panes.base import Pane
from llmtui.app.panes.embeddings import EmbeddingsPane
from llmtui.app.panes.generate import GeneratePane
from llmtui.app.panes.layers import LayersPane
from llmtui.app.panes.tokenizer import TokenizerPane
from llmtui.app.panes.train import TrainPane

PANES: tuple[type[Pane], ...] = (TokenizerPane, EmbeddingsPane, AttentionPane, LayersPane, GeneratePane, TrainPane)

__all__ = ["PANES", "AttentionPane", "EmbeddingsPane", "GeneratePane", "LayersPane", "Pane", "TokenizerPane", "TrainPane"]
