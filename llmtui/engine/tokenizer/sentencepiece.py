"""SentencePiece-style vocabularies (Gemma, Llama 2, Mistral v0.x, Phi-3) run by Hugging Face's `tokenizers`.

These are BPE over characters, not bytes: a space is written '▁' inside tokens, and a character
the vocabulary lacks falls back to one token per UTF-8 byte, written <0xNN>. tiktoken cannot run
that, so `tokenizers` (Rust, the reference itself) does the encoding; this module only builds it
from a `tokenizer.json` or from GGUF's `tokenizer.ggml.*` (model "llama") and gives it the same
interface as the byte-level Tokenizer.

For display each token stands for the bytes it puts into the text: '▁Paris' for b' Paris' and
<0xE2> for b'\\xe2', so the Tokenizer pane groups byte-fallback tokens under their character as
it does byte-level ones, and draws the space with `space_marker` ('▁').

References:
- transformers `integrations/gguf/gguf_tokenizer_mapping.py` (GGUF vocabulary -> tokenizers:
  merges rebuilt from scores, Gemma's respelled spaces, Phi-3's normalizer) and
  `tokenization_utils_base.generate_merges`, followed here step for step.
- llama.cpp `llama-vocab.cpp` (`llm_tokenizer_spm`: merge the best-scoring adjacent pair).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping, Sequence
from functools import cached_property
from operator import itemgetter
from typing import Any

from tokenizers import AddedToken, Tokenizer as HFTokenizer, decoders, models, normalizers, pre_tokenizers

from llmtui.engine.tokenizer.built_cache import cached_backend, vocabulary_key
from llmtui.engine.tokenizer.tokenizer import Tokenizer, replace_surrogates, _Tables

__all__ = ["SentencePieceTokenizer", "sentencepiece_from_gguf", "sentencepiece_from_json"]

SPACE = "\u2581"  # '▁', SentencePiece's written space
_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_SURROGATE = re.compile("[\ud800-\udfff]")

# GGUF token types (llama.cpp's llama_token_type).
_CONTROL, _USER_DEFINED = 3, 4


class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece-style tokenizer with the byte-level Tokenizer's interface.

    `encode` never adds BOS/EOS; special-token text is plain text unless `allow_special`; plain
    added tokens are always matched whole. `decode` drops the one space the tokenizer put in front
    (as Hugging Face's decoder does); `token_bytes` keeps each token's own space.
    """

    space_marker = SPACE

    def __init__(
        self,
        name: str,
        backend: HFTokenizer,
        *,
        specials: Mapping[str, int],
        added: Mapping[str, int],
        strips_prefix: bool,
        bos_id: int | None = None,
        eos_id: int | None = None,
        chat_template: str | None = None,
        add_bos: bool = False,
        warnings: Sequence[str] = (),
        pieces: Sequence[str] | None = None,
    ) -> None:
        """`pieces`: each id's piece where the caller has them (a GGUF's token list); else they are
        read back from the backend (a second or more for Gemma's 262,144)."""
        self._backend = backend
        self._lock = threading.Lock()  # `encode_special_tokens` is the backend's state: one encode at a time
        if pieces is None:
            by_id = {i: t for t, i in backend.get_vocab(with_added_tokens=True).items()}
            pieces = [by_id.get(i) for i in range(1 + max(by_id, default=-1))]  # type: ignore[misc]
        whole = {*specials.values(), *added.values()}
        token_bytes = [_piece_bytes(piece, i in whole) for i, piece in enumerate(pieces)]
        # No tiktoken Encoding, ranks or pattern: `tokenizers` encodes. Byte fallback leaves no byte without a token.
        tables = _Tables(token_bytes, pattern="", ranks={}, special_ids=dict(specials), added_ids=dict(added))
        super().__init__(
            name,
            None,  # type: ignore[arg-type]
            tables,
            bos_id=bos_id,
            eos_id=eos_id,
            chat_template=chat_template,
            add_bos=add_bos,
            warnings=warnings,
        )
        self._strips_prefix = strips_prefix

    def __repr__(self) -> str:
        return f"SentencePieceTokenizer({self.name!r}, vocab_size={self.vocab_size}, specials={len(self.special_ids)})"

    def encode(self, text: str, allow_special: bool = False, *, literal: Sequence[tuple[int, int]] = ()) -> list[int]:
        """Token ids of `text`, exactly as Hugging Face's tokenizer gives them (without BOS).

        With `literal` spans (see Tokenizer.encode) the special tokens are found here and the text
        between them goes to the backend piece by piece, each piece told where it stands.
        """
        if _SURROGATE.search(text):  # lone surrogates cannot be UTF-8: U+FFFD, as the byte-level path does
            text = replace_surrogates(text)
        if literal:
            return super().encode(text, allow_special, literal=literal)
        if not text:
            return []
        with self._lock:
            self._backend.encode_special_tokens = not allow_special  # True: special-token text stays plain text
            return self._backend.encode(text, add_special_tokens=False).ids

    def _encode_plain(self, text: str, offset: int) -> list[int]:
        """Ids of text holding no added token. Only text at the start gets the leading ▁ of a
        Metaspace that prepends to the first piece: Hugging Face's backend, given the whole text,
        does not prepend after a special token (Llama 2's "<s>[INST]" has no "▁[")."""
        if not text:
            return []
        backend = self._backend if offset == 0 else self._backend_after_start
        with self._lock:
            backend.encode_special_tokens = True
            return backend.encode(text, add_special_tokens=False).ids

    @cached_property
    def _backend_after_start(self) -> HFTokenizer:
        """The backend for text that does not start the input: a Metaspace's prepend scheme 'first' made 'never'."""
        spec = json.loads(self._backend.to_str())
        if not _first_prepend_to_never(spec.get("pre_tokenizer")):
            return self._backend
        return HFTokenizer.from_str(json.dumps(spec))

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        """The text's bytes: the tokens' bytes joined, less the space the tokenizer put in front."""
        data = super().decode_bytes(ids)
        return data[1:] if self._strips_prefix and data.startswith(b" ") else data

    def token_bytes(self, id: int) -> bytes:
        """One token's bytes, its leading space kept ('▁Paris' -> b' Paris', '<0xE2>' -> b'\\xe2')."""
        return super().decode_bytes([id])


def _first_prepend_to_never(spec: dict[str, Any] | None) -> bool:
    """Turn every Metaspace pre-tokenizer's prepend_scheme 'first' into 'never'; whether one was."""
    if not spec:
        return False
    if spec.get("type") == "Sequence":
        return any([_first_prepend_to_never(p) for p in spec.get("pretokenizers", [])])  # a list: change them all
    if spec.get("type") == "Metaspace" and spec.get("prepend_scheme") == "first":
        spec["prepend_scheme"] = "never"
        return True
    return False


def _piece_bytes(piece: str | None, whole: bool) -> bytes | None:
    """What a vocabulary piece puts into the text."""
    if piece is None:
        return None
    if whole:
        return piece.encode("utf-8")
    byte = _BYTE_TOKEN.fullmatch(piece)
    if byte:
        return bytes([int(byte[1], 16)])
    return piece.replace(SPACE, " ").encode("utf-8")


# ---------------------------------------------------------------------------------------------
# From tokenizer.json


def is_sentencepiece_json(spec: Mapping[str, Any]) -> bool:
    """Whether a tokenizer.json describes a SentencePiece-style tokenizer (Metaspace, '▁', byte fallback, Unigram)."""
    model = spec.get("model") or {}
    text = str(spec.get("normalizer")) + str(spec.get("pre_tokenizer")) + str(spec.get("decoder"))
    return model.get("type") == "Unigram" or bool(model.get("byte_fallback")) or "Metaspace" in text or SPACE in text


def sentencepiece_from_json(
    name: str,
    source: str,
    spec: Mapping[str, Any],
    *,
    bos_token: str | None,
    eos_token: str | None,
    chat_template: str | None,
    add_bos: bool,
) -> SentencePieceTokenizer:
    """The tokenizer a tokenizer.json describes (its text in `source`), run as is by `tokenizers`."""
    backend = HFTokenizer.from_str(source)
    backend.post_processor = None  # BOS/EOS are the caller's choice (`add_bos`), never encode's
    specials = {t["content"]: t["id"] for t in spec.get("added_tokens", []) if t.get("special")}
    added = {t["content"]: t["id"] for t in spec.get("added_tokens", []) if not t.get("special")}
    vocab = backend.get_vocab(with_added_tokens=True)
    return SentencePieceTokenizer(
        name,
        backend,
        specials=specials,
        added=added,
        strips_prefix=_decoder_strips_prefix(spec.get("decoder")),
        bos_id=vocab.get(bos_token) if bos_token else None,
        eos_id=vocab.get(eos_token) if eos_token else None,
        chat_template=chat_template,
        add_bos=add_bos,
    )


def _decoder_strips_prefix(spec: Mapping[str, Any] | None) -> bool:
    """Whether the decoder drops a leading space (Strip left 1, or Metaspace with a prepend scheme)."""
    if not spec:
        return False
    kind = spec.get("type")
    if kind == "Sequence":
        return any(_decoder_strips_prefix(d) for d in spec.get("decoders", []))
    if kind == "Strip":
        return spec.get("content") == " " and int(spec.get("start", 0)) > 0
    if kind == "Metaspace":
        return spec.get("prepend_scheme", "always") != "never" and spec.get("add_prefix_space", True)
    return False


# ---------------------------------------------------------------------------------------------
# From GGUF metadata


def sentencepiece_from_gguf(name: str, meta: Mapping[str, Any]) -> SentencePieceTokenizer:
    """The tokenizer of a GGUF whose `tokenizer.ggml.model` is "llama" (SentencePiece BPE).

    The file holds tokens, scores and types but no merges: they are rebuilt from the scores (a
    pair merges as early as the token it makes scores high), which is what llama.cpp's
    tokenizer does on the fly. Gemma and Phi-3 spell their spaces differently; the
    architecture says which. A large vocabulary's build is cached (see `built_cache`).
    """
    arch = str(meta.get("general.architecture", ""))
    tokens = [str(t) for t in meta["tokenizer.ggml.tokens"]]
    types = [int(t) for t in meta.get("tokenizer.ggml.token_type", [])] or [1] * len(tokens)
    scores = [float(s) for s in meta.get("tokenizer.ggml.scores", [])] or [0.0] * len(tokens)
    if not len(tokens) == len(types) == len(scores):
        raise ValueError("tokenizer.ggml.tokens, token_type and scores differ in length")
    gemma = arch.startswith("gemma")
    if gemma:
        # Gemma writes a token of only spaces with real spaces; its merges follow file order, not scores.
        tokens = [SPACE * len(t) if " " in t and not t.strip() else t for t in tokens]
        scores = [-float(i) for i in range(len(tokens))]
    unk_id = meta.get("tokenizer.ggml.unknown_token_id")
    add_space_prefix = bool(meta.get("tokenizer.ggml.add_space_prefix", not gemma))
    spaces = "gemma" if gemma else "phi3" if arch == "phi3" else "metaspace"
    key = vocabulary_key(spaces, tokens, types, scores, unk_id, add_space_prefix)
    backend = cached_backend(
        key, len(tokens), lambda: _backend_from_gguf(tokens, types, scores, unk_id, spaces, add_space_prefix)
    )
    specials = {t: i for i, (t, kind) in enumerate(zip(tokens, types)) if kind == _CONTROL}
    added = {t: i for i, (t, kind) in enumerate(zip(tokens, types)) if kind == _USER_DEFINED}
    bos, eos = (meta.get(f"tokenizer.ggml.{k}_token_id") for k in ("bos", "eos"))
    return SentencePieceTokenizer(
        name,
        backend,
        specials=specials,
        added=added,
        strips_prefix=add_space_prefix,
        bos_id=None if bos is None else int(bos),
        eos_id=None if eos is None else int(eos),
        chat_template=meta.get("tokenizer.chat_template"),
        add_bos=bool(meta.get("tokenizer.ggml.add_bos_token", True)),  # llama.cpp's default for this model
        pieces=tokens,
    )


def _backend_from_gguf(
    tokens: list[str], types: list[int], scores: list[float], unk_id: Any, spaces: str, add_space_prefix: bool
) -> HFTokenizer:
    """Build the `tokenizers` BPE of a GGUF vocabulary; `spaces` says how the family writes spaces."""
    vocab = {token: i for i, token in enumerate(tokens)}
    unk = tokens[int(unk_id)] if unk_id is not None and 0 <= int(unk_id) < len(tokens) else None
    merges = merges_from_scores(vocab, dict(zip(tokens, scores)))
    backend = HFTokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=unk, fuse_unk=True, byte_fallback=True))
    if spaces == "gemma":
        backend.normalizer = normalizers.Replace(" ", SPACE)
        backend.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    elif spaces == "phi3":
        prepend = [normalizers.Prepend(SPACE)] if add_space_prefix else []
        backend.normalizer = normalizers.Sequence([*prepend, normalizers.Replace(" ", SPACE)])
    else:
        backend.pre_tokenizer = pre_tokenizers.Metaspace(
            replacement=SPACE, prepend_scheme="first" if add_space_prefix else "never", split=False
        )
    backend.decoder = decoders.Sequence([decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()])
    kinds = list(zip(tokens, types))
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, k in kinds if k == _CONTROL])
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t, k in kinds if k == _USER_DEFINED])
    return backend


def merges_from_scores(vocab: Mapping[str, int], scores: Mapping[str, float]) -> list[tuple[str, str]]:
    """Every split of a token into two tokens, best-scoring result first (ties: longer left part first).

    transformers' `generate_merges` with scores, so both build the same BPE from a GGUF; written
    for speed (a right part is sliced only after its left part is found), since Gemma has 262,144 tokens.
    """
    merges: list[tuple[float, int, int, str, str]] = []
    for token, score in scores.items():
        local = []
        for k in range(1, len(token)):
            left = token[:k]
            if left in vocab:
                right = token[k:]
                if right in vocab:
                    local.append((vocab[left], vocab[right], left, right))
        if len(local) > 1:
            local.sort()  # by the parts' ids, as transformers orders one token's splits
        merges += [(score, len(left), len(right), left, right) for _, _, left, right in local]
    merges.sort(key=itemgetter(0, 1, 2), reverse=True)  # stable: equal keys keep the order above
    return [(left, right) for *_, left, right in merges]
