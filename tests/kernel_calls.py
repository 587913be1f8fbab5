"""The C entry points of the dot-product kernels that the Cython module does not wrap (called through
ctypes on the built extension), and the activation rows the kernel tests feed them."""
from __future__ import annotations

import ctypes

import numpy as np
from gguf import GGMLQuantizationType as T

from cython_kernels import vecdot

#: CPU variant (cython_kernels.vecdot.impl()) -> the ggml code whose float operations it follows:
#: the AVX-512 variant computes the AVX2 code's exact integers faster and keeps its float operations.
NUMERICS = {"portable": "portable", "avx2": "avx2", "avx512": "avx2"}

#: mode -> C function: llama.cpp's x86 repacked gemv / gemm arithmetic, or ggml_vec_dot's ("norepack")
C_FUNCS = {"gemv": "fs_vec_dot_rows", "gemm": "fs_vec_dot_rows_gemm", "norepack": "fs_vec_dot_rows_norepack"}


def c_vec_dot_rows(mode: str, wtype: T, w: np.ndarray, act: np.ndarray, n: int) -> np.ndarray:
    """out[r] = dot(w[r], act) by the C function for ``mode``, on an already quantized activation."""
    f = getattr(ctypes.CDLL(vecdot.__file__), C_FUNCS[mode])
    f.restype = None
    f.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64,
                  ctypes.c_void_p]
    w = np.ascontiguousarray(w, dtype=np.uint8)
    act = np.ascontiguousarray(act, dtype=np.uint8)
    out = np.zeros(w.shape[0], np.float32)
    f(int(wtype), w.ctypes.data, w.shape[1], w.shape[0], act.ctypes.data, n, out.ctypes.data)
    return out


def c_vec_dot_tile(wtype: T, w: np.ndarray, acts: np.ndarray, n: int, gemm: bool = False) -> np.ndarray:
    """fs_vec_dot_tile (``gemm``: fs_vec_dot_tile_gemm, llama.cpp's repacked gemm): (n_act, n_rows) for
    activation rows acts (n_act, act_bytes), written into an output with padded rows; fails if the kernel
    wrote outside its tile."""
    f = getattr(ctypes.CDLL(vecdot.__file__), "fs_vec_dot_tile_gemm" if gemm else "fs_vec_dot_tile")
    f.restype = None
    f.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int64, ctypes.c_void_p, ctypes.c_size_t,
                  ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_int64]
    w, acts = np.ascontiguousarray(w), np.ascontiguousarray(acts)
    stride = w.shape[0] + 3
    out = np.full((acts.shape[0], stride), np.float32(7.0))
    f(int(wtype), w.ctypes.data, w.shape[1], w.shape[0], acts.ctypes.data, acts.shape[1], acts.shape[0], n,
      out.ctypes.data, stride)
    assert np.all(out[:, w.shape[0]:] == np.float32(7.0)), "wrote outside its tile"
    return out[:, : w.shape[0]]


def make_x(n: int, rng: np.random.Generator) -> np.ndarray:
    """An activation row with uneven block magnitudes, an all-zero block, negative maxima and an
    outlier, like real hidden states."""
    x = rng.standard_normal(n).astype(np.float32)
    x *= np.repeat(rng.uniform(0.05, 3.0, size=(n + 31) // 32), 32)[:n].astype(np.float32)
    if n >= 64:
        x[32:64] = 0.0
    x[rng.integers(n)] = np.float32(-25.0)
    return x
