"""GGUF loading: tiny models written the way llama.cpp's converter writes them, read back exactly.

The source of truth is a random `transformers` model (tests/conftest.py). We convert it to
GGUF like llama.cpp's convert_hf_to_gguf.py does (q/k rows permuted for llama, Conv1D
transposed for gpt2), quantize with gguf's reference code, and check that load_weights gives
back the original tensors (within the quantization's error) and the same logits.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader, GGUFWriter
from gguf.quants import dequantize, quantize

from llmtui.engine.loading.gguf_header import read_gguf_header
from llmtui.engine.loading.gguf_weights import unpermute_rope_rows
from llmtui.engine.loading.load import ModelLoadError, load_weights
from llmtui.engine.model.transformer import Transformer

# Worst-case error per weight, as a fraction of the tensor's largest magnitude
# (Q8_0: half a step of amax/127; Q4_0: a full step of amax/8 at the clipped end).
TOLERANCE = {Q.F32: 0.0, Q.F16: 1e-3, Q.Q8_0: 1 / 127, Q.Q4_0: 1 / 8, Q.Q4_1: 1 / 15, Q.Q5_0: 1 / 16, Q.Q5_1: 1 / 31}


def llama_cpp_permute(w: np.ndarray, n_head: int, n_head_kv: int | None = None) -> np.ndarray:
    """Verbatim from llama.cpp convert_hf_to_gguf.py `LlamaModel.permute`."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _add_tokenizer(writer: GGUFWriter, tokenizer) -> None:
    spec = json.loads(tokenizer.to_str())
    vocab = spec["model"]["vocab"] | {t["content"]: t["id"] for t in spec["added_tokens"]}
    tokens = sorted(vocab, key=vocab.get)
    specials = {t["content"] for t in spec["added_tokens"]}
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in specials else 1 for t in tokens])  # 3: control, 1: normal
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]])
    writer.add_bos_token_id(vocab["<|im_start|>"])
    writer.add_eos_token_id(vocab["<|im_end|>"])


def _add(writer: GGUFWriter, name: str, w: torch.Tensor, qtype: Q) -> None:
    """Like llama.cpp: vectors stay F32, matrices take the file's type."""
    data = w.detach().float().numpy()
    if data.ndim == 1 or qtype == Q.F32:
        writer.add_tensor(name, data)
    elif qtype == Q.F16:
        writer.add_tensor(name, data.astype(np.float16))
    else:
        writer.add_tensor(name, quantize(data, qtype), raw_dtype=qtype)


def write_llama_gguf(path: Path, model, tokenizer, qtype: Q = Q.F32, tie: bool = False) -> Path:
    """A transformers LlamaForCausalLM as llama.cpp would convert it."""
    c = model.config
    sd = model.state_dict()
    writer = GGUFWriter(str(path), arch="llama")
    writer.add_block_count(c.num_hidden_layers)
    writer.add_context_length(c.max_position_embeddings)
    writer.add_embedding_length(c.hidden_size)
    writer.add_feed_forward_length(c.intermediate_size)
    writer.add_head_count(c.num_attention_heads)
    writer.add_head_count_kv(c.num_key_value_heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_rope_dimension_count(c.hidden_size // c.num_attention_heads)
    writer.add_layer_norm_rms_eps(c.rms_norm_eps)
    _add_tokenizer(writer, tokenizer)
    _add(writer, "token_embd.weight", sd["model.embed_tokens.weight"], qtype)
    for i in range(c.num_hidden_layers):
        hf = f"model.layers.{i}."
        q = llama_cpp_permute(sd[hf + "self_attn.q_proj.weight"].numpy(), c.num_attention_heads, c.num_attention_heads)
        k = llama_cpp_permute(sd[hf + "self_attn.k_proj.weight"].numpy(), c.num_attention_heads, c.num_key_value_heads)
        for name, w in [
            ("attn_norm", sd[hf + "input_layernorm.weight"]),
            ("attn_q", torch.from_numpy(q)),
            ("attn_k", torch.from_numpy(k)),
            ("attn_v", sd[hf + "self_attn.v_proj.weight"]),
            ("attn_output", sd[hf + "self_attn.o_proj.weight"]),
            ("ffn_norm", sd[hf + "post_attention_layernorm.weight"]),
            ("ffn_gate", sd[hf + "mlp.gate_proj.weight"]),
            ("ffn_up", sd[hf + "mlp.up_proj.weight"]),
            ("ffn_down", sd[hf + "mlp.down_proj.weight"]),
        ]:
            _add(writer, f"blk.{i}.{name}.weight", w, qtype)
    _add(writer, "output_norm.weight", sd["model.norm.weight"], qtype)
    if not tie:
        _add(writer, "output.weight", sd["lm_head.weight"], qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_gpt2_gguf(path: Path, model, tokenizer, qtype: Q = Q.F32) -> Path:
    """A transformers GPT2LMHeadModel as llama.cpp would convert it (Conv1D transposed, output duplicated)."""
    c = model.config
    sd = {k.removeprefix("transformer."): v for k, v in model.state_dict().items()}
    writer = GGUFWriter(str(path), arch="gpt2")
    writer.add_block_count(c.n_layer)
    writer.add_context_length(c.n_positions)
    writer.add_embedding_length(c.n_embd)
    writer.add_feed_forward_length(4 * c.n_embd)
    writer.add_head_count(c.n_head)
    writer.add_layer_norm_eps(c.layer_norm_epsilon)
    _add_tokenizer(writer, tokenizer)
    _add(writer, "token_embd.weight", sd["wte.weight"], qtype)
    _add(writer, "position_embd.weight", sd["wpe.weight"], Q.F32)
    for i in range(c.n_layer):
        for gguf_name, hf_name in [
            ("attn_norm", "ln_1"),
            ("attn_qkv", "attn.c_attn"),
            ("attn_output", "attn.c_proj"),
            ("ffn_norm", "ln_2"),
            ("ffn_up", "mlp.c_fc"),
            ("ffn_down", "mlp.c_proj"),
        ]:
            w, b = sd[f"h.{i}.{hf_name}.weight"], sd[f"h.{i}.{hf_name}.bias"]
            _add(writer, f"blk.{i}.{gguf_name}.weight", w if w.ndim == 1 else w.t().contiguous(), qtype)
            _add(writer, f"blk.{i}.{gguf_name}.bias", b, qtype)
    _add(writer, "output_norm.weight", sd["ln_f.weight"], qtype)
    _add(writer, "output_norm.bias", sd["ln_f.bias"], qtype)
    _add(writer, "output.weight", sd["wte.weight"], qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def hf_llama(tiny_hf_llama_dir):
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM.from_pretrained(tiny_hf_llama_dir).eval()


@pytest.fixture(scope="module")
def hf_gpt2(tiny_hf_gpt2_dir):
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(tiny_hf_gpt2_dir).eval()


def llama_reference(model) -> dict[str, torch.Tensor]:
    """transformers' Llama parameters under our names (an independent copy of the mapping)."""
    ours = {
        "model.embed_tokens.weight": "tok_emb.weight",
        "model.norm.weight": "final_norm.weight",
        "lm_head.weight": "lm_head.weight",
    }
    parts = {
        "input_layernorm": "attn_norm",
        "post_attention_layernorm": "mlp_norm",
        "self_attn.q_proj": "attn.q_proj",
        "self_attn.k_proj": "attn.k_proj",
        "self_attn.v_proj": "attn.v_proj",
        "self_attn.o_proj": "attn.o_proj",
        "mlp.gate_proj": "mlp.gate",
        "mlp.up_proj": "mlp.up",
        "mlp.down_proj": "mlp.down",
    }
    for i in range(model.config.num_hidden_layers):
        for hf, mine in parts.items():
            ours[f"model.layers.{i}.{hf}.weight"] = f"blocks.{i}.{mine}.weight"
    return {mine: model.state_dict()[hf] for hf, mine in ours.items()}


def ids_for(vocab_size: int) -> torch.Tensor:
    return torch.tensor([[1, 5, 77, 200, 3, vocab_size - 1, 42, 42, 9, 130]])


def our_logits(weights) -> torch.Tensor:
    model = Transformer(weights.config)
    model.load_state_dict(weights.state_dict, strict=True)
    with torch.no_grad():
        return model.eval()(ids_for(weights.config.vocab_size)).logits


class TestLlama:
    def test_f32_gives_transformers_weights_and_logits(self, hf_llama, tiny_tokenizer, tmp_path):
        path = write_llama_gguf(tmp_path / "tiny.gguf", hf_llama, tiny_tokenizer)
        weights = load_weights(str(path), cache_dir=tmp_path / "cache")
        c = weights.config
        assert (c.family, c.n_layer, c.d_model, c.n_head, c.n_kv_head, c.d_ff) == ("llama", 2, 64, 4, 2, 128)
        assert (c.vocab_size, c.context_length, c.norm_eps, c.rope_theta, c.tie_embeddings) == (
            hf_llama.config.vocab_size,
            128,
            1e-5,
            10000.0,
            False,
        )
        assert weights.tokenizer_source == path and weights.name == "tiny"
        reference = llama_reference(hf_llama)
        assert weights.state_dict.keys() == reference.keys()
        for name, w in reference.items():
            assert weights.state_dict[name].dtype == torch.float32
            torch.testing.assert_close(weights.state_dict[name], w, rtol=0, atol=0, msg=name)
        with torch.no_grad():
            expected = hf_llama(ids_for(c.vocab_size)).logits
        torch.testing.assert_close(our_logits(weights), expected, rtol=1e-4, atol=1e-4)

    @pytest.mark.parametrize("qtype", [Q.F16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_1], ids=lambda q: q.name)
    def test_quantized_weights_within_the_type_error(self, qtype, hf_llama, tiny_tokenizer, tmp_path):
        path = write_llama_gguf(tmp_path / f"tiny.{qtype.name}.gguf", hf_llama, tiny_tokenizer, qtype)
        weights = load_weights(str(path), cache_dir=tmp_path / "cache")
        c = hf_llama.config
        exact = {}  # what the file holds: dequantize(quantize(w)), rows back in HF order
        for name, w in llama_reference(hf_llama).items():
            if w.ndim == 1:
                exact[name] = w
                continue
            data = w.numpy()
            if name.endswith(("q_proj.weight", "k_proj.weight")):
                heads = c.num_attention_heads if "q_proj" in name else c.num_key_value_heads
                data = llama_cpp_permute(data, c.num_attention_heads, heads)
            stored = torch.from_numpy(dequantize(quantize(data, qtype), qtype).astype(np.float32))
            if name.endswith(("q_proj.weight", "k_proj.weight")):
                stored = unpermute_rope_rows(stored, heads)
            exact[name] = stored
            amax = w.abs().max().item()
            torch.testing.assert_close(
                weights.state_dict[name], w, rtol=0, atol=TOLERANCE[qtype] * amax * 1.01, msg=name
            )
        for name, w in exact.items():
            torch.testing.assert_close(weights.state_dict[name], w, rtol=0, atol=1e-6, msg=name)
        # Same logits as our model on the exact stored values, and near transformers' full precision.
        model = Transformer(weights.config)
        model.load_state_dict(exact, strict=True)
        with torch.no_grad():
            on_exact = model.eval()(ids_for(c.vocab_size)).logits
            full = hf_llama(ids_for(c.vocab_size)).logits
        logits = our_logits(weights)
        torch.testing.assert_close(logits, on_exact, rtol=1e-4, atol=1e-4)
        spread = (full.max() - full.min()).item()
        # Measured on these random weights: F16 0.0003, Q8_0 0.011, Q5_1 0.07, Q4_x 0.15 of the spread.
        allowed = {Q.F16: 0.002, Q.Q8_0: 0.03, Q.Q5_1: 0.2, Q.Q4_0: 0.35, Q.Q4_1: 0.35}[qtype]
        assert (logits - full).abs().max().item() < allowed * spread

    def test_tied_embeddings_when_there_is_no_output_tensor(self, hf_llama, tiny_tokenizer, tmp_path):
        path = write_llama_gguf(tmp_path / "tied.gguf", hf_llama, tiny_tokenizer, Q.Q8_0, tie=True)
        weights = load_weights(str(path), cache_dir=tmp_path / "cache")
        assert weights.config.tie_embeddings and "lm_head.weight" not in weights.state_dict
        Transformer(weights.config).load_state_dict(weights.state_dict, strict=True)

    def test_unpermute_undoes_llama_cpp_permute(self):
        w = np.arange(6 * 8 * 3, dtype=np.float32).reshape(6 * 8, 3)  # 6 heads of 8 rows, or 3 kv heads of 16
        for n_head, n_kv in [(6, 6), (6, 3)]:
            permuted = torch.from_numpy(llama_cpp_permute(w, n_head, n_kv))
            assert not torch.equal(permuted, torch.from_numpy(w))
            assert torch.equal(unpermute_rope_rows(permuted, n_kv), torch.from_numpy(w))


class TestGPT2:
    @pytest.mark.parametrize("qtype", [Q.F32, Q.Q8_0], ids=lambda q: q.name)
    def test_fused_qkv_and_transposed_weights(self, qtype, hf_gpt2, tiny_tokenizer, tmp_path):
        path = write_gpt2_gguf(tmp_path / "gpt2.gguf", hf_gpt2, tiny_tokenizer, qtype)
        weights = load_weights(str(path), cache_dir=tmp_path / "cache")
        c = weights.config
        assert (c.family, c.n_layer, c.d_model, c.n_head, c.context_length, c.tie_embeddings) == (
            "gpt2",
            2,
            64,
            4,
            128,
            False,
        )
        sd, hf = weights.state_dict, hf_gpt2.state_dict()
        q, k, v = hf["transformer.h.1.attn.c_attn.weight"].t().chunk(3)
        tol = TOLERANCE[qtype] * hf["transformer.h.1.attn.c_attn.weight"].abs().max().item() * 1.01
        torch.testing.assert_close(sd["blocks.1.attn.q_proj.weight"], q, rtol=0, atol=tol)
        torch.testing.assert_close(sd["blocks.1.attn.v_proj.weight"], v, rtol=0, atol=tol)
        torch.testing.assert_close(
            sd["blocks.1.attn.k_proj.bias"], hf["transformer.h.1.attn.c_attn.bias"][64:128], rtol=0, atol=0
        )
        torch.testing.assert_close(sd["pos_emb.weight"], hf["transformer.wpe.weight"], rtol=0, atol=0)
        with torch.no_grad():
            expected = hf_gpt2(ids_for(c.vocab_size)).logits
        spread = (expected.max() - expected.min()).item()
        atol = 1e-4 if qtype == Q.F32 else 0.05 * spread
        torch.testing.assert_close(our_logits(weights), expected, rtol=1e-4, atol=atol)


class TestBadFiles:
    @pytest.fixture
    def good(self, hf_llama, tiny_tokenizer, tmp_path) -> Path:
        return write_llama_gguf(tmp_path / "good.gguf", hf_llama, tiny_tokenizer, Q.Q8_0)

    def test_unsupported_tensor_type_names_type_and_tensor(self, hf_llama, tiny_tokenizer, tmp_path):
        path = write_llama_gguf(tmp_path / "int.gguf", hf_llama, tiny_tokenizer)
        writer_path = tmp_path / "i32.gguf"
        # Rewrite with one matrix stored as I32, a type no checkpoint uses for weights.
        reader = GGUFReader(path)
        writer = GGUFWriter(str(writer_path), arch="llama")
        for field in reader.fields.values():
            if field.name.startswith(("llama.", "tokenizer.")):
                writer.add_key_value(
                    field.name, field.contents(), field.types[0], field.types[-1] if len(field.types) > 1 else None
                )
        for t in reader.tensors:
            data = np.array(t.data)
            writer.add_tensor(t.name, data.astype(np.int32) if t.name == "blk.0.attn_v.weight" else data)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        with pytest.raises(ModelLoadError, match=r"blk\.0\.attn_v\.weight is stored as I32"):
            load_weights(str(writer_path), cache_dir=tmp_path / "cache")

    def test_unknown_type_number(self, good, tmp_path):
        data = bytearray(good.read_bytes())
        name = b"blk.1.ffn_up.weight"
        at = data.index(name) + len(name) + 4 + 2 * 8  # then n_dims, two dims, and the type
        assert int.from_bytes(data[at : at + 4], "little") == Q.Q8_0
        data[at : at + 4] = (987).to_bytes(4, "little")
        bad = tmp_path / "unknown.gguf"
        bad.write_bytes(bytes(data))
        with pytest.raises(ModelLoadError, match=r"blk\.1\.ffn_up\.weight is stored as type number 987"):
            load_weights(str(bad), cache_dir=tmp_path / "cache")

    @pytest.mark.parametrize("keep", [0.0, 0.0001, 0.01, 0.5, 0.9, 0.9999])
    def test_truncated(self, good, tmp_path, keep):
        data = good.read_bytes()
        cut = tmp_path / "cut.gguf"
        cut.write_bytes(data[: int(len(data) * keep)])
        with pytest.raises(ModelLoadError) as err:
            load_weights(str(cut), cache_dir=tmp_path / "cache")
        assert "\n" not in str(err.value) and "cut.gguf" in str(err.value)

    def test_garbage(self, tmp_path):
        junk = tmp_path / "junk.gguf"
        junk.write_bytes(np.random.default_rng(0).bytes(5000))
        with pytest.raises(ModelLoadError, match="not a GGUF file"):
            load_weights(str(junk), cache_dir=tmp_path / "cache")
        junk.write_bytes(b"GGUF" + np.random.default_rng(1).bytes(5000))
        with pytest.raises(ModelLoadError, match="junk.gguf"):
            load_weights(str(junk), cache_dir=tmp_path / "cache")

    def test_unsupported_architecture(self, tmp_path):
        path = tmp_path / "bert.gguf"
        writer = GGUFWriter(str(path), arch="bert")
        writer.add_tensor("token_embd.weight", np.zeros((8, 32), dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        with pytest.raises(ModelLoadError, match="architecture 'bert' is not supported"):
            load_weights(str(path), cache_dir=tmp_path / "cache")


def test_header_reader_agrees_with_gguf_reader(hf_llama, tiny_tokenizer, tmp_path):
    path = write_llama_gguf(tmp_path / "tiny.gguf", hf_llama, tiny_tokenizer, Q.Q4_1)
    ours, theirs = read_gguf_header(path), GGUFReader(path)
    for name, field in theirs.fields.items():
        if name.startswith("GGUF."):
            continue
        expected = field.contents()
        got = ours.metadata[name]
        assert (list(got) if isinstance(got, np.ndarray) else got) == pytest.approx(expected), name
    assert [(t.name, t.tensor_type, tuple(reversed(t.shape.tolist())), t.data_offset) for t in theirs.tensors] == [
        (i.name, i.type_id, i.shape, i.offset) for i in ours.tensors.values()
    ]


def test_tokenizer_reads_the_written_vocabulary(hf_llama, tiny_tokenizer, tmp_path):
    from llmtui.engine.tokenizer.tokenizer import tokenizer_from_gguf

    path = write_llama_gguf(tmp_path / "tiny.gguf", hf_llama, tiny_tokenizer)
    weights = load_weights(str(path), cache_dir=tmp_path / "cache")
    text = "The capital of France is Paris. Hello world!"
    assert tokenizer_from_gguf(weights.tokenizer_source).encode(text) == tiny_tokenizer.encode(text).ids


class TestDequantizedCache:
    def test_second_load_reads_the_cache(self, hf_llama, tiny_tokenizer, tmp_path):
        path = write_llama_gguf(tmp_path / "tiny.gguf", hf_llama, tiny_tokenizer, Q.Q4_1)
        messages = []
        first = load_weights(str(path), cache_dir=tmp_path / "cache", progress=lambda m, f: messages.append(m))
        entries = list((tmp_path / "cache" / "dequantized").glob("*.safetensors"))
        assert not first.from_cache and len(entries) == 1
        assert any("dequantizing" in m for m in messages)
        messages.clear()
        second = load_weights(str(path), cache_dir=tmp_path / "cache", progress=lambda m, f: messages.append(m))
        assert second.from_cache and second.config == first.config
        assert not any("dequantizing" in m for m in messages)
        for name, w in first.state_dict.items():
            assert torch.equal(second.state_dict[name], w), name

    @pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
    def test_damaged_entry_is_rebuilt(self, damage, hf_llama, tiny_tokenizer, tmp_path):
        path = write_llama_gguf(tmp_path / "tiny.gguf", hf_llama, tiny_tokenizer, Q.Q8_0)
        first = load_weights(str(path), cache_dir=tmp_path / "cache")
        (entry,) = (tmp_path / "cache" / "dequantized").glob("*.safetensors")
        data = bytearray(entry.read_bytes())
        if damage == "flip":
            data[-1000] ^= 0x40  # one bit inside some tensor's data: only the checksums can tell
        elif damage == "truncate":
            del data[len(data) // 2 :]
        else:
            data[:16] = b"\xff" * 16
        entry.write_bytes(bytes(data))
        again = load_weights(str(path), cache_dir=tmp_path / "cache")
        assert not again.from_cache
        for name, w in first.state_dict.items():
            assert torch.equal(again.state_dict[name], w), name
        assert load_weights(str(path), cache_dir=tmp_path / "cache").from_cache  # rebuilt, good again

    def test_changed_source_gets_a_new_entry(self, hf_llama, tiny_tokenizer, tmp_path):
        path = write_llama_gguf(tmp_path / "tiny.gguf", hf_llama, tiny_tokenizer, Q.Q8_0)
        load_weights(str(path), cache_dir=tmp_path / "cache")
        write_llama_gguf(path, hf_llama, tiny_tokenizer, Q.Q4_0)  # same name, new contents
        weights = load_weights(str(path), cache_dir=tmp_path / "cache")
        assert not weights.from_cache
        assert len(list((tmp_path / "cache" / "dequantized").glob("*.safetensors"))) == 1  # the old one is gone

    def test_unwritable_cache_still_loads(self, hf_llama, tiny_tokenizer, tmp_path):
        path = write_llama_gguf(tmp_path / "tiny.gguf", hf_llama, tiny_tokenizer, Q.Q8_0)
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("a file where the cache folder should be")  # mkdir fails, even for root
        for _ in range(2):
            weights = load_weights(str(path), cache_dir=blocker / "cache")
            assert not weights.from_cache and weights.config.n_layer == 2

    def test_float_files_are_not_cached(self, hf_llama, tiny_tokenizer, tmp_path):
        path = write_llama_gguf(tmp_path / "tiny.gguf", hf_llama, tiny_tokenizer, Q.F16)
        load_weights(str(path), cache_dir=tmp_path / "cache")
        assert not (tmp_path / "cache" / "dequantized").exists()


@pytest.mark.default_model
def test_default_model_loads_from_its_gguf(default_model_path):
    weights = load_weights(str(default_model_path))
    c = weights.config
    assert (c.family, c.vocab_size, c.n_layer, c.d_model, c.n_head, c.n_kv_head, c.d_ff) == (
        "llama",
        49152,
        30,
        576,
        9,
        3,
        1536,
    )
    assert (c.rope_theta, c.norm_eps, c.context_length, c.tie_embeddings) == (100000.0, 1e-5, 8192, True)
    Transformer(c).load_state_dict(weights.state_dict, strict=True)
