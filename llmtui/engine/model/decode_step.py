"""Decoding one token in one C++ call (kernels/decode_step.cpp), where the model allows it.

A decoding step of the torch path runs about 4,000 small torch operations (norms, rope,
attention over the cache, activations), each a few microseconds of dispatch for a few
hundred floats: most of a step's time once the weights are packed. The fused step does
the same float32 arithmetic in plain loops, writing the KV cache in place, and calls the
packed matrix-vector kernel for the products; the embedding, the rotary angles and the
unembedding stay in torch (a few small calls a token). A step allocates one tensor, the
logits it returns (the caller keeps them): the stream, the angles, the final norm and the
C++ scratch are buffers of the decoder, reused from step to step.

The KV cache never grows inside a step: the model reserves the positions before it calls
`step` (Transformer.forward), and a generation makes its cache with room for the prompt and
every token it asks for (GenerationSession), so it grows only when a knob or "go on" asks for
more; the decoder then points at the new storage (`_point_at`).

It applies to pre-norm Llama-style models (RMSNorm, RoPE, gated SiLU MLP, optional
biases, grouped-query and sliding-window attention: SmolLM, Llama, Qwen2, Mistral...)
whose linear layers are packed, on the CPU, one sequence, one new token, no capture and
no gradients. Everything else, and every machine without the C++ kernels, takes the
torch path of transformer.py, which gives the same numbers (tests/engine/test_decode_step.py);
`LLMTUI_DECODE=torch` forces that path (a benchmark's peer, a suspected bug).

Each step runs with the setting a `ThreadTuner` chooses from the steps' timings (how many
threads, and whether a waiting thread spins or sleeps: fewer threads, sleeping, when other
processes want the cores); `LLMTUI_THREADS=fixed` keeps torch's count, spinning briefly.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from llmtui.engine.model import packed
from llmtui.engine.model.packed import PackedLinear, PackedWeight
from llmtui.engine.model.thread_tuner import SPIN_US, Setting, ThreadTuner

if TYPE_CHECKING:
    from llmtui.engine.model.kv_cache import KVCache
    from llmtui.engine.model.transformer import Transformer

MAX_PARTS = 4  # decode_step.cpp's MAX_PARTS: stacked parts of one matrix
MAX_ROTARY_DIM = 512  # decode_step.cpp's rope buffer
FUSED = os.environ.get("LLMTUI_DECODE", "").lower() != "torch"  # False: every step takes the torch path
ADAPTIVE = os.environ.get("LLMTUI_THREADS", "").lower() != "fixed"  # False: every step on torch's thread count


class _Matrix(ctypes.Structure):
    _fields_ = [("n_parts", ctypes.c_int32), ("qtype", ctypes.c_int32 * MAX_PARTS),
                ("data", ctypes.c_void_p * MAX_PARTS), ("rows", ctypes.c_int64 * MAX_PARTS), ("bias", ctypes.c_void_p)]


class _Layer(ctypes.Structure):
    _fields_ = [("qkv", _Matrix), ("o", _Matrix), ("gate_up", _Matrix), ("down", _Matrix),
                ("attn_norm", ctypes.c_void_p), ("mlp_norm", ctypes.c_void_p), ("window", ctypes.c_int64),
                ("k_cache", ctypes.c_void_p), ("v_cache", ctypes.c_void_p)]


class _Dims(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int64) for name in
                ("d_model", "n_head", "n_kv_head", "head_dim", "d_ff", "rotary_dim", "room")] + \
               [("eps", ctypes.c_float), ("scale", ctypes.c_float)]


def why_not_fused(model: Transformer) -> str | None:
    """Why this model's decoding steps can't run fused (None: they can, once the C++ kernels are built)."""
    if not FUSED:
        return "LLMTUI_DECODE=torch"
    c = model.config
    shape = {"RMSNorm": c.norm == "rmsnorm" and not c.norm_offset, "pre-norm": c.pre_norm and not c.post_norm,
             "sequential residual": not c.parallel_residual, "gated SiLU MLP": c.mlp == "gated" and c.activation == "silu",
             "RoPE": c.positions == "rope" and c.rotary_dim <= MAX_ROTARY_DIM,
             "no q/k norm": c.qk_norm == "none", "no soft-capped scores": not c.attn_softcap}
    missing = [name for name, ok in shape.items() if not ok]
    if missing:
        return "needs " + ", ".join(missing)
    for block in model.blocks:
        for layer in (block.attn.qkv, block.attn.o_proj, block.mlp.gate_up, block.mlp.down):
            if not isinstance(layer, PackedLinear) or len(layer.parts) > MAX_PARTS:
                return "needs every linear layer packed"
    if model.final_norm.weight.device.type != "cpu":
        return "runs on the CPU only"
    return None


def _matrix(layer: PackedLinear) -> _Matrix:
    m = _Matrix(n_parts=len(layer.parts), bias=None if layer.bias is None else layer.bias.data_ptr())
    for i, part in enumerate(layer.parts):
        m.qtype[i], m.data[i], m.rows[i] = part.qtype, part.data.data_ptr(), part.rows
    return m


class _Angles:
    """cos and sin of one position for one Rotary, written into buffers made once (the same float32
    operations as Rotary.forward, over a row of the same length, so the same bits)."""

    def __init__(self, rotary: nn.Module) -> None:
        self.rotary = rotary
        rd = 2 * rotary.inv_freq.shape[0]
        self.angles = torch.empty(rd, dtype=torch.float32)
        self._low, self._high = self.angles[: rd // 2], self.angles[rd // 2 :]  # views made once, not per step
        self.cos, self.sin = torch.empty(rd, dtype=torch.float32), torch.empty(rd, dtype=torch.float32)
        # Operands as tensors made once: torch wraps a Python number in a new tensor at every call.
        self._pos = torch.empty(1, dtype=torch.float32)
        self._factor = torch.tensor(rotary.attention_factor, dtype=torch.float32)

    def at(self, pos: int) -> None:
        self._pos.fill_(pos)
        torch.mul(self._pos, self.rotary.frequencies(pos, 1), out=self._low)  # Rotary.forward's outer(t, inv_freq)
        self._high.copy_(self._low)
        torch.cos(self.angles, out=self.cos)
        torch.sin(self.angles, out=self.sin)
        if self.rotary.attention_factor != 1.0:
            self.cos.mul_(self._factor)
            self.sin.mul_(self._factor)


class FusedDecoder:
    """The ctypes structures describing one model's layers, built once; `step` runs one token."""

    def __init__(self, model: Transformer) -> None:
        c = model.config
        self.modules = [m for b in model.blocks for m in (b.attn_norm.weight, b.mlp_norm.weight, b.attn.qkv,
                                                          b.attn.o_proj, b.mlp.gate_up, b.mlp.down)]
        self.dims = _Dims(d_model=c.d_model, n_head=c.n_head, n_kv_head=c.n_kv_head, head_dim=c.head_dim,
                          d_ff=c.d_ff, rotary_dim=c.rotary_dim, room=0, eps=c.norm_eps,
                          scale=model.blocks[0].attn.scale)
        self.layers = (_Layer * c.n_layer)(*(
            _Layer(qkv=_matrix(b.attn.qkv), o=_matrix(b.attn.o_proj), gate_up=_matrix(b.mlp.gate_up),
                   down=_matrix(b.mlp.down), attn_norm=b.attn_norm.weight.data_ptr(),
                   mlp_norm=b.mlp_norm.weight.data_ptr(), window=b.attn.window)
            for b in model.blocks))
        self._cache: weakref.ref[KVCache] | None = None
        self._cache_key: tuple[int, ...] = ()
        self._scratch = torch.empty(0)
        self._lock = threading.Lock()  # the structures and buffers serve one cache at a time: one step at a time
        self._x = torch.empty(c.d_model, dtype=torch.float32)  # the stream, updated in place by every layer
        self._ids = torch.empty(1, dtype=torch.int64)
        self._embed_scale = torch.tensor(c.embed_scale, dtype=torch.float32)  # made once (see _Angles)
        self._normed = torch.empty(c.d_model, dtype=torch.float32)  # after the final norm: the unembedding's input
        self._angles = _Angles(model.rotary)
        self._local_angles = _Angles(model.local_rotary) if model.local_rotary is not None else self._angles
        self.tuner = ThreadTuner(torch.get_num_threads())  # how many threads run each step (thread_tuner.py)

    def describes(self, model: Transformer) -> bool:
        """Whether the structures still point at this model's weights (training swaps layers, then puts them back)."""
        now = (m for b in model.blocks for m in (b.attn_norm.weight, b.mlp_norm.weight, b.attn.qkv, b.attn.o_proj,
                                                 b.mlp.gate_up, b.mlp.down))
        return all(a is b for a, b in zip(self.modules, now))

    def _point_at(self, cache: KVCache, lib: ctypes.CDLL) -> None:
        """Point the layers at the cache's storage; done again only when the cache or its room changes."""
        # The cache itself (weakly: a new cache may get a freed one's id) and its room: its tensors change only
        # when it grows, which changes its room.
        # The thread count too: each thread has its own part of the scratch. OpenMP's count on this thread may
        # differ from torch's (torch sets it on the thread that called set_num_threads): room for the larger, or
        # for every core (a few hundred floats a thread); the C++ step uses no more threads than it has room for.
        threads = max(torch.get_num_threads(), os.cpu_count() or 1)
        key = (cache.capacity, cache.k[0].data_ptr(), threads)
        if self._cache is not None and self._cache() is cache and key == self._cache_key:
            return
        for layer, k, v in zip(self.layers, cache.k, cache.v):
            layer.k_cache, layer.v_cache = k.data_ptr(), v.data_ptr()
        self.dims.room = cache.capacity
        need = lib.llmtui_decode_scratch(ctypes.byref(self.dims), threads)
        if self._scratch.numel() < need:
            self._scratch = torch.empty(need, dtype=torch.float32)
        self._cache, self._cache_key = weakref.ref(cache), key

    def _embed(self, model: Transformer, ids: Tensor, lib: ctypes.CDLL) -> None:
        """The token's embedding into self._x (model.embed's values: a RoPE model has no position table)."""
        self._ids.copy_(ids.reshape(1))
        table = model.tok_emb
        if isinstance(table, PackedWeight):
            part = table.parts[0]
            rc = lib.llmtui_dequantize(part.qtype, part.data.data_ptr(), part.columns, self._ids.data_ptr(), 1,
                                       self._x.data_ptr())
            if rc != 0:
                raise RuntimeError(f"the fused decoding step's embedding failed (code {rc})")
        elif isinstance(table, nn.Embedding) and table.weight.dtype == torch.float32:
            torch.index_select(table.weight, 0, self._ids, out=self._x.view(1, -1))
        else:  # another kind of table (a precision mode's): its own lookup, allocating
            self._x.copy_(table(self._ids).reshape(-1))
        if model.config.embed_scale != 1.0:
            self._x.mul_(self._embed_scale)

    def _unembed(self, model: Transformer, lib: ctypes.CDLL, threads: int) -> Tensor:
        """Logits (1, 1, V) of self._normed: the one tensor a step allocates (the caller keeps it)."""
        head = model.tok_emb if model.lm_head is None else model.lm_head
        vocab = model.config.vocab_size
        logits = torch.empty(1, 1, vocab, dtype=torch.float32)
        if isinstance(head, PackedWeight):
            row = 0
            for part in head.parts:
                rc = lib.llmtui_unembed(part.qtype, self._normed.data_ptr(), head.in_features, part.data.data_ptr(),
                                        part.rows, logits.data_ptr() + 4 * row, threads)
                if rc != 0:
                    raise RuntimeError(f"the fused decoding step's unembedding failed (code {rc})")
                row += part.rows
        elif hasattr(head, "linear"):  # another kind of packed head (a precision mode's): its own product
            logits.copy_(head.linear(self._normed).view(1, 1, -1))
        else:
            torch.mv(model.unembedding, self._normed, out=logits.view(-1))
        cap = model.config.final_softcap
        if cap:
            logits.div_(cap).tanh_().mul_(cap)
        return logits

    def step(self, model: Transformer, ids: Tensor, cache: KVCache) -> Tensor:
        """Logits (1, 1, V) of the token ids (1, 1) at position cache.length; its keys and values join the cache.

        It runs on as many threads as the tuner says, at most torch's count (which it never changes)."""
        lib, past = packed.KERNELS.lib, cache.length
        with self._lock:
            most = torch.get_num_threads()
            if self.tuner.most != most:  # the user changed torch's count: choose anew up to it
                self.tuner = ThreadTuner(most)
            # passed to the C++ step and the unembedding: torch's own count (and MKL's) stay as they are
            setting = self.tuner.setting() if ADAPTIVE else Setting(most, SPIN_US)
            started = time.perf_counter()
            logits = self._step(model, ids, cache, lib, past, setting)
            self.tuner.record(setting, time.perf_counter() - started)
            return logits

    def _step(self, model: Transformer, ids: Tensor, cache: KVCache, lib: ctypes.CDLL, past: int,
              setting: Setting) -> Tensor:
        self._embed(model, ids, lib)
        self._angles.at(past)
        if self._local_angles is not self._angles:
            self._local_angles.at(past)
        self._point_at(cache, lib)
        a, local = self._angles, self._local_angles
        rc = lib.llmtui_decode_step(ctypes.byref(self.dims), self.layers, len(self.layers), self._x.data_ptr(),
                                    a.cos.data_ptr(), a.sin.data_ptr(), local.cos.data_ptr(), local.sin.data_ptr(),
                                    past, model.final_norm.weight.data_ptr(), self._normed.data_ptr(),
                                    self._scratch.data_ptr(), self._scratch.numel(), setting.spin_us,
                                    setting.threads)
        if rc != 0:  # the cache's length did not move: the keys half written past it are never read
            raise RuntimeError(f"the fused decoding step failed (code {rc})")
        cache.advance(1)
        return self._unembed(model, lib, setting.threads)


def fused_decoder(model: Transformer, cache: KVCache) -> FusedDecoder | None:
    """The model's fused decoder when this step can take it (see the module's docstring), else None."""
    lib = packed.KERNELS.lib
    if not FUSED or lib is None or cache.k[0].shape[0] != 1 or cache.k[0].dtype != torch.float32 or torch.is_grad_enabled():
        return None
    decoder = model.__dict__.get("_fused_decoder")
    if decoder is None or not decoder.describes(model):
        if why_not_fused(model) is not None:
            return None
        decoder = model.__dict__["_fused_decoder"] = FusedDecoder(model)
    return decoder
