"""The Attention pane (placeholder): which earlier tokens each token looks at."""

from llmtui.app.panes.placeholder import PlaceholderPane


class AttentionPane(PlaceholderPane):
    PANE_ID = "attention"
    TITLE = "Attention"
    HELP = (
        "In every layer, each attention head lets a token weigh the tokens before it; a row of weights "
        "sums to 1 and never looks ahead. Heads specialise: the previous token, the first token, the same word earlier."
    )
    COMING = (
        "Attention — coming soon.\n\n"
        "Choose a layer and a head and see, as a heatmap, how much each token attends to each earlier one."
    )
