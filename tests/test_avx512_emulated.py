"""The AVX-512 IQ4_XS prefill (cython_kernels/fs_iq4.c fs_tiles_iq4_xs_avx512) on any x86-64 machine:
the kernel file is compiled a second time into a small shared library with its AVX-512 intrinsics
replaced by plain-C stand-ins (tests/emu512/emu512.h) and its AVX-512 functions built for the AVX2
target, then called through ctypes next to the same library's AVX2 row kernel, which
tests/test_quant_families.py checks against the numpy reference. Every output must be equal bit for
bit, for row counts around the kernel's 16-row blocks (full, part and several) and activation counts
around its 8-row register tiles and its unpacking threshold.

This covers the AVX-512 code's logic (the unpacked layout, the -128 offset taken from the Q8_K bsums,
masks, loop bounds) on machines without AVX-512, such as CI's; on AVX-512 hardware
tests/test_cpu_variants.py runs the real instructions against the AVX2 variant.
"""
from __future__ import annotations

import ctypes
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType as T

from cython_kernels import vecdot
from quant_reference.common import random_blocks

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ROOT / "cython_kernels"
SHIM = ROOT / "tests" / "emu512" / "emu512.h"

pytestmark = pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64") or sys.platform == "win32",
    reason="the emulated build uses the kernels' x86-64 AVX2 code and a GCC-style compiler")

_u8 = ctypes.POINTER(ctypes.c_uint8)
_f32 = ctypes.POINTER(ctypes.c_float)


@pytest.fixture(scope="module")
def emulated(tmp_path_factory):
    """ctypes handle of fs_iq4.c built with emulated AVX-512 intrinsics (AVX2 code real)."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler on PATH")
    lib = tmp_path_factory.mktemp("emu512") / "fs_iq4_emu512.so"
    cmd = [cc, "-O2", "-std=gnu11", "-ffp-contract=off", "-fPIC", "-shared", "-include", str(SHIM),
           '-DFS_AVX512_FN=__attribute__((target("avx2,fma,f16c,bmi2")))', f"-I{KERNELS}",
           str(KERNELS / "fs_iq4.c"), "-o", str(lib), "-lm"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    handle = ctypes.CDLL(str(lib))
    handle.fs_tiles_iq4_xs_avx512.argtypes = [_u8, ctypes.c_size_t, ctypes.c_int64, _u8, ctypes.c_size_t,
                                              ctypes.c_int64, ctypes.c_int64, _f32, ctypes.c_int64]
    handle.fs_tiles_iq4_xs_avx512.restype = None
    handle.fs_rows_iq4_xs_avx2.argtypes = [_u8, ctypes.c_size_t, ctypes.c_int64, _u8, ctypes.c_int64, _f32]
    handle.fs_rows_iq4_xs_avx2.restype = None
    return handle


def _ptr(a: np.ndarray, kind):
    return a.ctypes.data_as(kind)


@pytest.mark.parametrize("n_rows", [16, 11, 40])
@pytest.mark.parametrize("n", [512, 2304])
def test_avx512_iq4_xs_tiles_equal_avx2_rows(emulated, n_rows, n):
    if vecdot.impl() not in ("avx2", "avx512"):  # FIRESIDE_CPU=portable, or a CPU without AVX2
        pytest.skip(f"this process runs the {vecdot.impl()} variant: the emulated build needs AVX2")
    rng = np.random.default_rng(n_rows * 7 + n)
    w = np.ascontiguousarray(random_blocks(T.IQ4_XS, n_rows, n, rng))
    for n_act in (7, 8, 9, 16, 23):  # below the unpacking threshold, whole and part register tiles
        x = rng.standard_normal((n_act, n)).astype(np.float32) * rng.uniform(0.01, 10.0, (n_act, 1)).astype(np.float32)
        acts = np.ascontiguousarray(np.stack([vecdot.quantize_act(int(T.IQ4_XS), row) for row in x]))
        out = np.full((n_act, n_rows), np.nan, np.float32)
        emulated.fs_tiles_iq4_xs_avx512(_ptr(w, _u8), w.shape[1], n_rows, _ptr(acts, _u8), acts.shape[1], n_act, n,
                                        _ptr(out, _f32), n_rows)
        for j in range(n_act):
            want = np.empty(n_rows, np.float32)
            emulated.fs_rows_iq4_xs_avx2(_ptr(w, _u8), w.shape[1], n_rows, _ptr(acts[j], _u8), n, _ptr(want, _f32))
            assert np.array_equal(out[j].view(np.uint32), want.view(np.uint32)), (n_rows, n, n_act, j)
