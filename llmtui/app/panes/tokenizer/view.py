"""What the Tokenizer pane draws, from tokenizations (a study) and the pane's state: pure functions.

No widgets here: the tabs' labels, the counts line, the notes for a tokenizer that is
missing, the selected token's details and the export, so they are tested without an
app (tests/views).
"""

from __future__ import annotations

from bisect import bisect_right
from typing import TYPE_CHECKING, Literal

from rich.text import Text

from llmtui.app.display import count
from llmtui.app.panes.tokenizer.encodings import MODEL, Encodings
from llmtui.engine.tokenizer.tokens import ParsedIds, Tokenization, token_label

if TYPE_CHECKING:
    from llmtui.app.panes.base import MessageKind

Mode = Literal["text", "ids"]
""""text": typed text to tokens; "ids": pasted ids to text."""

OPENAI_LABELS = {"gpt2": "gpt2 (GPT-2)", "cl100k_base": "cl100k (GPT-4)", "o200k_base": "o200k (GPT-4o)"}
MAX_BYTES_SHOWN = 16
"""The details line lists a token's bytes up to this many."""
MAX_LIVE_CHARS = 50_000
"""Characters tokenized as you type (about 0.13 s per edit at this size); a longer text's tail is kept, not tokenized."""

HELP = (
    "A model never sees letters: text is cut into tokens (whole words, pieces of words, single bytes) "
    "and each token is an integer id. A leading space belongs to the token, so ' love' and 'love' are "
    "different tokens; · marks a space, ↵ a newline. An emoji or a rare character may take several byte "
    "tokens (<0xF0> ...): the bracket under them shows the character they make together.\n\n"
    "Type above and the tokens follow. F2 switches tokenizer (the model's own, or OpenAI's gpt2, "
    "cl100k, o200k), F3 stacks them all to compare, F4 turns ids back into text, F5 lets typed text "
    "such as <|im_end|> become special tokens. Tab moves to the tokens: arrows pick one, enter opens "
    "it in the Embeddings pane."
)
"""The help screen's text (F1)."""

EMPTY_TEXT = Text(
    "Type some text above: it is cut into tokens as you type.\n\n"
    "Try a sentence; ' love' against 'love'; an emoji 🍕; a long rare word; some code; "
    "another language. F2 shows how another tokenizer cuts the same text.",
    style="italic",
)
EMPTY_IDS = Text("Type or paste token ids above, separated by commas or spaces.", style="italic")


def tab_label(key: str, encodings: Encodings, model_name: str | None, wide: bool) -> str:
    """A tokenizer's tab: the model's name (or "the model"), or the encoding's, marked … while loading, ✗ if failed."""
    if key == MODEL:
        label = (model_name or "the model") + (" (the model's)" if wide and model_name is not None else "")
    else:
        label = OPENAI_LABELS[key] if wide and key in OPENAI_LABELS else key.removesuffix("_base")
    if key in encodings.loading:
        label += " …"
    elif key in encodings.unavailable:
        label += " ✗"
    return label


def missing_note(key: str, encodings: Encodings, model_failed: bool, compare: bool) -> Text:
    """Why an encoding shows no tokens, and what to do."""
    if key == MODEL:
        if model_failed:
            return Text("No model, so not its tokenizer (see above). OpenAI's tokenizers may still work: "
                        "F2 switches to the next one.")
        return Text("The model's tokenizer comes with the model, which is loading (see above). "
                    "You can type meanwhile; F2 switches to OpenAI's tokenizers.")
    if key in encodings.loading:
        return Text(f"Loading {key}…" + (" (trying again)" if key in encodings.unavailable else ""))
    if key in encodings.unavailable:
        text = Text("Not available: ", style="bold")
        text.append(encodings.unavailable[key] + ".")
        if not compare:
            text.append("\nThe other tokenizers still work: F2 switches to the next one.")
        return text
    return Text(f"{key} is not loaded yet.")


def cut_note(n_chars: int) -> Text:
    """' · tokens of the first 50,000 of 1,048,576 characters' when the text is longer than the pane tokenizes."""
    if n_chars <= MAX_LIVE_CHARS:
        return Text()
    return Text(f" · tokens of the first {MAX_LIVE_CHARS:,} of {n_chars:,} characters (all kept above)", style="bold")


def counts_line(tokens: Tokenization, allow_special: bool) -> Text:
    """'5 tokens · 24 characters · 24 bytes · 4.80 characters per token', and what did not round-trip."""
    line = Text()
    for n, noun in ((tokens.n_tokens, "token"), (tokens.n_chars, "character"), (tokens.n_bytes, "byte")):
        number, word = count(n, noun).split(" ")
        line.append(number, style="bold")
        line.append(f" {word} · ")
    line.append(f"{tokens.chars_per_token:.2f}", style="bold")
    line.append(" characters per token")
    if allow_special:
        line.append(" · specials on")
    if tokens.dropped:
        shown = ", ".join(f"0x{b:02X}" for b in tokens.dropped[:4])
        line.append(f" · no token for byte {shown}: dropped", style="bold")
    elif not tokens.round_trip:
        line.append(" · decoding the ids does not give this text back exactly", style="bold")
    return line


def section_title(label: str, tokens: Tokenization | None = None) -> Text:
    """A tokenizer's title in the comparison: its tab's name, and its counts once it has tokens."""
    title = Text(label.removesuffix(" …").removesuffix(" ✗"), style="bold")
    if tokens is not None:
        title.append(f" · {count(tokens.n_tokens, 'token')} · {tokens.chars_per_token:.2f} chars/token", style="not bold")
    return title


def compare_line(n_tokenizers: int, text: str, allow_special: bool) -> Text:
    """The counts line of the comparison: how many tokenizers, on how much text."""
    data = len(text.encode("utf-8", "surrogatepass"))
    return Text(f"Comparing {n_tokenizers} tokenizers on {len(text)} characters, {data} bytes"
                + (" · specials on" if allow_special else ""))


def ids_line(parsed: ParsedIds, tokens: Tokenization) -> tuple[Text | str, MessageKind]:
    """The counts line of pasted ids: what they decode to, or which items are not ids."""
    if parsed.problems:
        head = Text(f"{len(parsed.problems)} of {parsed.n_items} items are not ids: ", style="bold")
        head.append("; ".join(parsed.problems), style="not bold")
        return head, "error"
    if parsed.ids:
        return f"{count(tokens.n_tokens, 'id')} → {count(tokens.n_chars, 'character')}, {count(tokens.n_bytes, 'byte')}", "info"
    return "", "info"


def token_at_cursor(tokens: Tokenization, text: str, cursor: int) -> int:
    """The token holding the character before `cursor` (an index into `text`): where typing would select."""
    offset = len(text[:cursor].encode("utf-8", "surrogatepass"))
    return min(bisect_right(tokens.ends, max(0, offset - 1)), tokens.n_tokens - 1)


def detail_line(tokens: Tokenization, index: int, label: str, model_token: bool, chips_focused: bool) -> Text:
    """The selected token: its place, id, label, bytes, the character it is part of, and the key to Embeddings."""
    token_id, data = tokens.ids[index], tokens.chunks[index]
    line = Text()
    line.append(f"Token {index + 1}/{tokens.n_tokens}", style="bold")
    line.append("  id ")
    line.append(str(token_id), style="bold")
    line.append("  ")
    line.append(f"“{label}”", style="bold")
    if index in tokens.special:
        line.append("  special token")
    hexes = " ".join(f"{b:02X}" for b in data[:MAX_BYTES_SHOWN]) + (" …" if len(data) > MAX_BYTES_SHOWN else "")
    line.append(f"  {len(data)} byte{'s' if len(data) != 1 else ''}: {hexes}")
    group = tokens.group_of(index)
    if group is not None:
        chars = "".join(t for t, _ in token_label(group.text.encode("utf-8", "surrogatepass")))
        line.append(f"  part of “{chars}” (tokens {group.first + 1}–{group.last + 1})")
    if model_token:
        line.append("  · enter: Embeddings" if chips_focused else "  · tab, enter: Embeddings", style="dim")
    return line


def export_data(tokenizer_name: str, mode: Mode, text: str, tokens: Tokenization) -> dict:
    """The token list shown: each token's id, its text and its bytes (hex), under the current tokenizer.

    "text" is all of it; the tokens are those of its first "tokenized_chars" characters (the pane
    tokenizes at most MAX_LIVE_CHARS, and says so).
    """
    return {
        "tokenizer": tokenizer_name,
        "mode": mode,
        "text": text,
        "tokenized_chars": min(len(text), MAX_LIVE_CHARS) if mode == "text" else len(text),
        "tokens": [{"id": i, "text": chunk.decode("utf-8", errors="replace"), "bytes": chunk.hex(),
                    "special": n in tokens.special} for n, (i, chunk) in enumerate(zip(tokens.ids, tokens.chunks))],
    }


def export_table(exported: dict) -> tuple[list[str], list[list]]:
    """The export as a table: one row per token."""
    rows = [[n, t["id"], t["text"], t["bytes"], t["special"]] for n, t in enumerate(exported["tokens"], start=1)]
    return ["#", "id", "text", "bytes", "special"], rows
