"""The Textual app: a shell of panes over the engine (see `llmtui.app.app.LLMTuiApp`)."""

__all__ = ["LLMTuiApp"]


def __getattr__(name: str):
    if name == "LLMTuiApp":
        from llmtui.app.app import LLMTuiApp

        return LLMTuiApp
    raise AttributeError(name)
