"""Modal screens: a pane's help, a knob's exact value."""

from llmtui.app.screens.help import HelpScreen
from llmtui.app.screens.value_input import ValueInputScreen

__all__ = ["HelpScreen", "ValueInputScreen"]
