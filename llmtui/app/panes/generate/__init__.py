"""The Generate pane: `pane.py` lays it out and holds its keys, the parts mixed into it (knobs, chat, preview,
forks, runner, output) each have their own module, `run.py` is a run's request and state, `view.py` says what
it draws."""

from llmtui.app.panes.generate.pane import GeneratePane
from llmtui.app.panes.generate.preview import PREVIEW_DELAY

__all__ = ["PREVIEW_DELAY", "GeneratePane"]
