"""The Generate pane: `pane.py` lays it out and runs the generation, `run.py` is a run's request and state,
`view.py` says what it draws."""

from llmtui.app.panes.generate.pane import PREVIEW_DELAY, GeneratePane

__all__ = ["PREVIEW_DELAY", "GeneratePane"]
