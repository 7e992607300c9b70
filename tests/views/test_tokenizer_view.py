"""The Tokenizer pane's view-model (llmtui/app/panes/tokenizer/view.py, encodings.py): tokens to lines, without an app."""

from __future__ import annotations

import pytest

from llmtui.app.panes.tokenizer import view
from llmtui.app.panes.tokenizer.encodings import MODEL, Encodings
from llmtui.engine.tokenizer.tokens import from_ids, parse_ids, tokenize


@pytest.fixture(scope="module")
def tokenizer(tiny_lm):
    return tiny_lm.tokenizer


def test_a_tab_names_the_model_and_marks_an_encoding_loading_or_failed():
    encodings = Encodings(loading={"gpt2"}, unavailable={"cl100k_base": "offline"})
    assert view.tab_label(MODEL, encodings, None, wide=True) == "the model"
    assert view.tab_label(MODEL, encodings, "tiny", wide=True) == "tiny (the model's)"
    assert view.tab_label(MODEL, encodings, "tiny", wide=False) == "tiny"
    assert view.tab_label("gpt2", encodings, "tiny", wide=True) == "gpt2 (GPT-2) …"
    assert view.tab_label("cl100k_base", encodings, "tiny", wide=False) == "cl100k ✗"
    assert view.tab_label("o200k_base", encodings, "tiny", wide=False) == "o200k"


def test_an_encoding_loads_once_and_again_only_when_asked_after_a_failure():
    encodings = Encodings()
    assert not encodings.start(MODEL)  # the model's comes with the model
    assert encodings.start("gpt2") and not encodings.start("gpt2")  # already loading
    encodings.loaded("gpt2", None, "no network")
    assert encodings.unavailable == {"gpt2": "no network"} and not encodings.loading
    assert not encodings.start("gpt2")  # a failed one is not retried at every keystroke...
    assert encodings.start("gpt2", again=True)  # ...only when chosen again
    assert not encodings.start("o200k_base", again=True)  # "again" retries failures only
    encodings.loaded("gpt2", object(), None)
    assert "gpt2" in encodings.tokenizers and "gpt2" not in encodings.unavailable


def test_a_missing_tokenizer_says_why_and_what_to_do():
    encodings = Encodings(loading={"gpt2"}, unavailable={"cl100k_base": "it needs a download"})
    assert "loading" in view.missing_note(MODEL, encodings, model_failed=False, compare=False).plain
    assert view.missing_note(MODEL, encodings, model_failed=True, compare=False).plain.startswith("No model")
    assert view.missing_note("gpt2", encodings, False, False).plain == "Loading gpt2…"
    alone = view.missing_note("cl100k_base", encodings, False, compare=False).plain
    assert alone.startswith("Not available: it needs a download.") and "F2" in alone
    assert "F2" not in view.missing_note("cl100k_base", encodings, False, compare=True).plain


def test_the_counts_line_counts_tokens_characters_and_bytes(tokenizer):
    tokens = tokenize(tokenizer, "héllo world")
    line = view.counts_line(tokens, allow_special=True).plain
    assert line.startswith(f"{tokens.n_tokens} tokens · 11 characters · 12 bytes · ")
    assert f"{11 / tokens.n_tokens:.2f} characters per token" in line and line.endswith("specials on")
    assert "specials" not in view.counts_line(tokens, allow_special=False).plain


def test_a_long_text_says_only_its_start_is_tokenized():
    assert view.cut_note(view.MAX_LIVE_CHARS).plain == ""
    assert view.cut_note(1_048_576).plain == " · tokens of the first 50,000 of 1,048,576 characters (all kept above)"


def test_pasted_ids_say_what_they_decode_to_or_which_items_are_not_ids(tokenizer):
    good = parse_ids("40, 41", tokenizer, name="tiny")
    tokens, _ = from_ids(tokenizer, good.ids)
    line, kind = view.ids_line(good, tokens)
    assert kind == "info" and line.startswith("2 ids → ")
    bad = parse_ids("40, x, 99999999", tokenizer, name="tiny")
    line, kind = view.ids_line(bad, from_ids(tokenizer, bad.ids)[0])
    assert kind == "error" and line.plain.startswith("2 of 3 items are not ids: ")
    assert view.ids_line(parse_ids("", tokenizer), from_ids(tokenizer, [])[0]) == ("", "info")


def test_the_cursor_selects_the_token_holding_the_character_before_it(tokenizer):
    text = "ab 🍕 cd"
    tokens = tokenize(tokenizer, text)
    for cursor in range(len(text) + 1):
        token = view.token_at_cursor(tokens, text, cursor)
        before = len(text[:cursor].encode())
        # the token ends after the byte before the cursor, and the one before it ends at or before that byte
        assert tokens.ends[token] >= min(max(1, before), tokens.n_bytes)
        assert token == 0 or tokens.ends[token - 1] <= max(0, before - 1)


def test_the_detail_line_shows_the_token_its_bytes_and_the_way_to_embeddings(tokenizer):
    tokens = tokenize(tokenizer, "a 🍕")
    index = tokens.n_tokens - 1
    line = view.detail_line(tokens, index, "x", model_token=True, chips_focused=False).plain
    data = tokens.chunks[index]
    assert line.startswith(f"Token {index + 1}/{tokens.n_tokens}  id {tokens.ids[index]}  “x”")
    assert f"{len(data)} byte" in line and data[:1].hex().upper() in line
    assert line.endswith("· tab, enter: Embeddings")
    focused = view.detail_line(tokens, index, "x", model_token=True, chips_focused=True).plain
    assert focused.endswith("· enter: Embeddings")
    assert "Embeddings" not in view.detail_line(tokens, index, "x", model_token=False, chips_focused=True).plain
    if tokens.group_of(index) is not None:  # a byte token of the emoji names the character it is part of
        assert "part of “🍕”" in line


def test_the_export_lists_every_token_and_says_how_much_was_tokenized(tokenizer):
    tokens = tokenize(tokenizer, "hi there")
    data = view.export_data("tiny", "text", "hi there", tokens)
    assert data["tokenized_chars"] == 8 and [t["id"] for t in data["tokens"]] == list(tokens.ids)
    assert b"".join(bytes.fromhex(t["bytes"]) for t in data["tokens"]) == b"hi there"
    header, rows = view.export_table(data)
    assert header[0] == "#" and [r[1] for r in rows] == list(tokens.ids) and rows[-1][0] == tokens.n_tokens
    long = "x" * (view.MAX_LIVE_CHARS + 5)
    assert view.export_data("tiny", "text", long, tokens)["tokenized_chars"] == view.MAX_LIVE_CHARS
