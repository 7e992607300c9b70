"""The --precision modes on the default model: decode speed, and how far each mode's probabilities are from exact.

For each mode (exact, bf16, int8, int4): prefill of a 200-token prompt and greedy decoding of
128 tokens, timed round after round in turn (engine_speed.py's method, so the machine's noise
falls on every mode alike); then, over 128 greedy steps of several prompts, the largest
|p - p_exact| over every token of the vocabulary and the share of steps whose most likely token
is exact's, both along exact's own text (so both modes see the same context), and how many
tokens the mode's own greedy text keeps equal to exact's before the first difference.

    .venv/bin/python benchmarks/precision.py [--threads N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the app runs (llmtui/cli.py); before torch loads OpenMP

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))
from engine_speed import DECODE_TOKENS, PROMPT_TOKENS, interleaved, our_decode  # noqa: E402

from llmtui.engine.lm import LanguageModel  # noqa: E402
from llmtui.engine.model.transformer import Transformer  # noqa: E402
from llmtui.engine.precision_names import PRECISIONS  # noqa: E402

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "Once upon a time, in a small village,",
    "<|im_start|>user\nWhy is the sky blue?<|im_end|>\n<|im_start|>assistant\n",
]


@torch.inference_mode()
def greedy_text(model: Transformer, ids: list[int], steps: int) -> list[int]:
    cache, x, out = model.new_cache(initial=len(ids) + steps + 1), torch.tensor([ids]), []
    for _ in range(steps):
        out.append(int(model(x, cache, last_only=True).logits[0, -1].argmax()))
        x = torch.tensor([[out[-1]]])
    return out


@torch.inference_mode()
def probs_along(model: Transformer, ids: list[int], text: list[int]) -> torch.Tensor:
    """(len(text), V): the next-token probabilities before each token of text, decoding one token at a time."""
    cache, x, rows = model.new_cache(initial=len(ids) + len(text) + 1), torch.tensor([ids]), []
    for token in text:
        rows.append(model(x, cache, last_only=True).logits[0, -1].float().softmax(-1))
        x = torch.tensor([[token]])
    return torch.stack(rows)


def errors(exact: Transformer, model: Transformer, prompts: list[list[int]]) -> tuple[float, float, list[int]]:
    """(max |p - p_exact|, top-1 agreement, greedy tokens equal before the first difference, per prompt)."""
    worst, agree, total, same = 0.0, 0, 0, []
    for ids in prompts:
        text = greedy_text(exact, ids, DECODE_TOKENS)
        p_exact, p = probs_along(exact, ids, text), probs_along(model, ids, text)
        worst = max(worst, (p - p_exact).abs().max().item())
        agree += int((p.argmax(-1) == p_exact.argmax(-1)).sum())
        total += len(text)
        own = greedy_text(model, ids, DECODE_TOKENS)
        same.append(next((i for i, (a, b) in enumerate(zip(own, text)) if a != b), len(text)))
    return worst, agree / total, same


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from llmtui.engine.kernels.native import KERNELS

    lms = {mode: LanguageModel.load(precision=mode) for mode in PRECISIONS}
    for mode, lm in lms.items():
        assert lm.precision == mode, lm.notes  # a mode this machine can't run would have measured exact
    kernels = KERNELS.wait().describe()
    prompt = torch.randint(100, 40000, (1, PROMPT_TOKENS), generator=torch.Generator().manual_seed(0))
    load_before = os.getloadavg()[0]

    def prefill(model: Transformer):
        def run() -> None:
            with torch.inference_mode():
                model(prompt, model.new_cache(initial=PROMPT_TOKENS), last_only=True)
        return run

    variants = {}
    for mode, lm in lms.items():
        variants[f"prefill {mode}"] = prefill(lm.model)
        variants[f"plain {mode}"] = lambda model=lm.model: our_decode(model, prompt)
    t = interleaved(variants, args.rounds)
    exact = lms["exact"]
    prompts = [exact.tokenizer.encode(p, allow_special=True) for p in PROMPTS]
    print(f"machine: {platform.machine()} {platform.processor()}, {torch.get_num_threads()} torch threads, torch "
          f"{torch.__version__}, exact's kernels: {kernels}; load average {load_before:.1f} before timing, "
          f"{os.getloadavg()[0]:.1f} at the end; {args.rounds} rounds, medians")
    print(f"| precision | decode tok/s | vs exact | prefill {PROMPT_TOKENS} tokens | max abs(p - p_exact) | "
          f"top-1 = exact's | greedy tokens equal to exact's ({len(PROMPTS)} prompts) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    tps = {mode: DECODE_TOKENS / (t[f"plain {mode}"] - t[f"prefill {mode}"]) for mode in lms}
    for mode, lm in lms.items():
        worst, agree, same = (0.0, 1.0, [DECODE_TOKENS] * len(prompts)) if mode == "exact" else errors(
            exact.model, lm.model, prompts)
        print(f"| {mode} | {tps[mode]:.1f} | {tps[mode] / tps['exact']:.2f}x | {t[f'prefill {mode}'] * 1000:.0f} ms | "
              f"{worst:.3g} | {agree:.1%} | {', '.join(f'{s}/{DECODE_TOKENS}' for s in same)} |")


if __name__ == "__main__":
    main()
