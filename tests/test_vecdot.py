"""Quantized dot products (cython_kernels/fs_vecdot.c), checked against gguf-py's numpy reference.

The kernels work as llama.cpp's CPU backend: the activation row is quantized to the weight type's
vec_dot_type (Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 for Q4_1/Q5_1, Q8_K for the K-quants, F16/BF16/F32 for
the float types), then each weight row is dotted with it block by block in integers. Checks:

* activation bytes: Q8_0 and Q8_1 are quantized as llama.cpp's x86 SIMD ``quantize_row_q8_0`` /
  ``quantize_row_q8_1`` do (ggml-cpu/arch/x86/quants.c: id = 127 / amax, round half to even), which
  is what llama.cpp runs on the machines we compare against; they equal
  ``gguf.quants.quantize(x, Q8_0)`` (the reference: id = 1 / d, roundf) except where the two
  roundings differ (exact .5 ties, and rare last-bit differences of x * id). Q8_K equals a numpy
  transcription of quantize_row_q8_K_ref (nearest_int, half to even); F16 equals numpy's float16
  cast, BF16 gguf-py's BF16 quantizer.
* "exact operands": the kernel's result equals the float64 dot product of the dequantized weights
  with the dequantized *quantized* activation (for Q4_1/Q5_1 with ggml's stored s = d * sum(qs) in
  the min term) to float32 rounding: |err| <= 2e-5 * sum |w| |x_q|.
* against ``gguf.quants.dequantize(w) @ x`` in float64 with the unquantized x: the activation's
  quantization error is bounded per element by max|x| of its block times 1/254 (rounding to a grid
  of max/127) + 1/1024 (fp16 rounding of d and s), so the stated tolerance is
  sum_i (|w_i| [+ 2 |m_block| for Q4_1/Q5_1]) * blockmax|x|_i * (1/254 + 1/1024)
  + 2e-5 * sum |w| |x| (F16: 2^-11 |x_i| instead, BF16: 2^-8 |x_i|, F32: float rounding only).
* bit for bit against ggml: a numpy transcription of ggml's float operation order (the scalar
  ``*_generic`` functions for the portable implementation; the AVX2 functions, with their 8-lane
  accumulators, FMAs and horizontal sums, for the AVX2 one) must give exactly the kernel's float32
  result. The integer block sums are exact, so this checks the lane split and the operation order
  that make the result agree with llama.cpp's. Q4_0 and Q4_K are the exception: llama.cpp on x86
  with AVX2 repacks them and multiplies with ggml_gemv_* / ggml_gemm_* (ggml-cpu/repack.cpp,
  arch/x86/repack.cpp), whose arithmetic both implementations reproduce: ``fs_vec_dot_rows`` gives
  the gemv bits, ``fs_vec_dot_rows_gemm`` the gemm bits and ``fs_vec_dot_rows_norepack`` the
  ggml_vec_dot bits (the last two are not in the Cython module yet and are called through ctypes).
* the AVX2 and the portable implementations agree to float summation order (portable run in a
  subprocess with FIRESIDE_CPU=portable), and bit for bit for the repacked products.
* real weights from both starter models, one tensor per type (a missing model fails the test).
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize, quantize

from cython_kernels import vecdot
from engine.gguf_file import GGUFFile
from kernel_calls import NUMERICS, c_vec_dot_rows, make_x
from quant_reference import REFERENCES
from quant_reference.common import ACT_BLOCK, ref_q8_0, ref_q8_1, ref_q8_k

ROOT = Path(__file__).resolve().parent.parent

ALL_TYPES = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q4_K, T.Q5_K, T.Q6_K]
K_TYPES = (T.Q4_K, T.Q5_K, T.Q6_K)
REPACKED = (T.Q4_0, T.Q4_K)  # llama.cpp's x86 AVX2 repack (q4_0_8x8_q8_0, q4_K_8x8_q8_K)
MODES = ("gemv", "gemm", "norepack")  # fs_vec_dot_rows, fs_vec_dot_rows_gemm, fs_vec_dot_rows_norepack
VEC_DOT_TYPE = {
    T.F32: T.F32, T.F16: T.F16, T.BF16: T.BF16,
    T.Q4_0: T.Q8_0, T.Q5_0: T.Q8_0, T.Q8_0: T.Q8_0,
    T.Q4_1: T.Q8_1, T.Q5_1: T.Q8_1,
    T.Q4_K: T.Q8_K, T.Q5_K: T.Q8_K, T.Q6_K: T.Q8_K,
}


# -- tolerances against numpy -----------------------------------------------------------------

def act_blocks(vdt: T, act: np.ndarray, n: int) -> dict:
    """Decode a quantized activation row: float64 values x_q (and for Q8_1 the per-block d, s)."""
    if vdt == T.F32:
        return {"xq": act.view(np.float32).astype(np.float64)}
    if vdt == T.F16:
        return {"xq": act.view(np.float16).astype(np.float64)}
    if vdt == T.BF16:
        return {"xq": (act.view(np.uint16).astype(np.uint32) << 16).view(np.float32).astype(np.float64)}
    qk, bs = ACT_BLOCK[vdt]
    blocks = act.reshape(n // qk, bs)
    if vdt == T.Q8_K:
        d = blocks[:, :4].copy().view(np.float32).astype(np.float64)
        q = blocks[:, 4:260].view(np.int8).astype(np.float64)
        return {"xq": (q * d).reshape(-1)}
    d = blocks[:, :2].copy().view(np.float16).astype(np.float64)
    qoff = 2 if vdt == T.Q8_0 else 4
    q = blocks[:, qoff:].view(np.int8).astype(np.float64)
    res = {"xq": (q * d).reshape(-1), "qsum": q.sum(axis=1), "d": d[:, 0]}
    if vdt == T.Q8_1:
        res["s"] = blocks[:, 2:4].copy().view(np.float16).astype(np.float64)[:, 0]
    return res


def block_mins(wtype: T, w: np.ndarray, n: int) -> np.ndarray:
    """The per-block f16 minimum m of Q4_1 / Q5_1 weight rows, shape (n_rows, n // 32)."""
    bs = gguf.GGML_QUANT_SIZES[wtype][1]
    blocks = np.ascontiguousarray(w[:, : (n // 32) * bs]).reshape(w.shape[0], n // 32, bs)
    return blocks[:, :, 2:4].copy().view(np.float16).astype(np.float64)[:, :, 0]


def weight_floats(wtype: T, w: np.ndarray, n: int) -> np.ndarray:
    """gguf.quants.dequantize of the weight rows, float64 (n_rows, n)."""
    nbytes = gguf.quants.quant_shape_to_byte_shape((n,), wtype)[0]
    raw = np.ascontiguousarray(w[:, :nbytes])
    return dequantize(raw, wtype).reshape(w.shape[0], n).astype(np.float64)


def check_against_references(wtype: T, w: np.ndarray, x: np.ndarray, got: np.ndarray) -> float:
    """Asserts the exact-operand and the unquantized-x tolerances; returns the error relative to
    sum |w| |x| (for information)."""
    n = x.size
    vdt = VEC_DOT_TYPE[wtype]
    act = vecdot.quantize_act(int(wtype), x)
    dec = act_blocks(vdt, act, n)
    W = weight_floats(wtype, w, n)
    x64 = x.astype(np.float64)
    xq = dec["xq"]

    # (1) exact operands, ggml's semantics
    exact = W @ xq
    if vdt == T.Q8_1:  # ggml uses the stored s instead of d16 * sum(qs) in the min term
        m = block_mins(wtype, w, n)
        exact += m @ (dec["s"] - dec["d"] * dec["qsum"])
    scale_q = np.abs(W) @ np.abs(xq) + 1e-30
    err_q = np.abs(got.astype(np.float64) - exact)
    assert np.all(err_q <= 2e-5 * scale_q), (wtype.name, n, float(np.max(err_q / scale_q)))

    # (2) unquantized activation: the bound from the activation's quantization step
    ref = W @ x64
    scale = np.abs(W) @ np.abs(x64) + 1e-30
    if vdt in ACT_BLOCK:
        qk = ACT_BLOCK[vdt][0]
        bmax = np.repeat(np.abs(x64).reshape(-1, qk).max(axis=1), qk)
        mag = np.abs(W)
        if vdt == T.Q8_1:
            mag = mag + 2 * np.repeat(np.abs(block_mins(wtype, w, n)), 32, axis=1)
        bound = (mag @ bmax) * (1 / 254 + 1 / 1024) + 2e-5 * scale
    elif vdt == T.F16:
        bound = scale * (2.0**-11 + 2e-5)
    elif vdt == T.BF16:
        bound = scale * (2.0**-8 + 2e-5)
    else:
        bound = scale * 2e-5
    err = np.abs(got.astype(np.float64) - ref)
    assert np.all(err <= bound), (wtype.name, n, float(np.max(err / bound)))
    return float(np.max(err / scale))


# -- bit-exact transcription of ggml's float operations: tests/quant_reference ----------------------

def emulate_ggml(impl: str, wtype: T, row: np.ndarray, act: np.ndarray, n: int, mode: str = "gemv") -> np.float32:
    """ggml's result for one row (the type's class in tests/quant_reference): ``impl`` "portable" = the
    scalar generic code, "avx2" or "avx512" = the __AVX2__ code (kernel_calls.NUMERICS). For Q4_0 / Q4_K, ``mode`` "gemv" / "gemm" is the x86
    repacked product (both implementations), "norepack" ggml_vec_dot as for the other types."""
    ref = REFERENCES[wtype]
    if wtype in REPACKED and mode != "norepack":
        return ref.gemm(row, act, n) if mode == "gemm" else ref.gemv(row, act, n)
    return ref.dot(NUMERICS[impl], row, act, n)


# -- the entry points not in the Cython module (yet): tests/kernel_calls.py ----------------------------

def all_modes(t: T, w: np.ndarray, x: np.ndarray) -> dict:
    act = vecdot.quantize_act(int(t), x)
    return {m: c_vec_dot_rows(m, t, w, act, x.size) for m in MODES}


# -- test data --------------------------------------------------------------------------------

def make_weights(wtype: T, n_rows: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Weight rows as uint8 (n_rows, row_bytes): gguf-py quantizes F32/F16/BF16/Q4_0/Q4_1/Q5_0/
    Q5_1/Q8_0; it has no quantizer for the K-quants, whose blocks are random bytes with finite
    f16 scales (every bit pattern of the other fields is a valid block)."""
    if wtype in K_TYPES:
        bs = gguf.GGML_QUANT_SIZES[wtype][1]
        raw = rng.integers(0, 256, size=(n_rows, n // 256, bs), dtype=np.uint8)
        d = rng.uniform(2e-4, 2e-3, size=(n_rows, n // 256, 1)).astype(np.float16).view(np.uint8)
        if wtype == T.Q6_K:
            raw[:, :, 208:210] = d
        else:
            raw[:, :, 0:2] = d
            raw[:, :, 2:4] = rng.uniform(1e-4, 1e-3, size=(n_rows, n // 256, 1)).astype(np.float16).view(np.uint8)
        return raw.reshape(n_rows, -1)
    w = (rng.standard_normal((n_rows, n)) * 0.05).astype(np.float32)
    w[:, : n // 3] += np.float32(0.02)  # nonzero block means for the Q4_1/Q5_1 minimum
    q = quantize(w, wtype)
    return np.ascontiguousarray(q).view(np.uint8).reshape(n_rows, -1)


def synthetic_cases() -> list[tuple[str, T, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(1234)
    cases = []
    for t in ALL_TYPES:
        sizes = [256, 512, 2816]
        if t not in K_TYPES:
            sizes.append(96)
        if t in (T.F32, T.F16, T.BF16):
            sizes += [40, 8]  # leftovers after the 32-element SIMD steps
        for n in sizes:
            n_rows = 13 if n == 512 else 7
            cases.append((f"{t.name}-{n}", t, make_weights(t, n_rows, n, rng), make_x(n, rng)))
    return cases


SYNTHETIC = synthetic_cases()

# One tensor per type of the starter models (name, expected type).
REAL_TENSORS = {
    "gemma": [
        ("blk.0.attn_q.weight", T.Q5_0),
        ("blk.0.attn_output.weight", T.Q4_K),
        ("blk.0.ffn_down.weight", T.Q6_K),
        ("blk.0.attn_v.weight", T.Q8_0),
    ],
    "smollm2": [("blk.0.ffn_up.weight", T.Q4_1), ("token_embd.weight", T.Q8_0)],
}


@pytest.fixture(scope="module")
def real_cases(gemma3_path, smollm2_path):
    rng = np.random.default_rng(99)
    cases = []
    for key, path in (("gemma", gemma3_path), ("smollm2", smollm2_path)):
        gf = GGUFFile(path)
        for name, expected in REAL_TENSORS[key]:
            t = gf.tensor(name)
            assert t.ggml_type == int(expected), (name, t.type_name)
            n_rows, n = t.data.shape[0], t.ne[0]
            rows = sorted({0, 1, 2, n_rows // 3, n_rows // 2 + 1, n_rows - 2, n_rows - 1})
            w = np.ascontiguousarray(t.data[rows])
            cases.append((f"{key}:{name}", expected, w, make_x(n, rng)))
        gf.close()
    return cases


# -- tests ---------------------------------------------------------------------------------------

def test_act_row_bytes():
    for t in ALL_TYPES:
        vdt = VEC_DOT_TYPE[t]
        n = 512
        expected = {T.F32: 4 * n, T.F16: 2 * n, T.BF16: 2 * n}.get(vdt)
        if expected is None:
            qk, bs = ACT_BLOCK[vdt]
            expected = n // qk * bs
        assert vecdot.act_row_bytes(int(t), n) == expected
    assert vecdot.act_row_bytes(int(T.F16), 3) == 6
    with pytest.raises(ValueError):
        vecdot.act_row_bytes(int(T.Q4_K), 32)
    with pytest.raises(ValueError):
        vecdot.act_row_bytes(int(T.NVFP4), 256)
    with pytest.raises(ValueError):
        vecdot.vec_dot_rows(int(T.Q4_0), np.zeros((2, 17), np.uint8), np.zeros(32, np.float32))


def test_q8_0_activation_bytes():
    rng = np.random.default_rng(5)
    x = make_x(2816, rng)
    # Exact ties: amax = 127 gives d = 1, so x itself is rounded; .5 goes to the even neighbour.
    ties = np.array([127.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 100.5, -126.5] + [0.25] * 23, np.float32)
    x[:32] = ties
    got = vecdot.quantize_act(int(T.Q8_0), x)
    assert np.array_equal(got, ref_q8_0(x))
    q = got[2:34].view(np.int8)
    assert list(q[:9]) == [127, 0, 0, 2, -2, 2, -2, 100, -126]  # half to even, as _mm256_round_ps
    # Against gguf's reference quantizer: same scales, quants equal but for rounding corner cases.
    ref = np.ascontiguousarray(quantize(x, T.Q8_0)).reshape(-1, 34)
    mine = got.reshape(-1, 34)
    assert np.array_equal(ref[:, :2], mine[:, :2])
    differ = ref[1:, 2:].view(np.int8).astype(int) - mine[1:, 2:].view(np.int8).astype(int)
    assert np.abs(differ).max() <= 1 and np.count_nonzero(differ) <= differ.size // 1000
    # The same activation format serves Q4_0 and Q5_0.
    for t in (T.Q4_0, T.Q5_0):
        assert np.array_equal(vecdot.quantize_act(int(t), x), got)


def test_q8_1_and_q8_k_activation_bytes():
    rng = np.random.default_rng(6)
    x = make_x(2816, rng)
    x[:32] = np.array([127.0, 0.5, -0.5, 2.5, -2.5] + [0.1] * 27, np.float32)
    for t in (T.Q4_1, T.Q5_1):
        assert np.array_equal(vecdot.quantize_act(int(t), x), ref_q8_1(x))
    x[256:512] = 0.0  # an all-zero super-block: d = 0, qs = 0, bsums = 0
    x[512] = -40.0  # a negative maximum: iscale > 0
    x[1024:1026] = [30.0, -30.0]  # equal |x|: the first one sets the sign
    for t in K_TYPES:
        assert np.array_equal(vecdot.quantize_act(int(t), x), ref_q8_k(x))


def test_float_activation_bytes():
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(4096) * np.exp(rng.uniform(-30, 12, 4096))).astype(np.float32)
    x[:8] = [0.0, -0.0, 65504.0, 65520.0, -1e6, 6e-8, 2.98e-8, 3e-5]  # max, overflow, subnormals
    with np.errstate(over="ignore"):  # numpy warns on the float16 overflow that is being tested
        f16 = x.astype(np.float16)
    assert np.array_equal(vecdot.quantize_act(int(T.F16), x), f16.view(np.uint8))
    assert np.array_equal(vecdot.quantize_act(int(T.BF16), x), quantize(x, T.BF16).reshape(-1))
    assert np.array_equal(vecdot.quantize_act(int(T.F32), x), x.view(np.uint8))


@pytest.mark.parametrize("case", SYNTHETIC, ids=[c[0] for c in SYNTHETIC])
def test_vec_dot_synthetic(case):
    _, t, w, x = case
    got = vecdot.vec_dot_rows(int(t), w, x)
    assert got.dtype == np.float32 and got.shape == (w.shape[0],)
    check_against_references(t, w, x, got)


def test_vec_dot_real_weights(real_cases):
    for label, t, w, x in real_cases:
        got = vecdot.vec_dot_rows(int(t), w, x)
        rel = check_against_references(t, w, x, got)
        assert rel < 0.05, (label, rel)


def test_padded_rows_and_threads():
    """Rows may be longer than the data they hold; many threads may call at once."""
    rng = np.random.default_rng(8)
    w = make_weights(T.Q4_K, 33, 512, rng)
    x = make_x(512, rng)
    expected = vecdot.vec_dot_rows(int(T.Q4_K), w, x)
    padded = np.concatenate([w, np.full((w.shape[0], 7), 0xFF, np.uint8)], axis=1)
    assert np.array_equal(vecdot.vec_dot_rows(int(T.Q4_K), padded, x), expected)
    results = [None] * 8

    def work(i):
        results[i] = [vecdot.vec_dot_rows(int(T.Q4_K), w, x) for _ in range(20)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for r in results:
        for y in r:
            assert np.array_equal(y, expected)


_PORTABLE_SCRIPT = """
import sys
import numpy as np
sys.path.insert(0, "tests")
from cython_kernels import vecdot
from test_vecdot import MODES, all_modes
assert vecdot.impl() == "portable", vecdot.impl()
data = np.load(sys.argv[1])
out = {}
for key in data.files:
    if key.startswith("w_"):
        name = key[2:]
        t, w, x = int(data["t_" + name]), data[key], data["x_" + name]
        out["y_" + name] = vecdot.vec_dot_rows(t, w, x)
        for mode, y in all_modes(t, w, x).items():
            out[mode + "_" + name] = y
np.savez(sys.argv[2], **out)
"""


@pytest.fixture(scope="module")
def impl_results(real_cases, tmp_path_factory) -> dict:
    """{implementation name: [float32 results per case]} for the implementation this process runs
    and, when that is AVX2, for the portable one too (run in a subprocess with
    FIRESIDE_CPU=portable, since the choice is made once per process). The lists are those of
    vecdot.vec_dot_rows; "<impl>/<mode>" keys hold those of the C entry point for each mode."""
    cases = SYNTHETIC + real_cases
    impl = vecdot.impl()
    results = {impl: [vecdot.vec_dot_rows(int(t), w, x) for _, t, w, x in cases]}
    per_mode = [all_modes(t, w, x) for _, t, w, x in cases]
    for mode in MODES:
        results[f"{impl}/{mode}"] = [r[mode] for r in per_mode]
    if "portable" not in results:
        tmp = tmp_path_factory.mktemp("vecdot")
        arrays = {}
        for i, (_, t, w, x) in enumerate(cases):
            arrays[f"w_{i}"], arrays[f"x_{i}"], arrays[f"t_{i}"] = w, x, np.array(int(t))
        np.savez(tmp / "in.npz", **arrays)
        pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        env = dict(os.environ, FIRESIDE_CPU="portable", PYTHONPATH=pythonpath)
        proc = subprocess.run(
            [sys.executable, "-c", _PORTABLE_SCRIPT, str(tmp / "in.npz"), str(tmp / "out.npz")],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        out = np.load(tmp / "out.npz")
        results["portable"] = [out[f"y_{i}"] for i in range(len(cases))]
        for mode in MODES:
            results[f"portable/{mode}"] = [out[f"{mode}_{i}"] for i in range(len(cases))]
    return results


def test_bit_identical_to_ggml(impl_results, real_cases):
    """Every result equals, bit for bit, ggml's float operation sequence for that implementation
    (and, for Q4_0 / Q4_K, for the product each entry point reproduces)."""
    cases = SYNTHETIC + real_cases
    assert {k.split("/")[0] for k in impl_results} <= set(NUMERICS)
    for key, outs in impl_results.items():
        impl, _, mode = key.partition("/")
        if mode and mode != "norepack" and mode != "gemm":
            continue  # "<impl>/gemv" is the list of "<impl>", checked equal below
        for (label, t, w, x), got in zip(cases, outs):
            act = vecdot.quantize_act(int(t), x)
            expected = np.array([emulate_ggml(impl, t, w[r], act, x.size, mode or "gemv") for r in range(w.shape[0])],
                                np.float32)
            assert np.array_equal(got.view(np.uint32), expected.view(np.uint32)), (key, label, got, expected)
        if not mode:
            for got, via_c in zip(outs, impl_results[f"{impl}/gemv"]):
                assert np.array_equal(got.view(np.uint32), via_c.view(np.uint32))


def test_repack_modes(impl_results, real_cases):
    """gemm and norepack differ from gemv only where llama.cpp's products differ: gemm only for
    Q4_K, norepack only for Q4_0 and Q4_K; and there they do differ (on some outputs)."""
    cases = SYNTHETIC + real_cases
    impls = {k.split("/")[0] for k in impl_results}
    for impl in impls:
        differs = {("gemm", T.Q4_K): False, ("norepack", T.Q4_K): False, ("norepack", T.Q4_0): False}
        for i, (label, t, w, x) in enumerate(cases):
            gemv = impl_results[f"{impl}/gemv"][i].view(np.uint32)
            for mode in ("gemm", "norepack"):
                same = np.array_equal(gemv, impl_results[f"{impl}/{mode}"][i].view(np.uint32))
                if (mode, t) in differs:
                    differs[(mode, t)] |= not same
                else:
                    assert same, (impl, mode, label)
        assert all(differs.values()), (impl, differs)


def test_q8_k_4x8_sign_choice_gives_same_result():
    """ggml_quantize_mat_q8_K_4x8 (the activations of llama.cpp's gemm rows) takes iscale = -127 / amax
    whenever +amax occurs in the super-block, quantize_row_q8_K_ref the sign of the first element of
    largest |x|: with -amax first, the 4x8 bytes are the reference ones with d, qs and bsums negated.
    The products of every mode are then bit for bit the same."""
    rng = np.random.default_rng(11)
    n = 512
    x = make_x(n, rng)
    x[3], x[100] = -30.0, 30.0  # -amax first in super-block 0
    x[300], x[400] = -28.0, 28.0  # and in super-block 1
    act = vecdot.quantize_act(int(T.Q4_K), x)
    blocks = act.reshape(2, 292)
    assert np.all(blocks[:, :4].copy().view(np.float32) > 0)  # reference: iscale = -127 / -amax > 0
    neg = blocks.copy()
    neg[:, :4] = (-blocks[:, :4].copy().view(np.float32)).view(np.uint8)
    neg[:, 4:260] = (-blocks[:, 4:260].view(np.int8)).view(np.uint8)
    neg[:, 260:292] = (-blocks[:, 260:292].copy().view("<i2")).view(np.uint8)
    neg = neg.reshape(-1)
    for t in K_TYPES:
        w = make_weights(t, 16, n, rng)
        for mode in MODES:
            a = c_vec_dot_rows(mode, t, w, act, n)
            b = c_vec_dot_rows(mode, t, w, neg, n)
            assert np.array_equal(a, b), (t.name, mode)  # == also equates +0 and -0


def test_simd_matches_portable(impl_results, real_cases):
    """The SIMD variant of this process and the portable one agree to float summation order (bit for
    bit on the repacked products)."""
    if vecdot.impl() == "portable":
        pytest.skip(f"this CPU / build runs the {vecdot.impl()} implementation only")
    cases = SYNTHETIC + real_cases
    simd = vecdot.impl()
    for mode in MODES:
        for (label, t, w, x), fast, slow in zip(cases, impl_results[f"{simd}/{mode}"], impl_results[f"portable/{mode}"]):
            if t in REPACKED and mode != "norepack":  # the repacked products: same bits everywhere
                assert np.array_equal(fast.view(np.uint32), slow.view(np.uint32)), (mode, label)
            xq = act_blocks(VEC_DOT_TYPE[t], vecdot.quantize_act(int(t), x), x.size)["xq"]
            scale = np.abs(weight_floats(t, w, x.size)) @ np.abs(xq) + 1e-30
            diff = np.abs(fast.astype(np.float64) - slow.astype(np.float64))
            assert np.all(diff <= 1e-5 * scale), (mode, label, float(np.max(diff / scale)))
