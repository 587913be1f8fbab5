#!/usr/bin/env python
"""The decode step of 1 .. N sequences together (continuous batching), Fireside against llama.cpp on one
file: what a step of N busy slots costs against a step of one, i.e. the aggregate speed-up N slots can
give at best (``tests/server_load.py`` measures it through the server, with the HTTP stack and the
clients on the same cores).

Each engine gets N sequences with a short random prompt each, then times one-token steps of the first k
sequences for k = 1 .. N, interleaved, the minimum of ``-r`` steps each. llama.cpp runs through
llama-cpp-python's C API (``engine/bench_llama_cpp.py``'s ``LlamaCppBench`` with ``n_seq_max`` = N, a
``llama_batch`` with one sequence id per token).

Usage: ``python bench/slots_step.py -m FILE.gguf [-t 2] [-s 4] [-r 10]``
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.bench_llama_cpp import LlamaCppBench  # noqa: E402

PROMPT = 16  # tokens of each sequence's prompt


def llama_cpp_steps(path: Path, n_seq: int, threads: int, reps: int, rng) -> list[float]:
    """Seconds of llama.cpp's best one-token step of k = 1 .. n_seq sequences."""
    bench = LlamaCppBench(path, n_ctx=n_seq * 256, n_batch=256, n_threads=threads, n_seq=n_seq)
    lib = bench.lib
    pos = [0] * n_seq

    def decode(parts: list[tuple[int, list[int]]]) -> None:
        n = sum(len(t) for _, t in parts)
        batch = lib.llama_batch_init(n, 0, 1)
        try:
            i = 0
            for seq, toks in parts:
                for j, tok in enumerate(toks):
                    batch.token[i], batch.pos[i], batch.n_seq_id[i] = tok, pos[seq] + j, 1
                    batch.seq_id[i][0], batch.logits[i] = seq, int(j == len(toks) - 1)
                    i += 1
                pos[seq] += len(toks)
            batch.n_tokens = n
            bench._decode(batch)
        finally:
            lib.llama_batch_free(batch)

    try:
        for seq in range(n_seq):
            decode([(seq, rng.integers(0, 1000, PROMPT).tolist())])
        best = [float("inf")] * n_seq
        for _ in range(reps):
            for k in range(1, n_seq + 1):
                t0 = time.perf_counter()
                decode([(seq, [7]) for seq in range(k)])
                best[k - 1] = min(best[k - 1], time.perf_counter() - t0)
        return best
    finally:
        bench.close()


def fireside_steps(path: Path, n_seq: int, threads: int, reps: int, rng) -> list[float]:
    """Seconds of Fireside's best one-token step of k = 1 .. n_seq sequences (``Context.eval_batch``)."""
    from engine.context import Context
    from engine.model import load_model

    ctx = Context(load_model(path), n_ctx=256, n_batch=64, n_threads=threads, n_seq=n_seq)
    for seq in range(n_seq):
        ctx.eval_batch([(seq, rng.integers(0, 1000, PROMPT).tolist(), True)])
    best = [float("inf")] * n_seq
    for _ in range(reps):
        for k in range(1, n_seq + 1):
            t0 = time.perf_counter()
            ctx.eval_batch([(seq, [7], True) for seq in range(k)])
            best[k - 1] = min(best[k - 1], time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--model", type=Path, required=True)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-s", "--sequences", type=int, default=4)
    ap.add_argument("-r", "--reps", type=int, default=10)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    n = args.sequences
    print(f"{args.model.name}, {args.threads} threads: one-token step of k sequences, ms (best of {args.reps})")
    print("| engine | " + " | ".join(f"k={k}" for k in range(1, n + 1)) + f" | step {n} / step 1 | aggregate {n} / 1 |")
    print("| --- | " + " | ".join("---:" for _ in range(n)) + " | ---: | ---: |")
    for name, fn in (("fireside", fireside_steps), ("llama.cpp", llama_cpp_steps)):
        best = fn(args.model, n, args.threads, args.reps, rng)
        print(f"| {name} | " + " | ".join(f"{b * 1e3:.1f}" for b in best)
              + f" | {best[-1] / best[0]:.2f} | {n * best[0] / best[-1]:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
