"""The faster precisions (--precision bf16|int8|int4): they load, generate, stay near exact, and say what they are.

The gap from exact is measured on tests/conftest.py's tiny_lm, a tiny random Llama whose unembedding
is sharpened (random weights give nearly flat distributions, where any mode looks close), along
the exact model's own greedy text, with the decoding path (one row at a time).
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from gguf import GGMLQuantizationType as Q

from gguf_writer import write_llama_gguf
from test_gguf import hf_llama  # noqa: F401 (a fixture found by name)

from llmtui import cli
from llmtui.engine.generation import GenerationSession
from llmtui.engine.lm import LanguageModel
from llmtui.engine.model import precision
from llmtui.engine.model.packed import PackedLinear
from llmtui.engine.model.transformer import Transformer
from llmtui.engine.precision_names import PRECISIONS, PrecisionError, check_precision
from llmtui.engine.settings import SamplingSettings

FAST = [p for p in PRECISIONS if p != "exact"]
# Along 24 greedy steps of the sharpened tiny model (64-wide rows, so rounding shows more than in real
# models; the default model's figures are in the README): the worst |p - p_exact| over every token
# (measured 0.025, 0.039, 0.43) and the share of steps whose top-1 token is exact's (0.96, 0.96, 0.64).
BOUND = {"bf16": 0.05, "int8": 0.06, "int4": 0.6}
AGREE = {"bf16": 0.9, "int8": 0.9, "int4": 0.5}


def _decode_probs(model: Transformer, ids: list[int], continuation: list[int]) -> torch.Tensor:
    """(len(continuation) + 1, V): next-token probabilities after the prompt, then after each given token."""
    with torch.inference_mode():
        cache = model.new_cache()
        rows = [model(torch.tensor([ids]), cache, last_only=True).logits[0, -1]]
        for token in continuation:
            rows.append(model(torch.tensor([[token]]), cache, last_only=True).logits[0, -1])
    return torch.stack(rows).float().softmax(-1)


def _greedy(model: Transformer, ids: list[int], steps: int) -> list[int]:
    out: list[int] = []
    with torch.inference_mode():
        cache, x = model.new_cache(), torch.tensor([ids])
        for _ in range(steps):
            out.append(int(model(x, cache, last_only=True).logits[0, -1].argmax()))
            x = torch.tensor([[out[-1]]])
    return out


def _gap(exact: Transformer, model: Transformer, ids: list[int], steps: int = 24) -> tuple[float, float]:
    """(worst |p - p_exact|, share of positions whose top-1 token is exact's) along exact's greedy text."""
    continuation = _greedy(exact, ids, steps)
    p_exact, p = _decode_probs(exact, ids, continuation), _decode_probs(model, ids, continuation)
    return (p - p_exact).abs().max().item(), (p.argmax(-1) == p_exact.argmax(-1)).float().mean().item()


@pytest.mark.parametrize("mode", FAST)
def test_mode_stays_within_its_bound_of_exact(mode, tiny_lm):
    model = copy.deepcopy(tiny_lm.model)  # its unembedding sharpened (conftest.py)
    swapped, kept = precision.apply_precision(model, mode)
    assert (swapped, kept) == (2 * 4 + 1, 0)  # qkv, o, gate_up, down per layer, and the untied lm_head
    assert not any(isinstance(m, torch.nn.Linear) for m in model.modules())
    ids = tiny_lm.prompt_ids("def main(): return 42")
    worst, agree = _gap(tiny_lm.model, model, ids)
    assert 0 < worst < BOUND[mode]  # > 0: the mode really computes differently
    assert agree >= AGREE[mode]


@pytest.mark.parametrize("mode", FAST)
@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_packed_gguf_model_in_each_mode(mode, tie, hf_llama, tiny_tokenizer, tmp_path):
    """Packed GGUF layers are swapped too; a tied embedding keeps its exact lookup, its unembedding is the mode's."""
    path = write_llama_gguf(tmp_path / "m.gguf", hf_llama, tiny_tokenizer, Q.Q4_1, tie=tie)
    exact, fast = LanguageModel.load(str(path)), LanguageModel.load(str(path), precision=mode)
    assert fast.precision == mode and fast.notes == exact.notes
    assert not any(isinstance(m, PackedLinear) for m in fast.model.modules())
    ids = exact.prompt_ids("hello world")
    torch.testing.assert_close(fast.model.embed(torch.tensor([ids])), exact.model.embed(torch.tensor([ids])))
    worst, agree = _gap(exact.model, fast.model, ids, steps=8)
    assert 0 < worst < BOUND[mode] and agree >= AGREE[mode]  # flat distributions here: measured 5e-5 to 2e-4


@pytest.mark.parametrize("mode", FAST)
def test_mode_generates_and_says_what_it_is(mode, tiny_hf_llama_dir):
    lm = LanguageModel.load(str(tiny_hf_llama_dir), precision=mode)
    session = GenerationSession(lm, lm.prompt_ids("Hello"), SamplingSettings(temperature=0, max_new_tokens=6), top_n=3)
    list(session)
    assert len(session.steps) == 6 or session.finish_reason == "stop"
    assert all(0 <= c.raw_prob <= 1 for s in session.steps for c in s.candidates)
    assert lm.compute["precision"] == mode and "not exact" in lm.compute["probabilities"]
    assert lm.compute_label == f"{mode}, p not exact"


def test_rounded_weights_are_what_the_kernels_multiply_by():
    torch.manual_seed(0)
    weight, x = torch.randn(48, 96), torch.randn(3, 96)
    for mode, layer in precision._LAYERS.items():
        rounded = layer(weight, None)
        assert 0 < (rounded.weight - weight).abs().max() < {"bf16": 0.02, "int8": 0.03, "int4": 0.4}[mode]
        reference = x.bfloat16().float() @ rounded.weight.T  # bfloat16 input, the rounded weights, then bfloat16 out
        torch.testing.assert_close(rounded(x), reference, atol=0.1, rtol=0.02)


def test_int4_leaves_shapes_its_kernel_cannot_take_exact():
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Linear(40, 32), torch.nn.Linear(64, 24))
    assert precision.apply_precision(model, "int4") == (1, 2)
    assert isinstance(model[0], precision.Int4Linear) and type(model[1]) is type(model[2]) is torch.nn.Linear


def test_unknown_precision_is_one_line():
    assert check_precision(" INT8 ") == "int8"
    with pytest.raises(PrecisionError, match=r"^unknown precision 'fp8\\n': use one of exact, bf16, int8, int4$"):
        check_precision("fp8\n")


def test_cli_refuses_an_unknown_precision_before_loading(capsys, monkeypatch):
    monkeypatch.setattr(LanguageModel, "load", lambda *a, **k: pytest.fail("loaded a model"))
    assert cli.main(["generate", "hi", "--precision", "int3"]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert err == "llmtui: error: unknown precision 'int3': use one of exact, bf16, int8, int4\n"


def test_generate_json_says_the_precision(capsys, tiny_hf_llama_dir):
    code = cli.main(["generate", "Hello", "--model", str(tiny_hf_llama_dir), "--precision", "int8", "--json",
                     "--temperature", "0", "--max-new-tokens", "3"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["compute"]["precision"] == "int8" and "not exact" in out["compute"]["probabilities"]


def test_a_mode_that_cannot_run_says_so_and_runs_exact(tiny_hf_llama_dir, monkeypatch):
    def missing(self, x):
        raise RuntimeError("aten::_weight_int4pack_mm_for_cpu: not built\nsecond line")

    monkeypatch.setattr(precision.Int4Linear, "product", missing)
    lm = LanguageModel.load(str(tiny_hf_llama_dir), precision="int4")
    assert lm.precision == "exact" and lm.compute["precision"] == "exact"
    assert lm.notes == ("--precision int4 is not available in this torch build "
                        "(aten::_weight_int4pack_mm_for_cpu: not built); running exact",)
    assert precision.unavailable("int8", torch.device("cuda")).startswith("--precision int8 uses torch's CPU kernels")
    assert precision.unavailable("exact", torch.device("cuda")) is None


@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_parameter_count_is_the_models_in_every_mode(tie, hf_llama, tiny_tokenizer, tmp_path):
    path = write_llama_gguf(tmp_path / "m.gguf", hf_llama, tiny_tokenizer, Q.Q8_0, tie=tie)
    counts = {mode: LanguageModel.load(str(path), precision=mode).n_params for mode in PRECISIONS}
    assert len(set(counts.values())) == 1, counts


def test_training_a_model_in_a_mode_trains_then_puts_the_mode_back(tiny_hf_llama_dir):
    from llmtui.engine.training.tuning import Tuning

    lm = LanguageModel.load(str(tiny_hf_llama_dir), precision="int8")
    ids = torch.tensor([lm.prompt_ids("Hello world")])
    before = lm.model(ids).logits
    tuning = Tuning.begin(lm.model, "lora", rank=2, available=None)
    assert tuning.parameters and not any(isinstance(m, precision.RoundedLinear) for m in lm.model.modules())
    tuning.reset()
    assert isinstance(lm.model.blocks[0].attn.qkv, precision.Int8Linear)
    assert torch.equal(lm.model(ids).logits, before)


def test_compare_exact_against_a_faster_mode(capsys, tiny_hf_llama_dir):
    code = cli.main(["compare", "Hello", "--model", str(tiny_hf_llama_dir), "--b", "precision=int4", "--seed", "1",
                     "--max-new-tokens", "4", "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["a"]["compute"]["precision"], data["b"]["compute"]["precision"]) == ("exact", "int4")
    assert data["a"]["settings"] == data["b"]["settings"]
    assert all(p["tv"] > 0 for p in data["positions"])  # the same knobs, but B's probabilities are int4's own
    settings, model, mode = cli.side_settings(SamplingSettings(), "precision=INT8 'stop=a b' top-k=5")
    assert (settings.top_k, settings.stop, model, mode) == (5, ("a b",), None, "int8")
    assert cli.main(["compare", "Hello", "--model", str(tiny_hf_llama_dir), "--b", "precision=fp8"]) == cli.EXIT_ERROR
    assert capsys.readouterr().err == "llmtui: error: unknown precision 'fp8': use one of exact, bf16, int8, int4\n"


@pytest.mark.parametrize("argv", [["generate", "hi", "--precision", "int8"],
                                  ["compare", "hi", "--b", "precision=int4"]])
def test_a_served_model_refuses_a_precision(argv, capsys):
    assert cli.main([*argv, "--endpoint", "http://127.0.0.1:9"]) == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "apply to a local model" in err
