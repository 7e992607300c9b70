"""Modal screens: a pane's help, a knob's exact value, the command palette."""

from llmtui.app.screens.command_palette import CommandPalette
from llmtui.app.screens.help import HelpScreen
from llmtui.app.screens.value_input import ValueInputScreen

__all__ = ["CommandPalette", "HelpScreen", "ValueInputScreen"]
