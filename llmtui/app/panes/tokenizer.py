"""The Tokenizer pane (placeholder): text cut into tokens and their ids."""

from llmtui.app.panes.placeholder import PlaceholderPane


class TokenizerPane(PlaceholderPane):
    PANE_ID = "tokenizer"
    TITLE = "Tokenizer"
    HELP = (
        "A model never sees letters: text is cut into tokens (words, pieces of words, single bytes), "
        "and each token is an integer id. A leading space belongs to the token, so ' love' and 'love' differ."
    )
    COMING = (
        "Tokenizer — coming soon.\n\n"
        "Type text and see it cut into tokens, each with its id; compare the model's tokenizer "
        "with GPT-2's and GPT-4o's."
    )
