"""Tokenizers as tiktoken Encodings: a model's own byte-level BPE, and OpenAI's encodings.

A byte-level BPE tokenizer (GPT-2, SmolLM2, Llama 3, ...) is three things: a regex that cuts
text into pieces, a vocabulary of byte strings, and merges that glue adjacent byte strings
into longer ones. tiktoken runs exactly that, in Rust, if each token's rank orders its merge:
a merge learned earlier must make a token of lower rank. In these vocabularies the id of a
merge's result grows with the merge's position, so ranks can simply be the model's ids (this
is checked while building; a vocabulary that breaks it gets ranks in merge order and a table
back to ids).

References:
- GPT-2's byte-to-unicode table: openai/gpt-2 `src/encoder.py` (`bytes_to_unicode`).
- Hugging Face `tokenizers`: `models.BPE`, `pre_tokenizers.ByteLevel` / `Digits` / `Split`, the
  reference every test compares ids with.
- llama.cpp's names for pre-tokenizers (`tokenizer.ggml.pre`) and its GGUF token types.
- tiktoken `tiktoken_ext/openai_public.py` for OpenAI's encodings and their download URLs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import tempfile
import threading
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import tiktoken

from llmtui.engine.loading.gguf_header import read_gguf_header

__all__ = [
    "OPENAI_ENCODINGS",
    "GPT2_PATTERN",
    "DIGITS_GPT2_PATTERN",
    "LLAMA3_PATTERN",
    "QWEN2_PATTERN",
    "GPT4O_PATTERN",
    "Tokenizer",
    "bytes_to_unicode",
    "openai_encoding",
    "openai_tokenizer",
    "read_gguf_metadata",
    "render_token",
    "tiktoken_cache_dir",
    "tokenizer_from_gguf",
    "tokenizer_from_hf_folder",
]

# ---------------------------------------------------------------------------------------------
# The byte alphabet


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from each byte to a printable character that stands for it in vocab files.

    Printable Latin-1 bytes stand for themselves; the other 68 (controls, space, ...) are moved
    to U+0100 onwards, so a space is written 'Ġ' and a newline 'Ċ':

    >>> table = bytes_to_unicode()
    >>> table[ord("a")], table[ord(" ")], table[ord("\\n")]
    ('a', 'Ġ', 'Ċ')
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    moved = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + moved)
            moved += 1
    return table


_BYTE_OF_CHAR: dict[str, int] = {char: byte for byte, char in bytes_to_unicode().items()}
# str.translate table: a spelled token becomes a latin-1 string whose code points are its bytes.
_UNSPELL = str.maketrans({char: chr(byte) for char, byte in _BYTE_OF_CHAR.items()})
_NOT_SPELLED = re.compile("[^" + re.escape("".join(sorted(_BYTE_OF_CHAR))) + "]")


def _unspell(token: str) -> bytes:
    """The bytes a byte-level spelled token stands for ('Ġhi' -> b' hi'); its chars must be in the table."""
    return token.translate(_UNSPELL).encode("latin-1")


# ---------------------------------------------------------------------------------------------
# Pre-tokenizer patterns: the regex that cuts text into pieces before BPE runs on each piece.

# GPT-2, as tiktoken writes it (r50k_pat_str): possessive quantifiers, same matches as
# 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""

# Hugging Face's Sequence[Digits(individual_digits=True), ByteLevel(use_regex=True)] as one regex
# (StarCoder, SmolLM). Digits first cuts the text at every digit, then the GPT-2 regex runs inside
# each cut. So a digit is always a piece of its own, ` ?\p{N}+` can never match, and whitespace
# before a digit ends its cut, which `\s+(?!\S)` takes whole: hence `(?![^\s\p{N}])`.
DIGITS_GPT2_PATTERN = (
    r"""\p{N}|'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?![^\s\p{N}])|\s"""
)

# Llama 3 (the same as OpenAI's cl100k_base).
LLAMA3_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Qwen 2: Llama 3's, with digits one by one.
QWEN2_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# OpenAI's o200k_base (GPT-4o), also Llama 4's.
GPT4O_PATTERN = (
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"""
    r"""|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"""
    r"""|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# llama.cpp's `tokenizer.ggml.pre` names -> pattern. Only names whose Hugging Face tokenizer is
# known to be exactly "this regex, then byte-level BPE" are listed.
GGUF_PRE_PATTERNS: dict[str, str] = {
    "default": GPT2_PATTERN,
    "gpt-2": GPT2_PATTERN,
    "gpt2": GPT2_PATTERN,
    "olmo": GPT2_PATTERN,  # llama.cpp gives OLMo and MPT (GPT-NeoX's vocabulary) GPT-2's regex
    "mpt": GPT2_PATTERN,
    "smollm": DIGITS_GPT2_PATTERN,
    "starcoder": DIGITS_GPT2_PATTERN,
    "llama-bpe": LLAMA3_PATTERN,
    "llama3": LLAMA3_PATTERN,
    "llama-v3": LLAMA3_PATTERN,
    "smaug-bpe": LLAMA3_PATTERN,
    "dbrx": LLAMA3_PATTERN,  # cl100k-style vocabularies (OLMo 2, DBRX)
    "falcon3": LLAMA3_PATTERN,
    "qwen2": QWEN2_PATTERN,
    "deepseek-r1-qwen": QWEN2_PATTERN,
    "gpt-4o": GPT4O_PATTERN,
    "llama4": GPT4O_PATTERN,
}


def _pattern_for_gguf_pre(name: str | None) -> tuple[str, str | None]:
    """`(pattern, warning)` for a GGUF `tokenizer.ggml.pre` name; unknown names get GPT-2's."""
    if name is None:
        return GPT2_PATTERN, None
    if name in GGUF_PRE_PATTERNS:
        return GGUF_PRE_PATTERNS[name], None
    return GPT2_PATTERN, f"unknown pre-tokenizer {name!r}: using GPT-2's split, ids may differ from the model's own"


def _is_byte_level(spec: Mapping[str, Any], use_regex: bool) -> bool:
    return (
        spec.get("type") == "ByteLevel"
        and bool(spec.get("use_regex", True)) == use_regex
        and not spec.get("add_prefix_space", False)
    )


def _pattern_for_hf_pre_tokenizer(spec: Mapping[str, Any] | None) -> tuple[str, str | None]:
    """`(pattern, warning)` for a `tokenizer.json` pre_tokenizer.

    ByteLevel alone is GPT-2's split; Sequence[Digits(individual_digits), ByteLevel] is
    DIGITS_GPT2_PATTERN; Sequence[Split(Regex, isolated), ByteLevel(use_regex=False)] is that regex.
    """
    if spec is None:
        return GPT2_PATTERN, "no pre_tokenizer: using GPT-2's split"
    if _is_byte_level(spec, use_regex=True):
        return GPT2_PATTERN, None
    if spec.get("type") == "Sequence":
        parts = spec.get("pretokenizers", [])
        if (
            len(parts) == 2
            and parts[0].get("type") == "Digits"
            and parts[0].get("individual_digits")
            and _is_byte_level(parts[1], use_regex=True)
        ):
            return DIGITS_GPT2_PATTERN, None
        if (
            len(parts) == 2
            and parts[0].get("type") == "Split"
            and "Regex" in parts[0].get("pattern", {})
            and parts[0].get("behavior") == "Isolated"
            and not parts[0].get("invert", False)
            and _is_byte_level(parts[1], use_regex=False)
        ):
            return parts[0]["pattern"]["Regex"], None
    return GPT2_PATTERN, (
        f"pre_tokenizer {json.dumps(spec)[:200]} is not one this module knows: using GPT-2's split, "
        "ids may differ from the model's own"
    )


# ---------------------------------------------------------------------------------------------
# Reading a GGUF's metadata quickly

def read_gguf_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """All key/value metadata of a GGUF file (the shared, bounds-checked header reader)."""
    return read_gguf_header(Path(path)).metadata


# ---------------------------------------------------------------------------------------------
# The tokenizer


def render_token(data: bytes) -> str:
    """A token's bytes as one safe line of text: control characters and broken UTF-8 escaped.

    >>> render_token(b" hello"), render_token(b"\\n"), render_token(b"\\xe2\\x80")
    (' hello', '\\\\n', '\\\\xe2\\\\x80')
    """
    text = data.decode("utf-8", errors="backslashreplace")
    out = []
    for char in text:
        if char == "\\" or unicodedata.category(char)[0] != "C":
            out.append(char)
        elif char in "\n\t\r":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[char])
        else:
            out.append(f"\\u{ord(char):04x}")
    return "".join(out)


_SURROGATE = re.compile("[\ud800-\udfff]")

# Fallback chat template: plain ChatML, what transformers used when a model had none.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass
class _Tables:
    """What the encoder needs beyond the tiktoken Encoding (filled by the builders)."""

    token_bytes: list[bytes | None]  # id -> bytes; None where the vocabulary has no such id
    pattern: str  # the pre-tokenizer regex (also the Encoding's)
    ranks: dict[bytes, int]  # the Encoding's mergeable ranks
    special_ids: dict[str, int]  # control tokens: matched in text only with allow_special
    added_ids: dict[str, int] = field(default_factory=dict)  # plain added tokens: always matched
    rank_to_id: list[int] | None = None  # None when the Encoding's ranks are the ids
    missing_bytes: frozenset[int] = frozenset()  # single bytes absent from the vocabulary
    normalizer: str | None = None  # "NFC", "NFKC", ... applied to text between added tokens


class Tokenizer:
    """A model's tokenizer: a tiktoken Encoding whose ranks are the model's token ids.

    `encode` never adds BOS/EOS. Text that spells a special token (say "<|im_end|>") is encoded
    as ordinary text unless `allow_special=True`; non-special added tokens (GGUF "user defined")
    are always matched whole, as Hugging Face does.
    """

    name: str
    encoding: tiktoken.Encoding
    vocab_size: int
    special_ids: dict[str, int]
    added_ids: dict[str, int]
    missing_bytes: frozenset[int]
    bos_id: int | None
    eos_id: int | None
    chat_template: str | None
    add_bos: bool
    warnings: list[str]
    space_marker = "·"  # how the Tokenizer pane draws a space inside a token

    def __init__(
        self,
        name: str,
        encoding: tiktoken.Encoding,
        tables: _Tables,
        *,
        bos_id: int | None = None,
        eos_id: int | None = None,
        chat_template: str | None = None,
        add_bos: bool = False,
        warnings: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.encoding = encoding
        self._tables = tables
        self._token_bytes = tables.token_bytes
        self.vocab_size = len(tables.token_bytes)
        self.special_ids = dict(tables.special_ids)
        self.added_ids = dict(tables.added_ids)
        """Non-special added tokens (text -> id), matched in text whether or not specials are allowed."""
        self.bos_id, self.eos_id = bos_id, eos_id
        self.chat_template = chat_template
        self.add_bos = add_bos
        self.warnings = list(warnings)
        """Where this tokenizer may differ from the model's own (unknown pre-tokenizer, ...)."""
        self._special_id_set = frozenset(self.special_ids.values())
        self._whole = {**self.special_ids, **self.added_ids}  # text -> id of every whole-matched token
        self._matchers = {False: _alternation(self.added_ids), True: _alternation(self._whole)}
        self.missing_bytes = tables.missing_bytes
        """Bytes no token stands for (SmolLM2 lacks 0x04, for one): encode drops them, as Hugging Face does."""
        self._unencodable = _unencodable_chars(tables.missing_bytes)

    def __repr__(self) -> str:
        return f"Tokenizer({self.name!r}, vocab_size={self.vocab_size}, specials={len(self.special_ids)})"

    # -- building from a tiktoken Encoding ---------------------------------------------------------

    @classmethod
    def from_encoding(cls, encoding: tiktoken.Encoding) -> Tokenizer:
        """Wrap one of tiktoken's own encodings (gpt2, cl100k_base, ...) in the same interface."""
        token_bytes: list[bytes | None] = [None] * encoding.n_vocab
        for data, rank in encoding._mergeable_ranks.items():
            token_bytes[rank] = data
        specials = dict(encoding._special_tokens)
        for text, rank in specials.items():
            token_bytes[rank] = text.encode("utf-8")
        eot = specials.get("<|endoftext|>")
        tables = _Tables(token_bytes, encoding._pat_str, encoding._mergeable_ranks, specials)
        return cls(encoding.name, encoding, tables, eos_id=eot)

    # -- text <-> ids ----------------------------------------------------------------------------

    def encode(self, text: str, allow_special: bool = False) -> list[int]:
        """Token ids of `text`. Special-token text stays plain text unless `allow_special`."""
        if _SURROGATE.search(text):  # lone surrogates cannot be UTF-8: U+FFFD, as tiktoken does
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        matcher = self._matchers[allow_special]
        if matcher is None:
            return self._encode_plain(text)
        ids: list[int] = []
        start = 0
        for match in matcher.finditer(text):
            ids += self._encode_plain(text[start : match.start()])
            ids.append(self._whole[match.group()])
            start = match.end()
        ids += self._encode_plain(text[start:])
        return ids

    def _encode_plain(self, text: str) -> list[int]:
        """Ids of text that holds no added token: tiktoken's split and BPE."""
        if not text:
            return []
        if self._tables.normalizer:
            text = unicodedata.normalize(self._tables.normalizer, text)
        if self._unencodable is not None and self._unencodable.search(text):
            ranks = self._encode_dropping_missing_bytes(text)
        else:
            ranks = self.encoding.encode_ordinary(text)
        table = self._tables.rank_to_id
        return ranks if table is None else [table[r] for r in ranks]

    def _encode_dropping_missing_bytes(self, text: str) -> list[int]:
        """The slow path for text holding a byte the vocabulary lacks (e.g. U+0004 in SmolLM2).

        tiktoken would panic on it; Hugging Face's BPE silently drops such a byte and merges
        what is left of the piece. Split with the same regex, drop, then BPE in Python.
        """
        missing = self._tables.missing_bytes
        ranks: list[int] = []
        for piece in self._split_regex.findall(text):
            data = bytes(b for b in piece.encode("utf-8") if b not in missing)
            if data:
                ranks += self._bpe(data)
        return ranks

    @cached_property
    def _split_regex(self) -> Any:
        import regex  # tiktoken's own dependency; only the slow path needs it

        return regex.compile(self._tables.pattern)

    def _bpe(self, data: bytes) -> list[int]:
        """tiktoken's BPE in Python: merge the adjacent pair whose join has the lowest rank."""
        ranks = self._tables.ranks
        if data in ranks:
            return [ranks[data]]
        parts = [data[i : i + 1] for i in range(len(data))]
        while len(parts) > 1:
            best, best_rank = -1, None
            for i in range(len(parts) - 1):
                rank = ranks.get(parts[i] + parts[i + 1])
                if rank is not None and (best_rank is None or rank < best_rank):
                    best, best_rank = i, rank
            if best < 0:
                break
            parts[best : best + 2] = [parts[best] + parts[best + 1]]
        return [ranks[p] for p in parts]

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        """The bytes the ids stand for, joined."""
        try:
            if len(ids) and min(ids) < 0:
                raise IndexError
            return b"".join([self._token_bytes[i] for i in ids])  # type: ignore[misc]
        except (IndexError, TypeError):
            bad = next(i for i in ids if not 0 <= i < self.vocab_size or self._token_bytes[i] is None)
            raise ValueError(f"token id {bad} is not in {self.name}'s vocabulary (0..{self.vocab_size - 1})") from None

    def decode(self, ids: Sequence[int]) -> str:
        """Text of the ids; bytes that are not valid UTF-8 (a cut emoji) become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def token_bytes(self, id: int) -> bytes:
        """Raw bytes of one token (a special token: its text in UTF-8)."""
        return self.decode_bytes([id])

    def token_text(self, id: int) -> str:
        """One token as text, broken UTF-8 shown as U+FFFD ('\\xe2\\x80' -> '\ufffd')."""
        return self.token_bytes(id).decode("utf-8", errors="replace")

    def token_display(self, id: int) -> str:
        """One token as a safe one-line label (see `render_token`): '\\n' for a newline."""
        return render_token(self.token_bytes(id))

    def is_special(self, id: int) -> bool:
        """Whether the id is a control token (<|im_end|>, <|endoftext|>, ...)."""
        return id in self._special_id_set

    # -- chats -----------------------------------------------------------------------------------

    def apply_chat_template(self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True) -> str:
        """The chat as the text the model continues, rendered by the model's Jinja template.

        Rendered the way transformers does (sandboxed Jinja, trim_blocks, lstrip_blocks,
        `raise_exception`, `tojson`, `strftime_now`, bos_token/eos_token). A model without a
        template gets plain ChatML (`<|im_start|>role\\ncontent<|im_end|>\\n` per message).
        """
        plain = [{str(k): v for k, v in message.items()} for message in messages]
        token = {i: t for t, i in self.special_ids.items()}
        return self._compiled_template.render(
            messages=plain,
            add_generation_prompt=add_generation_prompt,
            bos_token=token.get(self.bos_id, "") if self.bos_id is not None else "",
            eos_token=token.get(self.eos_id, "") if self.eos_id is not None else "",
        )

    @cached_property
    def _compiled_template(self) -> Any:
        return _compile_template(self.chat_template or CHATML_TEMPLATE)


def _alternation(tokens: Mapping[str, int]) -> re.Pattern[str] | None:
    """A regex matching any of the texts, longest first (Hugging Face matches leftmost-longest)."""
    if not tokens:
        return None
    return re.compile("|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True)))


def _unencodable_chars(missing: frozenset[int]) -> re.Pattern[str] | None:
    """A regex for the characters whose UTF-8 holds a byte in `missing`, or None if none can."""
    ranges: list[tuple[int, int]] = []
    for b in sorted(missing):
        if b < 0x80:
            ranges.append((b, b))
        elif b < 0xC0:  # a continuation byte: almost any non-ASCII character may hold it
            ranges.append((0x80, 0x10FFFF))
        elif 0xC2 <= b < 0xE0:
            ranges.append(((b - 0xC0) << 6, ((b - 0xC0) << 6) + 0x3F))
        elif 0xE0 <= b < 0xF0:
            ranges.append((max((b - 0xE0) << 12, 0x800), ((b - 0xE0) << 12) + 0xFFF))
        elif 0xF0 <= b < 0xF5:
            ranges.append((max((b - 0xF0) << 18, 0x10000), min(((b - 0xF0) << 18) + 0x3FFFF, 0x10FFFF)))
        # 0xC0, 0xC1 and 0xF5..0xFF never occur in UTF-8
    if not ranges:
        return None
    return re.compile("[" + "".join(f"{re.escape(chr(lo))}-{re.escape(chr(hi))}" for lo, hi in ranges) + "]")


def _compile_template(source: str) -> Any:
    """A Jinja template compiled the way transformers compiles chat templates."""
    import jinja2
    import jinja2.ext
    import jinja2.nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationTag(jinja2.ext.Extension):
        """`{% generation %}...{% endgeneration %}` (marks assistant text for training): renders its body."""

        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller: Any) -> str:
            return caller()

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None, sort_keys: bool = False) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(source)


# ---------------------------------------------------------------------------------------------
# Building a Tokenizer from a byte-level BPE vocabulary


def _looks_special(text: str) -> bool:
    return text.startswith("<|") and text.endswith("|>") and len(text) > 4


def _build(
    name: str,
    vocab: Mapping[str, int],
    merges: Sequence[tuple[str, str]],
    added: Sequence[tuple[str, int, bool]],
    pattern: str,
    *,
    special_names: Sequence[str] = (),
    unused: Sequence[tuple[str, int]] = (),
    normalizer: str | None = None,
    warnings: list[str],
    **kwargs: Any,
) -> Tokenizer:
    """The Tokenizer for a byte-level BPE.

    vocab: byte-level spelled token -> id (GPT-2's 'Ġ' for space), added tokens excluded.
    merges: pairs of spelled tokens, in merge order.
    added: (raw text, id, is_special) for tokens matched whole in the text.
    special_names: texts that are special although the vocabulary lists them as ordinary.
    unused: (raw text, id) for tokens that exist but are never produced (GGUF "unused").
    """
    added_ids = {i for _, i, _ in added}
    size = 1 + max([*vocab.values(), *added_ids, *(i for _, i in unused)], default=-1)
    token_bytes: list[bytes | None] = [None] * size

    # Every spelled token to bytes. Check the alphabet once over all of them.
    spelled = [(t, i) for t, i in vocab.items() if i not in added_ids]
    joined = "".join(t for t, _ in spelled)
    if _NOT_SPELLED.search(joined):
        raw = sum(1 for t, _ in spelled if _NOT_SPELLED.search(t))
        warnings.append(f"{raw} tokens are not in GPT-2's byte alphabet: read as UTF-8 text")
        to_bytes = {t: (t.encode("utf-8") if _NOT_SPELLED.search(t) else _unspell(t)) for t, _ in spelled}
    else:
        to_bytes = {t: _unspell(t) for t, _ in spelled}
    for t, i in spelled:
        token_bytes[i] = to_bytes[t]

    # Which tokens BPE can make: single bytes, and the result of each merge.
    mergeable: dict[bytes, int] = {}
    for t, i in spelled:
        if len(to_bytes[t]) == 1:
            mergeable[to_bytes[t]] = i
    merge_ids: list[int] = []
    by_bytes: dict[bytes, int] | None = None  # only needed for vocabularies with raw tokens
    for a, b in merges:
        i = vocab.get(a + b)
        if i is None or i in added_ids:
            if by_bytes is None:
                by_bytes = {to_bytes[t]: j for t, j in reversed(spelled)}
            i = by_bytes.get(to_bytes.get(a, b"") + to_bytes.get(b, b""))
            if i is None or a not in to_bytes or b not in to_bytes:
                raise ValueError(f"{name}: merge {a!r} + {b!r} makes a token that is not in the vocabulary")
        merge_ids.append(i)
    for (a, b), i in zip(merges, merge_ids):
        mergeable.setdefault(token_bytes[i], i)  # type: ignore[arg-type]

    # Ranks = ids works when each merge makes a token of higher id than every merge before it.
    first_seen: set[int] = set()
    monotone, previous = True, -1
    for i in merge_ids:
        if i in first_seen:  # a second merge making the same token: tiktoken keeps the first
            continue
        first_seen.add(i)
        if i <= previous:
            monotone = False
            break
        previous = i
    if len(first_seen) < len(merge_ids):
        warnings.append(
            f"{len(merge_ids) - len(first_seen)} merges make a token an earlier merge already makes: "
            "rare texts may split differently from Hugging Face"
        )

    special_ids = {t: i for t, i, special in added if special}
    plain_added = {t: i for t, i, special in added if not special}
    for t, i, _ in added:
        token_bytes[i] = t.encode("utf-8")
    # Tokens BPE never makes: special if named so or shaped like <|...|>, else only decodable.
    inert: dict[str, int] = {}
    for t, i in spelled:
        data = token_bytes[i]
        if data not in mergeable or mergeable[data] != i:
            text = data.decode("utf-8", errors="replace")  # type: ignore[union-attr]
            if text in special_names or _looks_special(text):
                special_ids.setdefault(text, i)
            elif data.decode("utf-8", errors="ignore") == text:  # type: ignore[union-attr]
                inert.setdefault(text, i)
    for t, i in unused:
        token_bytes[i] = t.encode("utf-8")
        inert.setdefault(t, i)
    if inert:
        warnings.append(f"{len(inert)} tokens are never produced by encode (unused or unreachable)")

    # The tiktoken Encoding. Its specials are every whole-matched token, so it can decode every id.
    encoding_specials = {**inert, **plain_added, **special_ids}
    rank_to_id = None
    ranks = mergeable
    if not monotone:
        warnings.append("merge order does not follow token ids: the Encoding's ranks are merge positions")
        order = sorted((i for data, i in mergeable.items() if len(data) == 1)) + list(dict.fromkeys(merge_ids))
        rank_to_id = order + sorted(set(encoding_specials.values()))
        rank_of = {i: r for r, i in enumerate(rank_to_id)}
        ranks = {data: rank_of[i] for data, i in mergeable.items()}
        encoding_specials = {t: rank_of[i] for t, i in encoding_specials.items()}
    encoding = tiktoken.Encoding(
        name=name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=encoding_specials
    )
    singles = {data[0] for data in mergeable if len(data) == 1}
    tables = _Tables(
        token_bytes=token_bytes,
        pattern=pattern,
        ranks=ranks,
        special_ids=special_ids,
        added_ids=plain_added,
        rank_to_id=rank_to_id,
        missing_bytes=frozenset(range(256)) - singles,
        normalizer=normalizer,
    )
    return Tokenizer(name, encoding, tables, warnings=warnings, **kwargs)


# GGUF token types (llama.cpp's llama_token_type).
_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _UNUSED, _BYTE = 1, 2, 3, 4, 5, 6


def tokenizer_from_gguf(source: Any) -> Tokenizer:
    """The tokenizer stored in a GGUF's metadata (`tokenizer.ggml.*`).

    `source`: a path (read with `read_gguf_metadata`, ~40 ms), an open `gguf.GGUFReader`, an
    object with a `metadata` dict (our weight loader's parsed header), or that dict itself.
    Byte-level BPE (`tokenizer.ggml.model == "gpt2"`) runs on tiktoken; SentencePiece ("llama")
    on Hugging Face's `tokenizers` (see `sentencepiece`).
    """
    if isinstance(source, (str, os.PathLike)):
        name, meta = Path(source).stem, read_gguf_metadata(source)
    elif hasattr(source, "fields"):  # gguf.GGUFReader
        name = Path(getattr(getattr(source, "data", None), "filename", None) or "gguf").stem
        meta = {k: f.contents() for k, f in source.fields.items() if k.startswith("tokenizer.")}
    elif isinstance(getattr(source, "metadata", None), Mapping):
        name, meta = Path(getattr(source, "path", None) or "gguf").stem, source.metadata
    elif isinstance(source, Mapping):
        name, meta = "gguf", source
    else:
        raise TypeError(f"tokenizer_from_gguf takes a path, a GGUFReader or GGUF metadata, not {type(source).__name__}")
    model = meta.get("tokenizer.ggml.model")
    if model == "llama":
        from llmtui.engine.tokenizer.sentencepiece import sentencepiece_from_gguf

        return sentencepiece_from_gguf(name, meta)
    if model != "gpt2":
        raise ValueError(
            f"tokenizer.ggml.model is {model!r}: llmtui reads byte-level BPE ('gpt2') "
            "and SentencePiece ('llama') vocabularies"
        )
    tokens: list[str] = list(meta["tokenizer.ggml.tokens"])
    types = meta.get("tokenizer.ggml.token_type")
    types = [_NORMAL] * len(tokens) if types is None else [int(t) for t in types]
    merges = [tuple(m.split(" ")) for m in meta.get("tokenizer.ggml.merges", ())]
    if any(len(m) != 2 for m in merges):
        raise ValueError("a GGUF merge is not two tokens separated by one space")
    warnings: list[str] = []
    pattern, warning = _pattern_for_gguf_pre(meta.get("tokenizer.ggml.pre"))
    if warning:
        warnings.append(warning)

    vocab: dict[str, int] = {}
    added: list[tuple[str, int, bool]] = []
    unused: list[tuple[str, int]] = []
    for i, (token, kind) in enumerate(zip(tokens, types)):
        if kind == _CONTROL:
            added.append((token, i, True))
        elif kind == _USER_DEFINED:
            added.append((token, i, False))
        elif kind in (_UNUSED, _UNKNOWN, _BYTE):
            unused.append((token, i))
        else:
            vocab.setdefault(token, i)
    bos, eos = (meta.get(f"tokenizer.ggml.{k}_token_id") for k in ("bos", "eos"))
    bos, eos = (None if i is None else int(i) for i in (bos, eos))
    special_names = [tokens[i] for i in (bos, eos) if i is not None and 0 <= i < len(tokens)]
    return _build(
        name,
        vocab,
        merges,  # type: ignore[arg-type]
        added,
        pattern,
        special_names=special_names,
        unused=unused,
        warnings=warnings,
        bos_id=bos,
        eos_id=eos,
        chat_template=meta.get("tokenizer.chat_template"),
        add_bos=bool(meta.get("tokenizer.ggml.add_bos_token", False)),
    )


def _token_content(value: Any) -> str | None:
    """A token as tokenizer_config.json writes it: a string or {"content": ...}."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _normalizer_name(spec: Mapping[str, Any] | None, warnings: list[str]) -> str | None:
    if spec is None:
        return None
    if spec.get("type") in ("NFC", "NFD", "NFKC", "NFKD"):
        return spec["type"]
    if spec.get("type") == "Sequence" and not spec.get("normalizers"):
        return None
    warnings.append(f"normalizer {json.dumps(spec)[:200]} is ignored: ids may differ from the model's own")
    return None


def tokenizer_from_hf_folder(path: str | os.PathLike[str]) -> Tokenizer:
    """The tokenizer of a Hugging Face model folder.

    Reads `tokenizer.json` (model.vocab, model.merges, added_tokens, pre_tokenizer, normalizer),
    or else GPT-2 style `vocab.json` + `merges.txt`; `tokenizer_config.json` (and
    `special_tokens_map.json`, `chat_template.jinja`) for bos/eos, added tokens and the chat
    template. Byte-level BPE runs on tiktoken; a SentencePiece-style tokenizer.json (Metaspace,
    byte fallback) runs on Hugging Face's `tokenizers` as it is written (see `sentencepiece`).
    """
    folder = Path(path)
    config = _read_json(folder / "tokenizer_config.json") or {}
    special_map = _read_json(folder / "special_tokens_map.json") or {}
    template = config.get("chat_template")
    if isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
        template = next((t["template"] for t in template if t.get("name") == "default"), None)
    if template is None and (folder / "chat_template.jinja").exists():
        template = (folder / "chat_template.jinja").read_text(encoding="utf-8")

    def token_text(name: str) -> str | None:
        return _token_content(config.get(name)) or _token_content(special_map.get(name))

    if (folder / "tokenizer.json").exists():
        from llmtui.engine.tokenizer.sentencepiece import is_sentencepiece_json, sentencepiece_from_json

        source = (folder / "tokenizer.json").read_text(encoding="utf-8")
        spec = json.loads(source)
        if is_sentencepiece_json(spec):
            return sentencepiece_from_json(
                folder.name,
                source,
                spec,
                bos_token=token_text("bos_token"),
                eos_token=token_text("eos_token"),
                chat_template=template,
                add_bos=bool(config.get("add_bos_token", False)),
            )
    warnings: list[str] = []
    added: list[tuple[str, int, bool]] = []
    normalizer = None
    if (folder / "tokenizer.json").exists():
        model = spec["model"]
        if model.get("type", "BPE") != "BPE":
            raise ValueError(
                f"{folder}: tokenizer model {model.get('type')!r} is not supported, only BPE (byte-level or SentencePiece)"
            )
        for key in ("continuing_subword_prefix", "end_of_word_suffix"):
            if model.get(key):
                raise ValueError(f"{folder}: BPE with {key} is not byte-level BPE")
        vocab = model["vocab"]
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
        for token in spec.get("added_tokens", []):
            added.append((token["content"], token["id"], bool(token.get("special"))))
            if token.get("lstrip") or token.get("rstrip") or token.get("single_word"):
                warnings.append(f"added token {token['content']!r}: lstrip/rstrip/single_word are ignored")
        pattern, warning = _pattern_for_hf_pre_tokenizer(spec.get("pre_tokenizer"))
        normalizer = _normalizer_name(spec.get("normalizer"), warnings)
    elif (folder / "vocab.json").exists() and (folder / "merges.txt").exists():
        vocab = _read_json(folder / "vocab.json")
        lines = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
        merges = [tuple(line.split(" ")) for line in lines if line and not line.startswith("#version")]
        pattern, warning = GPT2_PATTERN, None
    else:
        raise FileNotFoundError(f"{folder} has neither tokenizer.json nor vocab.json + merges.txt")
    if warning:
        warnings.append(warning)
    if any(len(m) != 2 for m in merges):
        raise ValueError(f"{folder}: a merge is not a pair of tokens")
    # tokenizer_config.json's added tokens, for folders without tokenizer.json.
    listed = {i for _, i, _ in added}
    for key, token in (config.get("added_tokens_decoder") or {}).items():
        if int(key) not in listed:
            added.append((token["content"], int(key), bool(token.get("special"))))

    def token_id(name: str) -> int | None:
        text = token_text(name)
        if text is None:
            return None
        return next((i for t, i, _ in added if t == text), vocab.get(text))

    special_names = [t for t in (_token_content(v) for v in special_map.values()) if t]
    return _build(
        folder.name,
        vocab,
        merges,  # type: ignore[arg-type]
        added,
        pattern,
        special_names=special_names,
        normalizer=normalizer,
        warnings=warnings,
        bos_id=token_id("bos_token"),
        eos_id=token_id("eos_token"),
        chat_template=template,
        add_bos=bool(config.get("add_bos_token", False)),
    )


def _read_json(path: Path) -> Any:
    if not path.exists():
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# ---------------------------------------------------------------------------------------------
# OpenAI's encodings

OPENAI_ENCODINGS = ("gpt2", "cl100k_base", "o200k_base")

_OPENAI_HOST = "openaipublic.blob.core.windows.net"
# The files tiktoken downloads for each encoding, with their sha256 (tiktoken_ext/openai_public.py).
_OPENAI_FILES: dict[str, tuple[tuple[str, str], ...]] = {
    "gpt2": (
        (
            f"https://{_OPENAI_HOST}/gpt-2/encodings/main/vocab.bpe",
            "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
        ),
        (
            f"https://{_OPENAI_HOST}/gpt-2/encodings/main/encoder.json",
            "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
        ),
    ),
    "r50k_base": (
        (
            f"https://{_OPENAI_HOST}/encodings/r50k_base.tiktoken",
            "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
        ),
    ),
    "p50k_base": (
        (
            f"https://{_OPENAI_HOST}/encodings/p50k_base.tiktoken",
            "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069",
        ),
    ),
    "cl100k_base": (
        (
            f"https://{_OPENAI_HOST}/encodings/cl100k_base.tiktoken",
            "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        ),
    ),
    "o200k_base": (
        (
            f"https://{_OPENAI_HOST}/encodings/o200k_base.tiktoken",
            "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        ),
    ),
}


def tiktoken_cache_dir() -> Path | None:
    """Where tiktoken keeps downloaded files (TIKTOKEN_CACHE_DIR, DATA_GYM_CACHE_DIR, or a temp dir); None if off."""
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if var in os.environ:
            return Path(os.environ[var]) if os.environ[var] else None
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def _is_cached(name: str) -> bool:
    """Whether tiktoken will find every file of the encoding in its cache, intact (so: no download)."""
    folder = tiktoken_cache_dir()
    files = _OPENAI_FILES.get(name)
    if folder is None or not files:
        return False
    for url, sha256 in files:
        cached = folder / hashlib.sha1(url.encode()).hexdigest()  # tiktoken's cache key
        try:
            if hashlib.sha256(cached.read_bytes()).hexdigest() != sha256:
                return False  # tiktoken would delete it and download again
        except OSError:
            return False
    return True


def _can_reach(host: str, timeout: float) -> bool:
    """Whether a TCP connection to host:443 opens within `timeout` seconds (DNS included)."""
    result: list[bool] = []

    def attempt() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=attempt, daemon=True)  # getaddrinfo ignores socket timeouts
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def openai_encoding(name: str, timeout: float = 3.0) -> tuple[tiktoken.Encoding | None, str | None]:
    """`(encoding, None)`, or `(None, reason)` in one line when it cannot be loaded.

    cl100k_base and o200k_base come from a wheel on PyPI (wheel_encodings.py), else from
    tiktoken's cache. The others come from tiktoken: a cached encoding loads offline; otherwise
    the host is probed first, so an offline machine gets its answer within `timeout` seconds
    instead of waiting on tiktoken's download.
    """
    from llmtui.engine.errors import ModelLoadError
    from llmtui.engine.tokenizer.wheel_encodings import WHEEL_FILES, wheel_encoding

    if name not in tiktoken.list_encoding_names():
        return None, f"tiktoken has no encoding named {name!r} (it has: {', '.join(tiktoken.list_encoding_names())})"
    if name in WHEEL_FILES:
        try:
            return wheel_encoding(name), None
        except ModelLoadError as error:
            if not _is_cached(name):
                return None, f"{name} could not be loaded: {error}"
    if name in _OPENAI_FILES and not _is_cached(name) and not _can_reach(_OPENAI_HOST, timeout):
        return None, (
            f"{name} needs a one-time download from {_OPENAI_HOST}, which cannot be reached; "
            "run once online or set TIKTOKEN_CACHE_DIR to a folder holding it"
        )
    try:
        return tiktoken.get_encoding(name), None
    except Exception as error:  # requests' errors, a hash mismatch, a corrupt cache file, ...
        detail = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
        return None, (
            f"{name} could not be loaded ({detail}); it needs a one-time download from {_OPENAI_HOST}: "
            "run once online or set TIKTOKEN_CACHE_DIR to a folder holding it"
        )


def openai_tokenizer(name: str, timeout: float = 3.0) -> tuple[Tokenizer | None, str | None]:
    """`openai_encoding`, wrapped as a Tokenizer."""
    encoding, reason = openai_encoding(name, timeout)
    return (Tokenizer.from_encoding(encoding), None) if encoding is not None else (None, reason)
