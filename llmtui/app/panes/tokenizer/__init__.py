"""The Tokenizer pane: `pane.py` lays it out and holds its keys; its parts `tokenizing.py` keep the tokens up to
date and `selecting.py` the selected token; `view.py` says what it draws; `encodings.py` and `encoding_bar.py` hold
the tokenizers (OpenAI's load on first use); `ids_box.py` is F4's ids → text; `tokens_panel.py` the counts, the chips
and the selected token's details."""

from llmtui.app.panes.tokenizer.encodings import ENCODINGS, MODEL
from llmtui.app.panes.tokenizer.pane import TokenizerPane
from llmtui.app.panes.tokenizer.view import MAX_LIVE_CHARS

__all__ = ["ENCODINGS", "MAX_LIVE_CHARS", "MODEL", "TokenizerPane"]
