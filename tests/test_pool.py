"""The kernels' own thread pool (cython_kernels/fs_pool.c), which replaced OpenMP so that Apple clang and
MSVC builds use every core: its barrier, work counters and sleep/wake paths under stress (both the
Linux futex and the mutex + condition variable wait of macOS, built here with -DFS_WAIT_PORTABLE), and
the forward pass on it: its threads exist, and any thread count gives the same logits."""
from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.context import Context

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ROOT / "cython_kernels"


@pytest.mark.parametrize("wait", ["os", "portable"])
def test_pool_stress(tmp_path, wait):
    exe = tmp_path / "pool_check"
    flags = ["-DFS_WAIT_PORTABLE"] if wait == "portable" else []
    subprocess.run(["gcc", "-O2", "-std=gnu11", "-pthread", "-Wall", "-Wextra", "-Werror", *flags, f"-I{KERNELS}",
                    "-o", str(exe), str(ROOT / "tests" / "pool" / "pool_check.c"), str(KERNELS / "fs_pool.c")],
                   check=True, capture_output=True, text=True)
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


@pytest.mark.parametrize("wait", ["os", "portable"])
def test_pool_builds_for_windows(tmp_path, wait):
    """The Win32 threads and WaitOnAddress (or SRW lock + condition variable) code compiles cleanly with
    MinGW-w64 (Debian's gcc-mingw-w64-x86-64; nothing here can run it)."""
    cc = shutil.which("x86_64-w64-mingw32-gcc")
    if cc is None:
        pytest.skip("x86_64-w64-mingw32-gcc not installed (make cross-tools installs it)")
    flags = ["-DFS_WAIT_PORTABLE"] if wait == "portable" else []
    run = subprocess.run([cc, "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", *flags, f"-I{KERNELS}", "-c",
                          str(KERNELS / "fs_pool.c"), "-o", str(tmp_path / "fs_pool.o")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_pool_stress_on_arm64(tmp_path):
    """The same stress check cross-compiled for aarch64 and run under qemu-user (weaker memory ordering
    than x86: the barrier's atomics must carry the ordering themselves)."""
    cc, qemu = shutil.which("aarch64-linux-gnu-gcc"), shutil.which("qemu-aarch64")
    if cc is None or qemu is None:
        pytest.skip("aarch64-linux-gnu-gcc / qemu-aarch64 not installed (make cross-tools installs them)")
    exe = tmp_path / "pool_check"
    subprocess.run([cc, "-O2", "-std=gnu11", "-pthread", "-static", "-Wall", "-Wextra", "-Werror", f"-I{KERNELS}",
                    "-o", str(exe), str(ROOT / "tests" / "pool" / "pool_check.c"), str(KERNELS / "fs_pool.c")],
                   check=True, capture_output=True, text=True)
    run = subprocess.run([qemu, str(exe)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts threads in /proc")
def test_context_starts_and_stops_its_workers(smollm2):
    gc.collect()
    before = _os_threads()
    ctx = Context(smollm2, n_ctx=32, n_threads=3)
    assert ctx._fwd.pool_threads == 3
    assert _os_threads() == before + 2  # the caller is the third member
    ctx.eval_logits(smollm2.tokenizer.encode("Hello", add_special=True), 0)  # a job on the pool
    del ctx
    gc.collect()
    assert _os_threads() == before


def test_any_thread_count_gives_the_same_logits(smollm2):
    tokens = smollm2.tokenizer.encode("An odd number of threads splits rows unevenly.", add_special=True)
    results = []
    for n_threads in (1, 3, 4):
        ctx = Context(smollm2, n_ctx=64, n_threads=n_threads)
        prefill = ctx.eval_logits(tokens, 0)  # every position's logits, one batch
        decode = ctx.decode(int(np.argmax(prefill[-1]))).copy()
        results.append((prefill, decode))
    for prefill, decode in results[1:]:
        np.testing.assert_array_equal(prefill, results[0][0])
        np.testing.assert_array_equal(decode, results[0][1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads ldd")
def test_kernels_do_not_link_openmp():
    from cython_kernels import forward

    out = subprocess.run(["ldd", forward.__file__], capture_output=True, text=True, check=True).stdout
    assert "libgomp" not in out and "libomp" not in out, out


@pytest.mark.parametrize("threads", [1, 3])
def test_read_loop_reads_every_word(threads):
    from cython_kernels import forward

    words = np.arange(3 * 4096 // 8 * 5 + 7, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)  # 15 pages + 7 words
    bytes_per_s, total = forward.read_bandwidth(words.view(np.uint8), threads, 2)
    assert total == int(words.sum(dtype=np.uint64)) and bytes_per_s > 0
    with pytest.raises(ValueError):
        forward.read_bandwidth(words.view(np.uint8)[1:-7], threads)  # not 8-byte aligned
