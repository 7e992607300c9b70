"""llama.cpp (llama-cpp-python) as a benchmark peer, run in its own environment by engine_speed.py.

    python llama_cpp_peer.py MODEL.gguf THREADS PROMPT_IDS DECODE_TOKENS

Reads commands on stdin, one per line, and answers each on stdout when done, so the
caller can time it and interleave it with its own rounds:
  prefill      -> evaluates the prompt from an empty context
  decode       -> the prompt, then DECODE_TOKENS greedy tokens (argmax of llama.cpp's logits)
  tokens       -> the greedy tokens of the last decode, comma-separated
  probs PATH   -> (untimed) the same decode, saving each step's probabilities as a .npy (steps, vocab)
llama-cpp-python is not a dependency of llmtui: install it where this runs (benchmarks/RESULTS.md says how).
"""

from __future__ import annotations

import sys

import numpy as np
from llama_cpp import Llama


def main() -> None:
    path, threads, prompt, n_decode = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    ids = [int(t) for t in prompt.split(",")]
    llm = Llama(model_path=path, n_ctx=len(ids) + n_decode + 8, n_batch=512, n_threads=threads,
                n_threads_batch=threads, logits_all=False, verbose=False)
    tokens: list[int] = []
    print("ready", flush=True)

    def run(n: int, keep: list[np.ndarray] | None = None) -> list[int]:
        llm.reset()
        llm.eval(ids)
        out = []
        for _ in range(n):
            logits = llm.scores[llm.n_tokens - 1]
            if keep is not None:
                z = np.exp(logits.astype(np.float64) - logits.max())
                keep.append((z / z.sum()).astype(np.float32))
            out.append(int(logits.argmax()))
            llm.eval([out[-1]])
        return out

    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        if command == "prefill":
            run(0)
            print("done", flush=True)
        elif command == "decode":
            tokens = run(n_decode)
            print("done", flush=True)
        elif command == "tokens":
            print(",".join(map(str, tokens)), flush=True)
        elif command == "probs":
            kept: list[np.ndarray] = []
            run(n_decode, kept)
            np.save(arg, np.stack(kept))
            print("done", flush=True)
        else:
            print(f"unknown command {command!r}", flush=True)

if __name__ == "__main__":
    main()
