"""The AVX-512 matmul kernels on any x86-64 machine with AVX2: each family file that has them
(cython_kernels/fs_q32.c, fs_kquants.c, fs_iq4.c) is compiled a second time into a small shared
library with its AVX-512 intrinsics replaced by plain-C stand-ins (tests/emu512/emu512.h) and its
AVX-512 functions built for the AVX2 target, then every AVX-512 kernel is called through ctypes next
to the same library's AVX2 kernel for the same job (which tests/test_vecdot.py and
tests/test_quant_families.py check against the numpy references). The outputs must be equal bit for
bit, as the AVX-512 variant promises (fs_common.h), for row counts around the kernels' row groups
(8 and 16: whole, part and several) and activation counts around their register tiles and thresholds.

This covers the AVX-512 code's logic (layouts, shuffles, masks, loop bounds, integer identities) on
machines without AVX-512, such as CI's; on AVX-512 hardware tests/test_cpu_variants.py runs the real
instructions against the AVX2 variant. Not covered here: fs_ops.c's AVX-512 attention tile (reached
only through the CPU dispatch).
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
_TILES = [_u8, ctypes.c_size_t, ctypes.c_int64, _u8, ctypes.c_size_t, ctypes.c_int64, ctypes.c_int64, _f32,
          ctypes.c_int64]  # (w, rb, n_rows, a, ab, n_act, n, out, os)
_ROWS = [_u8, ctypes.c_size_t, ctypes.c_int64, _u8, ctypes.c_int64, _f32]  # (w, rb, n_rows, act, n, out)

#: (family file, GGML type, AVX-512 kernel, AVX2 kernel of the same job, kind)
CASES = [
    *[("fs_q32", t, f"fs_tiles_{t.name.lower()}_avx512", f"fs_tiles_{t.name.lower()}_avx2", "tiles")
      for t in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0)],
    ("fs_q32", T.Q4_0, "fs_gemm_tiles_q4_0_avx512", "fs_gemm_tiles_q4_0_avx2", "tiles"),
    ("fs_kquants", T.Q6_K, "fs_tiles_q6_k_avx512", "fs_tiles_q6_k_avx2", "tiles"),
    ("fs_kquants", T.Q5_K, "fs_tiles_q5_k_avx512", "fs_tiles_q5_k_avx2", "tiles"),
    ("fs_q32", T.Q8_0, "fs_rows_q8_0_avx512", "fs_rows_q8_0_avx2", "rows"),
    ("fs_kquants", T.Q6_K, "fs_rows_q6_k_avx512", "fs_rows_q6_k_avx2", "rows"),
    ("fs_kquants", T.Q4_K, "fs_gemm_tiles_q4_k_avx512", "fs_gemm_tiles_q4_k_avx2", "tiles"),
    ("fs_iq4", T.IQ4_XS, "fs_tiles_iq4_xs_avx512", "fs_tiles_iq4_xs_avx2", "tiles"),
]
N_ROWS = (16, 11, 40)  # one 16-row group; part of one; two and an 8-row group
UNWRITTEN = 0x7FC0DEAD  # a NaN no kernel makes (theirs have payload 0): outputs left unwritten
N_ACT = (1, 3, 4, 7, 8, 9, 16, 23)  # around the 2-, 4- and 8-row register tiles and the unpacking threshold


@pytest.fixture(scope="module")
def emulated(tmp_path_factory):
    """{family file: ctypes handle of it built with emulated AVX-512 intrinsics (AVX2 code real)}."""
    if vecdot.impl() not in ("avx2", "avx512"):  # FIRESIDE_CPU=portable, or a CPU without AVX2
        pytest.skip(f"this process runs the {vecdot.impl()} variant: the emulated build needs AVX2")
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler on PATH")
    out = tmp_path_factory.mktemp("emu512")
    libs = {}
    for family in sorted({c[0] for c in CASES}):
        lib = out / f"{family}_emu512.so"
        cmd = [cc, "-O2", "-std=gnu11", "-ffp-contract=off", "-fPIC", "-shared", "-include", str(SHIM),
               '-DFS_AVX512_FN=__attribute__((target("avx2,fma,f16c,bmi2")))', f"-I{KERNELS}",
               str(KERNELS / f"{family}.c"), "-o", str(lib), "-lm"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        libs[family] = ctypes.CDLL(str(lib))
    return libs


def _fn(lib, name, kind):
    f = getattr(lib, name)
    f.argtypes, f.restype = (_TILES if kind == "tiles" else _ROWS), None
    return f


def _p(a: np.ndarray, kind):
    return a.ctypes.data_as(kind)


@pytest.mark.parametrize("n", [512, 2304])  # 2 and 9 super-blocks (16 and 72 blocks of 32)
@pytest.mark.parametrize("case", CASES, ids=[c[2] for c in CASES])
def test_avx512_kernel_equals_avx2(emulated, case, n):
    family, t, name512, name2, kind = case
    f512, f2 = _fn(emulated[family], name512, kind), _fn(emulated[family], name2, kind)
    rng = np.random.default_rng(int(t) * 1000 + n)
    for n_rows in N_ROWS:
        w = np.ascontiguousarray(random_blocks(t, n_rows, n, rng))
        for n_act in (N_ACT if kind == "tiles" else (1, 2)):
            x = (rng.standard_normal((n_act, n)) * rng.uniform(0.01, 10.0, (n_act, 1))).astype(np.float32)
            acts = np.ascontiguousarray(np.stack([vecdot.quantize_act(int(t), row) for row in x]))
            got = np.full((n_act, n_rows), UNWRITTEN, np.uint32).view(np.float32)
            want = np.full((n_act, n_rows), UNWRITTEN, np.uint32).view(np.float32)
            if kind == "tiles":
                for f, out in ((f512, got), (f2, want)):
                    f(_p(w, _u8), w.shape[1], n_rows, _p(acts, _u8), acts.shape[1], n_act, n, _p(out, _f32), n_rows)
            else:
                for j in range(n_act):
                    for f, out in ((f512, got), (f2, want)):
                        row = np.empty(n_rows, np.float32)
                        f(_p(w, _u8), w.shape[1], n_rows, _p(acts[j], _u8), n, _p(row, _f32))
                        out[j] = row
            assert not (want.view(np.uint32) == UNWRITTEN).any(), (name2, n_rows, n_act)
            # equal bits, except NaN payloads (random blocks hold NaN f16 fields; which operand's
            # payload a NaN result carries is not part of the kernels' contract)
            nan = np.isnan(want)
            assert np.array_equal(np.isnan(got), nan), (name512, n, n_rows, n_act)
            assert np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32)), (name512, n, n_rows, n_act)
