"""What training will hold in memory, and whether this machine has it.

Full fine-tuning with Adam keeps, per trained number, its gradient and Adam's two
moving averages, plus (here) a copy of the original weight so one key can put it back:
4 numbers of 4 bytes, 16 bytes each; SmolLM2-135M's 134.5M weights need about 2.2 GB
on top of the loaded model. LoRA keeps those only for its adapters, a few MB.
"""

from __future__ import annotations

from pathlib import Path

BYTES_PER_TRAINED_NUMBER = {"full": 16, "lora": 12}  # gradient + Adam's m and v (+ the original copy for full)
HEADROOM = 0.8  # use at most this share of the memory the system says is available


class TrainingMemoryError(ValueError):
    """Training would not fit in memory (a user error: pick LoRA, fewer tokens or a smaller model)."""


def gigabytes(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.2f} GB" if n_bytes >= 1e8 else f"{n_bytes / 1e6:.0f} MB"


def available_bytes() -> int | None:
    """Memory the system can give now (Linux MemAvailable); None where it doesn't say."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def activation_bytes(n_layer: int, d_model: int, d_ff: int, n_head: int, vocab: int, tokens: int, seq: int) -> int:
    """A rough upper bound of what backward needs from the forward pass, in float32 bytes.

    Per layer and token: about 12 vectors of d_model, 3 of d_ff, and the attention
    probabilities (n_head * seq); then the logits and their softmax (2 * vocab per token).
    """
    per_token = n_layer * (12 * d_model + 3 * d_ff + 2 * n_head * seq) + 2 * vocab
    return 4 * tokens * per_token


def check_fits(what: str, needed: int, available: int | None) -> None:
    """Raise TrainingMemoryError with one clear line when `needed` bytes would not fit."""
    if available is not None and needed > HEADROOM * available:
        raise TrainingMemoryError(
            f"{what} needs about {gigabytes(needed)} and this machine has {gigabytes(available)} free; "
            "use LoRA (--method lora), shorter text or a smaller model"
        )
