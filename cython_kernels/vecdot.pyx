# cython: language_level=3, boundscheck=False, wraparound=False
"""Python entry points to the quantized dot-product kernels (``fs_vecdot.c``), for tests and
benchmarks.

The kernels work as llama.cpp's CPU backend: the activation row is first quantized to the weight
type's "vec_dot_type" (Q8_0, Q8_1 or Q8_K blocks, or F16 / BF16 / F32), then each weight row is
dotted with it block by block in integers. See ``fs_vecdot.h`` for the formats and sources.

Other Cython modules use the C functions directly (``from cython_kernels.vecdot cimport
fs_vec_dot_rows``); see ``vecdot.pxd``.
"""
import os
import time

import numpy as np

from libc.stdint cimport int64_t, uint8_t

from cython_kernels.quants cimport fs_row_bytes, fs_type_supported


#: Every CPU variant name, in fs_traits.h's FS_IMPL_* order. They form one chain per architecture
#: (x86-64: portable < avx2 < avx512; arm64: portable < neon), each runnable where the one below is.
VARIANTS = ("portable", "avx2", "avx512", "neon")


def impl():
    """The CPU variant of the kernels in use: ``"portable"``, ``"avx2"`` (x86-64-v3: AVX2, FMA,
    F16C), ``"avx512"`` (x86-64-v4 with VNNI: AVX512F/BW/DQ/VL and AVX512_VNNI) or ``"neon"``
    (arm64 with the dot-product extension). Chosen once per process: the best this CPU runs
    (``best()``), or the one the environment variable ``FIRESIDE_CPU`` names, set before the first
    call, when this CPU runs it."""
    return fs_vecdot_impl().decode("ascii")


def rows_impl():
    """The CPU variant of the one-activation-row kernels (decode): ``impl()``, except the AVX2 row
    kernels (the same bits) under an automatically chosen ``"avx512"`` on AMD Zen 4, where they read
    memory faster (``fs_rows_impl`` in fs_traits.h says what was measured)."""
    return fs_impl_name(fs_rows_impl()).decode("ascii")


def best():
    """The best CPU variant this CPU and build can run (see ``impl()``), whatever ``FIRESIDE_CPU``
    says."""
    return fs_impl_name(fs_impl_best()).decode("ascii")


def variant_warning():
    """A one-line warning when the environment variable ``FIRESIDE_CPU`` names a CPU variant this
    process does not run (an unknown name, or one beyond this CPU), else None."""
    want = os.environ.get("FIRESIDE_CPU")
    if not want or want == impl():
        return None
    return f"FIRESIDE_CPU={want}: this CPU runs the variants {', '.join(variants())}; using {impl()}"


def variants():
    """Every CPU variant this CPU and build can run, slowest first: ``("portable", ..., best())``
    (best()'s fallback chain, fs_impl_fallback). The AVX-512 variant gives the AVX2 variant's results
    bit for bit; the portable one differs from them, and the NEON one from it, by float summation
    order only (fs_vecdot.h)."""
    chain = []
    cdef int i = fs_impl_best()
    while i >= 0:
        chain.append(VARIANTS[i])
        i = fs_impl_fallback(i)
    return tuple(reversed(chain))


def repacked(int wtype, int64_t n_rows):
    """True if llama.cpp on x86 repacks a weight of GGML type ``wtype`` with ``n_rows`` rows (Q4_0, Q4_K,
    IQ4_NL, MXFP4 with a multiple of 8 rows; ggml-cpu/repack.cpp) and so multiplies it with its gemm
    for groups of 4 activation rows and its gemv for the rest, which round differently: the engine does
    the same (fs_vec_dot_repacked)."""
    return bool(fs_vec_dot_repacked(wtype, n_rows))


def act_row_bytes(int wtype, int64_t n):
    """Bytes of one activation row of ``n`` floats quantized for weights of GGML type ``wtype``.
    Raises ValueError if the type is unsupported or ``n`` is not a multiple of its block size."""
    cdef size_t nb = fs_act_row_bytes(wtype, n)
    if nb == 0 and n != 0:
        raise ValueError(f"unsupported weight type {wtype} or row length {n} not a multiple of its block size")
    return int(nb)


def quantize_act(int wtype, x):
    """Quantize the float32 activation row ``x`` (1-D) into ``wtype``'s vec_dot_type.

    Returns:
        np.ndarray: uint8 array of ``act_row_bytes(wtype, len(x))`` bytes.
    """
    cdef const float[::1] xv = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    cdef int64_t n = xv.shape[0]
    cdef size_t nbytes = act_row_bytes(wtype, n)
    out = np.empty(nbytes, dtype=np.uint8)
    cdef uint8_t[::1] ov = out
    if n > 0:
        with nogil:
            fs_quantize_act(wtype, &xv[0], &ov[0], n)
    return out


def vec_dot_rows(int wtype, w, x):
    """Dot every row of a weight matrix with an activation row, as ggml does.

    Args:
        wtype: GGML type id of the weights.
        w: uint8 array of shape ``(n_rows, row_bytes)``, C-contiguous (e.g. ``GGUFFile.tensor(name).data``),
            each row holding ``len(x)`` elements of ``wtype`` (``row_bytes`` may exceed the
            minimum; the rest of the row is ignored).
        x: float32 activation row (1-D).

    Returns:
        np.ndarray: float32 array of shape ``(n_rows,)``. The GIL is released while computing.
    """
    return _vec_dot_rows(wtype, w, x, 0)


def bench_vec_dot_rows(int wtype, w, x, int repeat):
    """Seconds per call of the C kernel fs_vec_dot_rows on these arguments, averaged over
    ``repeat`` back-to-back calls made without returning to Python (for benchmarks: the Python
    wrapper's own overhead is left out). The activation is quantized once, outside the timing."""
    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    return _vec_dot_rows(wtype, w, x, repeat)


cdef _vec_dot_rows(int wtype, w, x, int repeat):
    if not fs_type_supported(wtype):
        raise ValueError(f"unsupported weight type {wtype}")
    w = np.asarray(w)
    if w.dtype != np.uint8 or w.ndim != 2:
        raise ValueError(f"w must be a 2-D uint8 array (n_rows, row_bytes), got {w.dtype} of shape {w.shape}")
    w = np.ascontiguousarray(w)
    cdef const uint8_t[:, ::1] wv = w
    cdef const float[::1] xv = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    cdef int64_t n = xv.shape[0]
    cdef int64_t n_rows = wv.shape[0]
    cdef size_t row_bytes = wv.shape[1]
    act = quantize_act(wtype, x)
    if fs_row_bytes(wtype, n) > row_bytes:
        raise ValueError(f"rows of {row_bytes} bytes cannot hold {n} elements of type {wtype}")
    out = np.zeros(n_rows, dtype=np.float32)
    cdef float[::1] ov = out
    cdef const uint8_t[::1] av = act
    cdef int i
    if n_rows == 0 or n == 0:
        return out if repeat == 0 else 0.0
    if repeat == 0:
        with nogil:
            fs_vec_dot_rows(wtype, &wv[0, 0], row_bytes, n_rows, &av[0], n, &ov[0])
        return out
    t0 = time.perf_counter()
    with nogil:
        for i in range(repeat):
            fs_vec_dot_rows(wtype, &wv[0, 0], row_bytes, n_rows, &av[0], n, &ov[0])
    return (time.perf_counter() - t0) / repeat
