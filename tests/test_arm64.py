"""The arm64 NEON (+ dot-product) kernels, cross-compiled with aarch64-linux-gnu-gcc and run under
qemu-user (``make cross-tools`` installs both; the tests skip without them).

* ``tests/arm64/neon_check.c`` (its header says what it checks and the error bound it uses) runs on
  emulated CPUs with the dot-product extension (``-cpu max``: also i8mm; ``cortex-a76``) and without it
  (``cortex-a53``, where qemu raises SIGILL on SDOT, so the portable variant must be chosen and every
  product must still be right), and with ``FIRESIDE_CPU`` naming a variant the CPU runs, one it does not
  (neon on the A53) and an x86 one.
* Every kernel source (``cython_kernels/fs_*.c``; not Cython's generated modules, which need Python's
  headers) compiles for aarch64 with -Wall -Wextra -Werror.

Not measurable here: speed on real arm64 hardware (qemu-user's timings say nothing about it), and the
Python test suite on an arm64 machine (the numpy transcriptions of ggml's float operations in
tests/quant_reference cover the portable and x86 code only).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ROOT / "cython_kernels"
CC, QEMU = shutil.which("aarch64-linux-gnu-gcc"), shutil.which("qemu-aarch64")
#: The kernel files the harness links: the traits table and every family file (not the forward-pass
#: ops or the thread pool).
LINKED = ("fs_traits", "fs_quants", "fs_vecdot", "fs_float", "fs_q32", "fs_kquants", "fs_iq4", "fs_iq2", "fs_iq3",
          "fs_iq1", "fs_ternary", "fs_mxfp4")
#: setup.py's Linux flags (the optimization level the wheel ships with), static for qemu-user.
FLAGS = ["-O3", "-std=gnu11", "-ffp-contract=off", "-static", "-Wall", "-Wextra", "-Werror", f"-I{KERNELS}"]

needs_tools = pytest.mark.skipif(
    CC is None or QEMU is None,
    reason="aarch64-linux-gnu-gcc / qemu-aarch64 not installed (make cross-tools installs them)")


@pytest.fixture(scope="module")
def neon_check(tmp_path_factory) -> Path:
    exe = tmp_path_factory.mktemp("arm64") / "neon_check"
    run = subprocess.run([CC, *FLAGS, "-o", str(exe), str(ROOT / "tests" / "arm64" / "neon_check.c"),
                          *(str(KERNELS / f"{name}.c") for name in LINKED), "-lm"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    return exe


def _run(exe: Path, cpu: str, expect: str, fireside_cpu: str | None = None, inject: bool = False):
    env = {k: v for k, v in os.environ.items() if k not in ("FIRESIDE_CPU", "NEON_CHECK_INJECT")}
    if fireside_cpu is not None:
        env["FIRESIDE_CPU"] = fireside_cpu
    if inject:
        env["NEON_CHECK_INJECT"] = "1"
    return subprocess.run([QEMU, "-cpu", cpu, str(exe), expect], capture_output=True, text=True, timeout=600, env=env)


@needs_tools
@pytest.mark.parametrize("cpu, fireside_cpu, expect", [
    ("max", None, "neon"),              # dotprod and i8mm
    ("cortex-a76", None, "neon"),       # dotprod, no i8mm
    ("cortex-a53", None, "portable"),   # neither: SDOT would be SIGILL
    ("max", "portable", "portable"),    # a variant this CPU runs is taken
    ("max", "avx2", "neon"),            # another architecture's variant is not
    ("cortex-a53", "neon", "portable"), # nor one this CPU lacks
])
def test_neon_kernels_under_qemu(neon_check, cpu, fireside_cpu, expect):
    run = _run(neon_check, cpu, expect, fireside_cpu)
    assert run.returncode == 0 and run.stdout.rstrip().endswith("ok"), run.stdout[-3000:] + run.stderr[-3000:]
    ran_kernels = "rows:" in run.stdout
    assert ran_kernels == (cpu != "cortex-a53"), run.stdout  # the NEON kernels ran wherever the CPU has SDOT
    if ran_kernels:
        for kernel in ("q4_0 rows", "q4_1 rows", "q5_0 rows", "q5_1 rows", "q8_0 rows", "q4_k rows", "q6_k rows",
                       "q4_0 gemv", "q4_k gemv", "q4_k gemm"):
            assert kernel in run.stdout, kernel


@needs_tools
def test_neon_check_catches_a_wrong_bit(neon_check):
    """One NEON result one ulp off (NEON_CHECK_INJECT) fails every kernel's bit check: the checks can fail."""
    run = _run(neon_check, "max", "neon", inject=True)
    assert run.returncode == 1, run.stdout[-2000:]
    assert run.stdout.count("FAILED") == 10, run.stdout


@needs_tools
def test_neon_check_catches_a_wrong_choice(neon_check):
    run = _run(neon_check, "cortex-a53", "neon")
    assert run.returncode == 1 and "FAIL: chose portable, expected neon" in run.stderr, run.stderr


@pytest.mark.skipif(CC is None, reason="aarch64-linux-gnu-gcc not installed (make cross-tools installs it)")
def test_every_kernel_file_compiles_for_arm64(tmp_path):
    """-O2 here: at -O3 GCC 12 (x86-64 and aarch64 alike) gives a false -Wmaybe-uninitialized on
    fs_ops.c's first_tile array, which the wheel's build (without -Werror) shows as a warning."""
    sources = sorted(p for p in KERNELS.glob("fs_*.c"))
    assert len(sources) >= 13
    run = subprocess.run([CC, "-O2", "-std=gnu11", "-ffp-contract=off", "-pthread", "-Wall", "-Wextra", "-Werror",
                          f"-I{KERNELS}", "-c", *map(str, sources)], cwd=tmp_path, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
