"""The quant types added with the traits table (Q2_K, Q3_K, IQ4_NL, IQ4_XS, the IQ2 / IQ3 / IQ1 grids,
TQ1_0, TQ2_0, MXFP4), each checked against its numpy reference class in tests/quant_reference/:

* dequantization bit-identical to gguf-py's ``gguf.quants.dequantize`` on random blocks (every bit
  pattern of these formats is a block, only the f16 scales are kept finite; MXFP4's E8M0 scales are
  powers of two near the same range, and one case holds each of the 256 E8M0 bytes, 0 and 255 included);
* the dot products bit-identical to ggml's, both implementations: the portable C code against the
  reference's ``dot("portable", ...)`` (ggml's *_generic code), run in a subprocess with
  FIRESIDE_CPU=portable; the SIMD code against ``dot("avx2", ...)`` (ggml's __AVX2__ code; for IQ4_XS
  Fireside's own exact-int-per-super-block order, fs_iq4.c IQ4XS_BITS), in this process when the CPU
  has AVX2 (the AVX-512 variant keeps the AVX2 bits; tests/test_cpu_variants.py runs the others); the repacked products of IQ4_NL and MXFP4 (llama.cpp's x86 gemv) against ``gemv``;
* the register-tiled prefill kernels equal to the row kernels, bit for bit, for 1 .. 6, 9, 17 and 33 activation rows (for
  the repacked types also the gemm tiles to the gemv), and ``forward.matmul`` (tiles, or llama.cpp's gemm /
  gemv split for repacked row counts) equal to them;
* every result within float rounding of the float64 product of the dequantized operands (rows whose
  dequantized weights overflow float32, MXFP4 with e >= 253, excepted).

Real tensors of these types (made by llama.cpp's quantizer) are checked in tests/test_zoo_quants.py.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize

from cython_kernels import forward, quants, vecdot
from kernel_calls import NUMERICS, c_vec_dot_rows, c_vec_dot_tile, make_x
from quant_reference import NEWER as REFERENCES
from quant_reference.common import ACT_BLOCK, decode_act, quantize_act, random_blocks

ROOT = Path(__file__).resolve().parent.parent
TYPES = list(REFERENCES)
SIZES = (256, 512, 2816)


def mxfp4_e8m0_case(rng: np.random.Generator) -> tuple[str, T, np.ndarray, np.ndarray]:
    """32 MXFP4 rows of 8 blocks whose E8M0 bytes are 8 r + b (row r, block b): every byte 0 .. 255 once,
    so GGML_E8M0_TO_FP32_HALF's subnormal scales (e = 0, 1) and the largest ones (e = 255: 2^127, whose
    dequantized values overflow to inf) are all multiplied. The activation blocks have maxima near
    127 * 2^-16 (fp16 d of about 2^-16), small enough that no dot product overflows and small enough
    that the first rows' scale products d = fp16(y.d) * 2^(e - 128) are float32 subnormals."""
    n = 256
    w = random_blocks(T.MXFP4, 32, n, rng).reshape(32, 8, 17)
    w[:, :, 0] = (8 * np.arange(32)[:, None] + np.arange(8)[None, :]).astype(np.uint8)
    x = rng.standard_normal(n).astype(np.float32).reshape(8, 32)
    x *= (127 * 2.0 ** rng.uniform(-17, -15, 8) / np.abs(x).max(axis=1)).astype(np.float32)[:, None]
    x[3] = 0.0  # y.d = 0
    return "MXFP4-e8m0", T.MXFP4, w.reshape(32, -1), x.reshape(-1)


def cases() -> list[tuple[str, T, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(20261202)
    out = []
    for t in TYPES:
        sizes = SIZES + ((32, 96) if gguf.GGML_QUANT_SIZES[t][0] == 32 else ())
        for n in sizes:
            out.append((f"{t.name}-{n}", t, random_blocks(t, 9 if n == 512 else 5, n, rng), make_x(n, rng)))
    if T.MXFP4 in REFERENCES:
        out.append(mxfp4_e8m0_case(rng))
    return out


CASES = cases()

_PORTABLE = r"""
import sys, numpy as np
sys.path.insert(0, "tests")
from test_quant_families import CASES
from kernel_calls import c_vec_dot_rows
from cython_kernels import vecdot
assert vecdot.impl() == "portable"
out = {}
for i, (_, t, w, x) in enumerate(CASES):
    act = vecdot.quantize_act(int(t), x)
    out[f"rows_{i}"] = c_vec_dot_rows("norepack", t, w, act, x.size)
    out[f"gemv_{i}"] = c_vec_dot_rows("gemv", t, w, act, x.size)
np.savez(sys.argv[1], **out)
"""


@pytest.fixture(scope="module")
def portable(tmp_path_factory) -> dict:
    """The portable implementation's results (a subprocess: the implementation is chosen once per process)."""
    path = tmp_path_factory.mktemp("families") / "portable.npz"
    env = dict(os.environ, FIRESIDE_CPU="portable",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    proc = subprocess.run([sys.executable, "-c", _PORTABLE, str(path)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return dict(np.load(path))


def test_every_reference_type_is_in_the_traits_table():
    names = set(quants.SUPPORTED_TYPE_NAMES)
    for t in TYPES:
        assert t.name in names
        assert quants.block_elems(int(t)) == gguf.GGML_QUANT_SIZES[t][0]
        assert quants.block_bytes(int(t)) == gguf.GGML_QUANT_SIZES[t][1]
        assert vecdot.act_row_bytes(int(t), 256) == 256 // ACT_BLOCK[REFERENCES[t].act_type][0] * \
            ACT_BLOCK[REFERENCES[t].act_type][1]


@pytest.mark.parametrize("label, t, w, x", CASES, ids=[c[0] for c in CASES])
def test_dequantize_bit_identical(label, t, w, x):
    got = quants.dequantize(w, int(t), (w.shape[0], x.size))
    with np.errstate(over="ignore"):  # MXFP4 with e >= 253: inf, as in ggml
        want = dequantize(w, t).reshape(w.shape[0], x.size)
    assert np.array_equal(got.view(np.uint32), want.astype(np.float32).view(np.uint32)), label


@pytest.mark.parametrize("i", range(len(CASES)), ids=[c[0] for c in CASES])
def test_dot_products_bit_identical_to_ggml(i, portable):
    label, t, w, x = CASES[i]
    ref = REFERENCES[t]
    n = x.size
    act = vecdot.quantize_act(int(t), x)
    assert np.array_equal(act, quantize_act(ref.act_type, x)), f"{label}: activation bytes"
    want = {impl: np.array([ref.dot(impl, row, act, n) for row in w], np.float32) for impl in ("portable", "avx2")}
    assert np.array_equal(portable[f"rows_{i}"].view(np.uint32), want["portable"].view(np.uint32)), label
    if vecdot.impl() != "portable":
        got = c_vec_dot_rows("norepack", t, w, act, n)
        assert np.array_equal(got.view(np.uint32), want[NUMERICS[vecdot.impl()]].view(np.uint32)), label
    gemv = getattr(ref, "gemv", None)
    if gemv is not None:  # llama.cpp's x86 repacked product: the same bits from both implementations
        g = np.array([gemv(row, act, n) for row in w], np.float32)
        assert np.array_equal(portable[f"gemv_{i}"].view(np.uint32), g.view(np.uint32)), label
        assert np.array_equal(c_vec_dot_rows("gemv", t, w, act, n).view(np.uint32), g.view(np.uint32)), label
    # float64 product of the dequantized weights and the dequantized quantized activation, on the rows whose
    # weights are finite in float32; 1e-37 absolute: float32 subnormal products (the MXFP4-e8m0 case)
    with np.errstate(over="ignore"):
        W = dequantize(w, t).reshape(w.shape[0], n).astype(np.float64)
    finite = np.all(np.isfinite(W), axis=1)
    W = W[finite]
    dec = decode_act(ref.act_type, act, n)
    xq = (dec["q"] * dec["d"][:, None].astype(np.float64)).reshape(-1)
    exact, scale = W @ xq, np.abs(W) @ np.abs(xq) + 1e-30
    for impl, res in want.items():
        assert np.all(np.isfinite(res)), (label, impl)
        assert np.all(np.abs(res[finite] - exact) <= 2e-5 * scale + 1e-37), (label, impl)


@pytest.mark.parametrize("t", TYPES, ids=[t.name for t in TYPES])
def test_tiles_equal_rows(t):
    rng = np.random.default_rng(int(t))
    n = 512
    w = random_blocks(t, 27, n, rng)  # the AVX-512 IQ4_XS product: one block of 16 rows and a part block
    # 9, 17, 33: its unpacked path (8 activation rows per register tile) with 1 left over
    for n_act in (1, 2, 3, 4, 5, 6, 9, 17, 33):
        acts = np.stack([vecdot.quantize_act(int(t), make_x(n, rng)) for _ in range(n_act)])
        got = c_vec_dot_tile(t, w, acts, n)
        for j in range(n_act):
            want = c_vec_dot_rows("norepack", t, w, acts[j], n)
            assert np.array_equal(got[j].view(np.uint32), want.view(np.uint32)), (t.name, n_act, j)
        if getattr(REFERENCES[t], "gemv", None) is not None:  # the repacked product's tiles (MXFP4's)
            got = c_vec_dot_tile(t, w, acts, n, gemm=True)
            for j in range(n_act):
                want = c_vec_dot_rows("gemm", t, w, acts[j], n)
                assert np.array_equal(got[j].view(np.uint32), want.view(np.uint32)), (t.name, "gemm", n_act, j)


@pytest.mark.parametrize("t", TYPES, ids=[t.name for t in TYPES])
def test_matmul_equals_rows(t):
    """forward.matmul, the engine's product, gives the row kernels' bits: register tiles (or rows) with
    ggml_vec_dot's arithmetic where llama.cpp does not repack the weight, and llama.cpp's repacked split
    (gemm for groups of 4 tokens, gemv for the rest) for IQ4_NL / MXFP4 weights with a multiple of 8 rows;
    1 and 2 threads alike."""
    rng = np.random.default_rng(100 + int(t))
    n = 512
    w = random_blocks(t, 24, n, rng)
    x = np.stack([make_x(n, rng) for _ in range(11)])
    for n_out in (24, 13):
        repacked = n_out % 8 == 0 and getattr(REFERENCES[t], "gemv", None) is not None
        y1 = forward.matmul(int(t), w[:n_out], x, 1)
        assert np.array_equal(y1.view(np.uint32), forward.matmul(int(t), w[:n_out], x, 2).view(np.uint32))
        for j in range(x.shape[0]):
            mode = ("gemm" if j < 8 else "gemv") if repacked else "norepack"
            want = c_vec_dot_rows(mode, t, w[:n_out], vecdot.quantize_act(int(t), x[j]), n)
            assert np.array_equal(y1[j].view(np.uint32), want.view(np.uint32)), (t.name, n_out, j)
