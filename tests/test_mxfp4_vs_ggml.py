"""MXFP4's kernels against llama.cpp's own compiled ones: the libggml-base / libggml-cpu shared libraries that
llama-cpp-python ships export ``dequantize_row_mxfp4``, ``quantize_row_q8_0``, ``ggml_vec_dot_mxfp4_q8_0``
(ggml-cpu/arch/x86/quants.c: the __AVX2__ branch when the library was built with AVX2),
``ggml_vec_dot_mxfp4_q8_0_generic`` (ggml-cpu/quants.c), ``ggml_gemv_mxfp4_8x8_q8_0`` and
``ggml_gemm_mxfp4_8x8_q8_0`` (arch/x86/repack.cpp, on the interleaved layout of repack.cpp make_block_mxfp4x8;
the gemm's 4 activation rows from ggml_quantize_mat_q8_0_4x8), called here through ctypes on the same blocks.

Fireside's results must equal them bit for bit: the dequantizer and the Q8_0 activation bytes always; the
portable row kernel (run with FIRESIDE_CPU=portable in a subprocess) the generic dot; and, when both sides
have AVX2, the SIMD row kernel the AVX2 dot, fs_vec_dot_rows (llama.cpp's repacked product) the gemv and
fs_vec_dot_tile_gemm (the prefill tiles of the repacked product) the gemm.
This checks tests/quant_reference/mxfp4.py's transcription of ggml's arithmetic against ggml itself, on the
odd-block tail (n = 96, 2816) and every E8M0 byte too. A missing llama-cpp-python fails the test (the [test]
extra installs it); without AVX2 on either side only the portable and byte checks run.
"""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType as T

from cython_kernels import quants, vecdot
from kernel_calls import NUMERICS, c_vec_dot_rows, c_vec_dot_tile, make_x
from quant_reference.common import random_blocks

ROOT = Path(__file__).resolve().parent.parent
SIZES = (32, 96, 256, 2816, 2880)  # 2880: gpt-oss's width
N_ROWS = 16


@pytest.fixture(scope="module")
def ggml():
    """(libggml-base, libggml-cpu) of llama-cpp-python, the CPU backend initialised (its fp16 tables)."""
    import llama_cpp

    libdir = Path(llama_cpp.__file__).parent / "lib"
    base = ctypes.CDLL(str(libdir / "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
    cpu = ctypes.CDLL(str(libdir / "libggml-cpu.so"), mode=ctypes.RTLD_GLOBAL)
    vp, sz, i32 = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
    for name in ("ggml_vec_dot_mxfp4_q8_0", "ggml_vec_dot_mxfp4_q8_0_generic"):
        getattr(cpu, name).argtypes = [i32, vp, sz, vp, sz, vp, sz, i32]
        getattr(cpu, name).restype = None
    cpu.ggml_gemv_mxfp4_8x8_q8_0.argtypes = [i32, vp, sz, vp, vp, i32, i32]
    cpu.ggml_gemv_mxfp4_8x8_q8_0.restype = None
    cpu.ggml_gemm_mxfp4_8x8_q8_0.argtypes = [i32, vp, sz, vp, vp, i32, i32]
    cpu.ggml_gemm_mxfp4_8x8_q8_0.restype = None
    cpu.ggml_quantize_mat_q8_0_4x8.argtypes = [vp, vp, ctypes.c_int64]
    cpu.ggml_quantize_mat_q8_0_4x8.restype = None
    cpu.quantize_row_q8_0.argtypes = [vp, vp, ctypes.c_int64]
    cpu.quantize_row_q8_0.restype = None
    base.dequantize_row_mxfp4.argtypes = [vp, vp, ctypes.c_int64]
    base.dequantize_row_mxfp4.restype = None
    cpu.ggml_cpu_init.restype = None
    cpu.ggml_cpu_init()
    return base, cpu


def repack_8x8(w: np.ndarray, n: int) -> np.ndarray:
    """MXFP4 rows (n_rows % 8 == 0, n elements each) in llama.cpp's block_mxfp4x8 layout (repack.cpp
    make_block_mxfp4x8, interleave 8): per 8 rows and block, the 8 E8M0 bytes, then 16 chunks of 8 bytes of
    qs, chunk i from row i % 8, bytes 8 (i // 8) .. 8 (i // 8) + 8."""
    nb = n // 32
    b = w.reshape(-1, 8, nb, 17)
    out = np.zeros((b.shape[0], nb, 8 + 128), np.uint8)
    out[:, :, :8] = b[:, :, :, 0].transpose(0, 2, 1)
    for i in range(16):
        lo = 1 + 8 * (i // 8)
        out[:, :, 8 + 8 * i: 16 + 8 * i] = b[:, i % 8, :, lo: lo + 8]
    return np.ascontiguousarray(out)


def cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, weight rows, activation x): random blocks, and rows with every E8M0 byte at random against
    small activations (fp16 d near 2^-16: subnormal scale products, no overflow)."""
    rng = np.random.default_rng(39)
    out = []
    for n in SIZES:
        out.append((f"random-{n}", random_blocks(T.MXFP4, N_ROWS, n, rng), make_x(n, rng)))
        w = random_blocks(T.MXFP4, N_ROWS, n, rng)
        w.reshape(N_ROWS, n // 32, 17)[:, :, 0] = rng.integers(0, 256, (N_ROWS, n // 32))
        x = make_x(n, rng)
        out.append((f"e8m0-{n}", w, (x / np.abs(x).max() * np.float32(127 * 2.0**-16)).astype(np.float32)))
    return out


CASES = cases()

_PORTABLE = r"""
import sys, numpy as np
sys.path.insert(0, "tests")
from gguf import GGMLQuantizationType as T
from cython_kernels import vecdot
from kernel_calls import c_vec_dot_rows
from test_mxfp4_vs_ggml import CASES
assert vecdot.impl() == "portable"
np.savez(sys.argv[1], *[c_vec_dot_rows("norepack", T.MXFP4, w, vecdot.quantize_act(int(T.MXFP4), x), x.size)
                        for _, w, x in CASES])
"""


@pytest.fixture(scope="module")
def portable(tmp_path_factory) -> list[np.ndarray]:
    path = tmp_path_factory.mktemp("mxfp4") / "portable.npz"
    env = dict(os.environ, FIRESIDE_CPU="portable",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    proc = subprocess.run([sys.executable, "-c", _PORTABLE, str(path)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = np.load(path)
    return [data[f"arr_{i}"] for i in range(len(CASES))]


def ggml_dot(cpu, name: str, w: np.ndarray, act: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(w.shape[0], np.float32)
    for r in range(w.shape[0]):
        row = np.ascontiguousarray(w[r])
        getattr(cpu, name)(n, out[r:].ctypes.data, 0, row.ctypes.data, 0, act.ctypes.data, 0, 1)
    return out


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return np.array_equal(np.asarray(a, np.float32).view(np.uint32), np.asarray(b, np.float32).view(np.uint32))


@pytest.mark.parametrize("i", range(len(CASES)), ids=[c[0] for c in CASES])
def test_mxfp4_bit_identical_to_ggml(i, ggml, portable):
    base, cpu = ggml
    label, w, x = CASES[i]
    n = x.size
    deq = np.zeros(w.shape[0] * n, np.float32)
    base.dequantize_row_mxfp4(w.ctypes.data, deq.ctypes.data, deq.size)
    assert same_bits(quants.dequantize(w, int(T.MXFP4), (w.shape[0], n)).reshape(-1), deq), label
    act = vecdot.quantize_act(int(T.MXFP4), x)
    act_ggml = np.zeros_like(act)
    cpu.quantize_row_q8_0(x.ctypes.data, act_ggml.ctypes.data, n)
    assert np.array_equal(act, act_ggml), label
    assert same_bits(portable[i], ggml_dot(cpu, "ggml_vec_dot_mxfp4_q8_0_generic", w, act, n)), label
    if cpu.ggml_cpu_has_avx2() and NUMERICS[vecdot.impl()] == "avx2":
        got = c_vec_dot_rows("norepack", T.MXFP4, w, act, n)
        assert same_bits(got, ggml_dot(cpu, "ggml_vec_dot_mxfp4_q8_0", w, act, n)), label
        packed = repack_8x8(w, n)  # held: .ctypes.data does not keep the array alive
        gemv = np.zeros(w.shape[0], np.float32)
        cpu.ggml_gemv_mxfp4_8x8_q8_0(n, gemv.ctypes.data, 0, packed.ctypes.data, act.ctypes.data, 1, w.shape[0])
        assert same_bits(c_vec_dot_rows("gemv", T.MXFP4, w, act, n), gemv), label
        x4 = np.ascontiguousarray(np.stack([x, -x[::-1], np.roll(x, 32), x * np.float32(0.7)]))
        mat = np.zeros(4 * vecdot.act_row_bytes(int(T.MXFP4), n), np.uint8)  # block_q8_0x4: 4 rows interleaved
        cpu.ggml_quantize_mat_q8_0_4x8(x4.ctypes.data, mat.ctypes.data, n)
        gemm = np.zeros((4, w.shape[0]), np.float32)
        cpu.ggml_gemm_mxfp4_8x8_q8_0(n, gemm.ctypes.data, w.shape[0], packed.ctypes.data, mat.ctypes.data, 4,
                                     w.shape[0])
        acts = np.stack([vecdot.quantize_act(int(T.MXFP4), xi) for xi in x4])
        assert same_bits(c_vec_dot_tile(T.MXFP4, w, acts, n, gemm=True), gemm), label
