"""``fireside bench``: prompt-processing and generation speed, by llama-bench's method.

llama.cpp ``tools/llama-bench``: ``pp<N>`` processes an N-token prompt in batches of n_batch from an
empty cache; ``tg<N>`` generates N tokens one at a time from an empty cache, each a forward pass of
one token (llama-bench feeds random token ids, no sampling). Each test runs once as a warm-up (the
whole prompt for pp, one token for tg, as llama-bench does), then ``reps`` times; tokens per second
are reported as mean ± standard deviation over the reps. Token ids are random (not text) as in
llama-bench, so the numbers do not depend on a prompt.

With a reference engine (llama.cpp through :mod:`engine.bench_llama_cpp`), both engines run the same
tests interleaved rep by rep (Fireside, llama.cpp, Fireside, llama.cpp, ...), so a slow period on the
machine hits both alike.

Decode is bound by memory bandwidth: :func:`decode_weight_bytes` and :func:`kv_bytes_read_per_token`
give the bytes one generated token reads, to turn tokens/s into GB/s.
"""
from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol, Sequence

import numpy as np

from cython_kernels import vecdot

from .context import Context
from .gguf_file import TensorInfo
from .models.base import HParams

# Peak-RSS target of the "fast kernels" issue: the mapped file, the KV cache, and at most this much more.
RSS_OVERHEAD_BYTES = 150 * 2**20
# Pause before each timed run so the other engine's idle OpenMP threads (which spin-wait for a few
# milliseconds after a parallel region, libgomp's GOMP_SPINCOUNT) are asleep when the clock starts.
SETTLE_S = 0.05
KV_BYTES_PER_VALUE = 2  # f16 cache, Fireside's and llama.cpp's default (cython_kernels/forward.pyx)


def parse_count_list(text: str) -> list[int]:
    """Parse a llama-bench style comma list of token counts: ``"512,4096"`` -> ``[512, 4096]``.

    Args:
        text: one or more non-negative integers separated by commas (spaces allowed around them).
            0 means "skip this test", as in llama-bench.

    Raises:
        ValueError: an empty item, a non-integer, or a negative count (the message names it).
    """
    counts = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            raise ValueError(f"empty item in the list {text!r} (expected e.g. 512,4096)")
        try:
            n = int(item)
        except ValueError:
            raise ValueError(f"{item!r} is not a whole number of tokens (expected e.g. 512,4096)") from None
        if n < 0:
            raise ValueError(f"token count {n} is negative")
        counts.append(n)
    return counts


@dataclass
class BenchResult:
    """One row of the table.

    Attributes:
        test: ``"pp512"`` or ``"tg128"``.
        n_tokens: tokens per rep.
        samples: Fireside's tokens per second, one per rep.
        ref_samples: the reference engine's (llama.cpp's) tokens per second, one per rep; empty
            when no reference ran.
    """

    test: str
    n_tokens: int
    samples: list[float] = field(default_factory=list)
    ref_samples: list[float] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.samples)

    @property
    def std(self) -> float:
        return statistics.stdev(self.samples) if len(self.samples) > 1 else 0.0

    @property
    def ref_mean(self) -> float | None:
        return statistics.fmean(self.ref_samples) if self.ref_samples else None

    @property
    def ref_std(self) -> float | None:
        if not self.ref_samples:
            return None
        return statistics.stdev(self.ref_samples) if len(self.ref_samples) > 1 else 0.0

    @property
    def ratio(self) -> float | None:
        """Fireside / reference mean tokens per second (>1: Fireside is faster); None without a reference."""
        ref = self.ref_mean
        return self.mean / ref if ref else None


class Runner(Protocol):
    """An engine under test: seconds for one pp or tg run, each from an empty cache."""

    def time_prefill(self, n_prompt: int) -> float: ...

    def time_decode(self, n_gen: int) -> float: ...


def _random_tokens(ctx: Context, n: int, rng: np.random.Generator) -> list[int]:
    return rng.integers(0, ctx.n_vocab, n).tolist()


def time_prefill(ctx: Context, n_prompt: int, rng: np.random.Generator) -> float:
    """Seconds to process an n_prompt-token prompt (random ids) from an empty cache, in n_batch batches."""
    tokens = _random_tokens(ctx, n_prompt, rng)
    ctx.reset()
    t0 = time.perf_counter()
    ctx.prefill(tokens)
    return time.perf_counter() - t0


def time_decode(ctx: Context, n_gen: int, rng: np.random.Generator) -> float:
    """Seconds to decode n_gen random tokens one at a time from an empty cache (llama-bench's tg).

    Each step is a one-token forward pass that computes the logits; no sampling (llama-bench feeds
    random ids too), so only the engine is timed.
    """
    tokens = _random_tokens(ctx, n_gen, rng)
    ctx.reset()
    t0 = time.perf_counter()
    for tok in tokens:
        ctx.decode(tok)
    return time.perf_counter() - t0


class FiresideRunner:
    """:class:`Runner` over a Fireside :class:`~engine.context.Context` (random ids from ``seed``)."""

    def __init__(self, ctx: Context, seed: int = 0):
        self.ctx = ctx
        self.rng = np.random.default_rng(seed)

    def time_prefill(self, n_prompt: int) -> float:
        return time_prefill(self.ctx, n_prompt, self.rng)

    def time_decode(self, n_gen: int) -> float:
        return time_decode(self.ctx, n_gen, self.rng)


def run_bench(ctx: Context, n_prompt: int | Sequence[int] = 512, n_gen: int | Sequence[int] = 128, reps: int = 3,
              seed: int = 0, reference: Runner | None = None,
              on_result: Callable[[BenchResult], None] | None = None) -> list[BenchResult]:
    """Measure pp{n} for each prompt length and tg{n} for each generation length; 0 skips a test.

    Args:
        ctx: Fireside's context; n_ctx must hold the longest test.
        n_prompt, n_gen: a count or a list of counts (``-p 512,4096``).
        reps: timed runs per test (after one warm-up).
        seed: seed of the random token ids.
        reference: another engine (llama.cpp) to time on the same tests, interleaved rep by rep.
        on_result: called with each finished row (for progress output).

    Returns:
        one :class:`BenchResult` per test, pp tests first, in the order given.

    Raises:
        ValueError: reps < 1, or the context is too small for a test.
    """
    prompts = [n_prompt] if isinstance(n_prompt, int) else list(n_prompt)
    gens = [n_gen] if isinstance(n_gen, int) else list(n_gen)
    if reps < 1:
        raise ValueError(f"reps must be at least 1, got {reps}")
    longest = max([0, *prompts, *gens])
    if longest > ctx.n_ctx:
        raise ValueError(f"n_ctx = {ctx.n_ctx} is too small for a {longest}-token test (raise -c)")
    runners: list[Runner] = [FiresideRunner(ctx, seed)]
    if reference is not None:
        runners.append(reference)
    tests = [(f"pp{n}", n, "time_prefill", n) for n in prompts if n > 0]
    tests += [(f"tg{n}", n, "time_decode", 1) for n in gens if n > 0]  # llama-bench warms tg up with 1 token
    results = []
    for name, n, method, n_warmup in tests:
        for runner in runners:
            getattr(runner, method)(n_warmup)
        res = BenchResult(name, n)
        for _ in range(reps):
            for runner, samples in zip(runners, (res.samples, res.ref_samples)):
                time.sleep(SETTLE_S)
                samples.append(n / getattr(runner, method)(n))
        results.append(res)
        if on_result is not None:
            on_result(res)
    return results


def decode_weight_bytes(tensors: Mapping[str, TensorInfo], n_expert: int = 0, n_expert_used: int = 0) -> int:
    """Bytes of weights one generated token reads: every tensor once, except the token embedding,
    and of a mixture of experts' stacked expert tensors only the chosen experts' share.

    Decoding one token multiplies the hidden state by every weight matrix (all layers and the
    output head) and reads every norm vector, but takes only one row of ``token_embd.weight``. When
    the model has no ``output.weight``, the head is tied to the token embedding, so that whole
    matrix is read too (plus the one row of the lookup). In a mixture-of-experts model a token reads
    ``n_expert_used`` of the ``n_expert`` experts of each ``*_exps`` tensor (its active parameters).
    Generic over architectures: it only uses the GGUF tensor directory.

    Args:
        tensors: name -> :class:`~engine.gguf_file.TensorInfo` (``GGUFFile.tensors``).
        n_expert, n_expert_used: the model's experts and experts per token (0 for a dense model).

    Returns:
        bytes, int.
    """
    def read(name: str, t: TensorInfo) -> int:
        if n_expert > 0 and "_exps." in name:
            return t.n_bytes * n_expert_used // n_expert
        return t.n_bytes

    total = sum(read(name, t) for name, t in tensors.items())
    embd = tensors.get("token_embd.weight")
    if embd is None:
        return total
    row = embd.n_bytes // (embd.n_elements // embd.ne[0])  # one row of ne[0] values
    tied = "output.weight" not in tensors
    return total - (0 if tied else embd.n_bytes) + row


def kv_cache_bytes(hp: HParams, n_ctx: int) -> int:
    """Size of Fireside's KV cache: K and V, f16, n_ctx rows for every layer (forward.pyx)."""
    return 2 * hp.n_layer * n_ctx * hp.n_embd_kv * KV_BYTES_PER_VALUE


def kv_bytes_read_per_token(hp: HParams, n_gen: int) -> float:
    """Mean KV-cache bytes attention reads per token over a tg{n_gen} run from an empty cache.

    Token i (0-based) attends to i + 1 positions, or to the last ``window`` ones on a sliding-window
    layer; each position holds one K and one V row of ``n_embd_kv`` f16 values per layer.
    """
    if n_gen <= 0:
        return 0.0
    n_attended = 0
    for window in hp.layer_window or (0,) * hp.n_layer:
        if window > 0 and window < n_gen:
            n_attended += window * (window + 1) // 2 + (n_gen - window) * window
        else:
            n_attended += n_gen * (n_gen + 1) // 2
    return 2 * hp.n_embd_kv * KV_BYTES_PER_VALUE * n_attended / n_gen


def rss_target_bytes(file_size: int, kv_bytes: int) -> int:
    """The issue's peak-RSS target: the file, the KV cache and :data:`RSS_OVERHEAD_BYTES`."""
    return file_size + kv_bytes + RSS_OVERHEAD_BYTES


def read_loop_bytes_per_s(ctx: Context, reps: int = 5) -> float:
    """The decode yardstick: bytes per second of a plain read loop over the model's mapped file on
    ``ctx.n_threads`` threads (cython_kernels.forward.read_bandwidth, the fastest of ``reps`` passes),
    the same bytes decode reads, so decode GB/s over this is the share of the reachable bandwidth it
    uses. Run after the tests (the file's pages are then resident); allocates nothing (peak RSS)."""
    from cython_kernels import forward

    bytes_per_s, _ = forward.read_bandwidth(ctx.model.gguf.file_bytes(), ctx.n_threads, reps)
    return bytes_per_s


def bench_report(ctx: Context, results: list[BenchResult], peak_rss: int, llama_cpp: dict | None = None,
                 read_loop: float | None = None) -> dict:
    """The full report of a run, as printed by ``fireside bench --json``.

    Args:
        ctx: the Fireside context the tests ran on.
        results: :func:`run_bench`'s rows.
        peak_rss: Fireside's peak RSS in bytes (:func:`peak_rss_bytes`).
        llama_cpp: the reference's info (version, system_info, flash_attn, n_ctx, peak_rss), if it ran.
        read_loop: bytes per second of :func:`read_loop_bytes_per_s`, if measured.

    Returns:
        JSON-ready dict: model, file_size, n_threads, n_batch, n_ctx, peak_rss, kv_cache_bytes, rss_target
        (bytes), cpu_variant (the kernels' CPU variant that ran, cython_kernels.vecdot.impl(): "portable",
        "avx2", "avx512" or "neon"), rows_variant (that of the one-row decode kernels,
        vecdot.rows_impl()), llama_cpp (or absent), and results: per test its tokens_per_s, std, samples; with a
        reference ``llama_cpp`` {tokens_per_s, std, samples} and ``ratio`` (Fireside / llama.cpp); for tg
        tests ``bytes_per_token`` {weights, kv_cache_mean} and ``gb_per_s`` (also under ``llama_cpp``), and
        with ``read_loop`` ``read_loop_share`` (gb_per_s over the read loop's; the report's
        ``read_loop_gb_per_s``); page_cache {state, reason, pmd_mapped_bytes} (engine/page_cache.py) when
        the model was loaded by load_model.
    """
    model = ctx.model
    hp = model.hparams
    weights = decode_weight_bytes(model.gguf.tensors, hp.n_expert, hp.n_expert_used)
    kv_size = kv_cache_bytes(hp, ctx.n_ctx)
    rows = []
    for r in results:
        row: dict = {"test": r.test, "n_tokens": r.n_tokens, "tokens_per_s": r.mean, "std": r.std,
                     "samples": r.samples}
        if r.ref_samples:
            row["llama_cpp"] = {"tokens_per_s": r.ref_mean, "std": r.ref_std, "samples": r.ref_samples}
            row["ratio"] = r.ratio
        if r.test.startswith("tg"):
            kv_read = kv_bytes_read_per_token(hp, r.n_tokens)
            row["bytes_per_token"] = {"weights": weights, "kv_cache_mean": kv_read}
            row["gb_per_s"] = (weights + kv_read) * r.mean / 1e9
            if read_loop:
                row["read_loop_share"] = row["gb_per_s"] * 1e9 / read_loop
            if r.ref_samples:
                row["llama_cpp"]["gb_per_s"] = (weights + kv_read) * r.ref_mean / 1e9
        rows.append(row)
    report = {"model": model.path.name, "file_size": model.info.file_size, "n_threads": ctx.n_threads,
              "n_batch": ctx.n_batch, "n_ctx": ctx.n_ctx, "peak_rss": peak_rss, "kv_cache_bytes": kv_size,
              "rss_target": rss_target_bytes(model.info.file_size, kv_size), "cpu_variant": vecdot.impl(),
              "rows_variant": vecdot.rows_impl(),
              "results": rows}
    if read_loop:
        report["read_loop_gb_per_s"] = read_loop / 1e9
    huge = model.gguf.huge_pages
    if huge is not None:
        report["page_cache"] = {"state": huge.state, "reason": huge.reason,
                                "pmd_mapped_bytes": model.gguf.pmd_mapped_bytes()}
    if llama_cpp is not None:
        report["llama_cpp"] = llama_cpp
    return report


def format_report(report: dict) -> str:
    """:func:`bench_report` as llama-bench's markdown table, then decode bandwidth and peak RSS lines."""
    mib = 2**20
    rows = report["results"]
    compared = "llama_cpp" in report
    name, size, nth = report["model"], f"{report['file_size'] / mib:.0f} MiB", report["n_threads"]
    if compared:
        lines = ["| model | size | threads | test | fireside t/s | llama.cpp t/s | ratio |",
                 "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        lines += [f"| {name} | {size} | {nth} | {r['test']} | {r['tokens_per_s']:.2f} ± {r['std']:.2f} | "
                  f"{r['llama_cpp']['tokens_per_s']:.2f} ± {r['llama_cpp']['std']:.2f} | {r['ratio']:.2f} |"
                  for r in rows]
    else:
        lines = ["| model | size | threads | n_batch | test | t/s |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
        lines += [f"| {name} | {size} | {nth} | {report['n_batch']} | {r['test']} | "
                  f"{r['tokens_per_s']:.2f} ± {r['std']:.2f} |" for r in rows]
    for r in rows:
        if "gb_per_s" in r:
            ref = f", llama.cpp {r['llama_cpp']['gb_per_s']:.1f} GB/s" if "llama_cpp" in r else ""
            lines.append(f"{r['test']}: reads {r['bytes_per_token']['weights'] / 1e6:.1f} MB of weights per token "
                         f"(+ {r['bytes_per_token']['kv_cache_mean'] / 1e6:.2f} MB of KV cache, mean over the run): "
                         f"fireside {r['gb_per_s']:.1f} GB/s{ref}")
            if "read_loop_share" in r:
                lines.append(f"{r['test']}: fireside at {100 * r['read_loop_share']:.0f}% of a plain read loop over the "
                             f"file ({report['read_loop_gb_per_s']:.1f} GB/s on {nth} threads)")
    rss, target = report["peak_rss"], report["rss_target"]
    line = (f"peak RSS: fireside {rss / mib:.0f} MiB, {'within' if rss <= target else 'OVER'} the target "
            f"{target / mib:.0f} MiB (file {report['file_size'] / mib:.0f} + KV cache "
            f"{report['kv_cache_bytes'] / mib:.0f} at n_ctx {report['n_ctx']} + {RSS_OVERHEAD_BYTES / mib:.0f})")
    if compared and report["llama_cpp"].get("peak_rss"):
        line += f"; llama.cpp process {report['llama_cpp']['peak_rss'] / mib:.0f} MiB"
    lines.append(line)
    pc = report.get("page_cache")
    if pc is not None:
        share = (f"{100 * pc['pmd_mapped_bytes'] / report['file_size']:.0f}% of the file mapped in 2 MiB pages"
                 if pc["pmd_mapped_bytes"] is not None else "2 MiB pages not reported")
        lines.append(f"page cache: {share} ({pc['state']} at load: {pc['reason']}; FIRESIDE_HUGE_PAGES=0 turns it off)")
    rows = report.get("rows_variant", report["cpu_variant"])
    decode = f", decode row kernels {rows} (AMD Zen 4)" if rows != report["cpu_variant"] else ""
    lines.append(f"CPU variant: {report['cpu_variant']}{decode} (this CPU runs {', '.join(vecdot.variants())}; "
                 "FIRESIDE_CPU=<variant> forces one)")
    return "\n".join(lines)


def peak_rss_bytes() -> int:
    """Peak resident set size of this process, in bytes.

    On Linux this is ``VmHWM`` from ``/proc/self/status``: ``ru_maxrss`` of a process started from a big
    parent (pytest, the GUI) includes the parent's memory at fork time. Elsewhere ``ru_maxrss``
    (bytes on macOS, KiB on other Unixes); 0 where neither exists (Windows).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024
