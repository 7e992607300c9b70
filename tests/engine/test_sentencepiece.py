"""SentencePiece-style tokenizers (Llama 2, Mistral v0.x, Gemma, Phi-3) against transformers.

A small vocabulary is trained here with `tokenizers` (BPE, Metaspace, byte fallback, laid out as
Llama 2's: <unk> <s> </s>, then the 256 <0xNN> byte tokens, then the pieces). llmtui reads it from
a tokenizer.json folder and from a GGUF written the way llama.cpp's converter writes one; the
references are transformers' own readers of the same files.
"""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import pytest
from hypothesis import HealthCheck, example, given, settings
from tokenizers import AddedToken, Tokenizer as HFTokenizer, decoders, models, pre_tokenizers, trainers

from hostile import EXAMPLES, hostile_text
from llmtui.engine.tokenizer.sentencepiece import SentencePieceTokenizer
from llmtui.engine.tokenizer.tokenizer import tokenizer_from_gguf, tokenizer_from_hf_folder
from llmtui.engine.tokenizer.tokens import char_groups, token_label, tokenize

TRAINING_TEXT = [
    "The quick brown fox jumps over the lazy dog, isn't it? 12345 times.",
    "def square(x):\n    return x ** 2  # the square\n",
    "Naïve café façade — déjà vu!  Ångström",
    "It's, we'll, they're, I'd, you've, I'm, the the the then there",
] * 20

CORPUS = [
    "The capital of France is Paris.",
    "  two leading spaces and trailing   ",
    "I love 🍕 and 東京!",  # not in the vocabulary: byte fallback
    "e\u0301 combining, \u200b zero width",
    "<s>typed specials</s> and <think>added</think>",
    "line\nbreaks\r\n\ttabs",
    "",
    " ",
    "▁ a written space sign",
]

SPECIAL_TEXTS = ["<unk>", "<s>", "</s>"]
TEMPLATE = "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{{ eos_token }}{% endfor %}"


def _pieces_and_merges() -> tuple[list[str], list[tuple[str, str]]]:
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIAL_TEXTS, show_progress=False)
    trained = HFTokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    trained.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    trained.train_from_iterator(TRAINING_TEXT, trainer)
    spec = json.loads(trained.to_str())
    vocab = spec["model"]["vocab"]
    pieces = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1]) if t not in SPECIAL_TEXTS]
    return pieces, [tuple(m) for m in spec["model"]["merges"]]


PIECES, MERGES = _pieces_and_merges()
BYTES = [f"<0x{b:02X}>" for b in range(256)]
TOKENS = [*SPECIAL_TEXTS, *BYTES, *PIECES, "<think>"]
THINK = len(TOKENS) - 1


def reference_tokenizer(prepend: bool = True) -> HFTokenizer:
    """Llama 2's tokenizer.json shape (as transformers' LlamaTokenizer builds it) over TOKENS."""
    vocab = {t: i for i, t in enumerate(TOKENS[:-1])}
    tokenizer = HFTokenizer(models.BPE(vocab=vocab, merges=MERGES, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="▁", prepend_scheme="first" if prepend else "never", split=False
    )
    steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    tokenizer.decoder = decoders.Sequence([*steps, decoders.Strip(" ", 1, 0)] if prepend else steps)
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TEXTS])
    tokenizer.add_tokens([AddedToken("<think>", special=False, normalized=False)])
    return tokenizer


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spm") / "llama2ish"
    path.mkdir()
    reference_tokenizer().save(str(path / "tokenizer.json"))
    config = {"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": True, "chat_template": TEMPLATE}
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    return path


def write_spm_gguf(path: Path, arch: str, add_space_prefix: bool) -> Path:
    """A metadata-only GGUF with TOKENS the way llama.cpp's converter writes a SentencePiece vocabulary."""
    writer = gguf.GGUFWriter(str(path), arch)
    add_spm_vocabulary(writer, add_space_prefix)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def add_spm_vocabulary(writer: gguf.GGUFWriter, add_space_prefix: bool) -> None:
    types = [2, 3, 3, *[6] * 256, *[1] * len(PIECES), 4]  # unknown, control, byte, normal, user defined
    scores = [0.0] * (3 + 256) + [-float(i) for i in range(len(PIECES))] + [0.0]
    writer.add_tokenizer_model("llama")
    writer.add_token_list(TOKENS)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_space_prefix(add_space_prefix)
    writer.add_chat_template(TEMPLATE)


def transformers_ids(reference, text: str, allow_special: bool) -> list[int]:
    return reference[allow_special](text, add_special_tokens=False)["input_ids"]


def from_transformers(location: Path, **kwargs) -> dict[bool, object]:
    """{allow_special: transformers tokenizer}; split_special_tokens=True reads special text as plain text."""
    from transformers import AutoTokenizer

    return {
        allow: AutoTokenizer.from_pretrained(str(location), split_special_tokens=not allow, **kwargs)
        for allow in (False, True)
    }


def assert_same(ours: SentencePieceTokenizer, reference, text: str) -> None:
    for allow_special in (False, True):
        assert ours.encode(text, allow_special=allow_special) == transformers_ids(reference, text, allow_special), (
            allow_special,
            text,
        )


# ---------------------------------------------------------------------------------------------
# tokenizer.json


@pytest.fixture(scope="module")
def folder_pair(folder) -> tuple[SentencePieceTokenizer, dict]:
    return tokenizer_from_hf_folder(folder), from_transformers(folder)


def test_tokenizer_json_ids_equal_transformers(folder_pair):
    ours, reference = folder_pair
    assert isinstance(ours, SentencePieceTokenizer)
    for text in CORPUS:
        assert_same(ours, reference, text)
    assert ours.encode("<think>") == [THINK]  # a plain added token is matched whole
    assert ours.encode("<s>", allow_special=True) == [1]
    assert 1 not in ours.encode("<s>")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=hostile_text())
@example(text=EXAMPLES["surrogates"])
@example(text=EXAMPLES["c0"])
@example(text=EXAMPLES["combining_wide"])
def test_tokenizer_json_ids_equal_transformers_on_hostile_text(folder_pair, text):
    ours, reference = folder_pair
    if any("\ud800" <= c <= "\udfff" for c in text):
        clean = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        assert ours.encode(text) == ours.encode(clean)  # lone surrogates are U+FFFD, as in the byte-level path
        text = clean
    assert_same(ours, reference, text)
    assert ours.decode(ours.encode(text, allow_special=True)) == reference[True].decode(
        ours.encode(text, allow_special=True)
    )


def test_folder_specials_bos_eos_and_template(folder_pair):
    ours, _ = folder_pair
    assert (ours.bos_id, ours.eos_id, ours.add_bos) == (1, 2, True)
    assert ours.special_ids == {"<unk>": 0, "<s>": 1, "</s>": 2}
    assert ours.added_ids == {"<think>": THINK}
    assert ours.vocab_size == len(TOKENS)
    assert ours.apply_chat_template([{"role": "user", "content": "hi"}]) == "<s>[user] hi</s>"


def test_pieces_are_shown_honestly(folder_pair):
    """▁ becomes the token's space (drawn as ▁), <0xNN> its byte, grouped under the character."""
    ours, _ = folder_pair
    tokens = tokenize(ours, "The 🍕")
    pizza = "🍕".encode()
    assert tokens.chunks[-4:] == tuple(bytes([b]) for b in pizza)  # four byte-fallback tokens
    assert [TOKENS[i] for i in tokens.ids[-4:]] == [f"<0x{b:02X}>" for b in pizza]
    assert b"".join(tokens.chunks) == b" The \xf0\x9f\x8d\x95"  # the space SentencePiece put in front is there
    assert tokens.round_trip  # and decoding drops it again
    assert char_groups(tokens.chunks)[-1].text == "🍕"
    assert ours.space_marker == "▁"
    assert token_label(ours.token_bytes(tokens.ids[0]), ours.space_marker)[0] == ("▁", "marker")
    assert ours.token_text(tokens.ids[0]).startswith(" ")  # generation shows the word's own space
    assert ours.decode(tokens.ids) == "The 🍕"


# ---------------------------------------------------------------------------------------------
# GGUF (tokenizer.ggml.model = "llama")


@pytest.mark.parametrize(("arch", "prefix"), [("llama", True), ("gemma3", False), ("phi3", True)])
def test_gguf_ids_equal_transformers(tmp_path, arch, prefix):
    path = write_spm_gguf(tmp_path / f"{arch}.gguf", arch, prefix)
    ours = tokenizer_from_gguf(path)
    assert isinstance(ours, SentencePieceTokenizer)
    reference = from_transformers(tmp_path, gguf_file=path.name)
    for text in CORPUS:
        assert_same(ours, reference, text)
    assert (ours.bos_id, ours.eos_id, ours.add_bos) == (1, 2, True)
    assert ours.special_ids == {"<s>": 1, "</s>": 2}
    assert ours.added_ids == {"<think>": THINK}
    assert ours.apply_chat_template([{"role": "user", "content": "hi"}]) == "<s>[user] hi</s>"
    for text in ("The capital of France is Paris.", "I love 🍕"):
        assert ours.decode(ours.encode(text)) == text


@pytest.fixture(scope="module", params=[("llama", True), ("gemma3", False), ("phi3", True)], ids=lambda p: p[0])
def gguf_pair(request, tmp_path_factory) -> tuple[SentencePieceTokenizer, dict]:
    arch, prefix = request.param
    folder = tmp_path_factory.mktemp(arch)
    path = write_spm_gguf(folder / f"{arch}.gguf", arch, prefix)
    return tokenizer_from_gguf(path), from_transformers(folder, gguf_file=path.name)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=hostile_text())
@example(text=EXAMPLES["specials"])
@example(text=EXAMPLES["combining_wide"])
def test_gguf_ids_equal_transformers_on_hostile_text(gguf_pair, text):
    ours, reference = gguf_pair
    text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")  # what both tokenize
    assert_same(ours, reference, text)


def test_gguf_and_tokenizer_json_agree_on_trained_text(tmp_path, folder_pair):
    """Merges rebuilt from the GGUF's scores cut the training text as the trained merges do."""
    ours_json, _ = folder_pair
    ours_gguf = tokenizer_from_gguf(write_spm_gguf(tmp_path / "l.gguf", "llama", True))
    for text in ["The quick brown fox jumps over the lazy dog", "the square of x", "Naïve café"]:
        assert ours_gguf.encode(text) == ours_json.encode(text)
