"""``fireside bench``: prompt-processing and generation speed, by llama-bench's method.

llama.cpp ``tools/llama-bench``: ``pp<N>`` processes an N-token prompt in batches of n_batch from an
empty cache; ``tg<N>`` generates N tokens one at a time (each a forward pass of one token, the
sampled token fed back). Each test runs once as a warm-up, then ``reps`` times; tokens per second are
reported as mean ± standard deviation over the reps. Token ids are random (not text) as in
llama-bench, so the numbers do not depend on a prompt.
"""
from __future__ import annotations

import resource
import statistics
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .context import Context


@dataclass
class BenchResult:
    """One row of the table.

    Attributes:
        test: ``"pp512"`` or ``"tg128"``.
        n_tokens: tokens per rep.
        samples: tokens per second of each rep.
    """

    test: str
    n_tokens: int
    samples: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples)

    @property
    def std(self) -> float:
        return statistics.stdev(self.samples) if len(self.samples) > 1 else 0.0


def _random_tokens(ctx: Context, n: int, rng: np.random.Generator) -> list[int]:
    return rng.integers(0, ctx.n_vocab, n).tolist()


def time_prefill(ctx: Context, n_prompt: int, rng: np.random.Generator) -> float:
    """Seconds to process an n_prompt-token prompt from an empty cache."""
    tokens = _random_tokens(ctx, n_prompt, rng)
    ctx.reset()
    t0 = time.perf_counter()
    ctx.prefill(tokens)
    return time.perf_counter() - t0


def time_decode(ctx: Context, n_gen: int, rng: np.random.Generator) -> float:
    """Seconds to decode n_gen tokens one at a time after a 1-token prompt (llama-bench's tg)."""
    ctx.reset()
    logits, _ = ctx.prefill(_random_tokens(ctx, 1, rng))
    t0 = time.perf_counter()
    for _ in range(n_gen):
        logits = ctx.decode(int(np.argmax(logits)))
    return time.perf_counter() - t0


def run_bench(ctx: Context, n_prompt: int = 512, n_gen: int = 128, reps: int = 3, seed: int = 0) -> list[BenchResult]:
    """Measure pp{n_prompt} and tg{n_gen}; a zero count skips that test.

    Raises:
        ValueError: the context is too small for the test.
    """
    if n_prompt + 1 > ctx.n_ctx or n_gen + 1 > ctx.n_ctx:
        raise ValueError(f"n_ctx = {ctx.n_ctx} is too small for pp{n_prompt} / tg{n_gen}")
    rng = np.random.default_rng(seed)
    results = []
    for name, n, fn in ((f"pp{n_prompt}", n_prompt, time_prefill), (f"tg{n_gen}", n_gen, time_decode)):
        if n <= 0:
            continue
        fn(ctx, n, rng)  # warm-up
        res = BenchResult(name, n)
        for _ in range(reps):
            res.samples.append(n / fn(ctx, n, rng))
        results.append(res)
    return results


def peak_rss_bytes() -> int:
    """Peak resident set size of this process, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
