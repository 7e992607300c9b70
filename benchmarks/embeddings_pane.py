"""Speed of the Embeddings pane's work on the default model: neighbour queries and PCA maps.

Measures, each as the median (and 90th percentile) of many runs after a warm-up:
- building the index (the 49,152 x 576 matrix normalised once per model);
- one neighbour query over the whole vocabulary: the matrix-vector product and top-k
  alone, and the pane's whole query (parse, neighbours, token texts);
- one PCA map of 50 tokens: the projection alone, and with the labels laid out on a
  76 x 18 map (what the map widget draws);
- the pane's whole answer for a word and for king - man + woman (list rows + map).

    .venv/bin/python benchmarks/embeddings_pane.py [--runs N] [--threads N]

--threads sets torch's intra-op threads (default: torch's own choice, as the app runs).

Aims (issue 5): a neighbour query under 30 ms, a 50-token map under 100 ms, on the CPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
from collections.abc import Callable

import torch

from llmtui.app.display import table_label
from llmtui.app.panes.embeddings import QueryRequest, compute_answer
from llmtui.app.widgets.scatter import MapPoint, layout_map
from llmtui.engine.studies.embeddings import EmbeddingIndex, map_vectors, parse_query, query_neighbours
from llmtui.engine.lm import DEFAULT_MODEL, LanguageModel


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median and 90th-percentile milliseconds of fn over `runs` calls, after two warm-up calls."""
    fn()
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.9))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    lm = LanguageModel.load(DEFAULT_MODEL)
    tokenizer = lm.tokenizer
    weight = lm.model.tok_emb.weight
    start = time.perf_counter()
    index = EmbeddingIndex(weight)
    build_ms = (time.perf_counter() - start) * 1000

    dog = parse_query("dog", tokenizer)
    vector = index.vector(dog.terms[0].ids[0])
    rng = random.Random(0)
    fifty = [[rng.randrange(index.vocab_size)] for _ in range(50)]
    projection = map_vectors(index, fifty)
    points = [MapPoint(table_label(tokenizer.token_text(ids[0])), x, y) for ids, (x, y) in zip(fifty, projection.xy)]

    def request(text: str) -> QueryRequest:
        return QueryRequest(1, text, True, True, None, 15, True, False)

    def full_map() -> object:
        p = map_vectors(index, fifty)
        return layout_map([MapPoint(pt.label, x, y) for pt, (x, y) in zip(points, p.xy)], 76, 18)

    rows = [
        (
            "neighbour query: matrix-vector product + top-30",
            timed(lambda: index.nearest(vector, 30, {2767}), args.runs),
        ),
        (
            "neighbour query: parse 'dog' + neighbours + texts",
            timed(lambda: query_neighbours(tokenizer, index, parse_query("dog", tokenizer), 30), args.runs),
        ),
        ("PCA map of 50 tokens: projection", timed(lambda: map_vectors(index, fifty), args.runs)),
        ("PCA map of 50 tokens: projection + label layout 76x18", timed(full_map, args.runs)),
        (
            "pane answer: 'dog' (30 rows, map of 16)",
            timed(lambda: compute_answer(tokenizer, index, request("dog")), args.runs),
        ),
        (
            "pane answer: 'king - man + woman'",
            timed(lambda: compute_answer(tokenizer, index, request("king - man + woman")), args.runs),
        ),
    ]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs (load average {load:.1f}), {torch.get_num_threads()} "
        f"torch threads, torch {torch.__version__}, Python {platform.python_version()}; {args.runs} runs each"
    )
    print(f"index build (once per model): {build_ms:.0f} ms for {tuple(weight.shape)}")
    print(f"{'what':56} {'median':>8} {'p90':>8}")
    for name, (median, p90) in rows:
        print(f"{name:56} {median:6.1f}ms {p90:6.1f}ms")


if __name__ == "__main__":
    main()
