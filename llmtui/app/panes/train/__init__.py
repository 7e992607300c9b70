"""The Train pane: watch a model learn (teach, pretrain, prefer). pane.py lays it out, runner.py
runs the training, view.py draws."""

from llmtui.app.panes.train.pane import TrainPane

__all__ = ["TrainPane"]
