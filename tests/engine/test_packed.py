"""Weights kept in their GGUF blocks: the same numbers as float32 dequantized weights, on every path.

Each block type is checked against gguf.quants.dequantize (the dequantizing loader's
reference) bit for bit, and its products against F.linear with those float32 weights,
on the C++ kernels and on the plain-torch fallback that runs without a compiler.
"""

from __future__ import annotations

import platform

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gguf import GGMLQuantizationType as Q
from gguf.quants import dequantize

from gguf_writer import write_gpt2_gguf, write_llama_gguf
from test_gguf import hf_gpt2, hf_llama  # noqa: F401 (fixtures found by name)

from llmtui.engine.errors import ModelLoadError
from llmtui.engine.lm import LanguageModel
from llmtui.engine.loading.gguf_packed import build_packed_transformer
from llmtui.engine.loading.gguf_header import read_gguf_header
from llmtui.engine.loading.load import load_weights
from llmtui.engine.kernels import native
from llmtui.engine.kernels.blocks import BLOCK_BYTES, BLOCK_SIZES, PACKED_TYPES, _HALF_OFFSETS, unpack_rows
from llmtui.engine.model import packed as packed_module
from llmtui.engine.model.packed import PackedEmbedding, PackedLinear, PackedMatrix
from llmtui.engine.model.decode_step import why_not_fused
from llmtui.engine.model.transformer import Transformer


def random_blocks(qtype: int, rows: int, columns: int, seed: int = 0) -> np.ndarray:
    """Random bytes with finite float16 scales of a realistic size (about 1e-2), some of them -0.0.

    A scale of -0.0 makes weights of -0.0 that must stay -0.0 (a kernel that built its
    broadcast scale as 0 + s turned them into +0.0).
    """
    rng = np.random.default_rng(seed)
    n_blocks = rows * columns // BLOCK_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(n_blocks, BLOCK_BYTES[qtype]), dtype=np.uint8)
    for start in _HALF_OFFSETS[qtype]:
        scales = rng.uniform(-0.02, 0.02, size=n_blocks).astype(np.float16)
        scales[::5] = -0.0
        blocks[:, start : start + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
    return blocks.reshape(rows, -1)


def reference(qtype: int, raw: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(dequantize(raw, Q(qtype)))


def assert_float32_product(actual: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias=None) -> None:
    """actual is x @ weight.T (+ bias) up to float32 rounding: the order of the additions is all that may differ.

    The bound, 1e-5 of sum |x| |w| per output, is what any float32 summation order keeps to.
    """
    expected = F.linear(x.double(), weight.double(), None if bias is None else bias.double())
    scale = F.linear(x.double().abs(), weight.double().abs())
    error = (actual.double() - expected).abs()
    assert (error <= 1e-5 * scale + 1e-12).all(), f"worst error {(error / scale).max().item():.2e} of sum |x w|"


@pytest.fixture(scope="module")
def built_kernels() -> native.NativeKernels:
    if native.find_compiler() is None:
        pytest.skip("no C++ compiler on this machine: the torch path is tested below")
    kernels = native.NativeKernels()
    path = kernels.wait()
    assert path.name == "native", path.why
    return kernels


@pytest.fixture(params=["native", "torch"])
def kernel_path(request, monkeypatch) -> str:
    """Run a test on the C++ kernels, then on the torch fallback (as on a machine without a compiler)."""
    if request.param == "native":
        monkeypatch.setattr(packed_module, "KERNELS", request.getfixturevalue("built_kernels"))
    else:
        monkeypatch.setattr(native, "find_compiler", lambda: None)
        kernels = native.NativeKernels()
        assert kernels.wait().why.startswith("no C++ compiler")
        monkeypatch.setattr(packed_module, "KERNELS", kernels)
    return request.param


QTYPES = sorted(PACKED_TYPES)


@pytest.mark.parametrize("qtype", QTYPES, ids=[Q(t).name for t in QTYPES])
class TestBlockTypes:
    def test_unpacked_weights_are_bit_identical(self, qtype, kernel_path):
        raw = random_blocks(qtype, 24, 512)
        layer = PackedLinear([PackedMatrix(qtype, torch.from_numpy(raw), 512)])
        assert torch.equal(layer.weight.view(torch.int32), reference(qtype, raw).view(torch.int32))

    @pytest.mark.parametrize("rows", [1, 3, 8, 40])  # the matrix-vector kernel up to 8 rows, BLAS beyond
    def test_products_match_float32_weights(self, qtype, kernel_path, rows):
        raw = random_blocks(qtype, 48, 768, seed=rows)
        layer = PackedLinear([PackedMatrix(qtype, torch.from_numpy(raw), 768)])
        x = torch.randn(rows, 768, generator=torch.Generator().manual_seed(rows))
        assert_float32_product(layer(x), x, reference(qtype, raw))

    def test_embedding_rows(self, qtype, kernel_path):
        raw = random_blocks(qtype, 30, 256)
        emb = PackedEmbedding(PackedMatrix(qtype, torch.from_numpy(raw), 256))
        ids = torch.tensor([[3, 0, 29], [3, 7, 7]])
        assert torch.equal(emb(ids), F.embedding(ids, reference(qtype, raw)))

    def test_torch_unpacking_is_bit_identical(self, qtype):
        raw = random_blocks(qtype, 5, 256, seed=9)
        assert torch.equal(unpack_rows(qtype, torch.from_numpy(raw), 256), reference(qtype, raw))


def test_inference_mode_then_normal_mode_in_one_thread(kernel_path):
    """The app runs the model under inference_mode, training and tests outside it, on one thread:
    the scratch buffer made in one mode must not break the other (CI failed so once)."""
    raw = random_blocks(Q.Q4_0, 48, 768)
    layer = PackedLinear([PackedMatrix(Q.Q4_0, torch.from_numpy(raw), 768)])
    x = torch.randn(40, 768)
    with torch.inference_mode():
        inside = layer(x)
    assert_float32_product(inside, x, reference(Q.Q4_0, raw))
    assert_float32_product(layer(x), x, reference(Q.Q4_0, raw))


def test_stacked_parts_of_different_types(kernel_path):
    """A Q4_K_M-style stack: q, k in Q4_K and v in Q6_K, as one layer."""
    parts = [(Q.Q4_K, 24, 0), (Q.Q6_K, 8, 2)]
    raws = [random_blocks(t, n, 256, seed) for t, n, seed in parts]
    layer = PackedLinear([PackedMatrix(t, torch.from_numpy(r), 256) for (t, _, _), r in zip(parts, raws)],
                         bias=torch.linspace(-1, 1, 32))
    weight = torch.cat([reference(t, r) for (t, _, _), r in zip(parts, raws)])
    for rows in (1, 20):
        x = torch.randn(2, rows, 256)
        assert_float32_product(layer(x), x, weight, torch.linspace(-1, 1, 32))


def test_matrix_of_the_wrong_size_is_refused():
    with pytest.raises(ValueError, match="bytes per row"):
        PackedMatrix(Q.Q4_1, torch.zeros(4, 19, dtype=torch.uint8), 32)


class TestBuild:
    def test_no_compiler_says_so(self, monkeypatch):
        monkeypatch.setattr(native, "find_compiler", lambda: None)
        kernels = native.NativeKernels()
        path = kernels.wait()
        assert (path.name, kernels.lib) == ("torch", None)
        assert "no C++ compiler" in path.describe()

    def test_env_var_forces_torch(self, monkeypatch):
        monkeypatch.setenv("LLMTUI_KERNELS", "torch")
        kernels = native.NativeKernels()
        assert kernels.wait() == native.KernelPath("torch", "LLMTUI_KERNELS=torch")
        assert kernels.lib is None

    def test_failing_compiler_falls_back_with_its_error(self, monkeypatch, tmp_path):
        monkeypatch.setattr(native, "find_compiler", lambda: "false")  # a compiler that always fails
        kernels = native.NativeKernels()
        kernels.start(tmp_path)
        path = kernels.wait()
        assert path.name == "torch" and path.why.startswith("the C++ build failed")
        assert not list((tmp_path / "kernels").glob("*.so"))  # nothing half-written left behind

    def test_second_start_loads_the_cached_build(self, built_kernels, monkeypatch, tmp_path):
        compiler = native.find_compiler()
        native.build(tmp_path, compiler)
        def no_compiling(*args, **kwargs):
            raise AssertionError("compiled again")
        monkeypatch.setattr(native.subprocess, "run", no_compiling)
        lib, how = native.build(tmp_path, compiler)
        assert lib.llmtui_dequantize is not None and "-march=native" in how

    @pytest.mark.parametrize("fallback", [["-fopenmp"], []], ids=["portable", "portable-one-thread"])
    def test_portable_build_when_native_flags_fail(self, built_kernels, monkeypatch, tmp_path, fallback):
        """Where -march=native fails (an old compiler, an unknown CPU; no OpenMP on Apple's clang): portable code,
        exact for every block type (the vector code's plain-loop branches)."""
        monkeypatch.setattr(native, "FLAG_SETS", (("native", ["-march=no-such-cpu"]), ("portable", fallback)))
        lib, how = native.build(tmp_path, native.find_compiler())
        assert how.startswith("portable")
        _assert_every_block_type_exact(lib, monkeypatch)

    @pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="-march=haswell is an x86 target")
    def test_avx2_build_without_avx512(self, built_kernels, monkeypatch, tmp_path):
        """The AVX2 machines' build (two 8-lane registers per vector, no AVX-512 instructions): exact too."""
        monkeypatch.setattr(native, "FLAG_SETS", (("haswell", ["-fopenmp", "-march=haswell"]),))
        lib, _ = native.build(tmp_path, native.find_compiler())
        _assert_every_block_type_exact(lib, monkeypatch)


def _assert_every_block_type_exact(lib, monkeypatch) -> None:
    """Products of every block type, 1, 2 and 5 rows of x, on this library, within float32 rounding."""
    kernels = native.NativeKernels()
    kernels.lib = native._bind(lib)
    monkeypatch.setattr(packed_module, "KERNELS", kernels)
    for qtype in QTYPES:
        raw = random_blocks(qtype, 12, 512, seed=qtype)
        layer = PackedLinear([PackedMatrix(qtype, torch.from_numpy(raw), 512)])
        for rows in (1, 2, 5):
            x = torch.randn(rows, 512, generator=torch.Generator().manual_seed(rows))
            assert_float32_product(layer(x), x, reference(qtype, raw))


@pytest.mark.parametrize("qtype", [Q.Q4_1, Q.Q4_K], ids=["Q4_1", "Q4_K"])
def test_rows_longer_than_the_stack_buffer_of_sums(qtype, built_kernels, monkeypatch):
    """The offset terms use sums of x over each 32 columns, kept on the stack up to 16384 columns, beyond on the heap."""
    monkeypatch.setattr(packed_module, "KERNELS", built_kernels)
    raw = random_blocks(qtype, 4, 16384 + 512, seed=3)
    layer = PackedLinear([PackedMatrix(qtype, torch.from_numpy(raw), 16384 + 512)])
    for rows in (1, 8):
        x = torch.randn(rows, 16384 + 512, generator=torch.Generator().manual_seed(rows))
        assert_float32_product(layer(x), x, reference(qtype, raw))


def test_offsets_that_cancel_the_scaled_codes(kernel_path):
    """The factored products' worst case: weights d q + m of nearly 0 (d q and m cancel) but for one large
    weight per 32, whose block set m. Their rounding grows with sum |d q x| + |m| sum |x|, here about 30
    times sum |w x|: still within float32's 1e-5."""
    from gguf.quants import quantize

    w = np.random.default_rng(5).normal(0, 1e-3, size=(16, 1024)).astype(np.float32)
    w[:, ::32] = -1.0
    q4_k = random_blocks(Q.Q4_K, 16, 1024, seed=5).reshape(-1, BLOCK_BYTES[Q.Q4_K])
    d = np.float16(1e-3)
    q4_k[:, 0:2] = np.full(len(q4_k), d).view(np.uint8).reshape(-1, 2)  # d
    q4_k[:, 2:4] = np.full(len(q4_k), np.float16(8 * d)).view(np.uint8).reshape(-1, 2)  # dmin = 8 d
    q4_k[:, 4:16] = 0xFF  # every sub-block's scale and min 63: w = 63 d (q - 8)
    q4_k[:, 16:] = 0x88  # codes 8: weights of exactly 0...
    q4_k[:, 16::32] = 0x00  # ...but for the first of each sub-block: -504 d
    for qtype, raw in ((Q.Q4_1, quantize(w, Q.Q4_1)), (Q.Q4_K, q4_k.reshape(16, -1))):
        layer = PackedLinear([PackedMatrix(qtype, torch.from_numpy(raw), 1024)])
        x = torch.randn(3, 1024, generator=torch.Generator().manual_seed(0))
        assert_float32_product(layer(x), x, reference(qtype, raw))



def test_damaged_scale_is_a_load_error(tmp_path, hf_llama, tiny_tokenizer):
    path = write_llama_gguf(tmp_path / "m.gguf", hf_llama, tiny_tokenizer, Q.Q8_0)
    data = bytearray(path.read_bytes())
    good = load_weights(str(path), packed=True)
    assert good.packed  # the matrices stayed packed
    info = read_gguf_header(path).tensors["blk.1.ffn_up.weight"]
    data[info.offset : info.offset + 2] = np.array([np.inf], dtype=np.float16).tobytes()
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="blk.1.ffn_up.weight holds NaN or infinite values"):
        load_weights(str(path), packed=True)


def _float_and_packed(path, cache_dir):
    floats = load_weights(str(path), cache_dir=cache_dir)
    reference = Transformer(floats.config)
    reference.load_state_dict(floats.state_dict)
    weights = load_weights(str(path), packed=True)
    return reference.eval(), build_packed_transformer(weights.config, weights.state_dict, weights.packed)


def _assert_same_run(reference: Transformer, model: Transformer, ids: list[int], steps: int) -> float:
    """Prefill (BLAS path) then greedy decoding (matrix-vector path): the same probabilities; returns the worst gap."""
    worst = 0.0
    with torch.inference_mode():
        caches = [reference.new_cache(), model.new_cache()]
        full = [m(torch.tensor([ids]), capture=True) for m in (reference, model)]
        torch.testing.assert_close(full[1].logits, full[0].logits, rtol=1e-4, atol=1e-4)
        x = torch.tensor([ids])
        for _ in range(steps):
            probs = [m(x, c, last_only=True).logits[0, -1].softmax(-1) for m, c in zip((reference, model), caches)]
            worst = max(worst, (probs[1] - probs[0]).abs().max().item())
            x = probs[0].argmax().view(1, 1)
            assert probs[1].argmax() == x
    return worst


@pytest.mark.parametrize("qtype", [Q.Q8_0, Q.Q4_1, Q.Q4_0])
@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_packed_llama_computes_what_dequantized_weights_give(qtype, tie, kernel_path, hf_llama, tiny_tokenizer, tmp_path):
    path = write_llama_gguf(tmp_path / "m.gguf", hf_llama, tiny_tokenizer, qtype, tie=tie)
    reference, model = _float_and_packed(path, tmp_path / "cache")
    assert isinstance(model.blocks[0].attn.qkv, PackedLinear) and isinstance(model.tok_emb, PackedEmbedding)
    assert model.n_params() == reference.n_params()
    assert _assert_same_run(reference, model, tiny_tokenizer.encode("def main(): return 42").ids, steps=12) < 1e-5


def test_packed_gpt2_keeps_its_fused_qkv_in_float(kernel_path, hf_gpt2, tiny_tokenizer, tmp_path):
    path = write_gpt2_gguf(tmp_path / "g.gguf", hf_gpt2, tiny_tokenizer, Q.Q8_0)
    reference, model = _float_and_packed(path, tmp_path / "cache")
    assert isinstance(model.blocks[0].mlp.fc, PackedLinear) and not isinstance(model.blocks[0].attn.qkv, PackedLinear)
    assert _assert_same_run(reference, model, tiny_tokenizer.encode("hello world").ids, steps=8) < 1e-5


@pytest.mark.default_model
def test_default_model_probabilities_equal_float32_weights(default_model_path, built_kernels, monkeypatch):
    """128 greedy steps of several prompts: the packed model's probabilities within 1e-5 of float32 weights'."""
    monkeypatch.setattr(packed_module, "KERNELS", built_kernels)
    reference, model = _float_and_packed(default_model_path, None)
    lm_tokenizer = LanguageModel.load().tokenizer
    prompts = ["The capital of France is", "def fibonacci(n):", "Once upon a time, in a small village,"]
    worst = max(_assert_same_run(reference, model, lm_tokenizer.encode(p), steps=128) for p in prompts)
    assert worst < 1e-5
    assert why_not_fused(model) is None and "_fused_decoder" in model.__dict__  # the steps ran fused


def test_language_model_says_once_which_path_runs(tmp_path, hf_llama, tiny_tokenizer, monkeypatch):
    path = write_llama_gguf(tmp_path / "m.gguf", hf_llama, tiny_tokenizer, Q.Q4_1)
    monkeypatch.setenv("LLMTUI_KERNELS", "torch")
    kernels = native.NativeKernels()
    monkeypatch.setattr(native, "KERNELS", kernels)
    monkeypatch.setattr(packed_module, "KERNELS", kernels)
    lm = LanguageModel.load(str(path))
    assert lm.compute == {"precision": "exact", "weights": "packed GGUF blocks", "kernels": "torch",
                          "why": "LLMTUI_KERNELS=torch"}
    assert lm.compute_label == "exact, packed"
    assert [n for n in lm.notes if "plain torch (LLMTUI_KERNELS=torch)" in n]
    monkeypatch.delenv("LLMTUI_KERNELS")
    monkeypatch.setattr(native, "KERNELS", native.NativeKernels())
    native.KERNELS.wait()  # built: the status says which decoding step runs
    assert lm.compute["decode"] == "fused C++ step"
    on_gpu_or_hf = LanguageModel(lm.name, lm.source, Transformer(lm.config), lm.tokenizer, lm.device)
    assert on_gpu_or_hf.compute == {"precision": "exact", "weights": "float32", "kernels": "torch"}
