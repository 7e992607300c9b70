"""The Embeddings pane (placeholder): each token id's vector and its neighbours."""

from llmtui.app.panes.placeholder import PlaceholderPane


class EmbeddingsPane(PlaceholderPane):
    PANE_ID = "embeddings"
    TITLE = "Embeddings"
    HELP = (
        "Each token id picks a row of a learned matrix: a vector of numbers. Tokens used alike get "
        "similar vectors, measured by cosine similarity: ' dog' lies near ' puppy' and ' cat'."
    )
    COMING = (
        "Embeddings — coming soon.\n\n"
        "Pick a token and see its nearest neighbours by cosine similarity, and try vector "
        "arithmetic such as king − man + woman."
    )
