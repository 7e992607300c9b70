"""llmtui: a terminal playground that lets you see inside a real language model."""

__version__ = "0.1.0"
