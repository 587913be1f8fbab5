"""numpy references of ggml's dot products for the low-bit K-quants Q2_K and Q3_K (activation Q8_K).

Sources: llama.cpp ggml/src/ggml-common.h (block_q2_K, block_q3_K), ggml/src/ggml-cpu/quants.c
(ggml_vec_dot_q2_K_q8_K_generic, ggml_vec_dot_q3_K_q8_K_generic), ggml/src/ggml-cpu/arch/x86/quants.c
(the __AVX2__ branches of ggml_vec_dot_q2_K_q8_K and ggml_vec_dot_q3_K_q8_K).

Layouts (bytes): Q2_K (84) = scales[16] (4-bit scale | 4-bit min << 4) | qs[64] | f16 d | f16 dmin;
Q3_K (110) = hmask[32] | qs[64] | scales[12] (sixteen packed 6-bit scales) | f16 d. Element
e = 128h + 32k + l has the 2-bit field (qs[32h + l] >> 2k) & 3 and the scale of sub-block e // 16;
Q3_K subtracts 4 unless bit 4h + k of hmask[l] is set.

The integer sums are exact in every implementation; what the classes reproduce is how ggml splits
them into lanes and the float32 operations (with FMAs where the AVX2 code has them) on top.
"""
from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType as T

from .common import F32, Reference, blocks_of, decode_act, f16_at, fma32, hsum_float_8

QK_K = 256


def _fields2(qs: np.ndarray) -> np.ndarray:
    """(nb, 64) qs bytes -> (nb, 256) 2-bit fields in element order 128h + 32k + l."""
    q = qs.astype(np.int64).reshape(-1, 2, 1, 32) >> (2 * np.arange(4)).reshape(1, 1, 4, 1)
    return (q & 3).reshape(-1, QK_K)


def _avx2_lanes(prod: np.ndarray) -> np.ndarray:
    """The 8 int32 lanes of the AVX2 code (maddubs pairs, madd quads): lane (e % 32) // 4, as float32."""
    return prod.reshape(prod.shape[0], 8, 8, 4).sum(axis=(1, 3)).astype(np.float32)


def _generic_lanes(prod: np.ndarray) -> np.ndarray:
    """The 8 int32 lanes of the K-quant *_generic code (aux32[l]): lane e % 8, as float32."""
    return prod.reshape(prod.shape[0], 32, 8).sum(axis=1).astype(np.float32)


class Q2_K(Reference):
    wtype = T.Q2_K
    act_type = T.Q8_K
    block_bytes = 84

    @classmethod
    def decode(cls, row: np.ndarray, n: int) -> dict:
        """q: 2-bit values (nb, 256); sc, mn: 4-bit scales and mins per 16 elements (nb, 16); d, dmin."""
        b = blocks_of(row, n, QK_K, cls.block_bytes)
        s = b[:, 0:16].astype(np.int64)
        return {"q": _fields2(b[:, 16:80]), "sc": s & 15, "mn": s >> 4, "d": f16_at(b, 80), "dmin": f16_at(b, 82)}

    @classmethod
    def dot(cls, impl: str, row: np.ndarray, act: np.ndarray, n: int) -> np.float32:
        W, A = cls.decode(row, n), decode_act(T.Q8_K, act, n)
        nb = W["q"].shape[0]
        prod = np.repeat(W["sc"], 16, axis=1) * W["q"] * A["q"]  # exact, (nb, 256)
        if impl == "portable":
            # sumf += dall * isum - dmin * summs (one integer of each per block, no FMA)
            isum = prod.sum(axis=1)
            summs = (A["bsums"] * W["mn"]).sum(axis=1)
            sumf = F32(0)
            for i in range(nb):
                dall, dmin = F32(A["d"][i] * W["d"][i]), F32(A["d"][i] * W["dmin"][i])
                sumf = F32(sumf + F32(F32(dall * F32(isum[i])) - F32(dmin * F32(summs[i]))))
            return sumf
        # AVX2: acc = fma(-y.d * dmin, madd(mins, bsums), acc); acc = fma(y.d * d, lanes, acc)
        mprod = (W["mn"] * A["bsums"]).reshape(nb, 8, 2).sum(axis=2).astype(np.float32)
        lanes = _avx2_lanes(prod)
        acc = np.zeros(8, np.float32)
        for i in range(nb):
            acc = fma32(F32(-A["d"][i] * W["dmin"][i]), mprod[i], acc)
            acc = fma32(F32(A["d"][i] * W["d"][i]), lanes[i], acc)
        return hsum_float_8(acc)


class Q3_K(Reference):
    wtype = T.Q3_K
    act_type = T.Q8_K
    block_bytes = 110

    @staticmethod
    def _scales6(s: np.ndarray) -> np.ndarray:
        """(nb, 12) packed bytes -> (nb, 16) 6-bit scales minus 32: low four bits s[j] & 15 (j < 8)
        or s[j - 8] >> 4, high two bits (s[8 + j % 4] >> 2 (j // 4)) & 3."""
        s = s.astype(np.int64)
        low = np.concatenate([s[:, 0:8] & 15, s[:, 0:8] >> 4], axis=1)
        high = (np.tile(s[:, 8:12], 4) >> np.repeat(2 * np.arange(4), 4)) & 3
        return (low | (high << 4)) - 32

    @classmethod
    def decode(cls, row: np.ndarray, n: int) -> dict:
        """q: values -4 .. 3 (nb, 256); sc: scales -32 .. 31 per 16 elements (nb, 16); d."""
        b = blocks_of(row, n, QK_K, cls.block_bytes)
        hbit = (b[:, None, 0:32].astype(np.int64) >> np.arange(8).reshape(1, 8, 1)) & 1  # (nb, 8, 32)
        q = _fields2(b[:, 32:96]) - 4 * (1 - hbit.reshape(-1, QK_K))
        return {"q": q, "sc": cls._scales6(b[:, 96:108]), "d": f16_at(b, 108)}

    @classmethod
    def dot(cls, impl: str, row: np.ndarray, act: np.ndarray, n: int) -> np.float32:
        W, A = cls.decode(row, n), decode_act(T.Q8_K, act, n)
        nb = W["q"].shape[0]
        prod = np.repeat(W["sc"], 16, axis=1) * W["q"] * A["q"]  # exact, (nb, 256)
        if impl == "portable":
            # sums[l] += (fp16(x.d) * y.d) * aux32[l], l = e % 8; sumf = sums[0] + ... + sums[7]
            lanes = _generic_lanes(prod)
            sums = np.zeros(8, np.float32)
            for i in range(nb):
                sums = (sums + (F32(W["d"][i] * A["d"][i]) * lanes[i]).astype(np.float32)).astype(np.float32)
            sumf = F32(0)
            for l in range(8):
                sumf = F32(sumf + sums[l])
            return sumf
        # AVX2: acc = fma(y.d * fp16(x.d), lanes, acc); hsum_float_8
        lanes = _avx2_lanes(prod)
        acc = np.zeros(8, np.float32)
        for i in range(nb):
            acc = fma32(F32(A["d"][i] * W["d"][i]), lanes[i], acc)
        return hsum_float_8(acc)
