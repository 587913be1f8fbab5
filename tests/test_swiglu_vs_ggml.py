"""SwiGLU (``silu(gate) * up``, Llama's and Qwen's FFN) against llama.cpp's own compiled function:
``ggml_vec_swiglu_f32`` (ggml-cpu/vec.cpp), exported by the libggml-cpu that llama-cpp-python ships, called
through ctypes on the same values as Fireside's ``fs_gated_act`` (called through ctypes on the forward
extension).

In an AVX2 build ggml takes exp from its own polynomial (vec.h ``ggml_v_expf``) for every whole 8 values and
``expf`` for the rest; Fireside's AVX2 and AVX-512 variants do the same operations, so with AVX2 on both sides
(and no AVX-512 in ggml's build, whose ``ggml_v_expf`` is another polynomial) the results must be equal bit for
bit, on random values, the range where exp over- or underflows, signed zeros, infinities and NaN, and widths
that leave a tail. Otherwise (Fireside's portable variant, or ggml built with AVX-512) both are checked to be
SiLU within a few float roundings of the exact value, and portable must be ``gate / (1 + expf(-gate)) * up``
as ggml's build without SIMD computes it.
"""
from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np
import pytest

from cython_kernels import forward, vecdot
from kernel_calls import NUMERICS


@pytest.fixture(scope="module")
def ggml_swiglu():
    import llama_cpp

    libdir = Path(llama_cpp.__file__).parent / "lib"
    ctypes.CDLL(str(libdir / "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
    cpu = ctypes.CDLL(str(libdir / "libggml-cpu.so"), mode=ctypes.RTLD_GLOBAL)
    cpu.ggml_vec_swiglu_f32.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    cpu.ggml_vec_swiglu_f32.restype = None
    for name in ("ggml_cpu_has_avx2", "ggml_cpu_has_avx512"):
        getattr(cpu, name).restype = ctypes.c_int

    def swiglu(g: np.ndarray, u: np.ndarray) -> np.ndarray:
        y = np.zeros_like(g)
        cpu.ggml_vec_swiglu_f32(g.size, y.ctypes.data, g.ctypes.data, u.ctypes.data)
        return y

    swiglu.avx2_only = bool(cpu.ggml_cpu_has_avx2()) and not cpu.ggml_cpu_has_avx512()
    return swiglu


def fs_swiglu(g: np.ndarray, u: np.ndarray) -> np.ndarray:
    f = ctypes.CDLL(forward.__file__).fs_gated_act
    f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int]
    f.restype = None
    out = np.array(g, np.float32)
    f(out.ctypes.data, u.ctypes.data, out.size, 0)
    return out


def cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(14)
    special = np.array([0.0, -0.0, 1e-30, -1e-30, 1e-42, 87.5, -87.5, 88.0, -88.0, 88.8, -88.8, 89.0, -89.0,
                        103.0, -104.0, 126.5, -126.5, 150.0, -150.0, 192.5, -192.5, 1e4, -1e4, np.inf, -np.inf,
                        np.nan, 3.4e38, -3.4e38], np.float32)
    out = []
    for n in (8, 1536, 1539, 8192, 13):  # whole groups of 8, and widths with a tail of 3 / 5
        g = rng.normal(0, 4, n).astype(np.float32)
        out.append((f"normal-{n}", g, rng.normal(0, 1, n).astype(np.float32)))
    wide = rng.uniform(-200, 200, 4096).astype(np.float32)
    out.append(("wide", wide, rng.normal(0, 1, wide.size).astype(np.float32)))
    sp = np.concatenate([special, special[::-1], special[3:]])
    out.append(("special", sp, np.ones_like(sp)))
    return out


CASES = cases()


def same_bits(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))


@pytest.mark.parametrize("i", range(len(CASES)), ids=[c[0] for c in CASES])
def test_swiglu_against_ggml(i, ggml_swiglu):
    label, g, u = CASES[i]
    got, ref = fs_swiglu(g, u), ggml_swiglu(g, u)
    if NUMERICS[vecdot.impl()] == "avx2" and ggml_swiglu.avx2_only:
        bad = ~same_bits(got, ref)
        assert not bad.any(), f"{label}: {bad.sum()} values differ from ggml, first at {np.flatnonzero(bad)[:5]}"
    elif vecdot.impl() == "portable":
        with np.errstate(all="ignore"):
            expect = (g / (np.float32(1) + np.exp(-g)) * u).astype(np.float32)
        # numpy's float32 exp and libm's expf are both correctly rounded in practice; allow one ulp
        np.testing.assert_allclose(got, expect, rtol=3e-7, atol=0)
    # whatever the variants: SiLU within a few roundings where exp(-gate) does not overflow
    g64 = g.astype(np.float64)
    with np.errstate(all="ignore"):
        exact = g64 / (1 + np.exp(-g64)) * u
    ok = np.isfinite(exact) & (g > -88.0)
    np.testing.assert_allclose(got[ok], exact[ok], rtol=6e-7, atol=1e-37)
    inf_out = np.isinf(exact)
    assert np.array_equal(np.isnan(got), np.isnan(ref)), label
    assert np.array_equal(got[inf_out], ref[inf_out]), label
