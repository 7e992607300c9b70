"""The fused decoding step (model/decode_step.py, kernels/decode_step.cpp): the same probabilities as
float32 dequantized weights, on every shape it takes, and the torch path wherever it doesn't apply.

Each model here is a random one whose linear layers are quantized to GGUF blocks: the packed
model runs fused, its float32 twin (the dequantized values) runs the torch path, and their
next-token probabilities are compared over many greedy steps.
"""

from __future__ import annotations

import ctypes

import pytest
import torch
from gguf import GGMLQuantizationType as Q
from gguf.quants import dequantize, quantize
from torch import nn

from llmtui.engine.kernels import native
from llmtui.engine.model import decode_step, packed as packed_module
from llmtui.engine.model.config import ModelConfig, RopeScaling
from llmtui.engine.model.decode_step import FusedDecoder, why_not_fused
from llmtui.engine.model.packed import PackedLinear, PackedMatrix
from llmtui.engine.model.transformer import RMSNorm, Transformer

BOUND = 1e-5  # the bound on probabilities against float32 dequantized weights


@pytest.fixture(scope="module")
def built_kernels() -> native.NativeKernels:
    if native.find_compiler() is None:
        pytest.skip("no C++ compiler on this machine: the torch path is what runs (tested in test_packed.py)")
    kernels = native.NativeKernels()
    assert kernels.wait().name == "native"
    return kernels


@pytest.fixture
def fused_steps(built_kernels, monkeypatch) -> list[int]:
    """Use the built kernels; the list counts the fused steps taken (a test checks the path it meant to test)."""
    monkeypatch.setattr(packed_module, "KERNELS", built_kernels)
    taken: list[int] = []
    step = FusedDecoder.step

    def counted(self, model, ids, cache):
        taken.append(cache.length)
        return step(self, model, ids, cache)

    monkeypatch.setattr(FusedDecoder, "step", counted)
    return taken


def _packed_parts(weight: torch.Tensor, qtypes: list[Q]) -> tuple[list[PackedMatrix], torch.Tensor]:
    """The weight's rows split in len(qtypes) runs, each quantized to its type; and the dequantized weight."""
    parts, values = [], []
    for rows, qtype in zip(weight.chunk(len(qtypes)), qtypes):
        raw = quantize(rows.numpy(), qtype)
        parts.append(PackedMatrix(int(qtype), torch.from_numpy(raw), weight.shape[1]))
        values.append(torch.from_numpy(dequantize(raw, qtype)))
    return parts, torch.cat(values)


def packed_twins(config: ModelConfig, qtypes: list[Q], seed: int = 0) -> tuple[Transformer, Transformer]:
    """(float32 model, packed model): every block's linear layer quantized, the float model holding the exact
    dequantized values. The unembedding is sharpened: random weights give nearly flat distributions."""
    torch.manual_seed(seed)
    reference = Transformer(config).eval()
    with torch.no_grad():
        for p in reference.parameters():
            p.normal_(0, 0.15 if p.ndim > 1 else 0.05)
        for norm in (m for m in reference.modules() if isinstance(m, RMSNorm)):
            norm.weight.add_(1.0)
        reference.unembedding.mul_(4.0)
    model = Transformer(config).eval()
    model.load_state_dict(reference.state_dict())
    for block, twin in zip(reference.blocks, model.blocks):
        for name in ("attn.qkv", "attn.o_proj", "mlp.gate_up", "mlp.down"):
            holder, attr = name.split(".")
            linear: nn.Linear = getattr(getattr(block, holder), attr)
            parts, values = _packed_parts(linear.weight.detach(), qtypes)
            with torch.no_grad():
                linear.weight.copy_(values)
            bias = None if linear.bias is None else linear.bias.detach().clone()
            setattr(getattr(twin, holder), attr, PackedLinear(parts, bias))
    return reference, model


def greedy_gap(reference: Transformer, model: Transformer, prompt: list[int], steps: int, *,
               initial: int | None = None, max_len: int | None = None) -> float:
    """Prefill then `steps` greedy tokens on both models: the same tokens; returns the largest probability gap."""
    worst = 0.0
    with torch.inference_mode():
        caches = [m.new_cache(max_len, initial=initial or len(prompt) + steps) for m in (reference, model)]
        x = torch.tensor([prompt])
        for _ in range(steps):
            probs = [m(x, c, last_only=True).logits[0, -1].softmax(-1) for m, c in zip((reference, model), caches)]
            worst = max(worst, (probs[1] - probs[0]).abs().max().item())
            assert probs[1].argmax() == probs[0].argmax()
            x = probs[0].argmax().view(1, 1)
    return worst


def tiny(family: str = "llama", **fields) -> ModelConfig:
    base = dict(vocab_size=96, n_layer=3, n_head=4, n_kv_head=2, d_model=64, d_ff=128, context_length=512,
                rope_theta=10000.0)
    return ModelConfig(family=family, **{**base, **fields})


SHAPES = {
    "llama, grouped-query": tiny(),
    "qwen2, q/k/v biases": tiny("qwen2"),
    "mistral, sliding window": tiny("mistral", sliding_window=8),
    "alternating windows, local RoPE base": tiny(sliding_window=6, sliding_layers=(True, False, True),
                                                 rope_local_theta=500.0),
    "partial rotary, all biases": tiny(rotary_dim=8, bias=True),
    "multi-head, YaRN (scaled cos/sin)": tiny(n_kv_head=4, rope_scaling=RopeScaling(kind="yarn", factor=4.0,
                                                                                   original_context=128)),
}


@pytest.fixture(params=[(1, 0), (2, 0), (2, 50)], ids=["1 thread", "2 threads sleeping", "2 threads spinning"])
def threads(request, monkeypatch) -> int:
    """torch's (and so OpenMP's) thread count for the test, fixed (no tuner), and how long a thread spins at a
    meeting before it sleeps; the fused step splits rows and heads among the threads."""
    from llmtui.engine.model import decode_step

    count, spin_us = request.param
    monkeypatch.setattr(decode_step, "ADAPTIVE", False)
    monkeypatch.setattr(decode_step, "SPIN_US", spin_us)
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    yield count
    torch.set_num_threads(before)


@pytest.mark.parametrize("config", SHAPES.values(), ids=SHAPES.keys())
def test_fused_steps_give_float32_probabilities(config, fused_steps, threads):
    reference, model = packed_twins(config, [Q.Q8_0])
    assert why_not_fused(model) is None
    assert greedy_gap(reference, model, list(range(3, 23)), steps=128) < BOUND
    assert len(fused_steps) == 127  # every step after the prefill


@pytest.mark.parametrize("qtypes", [[Q.Q4_1], [Q.Q4_0], [Q.Q8_0, Q.Q4_1]], ids=["Q4_1", "Q4_0", "Q8_0+Q4_1 parts"])
def test_block_types_and_stacked_parts(qtypes, fused_steps, threads):
    reference, model = packed_twins(tiny(), qtypes)
    assert greedy_gap(reference, model, [5, 6, 7], steps=40) < BOUND
    assert fused_steps


def test_long_prompt_past_the_window(fused_steps, threads):
    reference, model = packed_twins(tiny("mistral", sliding_window=16), [Q.Q8_0], seed=1)
    assert greedy_gap(reference, model, [int(i) for i in torch.randint(3, 96, (300,))], steps=40) < BOUND
    assert fused_steps[0] == 300


def test_cache_that_grows_mid_decode(fused_steps):
    """A cache made with room for 4 positions doubles while decoding: the fused step follows its new storage."""
    reference, model = packed_twins(tiny(), [Q.Q8_0])
    assert greedy_gap(reference, model, [1, 2], steps=60, initial=4) < BOUND
    assert len(fused_steps) == 59


def test_rewind_and_two_interleaved_caches(fused_steps):
    """Two generations of one model take turns (two caches), and one rewinds: each equals a fresh run."""
    _, model = packed_twins(tiny(), [Q.Q8_0])

    def fresh(ids: list[int]) -> torch.Tensor:
        return model(torch.tensor([ids]), last_only=True).logits[0, -1]  # one pass, no cache: the torch path

    with torch.inference_mode():
        a, b = model.new_cache(), model.new_cache()
        model(torch.tensor([[1, 2, 3]]), a)
        model(torch.tensor([[4, 5]]), b)
        seq_a, seq_b = [1, 2, 3], [4, 5]
        for t in range(10):
            seq_a.append(t + 10)
            seq_b.append(t + 30)
            la = model(torch.tensor([[seq_a[-1]]]), a, last_only=True).logits[0, -1]
            lb = model(torch.tensor([[seq_b[-1]]]), b, last_only=True).logits[0, -1]
            torch.testing.assert_close(la, fresh(seq_a), rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(lb, fresh(seq_b), rtol=1e-4, atol=1e-4)
        a.truncate(5)  # a fork: back to 5 positions, then another token there
        seq_a = seq_a[:5] + [77]
        la = model(torch.tensor([[77]]), a, last_only=True).logits[0, -1]
        torch.testing.assert_close(la, fresh(seq_a), rtol=1e-4, atol=1e-4)
    assert len(fused_steps) == 21


def test_full_cache_is_refused_and_left_as_it_was(fused_steps):
    _, model = packed_twins(tiny(), [Q.Q8_0])
    with torch.inference_mode():
        cache = model.new_cache(max_len=6)
        model(torch.tensor([[1, 2, 3, 4, 5]]), cache)
        model(torch.tensor([[6]]), cache)
        assert cache.length == 6 and len(fused_steps) == 1
        with pytest.raises(ValueError, match="exceed the KV cache's 6 positions"):
            model(torch.tensor([[7]]), cache)
        assert cache.length == 6
        with pytest.raises(ValueError, match="room for 6"):
            cache.advance(1)


def test_capture_gradients_and_missing_kernels_take_the_torch_path(fused_steps, monkeypatch):
    reference, model = packed_twins(tiny(), [Q.Q8_0])
    ids = torch.tensor([[1, 2, 3]])
    with torch.inference_mode():
        cache = model.new_cache()
        model(ids, cache)
        out = model(torch.tensor([[4]]), cache, capture={"attn_weights"})
        assert out.attentions[0] is not None and not fused_steps
    cache = model.new_cache()
    model(ids, cache)
    model(torch.tensor([[4]]), cache)  # gradients on (training): torch
    assert not fused_steps
    monkeypatch.setattr(packed_module, "KERNELS", native.NativeKernels())  # not built: lib is None
    with torch.inference_mode():
        assert greedy_gap(reference, model, [1, 2, 3], steps=8) < BOUND
    assert not fused_steps


def test_env_var_forces_the_torch_step(fused_steps, monkeypatch):
    reference, model = packed_twins(tiny(), [Q.Q8_0])
    monkeypatch.setattr(decode_step, "FUSED", False)  # as LLMTUI_DECODE=torch sets it at import
    assert why_not_fused(model) == "LLMTUI_DECODE=torch"
    assert greedy_gap(reference, model, [1, 2], steps=4) < BOUND
    assert not fused_steps


def test_shapes_it_does_not_take_say_why():
    assert why_not_fused(Transformer(tiny())) == "needs every linear layer packed"
    assert why_not_fused(Transformer(tiny("gpt2"))) == "needs RMSNorm, gated SiLU MLP, RoPE"
    assert "gated SiLU MLP" in why_not_fused(Transformer(tiny("gemma2")))
    assert why_not_fused(Transformer(tiny("qwen3"))) == "needs no q/k norm"


def test_a_swapped_layer_is_noticed(fused_steps):
    """Training swaps packed layers for float ones, reset puts them back: the fused step follows."""
    reference, model = packed_twins(tiny(), [Q.Q8_0])
    assert greedy_gap(reference, model, [1, 2], steps=4) < BOUND
    packed_qkv = model.blocks[1].attn.qkv
    model.blocks[1].attn.qkv = reference.blocks[1].attn.qkv
    taken = len(fused_steps)
    assert greedy_gap(reference, model, [1, 2], steps=4) < BOUND
    assert len(fused_steps) == taken  # a float layer: the torch path
    model.blocks[1].attn.qkv = packed_qkv
    assert greedy_gap(reference, model, [1, 2], steps=4) < BOUND
    assert len(fused_steps) == taken + 3


def test_structures_match_the_cpp_sizes(built_kernels):
    """The ctypes layout and the C++ one agree: scratch size computed by C++ from a ctypes-filled struct (shared
    buffers, then the normed stream, a query and a key for each thread)."""
    dims = decode_step._Dims(d_model=64, n_head=4, n_kv_head=2, head_dim=16, d_ff=128, rotary_dim=16, room=10,
                             eps=1e-5, scale=0.25)
    shared = 64 + (4 + 4) * 16 + 4 * 16 + 3 * 128 + 4 * 10
    for threads in (1, 2, 3):
        assert built_kernels.lib.llmtui_decode_scratch(ctypes.byref(dims), threads) == shared + threads * (64 + 2 * 16)


def test_generation_session_forks_on_the_fused_step(fused_steps, tiny_lm):
    """A session (prefill, greedy steps, a fork that rewinds the cache, steps again) gives the float32 model's tokens
    and probabilities."""
    from llmtui.engine.generation import GenerationSession
    from llmtui.engine.lm import LanguageModel
    from llmtui.engine.sampling import SamplingSettings

    reference, model = packed_twins(tiny(vocab_size=tiny_lm.config.vocab_size), [Q.Q8_0])
    sessions = [GenerationSession(LanguageModel("t", "t", m, tiny_lm.tokenizer, torch.device("cpu")), [5, 6, 7],
                                  SamplingSettings(temperature=0, max_new_tokens=40), stop_ids=[])
                for m in (reference, model)]
    for session in sessions:
        for _ in range(20):
            session.step()
        session.fork(8, 11)
        while session.step():
            pass
    ours, theirs = sessions[1].steps, sessions[0].steps
    assert [s.token_id for s in ours] == [s.token_id for s in theirs] and len(ours) == 40
    assert max(abs(a.raw_prob - b.raw_prob) for a, b in zip(ours, theirs)) < BOUND
    assert len(fused_steps) >= 38  # all but the prefill and the fork's refeed


def test_thread_count_changing_between_steps_gives_the_same_bits(fused_steps):
    """Rows and heads split among 1, 2 or 3 threads give the very logits one thread gives, step after step, with
    the count changed mid-generation (each thread has its own scratch: the decoder makes room for more)."""
    _, model = packed_twins(tiny("mistral", sliding_window=8), [Q.Q8_0, Q.Q4_1])
    before = torch.get_num_threads()
    try:
        runs = []
        for counts in ([1], [2, 1, 3]):
            with torch.inference_mode():
                cache = model.new_cache(initial=40)
                model(torch.tensor([[3, 4, 5]]), cache)
                got = []
                for t in range(30):
                    torch.set_num_threads(counts[t % len(counts)])
                    got.append(model(torch.tensor([[10 + t]]), cache, last_only=True).logits)
            runs.append(torch.cat(got))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(runs[0], runs[1])
    assert len(fused_steps) == 60


def _allocations(steps) -> list[int]:
    """Bytes of each tensor allocation torch's allocator makes while `steps()` runs (the innermost op that made it)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        steps()
    return [e.cpu_memory_usage for e in prof.events() if e.cpu_memory_usage > 0
            and not any(c.cpu_memory_usage > 0 for c in e.cpu_children)]


@pytest.mark.parametrize("config", [tiny(), tiny(sliding_window=6, sliding_layers=(True, False, True),
                                                  rope_local_theta=500.0, rope_scaling=RopeScaling(
                                                      kind="yarn", factor=4.0, original_context=128))],
                         ids=["llama", "local RoPE base, YaRN"])
def test_a_step_allocates_only_the_logits_it_returns(config, fused_steps):
    """20 fused steps make 20 allocations, each the (1, 1, V) logits handed to the caller: the stream, the angles,
    the final norm and the scratch are the decoder's buffers, reused."""
    _, model = packed_twins(config, [Q.Q8_0])
    with torch.inference_mode():
        cache = model.new_cache(initial=64)
        model(torch.tensor([[1, 2, 3]]), cache)
        model(torch.tensor([[4]]), cache)  # the first step makes the buffers
        ids = torch.tensor([[5]])
        assert _allocations(lambda: [model(ids, cache, last_only=True) for _ in range(20)]) == [4 * 96] * 20
    assert len(fused_steps) == 21


@pytest.mark.parametrize("scaling", [None, RopeScaling(kind="yarn", factor=4.0, original_context=128),
                                     RopeScaling(kind="longrope", factor=4.0, original_context=64,
                                                 short_factor=(1.0,) * 12, long_factor=(2.0,) * 12)],
                         ids=["plain", "YaRN", "longrope"])
def test_angles_written_in_place_are_rotary_bits(scaling):
    """The decoder's reused cos/sin rows are Rotary.forward's, bit for bit, at every position (longrope's switch
    to its long factors included; rotary_dim 24: lengths where torch mixes vector and scalar loops)."""
    model = Transformer(tiny(n_head=2, n_kv_head=2, rotary_dim=24, rope_scaling=scaling))  # head_dim 32
    angles = decode_step._Angles(model.rotary)
    for pos in (0, 1, 7, 63, 64, 65, 300):
        cos, sin = model.rotary(pos, 1)
        angles.at(pos)
        assert torch.equal(angles.cos, cos[0]) and torch.equal(angles.sin, sin[0])


def test_a_generation_never_moves_its_cache(fused_steps, tiny_lm):
    """A session makes room for its prompt and every token it asks for up front: the fused steps write into the
    same storage from the first token to the last (no doubling, no copy mid-generation)."""
    from llmtui.engine.generation import GenerationSession
    from llmtui.engine.lm import LanguageModel
    from llmtui.engine.sampling import SamplingSettings

    _, model = packed_twins(tiny(vocab_size=tiny_lm.config.vocab_size), [Q.Q8_0])
    session = GenerationSession(LanguageModel("t", "t", model, tiny_lm.tokenizer, torch.device("cpu")), [5, 6, 7],
                                SamplingSettings(temperature=0, max_new_tokens=300), stop_ids=[])
    storage = set()
    while session.step():
        storage.add(session.kv_cache.k[0].data_ptr())
    assert len(session.steps) == 300 and len(storage) == 1
    assert len(fused_steps) == 299
