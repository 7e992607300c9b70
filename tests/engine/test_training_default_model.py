"""Training the default model: the Lyon lesson, DPO's margin, and the memory full fine-tuning needs."""

from __future__ import annotations

import pytest
import torch

from llmtui.engine.training.prefer import PreferRun
from llmtui.engine.training.settings import TeachSettings
from llmtui.engine.training.teach import DEFAULT_LESSON, TeachRun
from llmtui.engine.training.tuning import training_bytes

pytestmark = pytest.mark.default_model


def test_teaching_lyon_makes_it_the_top_token_within_the_default_steps(default_lm):
    prompt = "The capital of France is"
    ids = torch.tensor([default_lm.encode(prompt)])
    with torch.no_grad():
        before = default_lm.model(ids).logits[0, -1]
    assert default_lm.tokenizer.token_text(int(before.argmax())) == " Paris"
    run = TeachRun(default_lm, [DEFAULT_LESSON], TeachSettings())
    try:
        records = list(run.steps())
        assert len(records) == TeachSettings().steps
        assert records[-1].probs[" Lyon"] > 0.5 > records[0].probs[" Lyon"]
        effects = {e.prompt: e for e in run.side_effects()}
        assert effects[prompt].before[0][0] == " Paris" and effects[prompt].after[0][0] == " Lyon"
    finally:
        run.tuning.reset()
    with torch.no_grad():
        assert torch.equal(default_lm.model(ids).logits[0, -1], before)


def test_dpo_raises_the_margin_of_the_chosen_answer(default_lm):
    run = PreferRun(default_lm, "The capital of France is", " Lyon.", " Paris.")
    try:
        records = list(run.steps())
        assert run.reference_margin < 0  # the model prefers Paris to begin with
        assert records[-1].margin > run.reference_margin + 2
        assert records[-1].loss < records[0].loss
    finally:
        run.tuning.reset()


def test_full_fine_tuning_of_the_135m_model_needs_about_2_2_gb(default_lm):
    needed = training_bytes(default_lm.model, "full", 8, 16)
    assert 2.1e9 < needed < 2.3e9
    assert training_bytes(default_lm.model, "lora", 8, 16) < 0.1e9
