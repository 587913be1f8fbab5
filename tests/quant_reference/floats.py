"""numpy references of the float weight types F32, F16, BF16 (dotted with activations of their own type).

Sources: llama.cpp ggml/src/ggml-cpu/vec.cpp (ggml_vec_dot_f32, _f16, _bf16) and simd-mappings.h
(GGML_F32x8 with GGML_F32_ARR = 4 accumulators, GGML_F32x8_REDUCE; the AVX2 bf16 branch).
"""
from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType as T

from .common import F32 as f32
from .common import Reference, fma32, hsum_float_8


def float_values(t: T, raw: np.ndarray) -> np.ndarray:
    """The float32 values of raw bytes of a float type."""
    if t == T.F32:
        return raw.view(np.float32)
    if t == T.F16:
        return raw.view(np.float16).astype(np.float32)
    return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)


class _Float(Reference):
    elem_bytes = 4

    @classmethod
    def dot(cls, impl: str, row: np.ndarray, act: np.ndarray, n: int) -> np.float32:
        """portable: products in float, summed in double, in order. avx2: 4 x 8 FMA lanes over 32 elements
        (BF16: multiply and add, no FMA), GGML_F32x8_REDUCE, leftovers in float (F32) or double."""
        x = float_values(cls.wtype, row[: n * cls.elem_bytes])
        y = float_values(cls.act_type, act)
        if impl == "portable":
            return f32(np.cumsum((x * y).astype(np.float64))[-1]) if n else f32(0)
        npr = n & ~31
        if cls.wtype == T.BF16:  # c = x * y + c (no FMA); c1 = (c1 + c3) + (c2 + c4); hsum; double leftovers
            c = np.zeros((4, 8), np.float32)
            for i in range(0, npr, 32):
                c = ((x[i : i + 32] * y[i : i + 32]).reshape(4, 8) + c).astype(np.float32)
            c1 = ((c[0] + c[2]) + (c[1] + c[3])).astype(np.float32)
            total = float(hsum_float_8(c1))
            for i in range(npr, n):
                total += float(f32(x[i] * y[i]))
            return f32(total)
        s = np.zeros((4, 8), np.float32)
        for i in range(0, npr, 32):
            s = fma32(x[i : i + 32].reshape(4, 8), y[i : i + 32].reshape(4, 8), s)
        s0 = ((s[0] + s[2]) + (s[1] + s[3])).astype(np.float32)
        t0 = (s0[:4] + s0[4:]).astype(np.float32)
        res = f32(f32(t0[0] + t0[1]) + f32(t0[2] + t0[3]))
        if cls.wtype == T.F32:  # float leftovers
            for i in range(npr, n):
                res = f32(res + f32(x[i] * y[i]))
            return res
        total = float(res)  # F16: double leftovers
        for i in range(npr, n):
            total += float(f32(x[i] * y[i]))
        return f32(total)


class F32(_Float):
    wtype = act_type = T.F32


class F16(_Float):
    wtype = act_type = T.F16
    elem_bytes = 2


class BF16(_Float):
    wtype = act_type = T.BF16
    elem_bytes = 2
