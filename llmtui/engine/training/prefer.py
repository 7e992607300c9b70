"""Prefer an answer: Direct Preference Optimisation (DPO) against a frozen reference.

For a prompt with a chosen and a rejected answer, the loss is
    -log sigmoid(beta * ((log p(chosen) - log p_ref(chosen)) - (log p(rejected) - log p_ref(rejected))))
(Rafailov et al. 2023), where log p(answer) sums the answer's token log-probabilities
after the prompt. The reference is the model before training; it is frozen, so its two
log-probabilities are computed once, before the first step, and no copy of it is kept.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from llmtui.engine.lm import LanguageModel
from llmtui.engine.training.loop import TrainingRun, TrainStep, clip_and_step, token_log_probs
from llmtui.engine.training.settings import PreferSettings
from llmtui.engine.training.tuning import Tuning


def dpo_loss(chosen: torch.Tensor, rejected: torch.Tensor, ref_chosen: float, ref_rejected: float,
             beta: float) -> torch.Tensor:
    """-log sigmoid(beta * (how much more the policy than the reference prefers chosen over rejected))."""
    return -F.logsigmoid(beta * ((chosen - ref_chosen) - (rejected - ref_rejected)))


class PreferRun(TrainingRun):
    """DPO on one (prompt, chosen, rejected) triple; records carry the DPO loss and the margin."""

    mode = "prefer"

    def __init__(
        self,
        lm: LanguageModel,
        prompt: str,
        chosen: str,
        rejected: str,
        settings: PreferSettings = PreferSettings(),
        *,
        tuning: Tuning | None = None,
        available: int | None = -1,
    ) -> None:
        super().__init__(settings.steps)
        if not prompt.strip() or not chosen.strip() or not rejected.strip():
            raise ValueError("preference tuning needs a prompt, a chosen answer and a rejected answer")
        if chosen == rejected:
            raise ValueError("the chosen and rejected answers are the same; give two different answers")
        self.lm, self.settings = lm, settings
        self.prompt_len = len(lm.encode(prompt))
        self.chosen = self._ids(prompt, chosen)
        self.rejected = self._ids(prompt, rejected)
        if tuning is not None and tuning.active and (tuning.method, tuning.rank) != (settings.method, settings.rank):
            tuning.reset()
        with torch.no_grad():
            self.reference = (self.answer_log_prob(self.chosen).item(), self.answer_log_prob(self.rejected).item())
        if tuning is None or not tuning.active:
            tuning = Tuning.begin(lm.model, settings.method, rank=settings.rank, seed=settings.seed,
                                  tokens=len(self.chosen) + len(self.rejected), available=available)
        self.tuning = tuning
        self.optimizer = torch.optim.AdamW(tuning.parameters, lr=settings.lr, weight_decay=0.0)

    @property
    def reference_margin(self) -> float:
        return self.reference[0] - self.reference[1]

    def _ids(self, prompt: str, answer: str) -> list[int]:
        ids = self.lm.encode(prompt + answer)
        if ids[: self.prompt_len] != self.lm.encode(prompt) or len(ids) <= self.prompt_len:
            raise ValueError("the answer merges with the end of the prompt into one token; start it with a space")
        if len(ids) > self.lm.config.context_length:
            raise ValueError(f"prompt and answer are {len(ids)} tokens; the context window holds {self.lm.config.context_length}")
        return ids

    def answer_log_prob(self, ids: list[int]) -> torch.Tensor:
        """log p(answer | prompt): the sum of the answer tokens' log-probabilities."""
        x = torch.tensor(ids, device=self.lm.device)
        logits = self.lm.model(x[None]).logits[0]
        return token_log_probs(logits, x)[self.prompt_len - 1 :].sum()

    def _step(self) -> TrainStep:
        chosen, rejected = self.answer_log_prob(self.chosen), self.answer_log_prob(self.rejected)
        loss = dpo_loss(chosen, rejected, *self.reference, self.settings.beta)
        loss.backward()
        clip_and_step(self.optimizer, self.tuning.parameters)
        with torch.no_grad():
            margin = (self.answer_log_prob(self.chosen) - self.answer_log_prob(self.rejected)).item()
        return TrainStep(self.mode, 0, 0, loss.item(), margin=margin, tokens=len(self.chosen) + len(self.rejected))
