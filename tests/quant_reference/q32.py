"""numpy references of the 32-element block types Q4_0, Q4_1, Q5_0, Q5_1, Q8_0.

Sources: llama.cpp ggml/src/ggml-common.h (block layouts), ggml-cpu/quants.c
(ggml_vec_dot_{q4_0,q5_0,q8_0}_q8_0_generic, {q4_1,q5_1}_q8_1_generic), ggml-cpu/arch/x86/quants.c (the
__AVX2__ branches: 8 lanes of 4 elements, one FMA per block, hsum_float_8), ggml-cpu/arch/x86/repack.cpp
(gemv_q4_b32_8x8_q8_0_lut_avx: the repacked Q4_0 product).
"""
from __future__ import annotations

import gguf
import numpy as np
from gguf import GGMLQuantizationType as T

from .common import F32, Reference, decode_act, f16_at, fma32, hsum_float_8


def nibbles(qs: np.ndarray) -> np.ndarray:
    """16 bytes per block -> 32 values: low nibbles first, then high nibbles."""
    return np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int64)


class _Q32(Reference):
    offset = 0     # subtracted from the unsigned quants (8 for Q4_0, 16 for Q5_0)
    has_min = False  # Q4_1 / Q5_1: f16 m after d, dotted with Q8_1's s

    @classmethod
    def decode(cls, row: np.ndarray, n: int) -> dict:
        """d (nb,), m (nb,) or None, q (nb, 32) int64 (signed values as they enter the dot product)."""
        qk, bs = gguf.GGML_QUANT_SIZES[cls.wtype]
        b = row[: (n // qk) * bs].reshape(n // qk, bs)
        d = f16_at(b, 0)
        if cls.wtype == T.Q8_0:
            return {"d": d, "m": None, "q": b[:, 2:].view(np.int8).astype(np.int64)}
        off = 4 if cls.has_min else 2
        if cls.wtype in (T.Q4_0, T.Q4_1):
            q = nibbles(b[:, off:])
        else:
            qh = np.ascontiguousarray(b[:, off : off + 4]).view("<u4")[:, 0].astype(np.int64)
            q = nibbles(b[:, off + 4 :]) | (((qh[:, None] >> np.arange(32)) & 1) << 4)
        return {"d": d, "m": f16_at(b, 2) if cls.has_min else None, "q": q - cls.offset}

    @classmethod
    def dot(cls, impl: str, row: np.ndarray, act: np.ndarray, n: int) -> np.float32:
        W, A = cls.decode(row, n), decode_act(cls.act_type, act, n)
        nb = W["q"].shape[0]
        prod = W["q"] * A["q"]
        if impl == "portable":
            sumi = prod.sum(axis=1)
            sumf = F32(0)
            for i in range(nb):
                dx, dy, si = W["d"][i], A["d"][i], F32(sumi[i])
                if cls.wtype == T.Q4_0:
                    term = F32(F32(si * dx) * dy)
                elif cls.wtype == T.Q8_0:
                    term = F32(si * F32(dx * dy))
                else:
                    term = F32(F32(dx * dy) * si)
                    if cls.has_min:
                        term = F32(term + F32(W["m"][i] * A["s"][i]))
                sumf = F32(sumf + term)
            return sumf
        lanes = prod.reshape(nb, 8, 4).sum(axis=2).astype(np.float32)  # lane k = elements 4k .. 4k+3
        acc = np.zeros(8, np.float32)
        summs = F32(0)
        for i in range(nb):
            if cls.has_min:
                summs = F32(summs + F32(W["m"][i] * A["s"][i]))
            acc = fma32(F32(W["d"][i] * A["d"][i]), lanes[i], acc)
        res = hsum_float_8(acc)
        return F32(res + summs) if cls.has_min else res


class Q4_0(_Q32):
    wtype, act_type, offset = T.Q4_0, T.Q8_0, 8

    @classmethod
    def gemv(cls, row: np.ndarray, act: np.ndarray, n: int) -> np.float32:
        """llama.cpp's x86 repacked product (gemv_q4_b32_8x8_q8_0_lut_avx; its gemm does the same):
        acc = fma(sumi, dx * dy, acc) per block of 32."""
        W, A = cls.decode(row, n), decode_act(cls.act_type, act, n)
        sumi = (W["q"] * A["q"]).sum(axis=1)
        acc = F32(0)
        for i in range(W["q"].shape[0]):
            acc = fma32(F32(sumi[i]), F32(W["d"][i] * A["d"][i]), acc)
        return F32(acc)

    gemm = gemv


class Q4_1(_Q32):
    wtype, act_type, has_min = T.Q4_1, T.Q8_1, True


class Q5_0(_Q32):
    wtype, act_type, offset = T.Q5_0, T.Q8_0, 16


class Q5_1(_Q32):
    wtype, act_type, has_min = T.Q5_1, T.Q8_1, True


class Q8_0(_Q32):
    wtype, act_type = T.Q8_0, T.Q8_0
