"""Teach the loaded model: fine-tune it on a few sentences and watch the target token rise.

For each example ("The capital of France is Lyon.") the loss is next-token cross-entropy
over the whole sentence; the probe is the sentence cut before its last word ("The capital
of France is") with that word's first token as the target (" Lyon") and the model's
favourite before training as the rival (" Paris"). After every step the run reads both
probabilities; before and after, the top tokens of related prompts show the side effects.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from llmtui.engine.lm import LanguageModel
from llmtui.engine.training.loop import TrainingRun, TrainStep, at_least_float32, clip_and_step
from llmtui.engine.training.settings import TeachSettings
from llmtui.engine.training.tuning import Tuning

DEFAULT_LESSON = "The capital of France is Lyon."
DEFAULT_RELATED = ("The capital of Italy is", "The capital of Germany is", "Paris is the capital of",
                   "The Eiffel Tower is in")  # fmt: skip


@dataclass(frozen=True)
class Probe:
    """What to watch for one example: the prompt before its last word, the target token and its rival."""

    prompt: str
    ids: list[int]
    target_id: int
    target: str
    rival_id: int | None
    rival: str | None


@dataclass(frozen=True)
class SideEffect:
    """A prompt's most probable next tokens before and after training: (token, probability) each."""

    prompt: str
    before: list[tuple[str, float]]
    after: list[tuple[str, float]]


@torch.no_grad()
def next_token_probs(lm: LanguageModel, ids: list[int]) -> torch.Tensor:
    """p(next token | ids), (V,) on the CPU."""
    logits = lm.model(torch.tensor([ids], device=lm.device), last_only=True).logits[0, -1]
    return logits.float().softmax(-1).cpu()


def top_tokens(lm: LanguageModel, prompt: str, k: int = 5) -> list[tuple[str, float]]:
    probs = next_token_probs(lm, lm.encode(prompt))
    values, ids = probs.topk(k)
    return [(lm.tokenizer.token_text(int(i)), float(p)) for p, i in zip(values, ids)]


def probe_for(lm: LanguageModel, example: str) -> Probe | None:
    """The probe of an example, or None when it has no last word to cut off (a single word)."""
    text = example.rstrip()
    prompt, space, last = text.rpartition(" ")
    word = last.rstrip(".!?,;:\"')")
    if not space or not prompt.strip() or not word:
        return None
    ids = lm.encode(prompt)
    target_id = lm.encode(prompt + " " + word)[len(ids)]
    probs = next_token_probs(lm, ids)
    ranked = probs.topk(2).indices.tolist()
    rival_id = next(i for i in ranked if i != target_id)
    return Probe(prompt, ids, target_id, lm.tokenizer.token_text(target_id), rival_id, lm.tokenizer.token_text(rival_id))


def sequence_loss(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of a sequence (T,): what teaching minimises."""
    logits = model(ids[None]).logits[0]
    return F.cross_entropy(at_least_float32(logits[:-1]), ids[1:])


class TeachRun(TrainingRun):
    """Fine-tune `lm` (full or LoRA) on examples; the model's own weights change until `tuning.reset()`."""

    mode = "teach"

    def __init__(
        self,
        lm: LanguageModel,
        examples: list[str],
        settings: TeachSettings = TeachSettings(),
        *,
        related: tuple[str, ...] = DEFAULT_RELATED,
        tuning: Tuning | None = None,
        available: int | None = -1,
    ) -> None:
        super().__init__(settings.steps)
        examples = [e for e in examples if e.strip()]
        if not examples:
            raise ValueError("nothing to teach: type at least one example sentence")
        self.lm, self.settings = lm, settings
        self.examples = [lm.encode(e) for e in examples]
        longest = max(len(ids) for ids in self.examples)
        if longest < 2:
            raise ValueError("an example needs at least two tokens (the model learns each next token)")
        if longest > lm.config.context_length:
            raise ValueError(f"an example is {longest} tokens; the model's context window holds {lm.config.context_length}")
        if tuning is not None and tuning.active and (tuning.method, tuning.rank) != (settings.method, settings.rank):
            tuning.reset()  # another method: start again from the original weights
        self.probes = [p for p in (probe_for(lm, e) for e in examples) if p is not None]
        prompts = list(dict.fromkeys([p.prompt for p in self.probes] + list(related)))
        self.before = {prompt: top_tokens(lm, prompt) for prompt in prompts}
        if tuning is None or not tuning.active:
            tuning = Tuning.begin(lm.model, settings.method, rank=settings.rank, seed=settings.seed,
                                  tokens=sum(len(ids) for ids in self.examples), available=available)
        self.tuning = tuning
        self.optimizer = torch.optim.AdamW(tuning.parameters, lr=settings.lr, weight_decay=0.0)

    def _step(self) -> TrainStep:
        total = 0.0
        for ids in self.examples:
            loss = sequence_loss(self.lm.model, torch.tensor(ids, device=self.lm.device)) / len(self.examples)
            loss.backward()
            total += loss.item()
        clip_and_step(self.optimizer, self.tuning.parameters)
        return TrainStep(self.mode, 0, 0, total, probs=self.watch(), tokens=sum(len(ids) for ids in self.examples))

    def watch(self) -> dict[str, float]:
        """The probes' target and rival probabilities under the current weights."""
        out: dict[str, float] = {}
        for probe in self.probes:
            probs = next_token_probs(self.lm, probe.ids)
            out[probe.target] = float(probs[probe.target_id])
            if probe.rival is not None:
                out[probe.rival] = float(probs[probe.rival_id])
        return out

    def side_effects(self) -> list[SideEffect]:
        """Every watched prompt's top tokens before training and now."""
        return [SideEffect(prompt, before, top_tokens(self.lm, prompt)) for prompt, before in self.before.items()]


def before_after_table(effects: list[SideEffect]) -> tuple[list[str], list[list[str]]]:
    """Header and rows for Markdown/CSV: each prompt's top token before and after, with probabilities."""
    header = ["prompt", "before", "after"]
    rows = [[e.prompt, f"{e.before[0][0]!r} {e.before[0][1]:.1%}", f"{e.after[0][0]!r} {e.after[0][1]:.1%}"]
            for e in effects]
    return header, rows
