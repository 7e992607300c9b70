"""The headless core: model, tokenizer, loading, sampling and generation.

Nothing under `llmtui.engine` imports textual or rich (a test checks this), so the
CLI, the TUI and scripts all stand on the same code.
"""
