"""Pretrain a tiny model from scratch: next-byte prediction on a text, watched as it learns.

The model is the app's own transformer (the Llama flavour) at toy size, over bytes
(bytes_model.py), so the uniform guess costs ln(257) = 5.55 nats per byte: the first
loss, and the line the curves fall below. Documents are split into training and
held-out ones (every `held_out_every`-th document), so the held-out loss says whether
the model learned the language or the training text.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from llmtui.engine.model.config import ModelConfig
from llmtui.engine.model.transformer import Transformer
from llmtui.engine.training.bytes_model import EOS_ID, decode_bytes, encode_bytes, save_llama_folder
from llmtui.engine.training.loop import TrainingRun, TrainStep, clip_and_step
from llmtui.engine.training.memory import activation_bytes, available_bytes, check_fits
from llmtui.engine.training.settings import BYTE_VOCAB, PretrainSettings

UNIFORM_LOSS = math.log(BYTE_VOCAB)


def tiny_model(config: ModelConfig, seed: int) -> Transformer:
    """A fresh model, every matrix drawn N(0, 0.02) as GPT-2 does (norms start at one), reproducibly."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Transformer(config)
        for p in model.parameters():
            if p.dim() >= 2:
                torch.nn.init.normal_(p, std=0.02)
    return model


def split_documents(docs: list[str], held_out_every: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Byte ids of the training and held-out documents, each ended by the end-of-document token."""
    train: list[int] = []
    held: list[int] = []
    for i, doc in enumerate(docs):
        (held if i % held_out_every == held_out_every - 1 else train).extend(encode_bytes(doc) + [EOS_ID])
    return torch.tensor(train, dtype=torch.long), torch.tensor(held, dtype=torch.long)


class PretrainRun(TrainingRun):
    """Next-byte pretraining of a tiny transformer; records carry held-out loss and samples now and then."""

    mode = "pretrain"

    def __init__(self, docs: list[str], settings: PretrainSettings = PretrainSettings(), *,
                 available: int | None = -1) -> None:
        super().__init__(settings.steps)
        self.settings = s = settings
        self.train_ids, self.held_ids = split_documents(docs, s.held_out_every)
        if len(self.train_ids) <= s.context + 1 or len(self.held_ids) <= s.context + 1:
            raise ValueError(f"the text is too short: give at least {s.held_out_every * 2} paragraphs of a few hundred characters")
        config = s.model_config()
        self.model = tiny_model(config, s.seed)
        needed = 16 * self.model.n_params() + activation_bytes(
            config.n_layer, config.d_model, config.d_ff, config.n_head, config.vocab_size, s.batch * s.context, s.context)
        check_fits("pretraining this model", needed, available_bytes() if available == -1 else available)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=s.lr, weight_decay=0.1, betas=(0.9, 0.95))
        self.generator = torch.Generator().manual_seed(s.seed)
        held_gen = torch.Generator().manual_seed(s.seed + 1)
        self.held_batch = self._windows(self.held_ids, 8, held_gen)  # the same held-out windows at every eval
        self.last_held_out: float | None = None
        self.last_sample: str | None = None

    @property
    def corpus_bytes(self) -> tuple[int, int]:
        """Tokens (bytes) for training and held out."""
        return len(self.train_ids), len(self.held_ids)

    def _windows(self, ids: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
        starts = torch.randint(0, len(ids) - self.settings.context - 1, (n,), generator=generator)
        return torch.stack([ids[i : i + self.settings.context + 1] for i in starts.tolist()])

    def _loss(self, batch: torch.Tensor) -> torch.Tensor:
        logits = self.model(batch[:, :-1]).logits
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))

    def learning_rate(self, step: int) -> float:
        """Linear warm-up over the first 5 % of steps (at most 20), then cosine decay to a tenth."""
        s = self.settings
        warm = max(1, min(20, s.steps // 20))
        if step < warm:
            return s.lr * (step + 1) / warm
        progress = (step - warm) / max(1, s.steps - warm)
        return s.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, progress))))

    def _step(self) -> TrainStep:
        s = self.settings
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate(self.done)
        self.model.train()
        loss = self._loss(self._windows(self.train_ids, s.batch, self.generator))
        loss.backward()
        clip_and_step(self.optimizer, list(self.model.parameters()))
        self.model.eval()
        step = self.done + 1
        held = self.held_out_loss() if step % s.eval_every == 0 or step == 1 or step == s.steps else None
        sample = self.sample() if step % s.sample_every == 0 or step == s.steps else None
        return TrainStep(self.mode, 0, 0, loss.item(), held_out_loss=held, sample=sample, tokens=s.batch * s.context)

    @torch.no_grad()
    def held_out_loss(self) -> float:
        self.last_held_out = self._loss(self.held_batch).item()
        return self.last_held_out

    @torch.no_grad()
    def sample(self, temperature: float = 0.8) -> str:
        """A continuation of the sample prompt, drawn with a fixed seed so samples compare across steps."""
        s = self.settings
        generator = torch.Generator().manual_seed(s.seed)
        ids = encode_bytes(s.sample_prompt)[-s.context :]
        new: list[int] = []
        for _ in range(s.sample_chars):
            logits = self.model(torch.tensor([ids[-s.context :]]), last_only=True).logits[0, -1]
            token = int(torch.multinomial((logits / temperature).softmax(-1), 1, generator=generator))
            if token == EOS_ID:
                break
            ids.append(token)
            new.append(token)
        self.last_sample = decode_bytes(new)
        return self.last_sample

    def save(self, folder: Path) -> Path:
        """The model as a Hugging Face folder that `--model PATH` (and the app) can open."""
        return save_llama_folder(self.model, Path(folder))
