"""Training on tiny seeded models: losses fall, gradients are right, LoRA trains what it says, reset is exact."""

from __future__ import annotations

import json

import pytest
import torch

from llmtui.engine.lm import LanguageModel
from llmtui.engine.training.lora import LoRALinear
from llmtui.engine.training.loop import TrainingRun
from llmtui.engine.training.memory import TrainingMemoryError
from llmtui.engine.training.prefer import PreferRun, dpo_loss
from llmtui.engine.training.pretrain import UNIFORM_LOSS, PretrainRun
from llmtui.engine.training.settings import PreferSettings, PretrainSettings, TeachSettings
from llmtui.engine.training.teach import TeachRun, sequence_loss
from llmtui.engine.training.tuning import Tuning

LESSON = ["The capital of France is Lyon."]
DOCS = [f"Return the value of item {i}. The function reads the file and returns a list of lines." for i in range(60)]


@pytest.fixture
def tiny_lm(tiny_hf_llama_dir) -> LanguageModel:
    return LanguageModel.load(str(tiny_hf_llama_dir))


def logits_of(lm: LanguageModel, text: str = "The capital of France is") -> torch.Tensor:
    with torch.no_grad():
        return lm.model(torch.tensor([lm.encode(text)])).logits


def losses(run: TrainingRun) -> list[float]:
    return [r.loss for r in run.steps()]


@pytest.mark.parametrize("method", ["full", "lora"])
def test_teaching_lowers_the_loss_over_50_steps(tiny_lm, method):
    run = TeachRun(tiny_lm, LESSON, TeachSettings(steps=50, lr=3e-3, method=method), related=())
    curve = losses(run)
    assert len(curve) == 50
    assert curve[-1] < 0.5 * curve[0]
    assert min(curve[-5:]) < min(curve[:5])


def test_pretraining_lowers_training_and_held_out_loss_over_50_steps():
    settings = PretrainSettings(steps=50, batch=4, context=32, n_layer=2, d_model=32, n_head=2, eval_every=10)
    run = PretrainRun(DOCS, settings)
    records = list(run.steps())
    held = [r.held_out_loss for r in records if r.held_out_loss is not None]
    assert abs(records[0].loss - UNIFORM_LOSS) < 0.3  # a fresh model guesses about uniformly
    assert records[-1].loss < UNIFORM_LOSS - 1.5
    assert held[-1] < held[0] - 1.5


def test_gradients_match_finite_differences(tiny_lm):
    model = tiny_lm.model.double()
    Tuning.begin(model, "lora", rank=2, seed=3, available=None)
    for adapter in (m for m in model.modules() if isinstance(m, LoRALinear)):
        torch.nn.init.normal_(adapter.lora_b, std=0.05)  # B starts at zero: give A's gradient something to carry
    ids = torch.tensor(tiny_lm.encode(LESSON[0]))
    weights = [model.blocks[0].attn.qkv.lora_a, model.blocks[1].mlp.down.lora_b, model.blocks[1].mlp.down.base.weight]
    weights[2].requires_grad_(True)
    sequence_loss(model, ids).backward()
    eps = 1e-6
    with torch.no_grad():
        for w in weights:
            for index in [(0, 0), (1, 1), (w.shape[0] - 1, w.shape[1] - 1)]:
                saved = w[index].item()
                w[index] = saved + eps
                up = sequence_loss(model, ids).item()
                w[index] = saved - eps
                down = sequence_loss(model, ids).item()
                w[index] = saved
                assert w.grad[index].item() == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-9)


def test_dpo_gradient_matches_finite_differences():
    def loss(chosen: torch.Tensor) -> torch.Tensor:
        return dpo_loss(chosen, torch.tensor(-2.0, dtype=torch.float64), -2.5, -2.5, 0.5)

    chosen = torch.tensor(-3.0, dtype=torch.float64, requires_grad=True)
    loss(chosen).backward()
    eps = 1e-6
    numeric = (loss(torch.tensor(-3.0 + eps, dtype=torch.float64)) - loss(torch.tensor(-3.0 - eps, dtype=torch.float64))) / (2 * eps)
    assert chosen.grad.item() == pytest.approx(numeric.item(), rel=1e-4)
    assert chosen.grad.item() < 0  # raising log p(chosen) lowers the loss


@pytest.mark.parametrize("rank", [1, 4])
def test_lora_trains_exactly_rank_times_in_plus_out_per_matrix_and_leaves_the_base_alone(tiny_lm, rank):
    c = tiny_lm.config
    qkv_out = (c.n_head + 2 * c.n_kv_head) * c.head_dim
    per_layer = (c.d_model + qkv_out) + (c.n_head * c.head_dim + c.d_model) + (c.d_model + 2 * c.d_ff) + (c.d_ff + c.d_model)
    expected = c.n_layer * rank * per_layer
    base = {k: v.clone() for k, v in tiny_lm.model.state_dict().items()}
    run = TeachRun(tiny_lm, LESSON, TeachSettings(steps=5, lr=1e-2, method="lora", rank=rank), related=())
    assert run.tuning.trained_numbers == expected
    assert run.tuning.model_numbers == sum(v.numel() for v in base.values())  # the model's own, adapters apart
    assert sum(p.numel() for p in tiny_lm.model.parameters() if p.requires_grad) == expected
    before = logits_of(tiny_lm)
    list(run.steps())
    assert not torch.equal(logits_of(tiny_lm), before)  # the adapters did change the model
    after = {k.replace(".base.", "."): v for k, v in tiny_lm.model.state_dict().items() if "lora_" not in k}
    assert after.keys() == base.keys()
    assert all(torch.equal(after[k], base[k]) for k in base)


@pytest.mark.parametrize("method", ["full", "lora"])
def test_reset_restores_the_original_logits_bit_for_bit(tiny_lm, method):
    before = logits_of(tiny_lm)
    run = TeachRun(tiny_lm, LESSON, TeachSettings(steps=3, lr=1e-2, method=method), related=())
    list(run.steps())
    assert not torch.equal(logits_of(tiny_lm), before)
    run.tuning.reset()
    assert torch.equal(logits_of(tiny_lm), before)
    assert not any(isinstance(m, LoRALinear) for m in tiny_lm.model.modules())


def test_same_seed_same_losses(tiny_hf_llama_dir):
    def teach() -> list[float]:
        lm = LanguageModel.load(str(tiny_hf_llama_dir))
        return losses(TeachRun(lm, LESSON, TeachSettings(steps=5, lr=1e-2, seed=7), related=()))

    def pretrain(seed: int) -> list[float]:
        settings = PretrainSettings(steps=5, batch=2, context=16, n_layer=1, d_model=16, n_head=2, seed=seed)
        return losses(PretrainRun(DOCS, settings))

    assert teach() == teach()
    assert pretrain(1) == pretrain(1)
    assert pretrain(1) != pretrain(2)


def test_stop_ends_the_run_before_its_next_step_and_steps_resumes(tiny_lm):
    run = TeachRun(tiny_lm, LESSON, TeachSettings(steps=6, lr=1e-3), related=())
    seen = []
    for record in run.steps():
        seen.append(record.step)
        if record.step == 2:
            run.stop()
    assert seen == [1, 2]
    assert [r.step for r in run.steps()] == [3, 4, 5, 6]
    last = run.history[-1]
    assert last.steps == 6 and last.eta_s == 0 and last.steps_per_s > 0


def test_teaching_watches_the_target_and_the_rival(tiny_lm):
    run = TeachRun(tiny_lm, LESSON, TeachSettings(steps=30, lr=3e-3, method="full"), related=("The capital of Italy is",))
    probe = run.probes[0]
    assert probe.prompt == "The capital of France is" and probe.target == tiny_lm.tokenizer.token_text(probe.target_id)
    records = list(run.steps())
    assert set(records[0].probs) == {probe.target, probe.rival}
    assert records[-1].probs[probe.target] > records[0].probs[probe.target]
    effects = run.side_effects()
    assert [e.prompt for e in effects] == ["The capital of France is", "The capital of Italy is"]
    assert effects[0].after[0][0] == probe.target  # learned


def test_full_fine_tuning_is_refused_when_it_would_not_fit(tiny_lm):
    with pytest.raises(TrainingMemoryError, match="full fine-tuning.*needs about .* use LoRA"):
        TeachRun(tiny_lm, LESSON, TeachSettings(method="full"), available=10_000)
    assert all(not isinstance(m, LoRALinear) for m in tiny_lm.model.modules())
    TeachRun(tiny_lm, LESSON, TeachSettings(method="lora", rank=1), available=10_000_000)  # LoRA fits


def test_dpo_raises_the_margin_of_chosen_over_rejected(tiny_lm):
    run = PreferRun(tiny_lm, "The capital of France is", " Lyon.", " Paris.", PreferSettings(steps=10, lr=5e-3))
    records = list(run.steps())
    assert records[-1].margin > run.reference_margin + 1
    assert records[-1].loss < records[0].loss


@pytest.mark.parametrize("args", [("", " a", " b"), ("Hi", " same", " same")])
def test_dpo_refuses_empty_or_equal_answers(tiny_lm, args):
    with pytest.raises(ValueError):
        PreferRun(tiny_lm, *args)


def test_a_pretrained_model_saves_as_a_folder_that_loads_like_any_model(tmp_path):
    settings = PretrainSettings(steps=3, batch=2, context=16, n_layer=1, d_model=16, n_head=2)
    run = PretrainRun(DOCS, settings)
    list(run.steps())
    lm = LanguageModel.load(str(run.save(tmp_path / "tiny")))
    ids = lm.encode("Return é")
    assert ids == list("Return é".encode())  # one token per byte
    with torch.no_grad():
        assert torch.equal(lm.model(torch.tensor([ids])).logits, run.model(torch.tensor([ids])).logits)


def test_cli_train_teach_json_has_every_step_and_the_side_effects(tiny_hf_llama_dir, capsys):
    from llmtui.cli import main

    code = main(["train", "teach", "The capital of France is Lyon.", "--model", str(tiny_hf_llama_dir), "--steps", "4",
                 "--lr", "0.01", "--related", "The capital of Italy is", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "teach" and [s["step"] for s in out["steps"]] == [1, 2, 3, 4]
    assert out["trained_numbers"] > 0 and set(out["steps"][0]) >= {"loss", "probs", "steps_per_s", "eta_s"}
    assert [e["prompt"] for e in out["side_effects"]] == ["The capital of France is", "The capital of Italy is"]


def test_cli_train_prefer_and_pretrain(tiny_hf_llama_dir, tmp_path, capsys):
    from llmtui.cli import main

    assert main(["train", "prefer", "The capital of France is", "--chosen", " Lyon.", "--rejected", " Paris.",
                 "--model", str(tiny_hf_llama_dir), "--steps", "3", "--lr", "0.01", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["steps"][-1]["margin"] > out["reference_margin"]
    text = tmp_path / "corpus.txt"
    text.write_text("\n\n".join(DOCS))
    assert main(["train", "pretrain", "--text", str(text), "--steps", "2", "--batch", "2", "--layers", "1",
                 "--d-model", "16", "--save", str(tmp_path / "tiny"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["saved"] == str(tmp_path / "tiny") and out["steps"][0]["held_out_loss"] > 0
    assert (tmp_path / "tiny" / "model.safetensors").is_file()


@pytest.mark.parametrize("argv, says", [
    (["train", "teach", "   "], "nothing to teach"),
    (["train", "teach", "Hi there", "--lr", "0"], "learning rate"),
    (["train", "pretrain", "--text", "/no/such/file"], "can't read"),
    (["train", "prefer", "Q", "--chosen", " a", "--rejected", " a"], "the same"),
])
def test_cli_train_says_one_line_for_bad_input(tiny_hf_llama_dir, capsys, argv, says):
    from llmtui.cli import main

    model = [] if argv[1] == "pretrain" else ["--model", str(tiny_hf_llama_dir)]
    assert main(argv + model) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert says in err[-1] and err[-1].startswith("llmtui: error:")
