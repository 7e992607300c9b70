"""The Attention pane: `pane.py` lays it out and captures the attention; `view.py` says what it draws."""

from llmtui.app.panes.attention.pane import AttentionPane

__all__ = ["AttentionPane"]
