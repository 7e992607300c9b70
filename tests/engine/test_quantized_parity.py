"""Quantized GGUFs of the new families on llmtui's exact packed path, against transformers.

The F32 parity tests (test_gguf_families) check the architectures; these check what people
download: matrices in Q8_0, and in the Q4_K_M mix (Q4_K, with Q6_K for attn_v, ffn_down and
the output matrix, as llama.cpp's Q4_K_M does). Each matrix's blocks are made here, the
transformers model is given their dequantized values (gguf's own dequantize), and llmtui runs
the file with its matrices kept in their blocks (PackedLinear / PackedEmbedding, on the C++
kernels and on the torch fallback): probabilities within 1e-4, the same 20 greedy tokens.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as Q, GGUFWriter
from gguf.quants import dequantize, quantize

from test_gguf_families import PROMPT, _hf_model, write_family_gguf
from test_packed import built_kernels, kernel_path  # noqa: F401 (fixtures found by name)

from llmtui.engine.kernels.blocks import BLOCK_BYTES, BLOCK_SIZES, _HALF_OFFSETS
from llmtui.engine.loading.gguf_header import read_gguf_header
from llmtui.engine.loading.gguf_packed import build_packed_transformer
from llmtui.engine.loading.load import load_weights
from llmtui.engine.model.packed import PackedEmbedding, PackedLinear

# Rows of whole 256-weight blocks for the K types: every matrix's input size is 256.
SIZES = dict(hidden_size=256, intermediate_size=256, head_dim=64)
# Each family's weight size (std; K blocks of |w| up to about 4 std): distributions peaked enough
# that a wrong weight would show, never one-hot (Gemma scales its embeddings by sqrt(256)); small
# enough that float32 rounding stays far below the 1e-4 compared.
STD = {"llama3": 0.18, "qwen2": 0.18, "qwen3": 0.18, "gemma2": 0.07, "gemma3": 0.1}
FAMILIES = list(STD)
MIXES = {"Q8_0": {Q.Q8_0}, "Q4_K_M": {Q.Q4_K, Q.Q6_K}}
# How far each float16 scale multiplies (largest code times largest sub-scale).
_REACH = {Q.Q4_K: {0: 63 * 15, 2: 63}, Q.Q6_K: {208: 128 * 32}}


def block_type(mix: str, hf_name: str) -> Q:
    if mix == "Q8_0":
        return Q.Q8_0
    return Q.Q6_K if any(part in hf_name for part in ("v_proj", "down_proj", "lm_head")) else Q.Q4_K


def make_blocks(qtype: Q, weights: np.ndarray, std: float, seed: int) -> np.ndarray:
    """(rows, bytes) blocks: gguf's quantizer where it has one (Q8_0), else random codes with
    float16 scales of a realistic size (gguf-py cannot quantize to K types)."""
    if qtype == Q.Q8_0:
        return quantize(weights, qtype)
    rng = np.random.default_rng(seed)
    n_blocks = weights.size // BLOCK_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(n_blocks, BLOCK_BYTES[qtype]), dtype=np.uint8)
    for start in _HALF_OFFSETS[qtype]:
        scales = rng.uniform(0.8 * std, 4 * std, size=n_blocks) / _REACH[qtype][start]
        blocks[:, start : start + 2] = scales.astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
    return blocks.reshape(len(weights), -1)


def quantize_model(model, mix: str, std: float) -> dict[bytes, tuple[Q, np.ndarray]]:
    """Give each matrix of `model` the values of its blocks; returns each dequantized row's blocks,
    so the writer finds them again after it reorders rows (llama.cpp's q/k permutation)."""
    rows: dict[bytes, tuple[Q, np.ndarray]] = {}
    with torch.no_grad():
        for seed, (name, param) in enumerate(model.named_parameters()):
            qtype = block_type(mix, name)
            if param.ndim != 2 or param.shape[1] % BLOCK_SIZES[qtype]:
                continue
            blocks = make_blocks(qtype, param.numpy(), std, seed)
            values = dequantize(blocks, qtype).reshape(param.shape)
            param.copy_(torch.from_numpy(values))
            rows.update({row.tobytes(): (qtype, row_blocks) for row, row_blocks in zip(values, blocks)})
    return rows


def add_blocks(rows: dict[bytes, tuple[Q, np.ndarray]]):
    """The writer's `add`: a matrix made by quantize_model is stored as its blocks, anything else as float32."""

    def add(writer: GGUFWriter, name: str, w: torch.Tensor, _qtype: Q) -> None:
        data = w.detach().float().numpy()
        if data.ndim == 2 and data[0].tobytes() in rows:
            qtype = rows[data[0].tobytes()][0]
            writer.add_tensor(name, np.stack([rows[row.tobytes()][1] for row in data]), raw_dtype=qtype)
        else:
            writer.add_tensor(name, data)

    return add


@pytest.fixture(scope="module", params=[(f, m) for m in MIXES for f in FAMILIES], ids=lambda p: f"{p[0]}-{p[1]}")
def quantized(request, tiny_tokenizer, tmp_path_factory):
    """(family, mix, transformers model on the dequantized weights, GGUF path)."""
    name, mix = request.param
    # A GGUF has no key for Gemma's query_pre_attn_scalar: llama.cpp (and llmtui) take the head size,
    # as the released Gemmas have it. The F32 tests hide this with head_dim 8 = the scalar 8.
    gemma = {"query_pre_attn_scalar": SIZES["head_dim"]} if name.startswith("gemma") else {}
    hf = _hf_model(name, **SIZES, **gemma, initializer_range=STD[name])
    rows = quantize_model(hf, mix, STD[name])
    path = write_family_gguf(tmp_path_factory.mktemp(name) / f"{name}-{mix}.gguf", name, hf, tiny_tokenizer,
                             add=add_blocks(rows))
    return name, mix, hf, path


def packed_model(path):
    weights = load_weights(str(path), packed=True)
    return build_packed_transformer(weights.config, weights.state_dict, weights.packed).eval()


def test_the_file_holds_the_mix_and_llmtui_keeps_it_packed(quantized, kernel_path):
    name, mix, _, path = quantized
    types = {Q(info.type_id) for info in read_gguf_header(path).tensors.values() if len(info.shape) == 2}
    assert types == MIXES[mix]  # every matrix quantized (input sizes of 256)
    model = packed_model(path)
    assert isinstance(model.blocks[0].attn.qkv, PackedLinear) and isinstance(model.blocks[0].mlp.down, PackedLinear)
    assert isinstance(model.tok_emb, PackedEmbedding)


def test_packed_probabilities_and_greedy_tokens_equal_transformers(quantized, kernel_path):
    """Prefill (matrix-matrix) and 20 cached decoding steps (matrix-vector) against transformers' greedy generate."""
    name, mix, hf, path = quantized
    model = packed_model(path)
    with torch.inference_mode():
        expected = torch.softmax(hf(PROMPT).logits.double(), dim=-1)
        got = torch.softmax(model(PROMPT).logits.double(), dim=-1)
        assert 0.1 < expected[0, -1].max() < 0.99  # peaked enough that a wrong weight would show, not one-hot
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)

        hf.generation_config.eos_token_id = None  # 20 tokens, whatever they are
        reference = hf.generate(PROMPT[:, :4], max_new_tokens=20, do_sample=False,
                                output_scores=True, return_dict_in_generate=True)
        cache, x, tokens = model.new_cache(), PROMPT[:, :4], []
        for step in range(20):
            probs = model(x, cache, last_only=True).logits[0, -1].double().softmax(-1)
            torch.testing.assert_close(probs, reference.scores[step][0].double().softmax(-1), rtol=0, atol=1e-4)
            x = probs.argmax().view(1, 1)
            tokens.append(x.item())
    assert tokens == reference.sequences[0, 4:].tolist()
