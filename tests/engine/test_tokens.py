"""The Tokenizer pane's headless helpers: token labels, characters cut across tokens, counts, pasted ids."""

from __future__ import annotations

import re
import subprocess
import sys
import unicodedata
from itertools import pairwise

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from llmtui.engine.tokenizer.tokenizer import Tokenizer, tokenizer_from_gguf, tokenizer_from_hf_folder
from llmtui.engine.tokenizer.tokens import CharGroup, char_groups, from_ids, parse_ids, token_label, tokenize

_UNMARK = {"·": " ", "↵": "\n", "→": "\t", "◌": ""}
_ESCAPE = re.compile(r"\\x([0-9a-f]{2})|\\u([0-9a-f]{4})|\\U([0-9a-f]{8})|\\r|\\0")


def unlabel(runs) -> bytes:
    """The bytes a label stands for, read back from its runs (the inverse of token_label)."""
    out = bytearray()
    for text, kind in runs:
        if kind == "text":
            out += text.encode("utf-8")
        elif kind == "marker":
            out += "".join(_UNMARK[ch] for ch in text).encode("utf-8")
        elif kind == "byte":
            assert re.fullmatch(r"<0x[0-9A-F]{2}>", text), text
            out.append(int(text[3:5], 16))
        else:
            for m in _ESCAPE.finditer(text):
                code = next((g for g in m.groups() if g), None)
                ch = chr(int(code, 16)) if code else {"\\r": "\r", "\\0": "\0"}[m.group()]
                out += ch.encode("utf-8")
            assert _ESCAPE.sub("", text) == "", text
    return bytes(out)


@pytest.fixture(scope="module")
def tiny(tiny_hf_llama_dir) -> Tokenizer:
    """The tiny models' byte-level BPE (320 tokens, specials <|endoftext|> <|im_start|> <|im_end|>)."""
    return tokenizer_from_hf_folder(tiny_hf_llama_dir)


@pytest.fixture(scope="module")
def smollm(default_model_path) -> Tokenizer:
    return tokenizer_from_gguf(default_model_path)


def gappy_tokenizer() -> Tokenizer:
    """A tiktoken vocabulary with unused ids (257..299) before its one special token (300)."""
    ranks = {bytes([b]): b for b in range(256)}
    ranks[b"ab"] = 256
    encoding = tiktoken.Encoding("gappy", pat_str=r"\S+|\s+", mergeable_ranks=ranks, special_tokens={"<|end|>": 300})
    return Tokenizer.from_encoding(encoding)


class TestTokenLabel:
    def test_spaces_newlines_and_tabs_are_visible(self):
        assert token_label(b" love") == (("·", "marker"), ("love", "text"))
        assert token_label(b"\n\n") == (("↵↵", "marker"),)
        assert token_label(b"\tx") == (("→", "marker"), ("x", "text"))

    def test_bytes_of_a_cut_character_are_written_as_bytes(self):
        pizza = "🍕".encode()
        assert token_label(pizza[:2]) == (("<0xF0>", "byte"), ("<0x9F>", "byte"))
        assert token_label(b" " + pizza[:1]) == (("·", "marker"), ("<0xF0>", "byte"))
        assert token_label(pizza) == (("🍕", "text"),)

    def test_markup_is_plain_text_and_controls_are_escaped(self):
        assert token_label(b"[red]x[/]") == (("[red]x[/]", "text"),)
        assert token_label(b"\x1b[31m") == (("\\x1b", "escape"), ("[31m", "text"))
        assert token_label(b"a\rb\x00") == (("a", "text"), ("\\r", "escape"), ("b", "text"), ("\\0", "escape"))

    def test_invisible_characters_are_escaped(self):
        assert token_label("\u200d".encode()) == (("\\u200d", "escape"),)  # zero-width joiner
        assert token_label("\u202e".encode()) == (("\\u202e", "escape"),)  # right-to-left override
        assert token_label("\u00a0".encode()) == (("\\xa0", "escape"),)  # no-break space is not a space

    def test_a_lone_combining_mark_gets_a_dotted_circle(self):
        assert token_label("\u0301".encode()) == (("◌", "marker"), ("\u0301", "text"))
        assert token_label("e\u0301".encode()) == (("e\u0301", "text"),)

    @settings(max_examples=500, deadline=None)
    @given(data=st.binary(max_size=24) | st.text(max_size=12).map(lambda t: t.encode("utf-8", "surrogatepass")))
    def test_every_byte_is_shown_and_none_is_obeyed(self, data):
        """Any bytes: the label reads back to exactly those bytes, and holds nothing a terminal would act on."""
        runs = token_label(data)
        assert unlabel(runs) == data
        shown = "".join(text for text, _ in runs)
        assert not [ch for ch in shown if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp")]


class TestCharGroups:
    def test_an_emoji_cut_across_tokens_is_one_group(self):
        pizza = "🍕".encode()
        chunks = [b"I", b" " + pizza[:2], pizza[2:3], pizza[3:], b"!"]
        assert char_groups(chunks) == [CharGroup(1, 3, " 🍕")]

    def test_whole_characters_make_no_group(self):
        assert char_groups([b"caf\xc3\xa9", b" ok", "東".encode()]) == []
        assert char_groups([]) == []

    @settings(max_examples=300, deadline=None)
    @given(text=st.text(min_size=1, max_size=20), cuts=st.sets(st.integers(1, 80), max_size=10))
    def test_groups_cover_exactly_the_cut_characters(self, text, cuts):
        """Cut the UTF-8 of any text anywhere: a token lies outside every group iff it is whole characters."""
        data = text.encode("utf-8", "surrogatepass")
        points = [0, *sorted(c for c in cuts if c < len(data)), len(data)]
        chunks = [data[a:b] for a, b in pairwise(points)]
        groups = char_groups(chunks)
        grouped = set()
        for g in groups:
            assert g.last > g.first
            assert g.text == b"".join(chunks[g.first : g.last + 1]).decode("utf-8", "surrogatepass")
            grouped.update(range(g.first, g.last + 1))
        for i, chunk in enumerate(chunks):
            if i not in grouped:
                chunk.decode("utf-8", "surrogatepass")  # whole characters: decodes alone
        # every group is needed: the chunks of a group are not all whole characters on their own
        for g in groups:
            first = chunks[g.first]
            with pytest.raises(UnicodeDecodeError):
                first.decode("utf-8", "surrogatepass")


class TestTokenize:
    def test_ids_are_the_tokenizers_and_counts_add_up(self, tiny):
        text = "Hello world! café 東京\n"
        tokens = tokenize(tiny, text)
        assert list(tokens.ids) == tiny.encode(text)
        assert b"".join(tokens.chunks) == text.encode()
        assert (tokens.n_chars, tokens.n_bytes, tokens.n_tokens) == (len(text), len(text.encode()), len(tiny.encode(text)))
        assert tokens.chars_per_token == pytest.approx(len(text) / len(tiny.encode(text)))
        assert tokens.round_trip and tokens.dropped == ()

    def test_specials_only_when_allowed(self, tiny):
        plain = tokenize(tiny, "a<|im_end|>")
        assert plain.special == frozenset() and len(plain.ids) > 2
        special = tokenize(tiny, "a<|im_end|>", allow_special=True)
        assert special.ids[-1] == tiny.special_ids["<|im_end|>"] and special.special == {len(special.ids) - 1}

    def test_empty_text(self, tiny):
        tokens = tokenize(tiny, "")
        assert tokens.ids == () and tokens.chars_per_token == 0.0 and tokens.groups == ()

    def test_group_of(self, tiny):
        tokens = tokenize(tiny, "a 🍕")
        assert tokens.groups, "an emoji outside the tiny vocabulary is cut into byte tokens"
        group = tokens.groups[0]
        assert tokens.group_of(group.first) is group and tokens.group_of(group.last) is group
        assert tokens.group_of(0) is None and "🍕" in group.text

    @pytest.mark.default_model
    def test_smollm2_cuts_pizza_into_bytes_and_drops_bytes_it_lacks(self, smollm):
        tokens = tokenize(smollm, "I love 🍕!")
        assert list(tokens.ids) == smollm.encode("I love 🍕!")
        (group,) = tokens.groups
        assert group.text.strip() == "🍕" and group.last - group.first + 1 >= 2
        lossy = tokenize(smollm, "a\x04b")
        assert lossy.dropped == (0x04,) and not lossy.round_trip

    def test_from_ids(self, tiny):
        ids = tiny.encode("Hello 🍕")
        tokens, text = from_ids(tiny, ids)
        assert text == "Hello 🍕" and tokens.ids == tuple(ids) and tokens.groups
        half, broken = from_ids(tiny, ids[:-1])  # the emoji's last byte missing
        assert broken.endswith("\ufffd") and half.n_chars == len(broken)


class TestParseIds:
    def test_separators_and_brackets(self, tiny):
        for text in ("40, 41, 42", "[40,41,42]", "40 41\n42", "(40; 41; 42)", " +40, 041,42 "):
            assert parse_ids(text, tiny).ids == (40, 41, 42), text
        assert parse_ids("", tiny) == parse_ids("  , ", tiny)
        assert parse_ids("", tiny).ids == () and parse_ids("", tiny).problems == ()

    def test_every_bad_item_is_reported_and_the_rest_kept(self, tiny):
        parsed = parse_ids("5, -1, 320, abc, 3.5, 0x10, 99999999999999999999999999999999, 7", tiny, name="tiny")
        assert parsed.ids == (5, 7) and parsed.n_items == 8
        assert parsed.problems == (
            "-1 (item 2) is negative: ids start at 0",
            "320 (item 3) is too large: tiny's ids go from 0 to 319",
            "'abc' (item 4) is not a whole number",
            "'3.5' (item 5) is not a whole number",
            "'0x10' (item 6) is not a whole number",
            "99999999999999999999999… (item 7) is too large: tiny's ids go from 0 to 319",
        )

    def test_unused_ids(self):
        gappy = gappy_tokenizer()
        parsed = parse_ids("256 280 300", gappy)
        assert parsed.ids == (256, 300)
        assert parsed.problems == ("280 (item 2) is not a token of gappy (an unused id)",)

    def test_controls_in_a_bad_item_are_escaped(self, tiny):
        (problem,) = parse_ids("x\x1by", tiny).problems
        assert "\x1b" not in problem and "\\x1b" in problem

    @settings(max_examples=300, deadline=None)
    @given(text=st.text(max_size=40))
    def test_any_text_gives_ids_in_range_or_a_reason(self, tiny, text):
        parsed = parse_ids(text, tiny)
        assert all(0 <= i < tiny.vocab_size for i in parsed.ids)
        assert len(parsed.ids) + len(parsed.problems) == parsed.n_items


def test_the_helpers_are_headless():
    code = "import sys, llmtui.engine.tokenizer.tokens; print(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'torch')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
