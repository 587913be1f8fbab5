"""numpy references of ggml's dot products for the K-quants Q2_K .. Q6_K (activation Q8_K).

Sources: llama.cpp ggml/src/ggml-common.h (block_q2_K, block_q3_K), ggml/src/ggml-cpu/quants.c
(ggml_vec_dot_q2_K_q8_K_generic, ggml_vec_dot_q3_K_q8_K_generic), ggml/src/ggml-cpu/arch/x86/quants.c
(the __AVX2__ branches of ggml_vec_dot_q2_K_q8_K ... q6_K_q8_K), ggml-cpu/arch/x86/repack.cpp
(ggml_gemv_q4_K_8x8_q8_K, ggml_gemm_q4_K_8x8_q8_K: the repacked Q4_K products).

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


def scale_min_k4(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """get_scale_min_k4 for all 8 sub-blocks of every block: (nb, 12) -> sc, mn (nb, 8)."""
    s = s.astype(np.int64)
    sc = np.concatenate([s[:, 0:4] & 63, (s[:, 8:12] & 15) | ((s[:, 0:4] >> 6) << 4)], axis=1)
    mn = np.concatenate([s[:, 4:8] & 63, (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)], axis=1)
    return sc, mn


class _K456(Reference):
    """Q4_K, Q5_K, Q6_K: decode gives q (nb, 256) int64, sc (nb, 256) the scale of each element, d, and
    for Q4_K / Q5_K dmin and mn (nb, 8) the sub-block minimums."""

    act_type = T.Q8_K

    @classmethod
    def dot(cls, impl: str, row: np.ndarray, act: np.ndarray, n: int) -> np.float32:
        W, A = cls.decode(row, n), decode_act(T.Q8_K, act, n)
        nb = W["q"].shape[0]
        prod = W["sc"] * W["q"] * A["q"]  # exact integers, (nb, 256)
        msum = None
        if cls.wtype != T.Q6_K:  # bsums[j] * min[j / 2]
            if impl == "avx2":  # madd(mins, hadd(bsums)): 4 lanes
                q8s = A["bsums"].reshape(nb, 8, 2).sum(axis=2)
                msum = (W["mn"] * q8s).reshape(nb, 4, 2).sum(axis=2)
            else:
                msum = (A["bsums"] * np.repeat(W["mn"], 2, axis=1)).sum(axis=1)
        if impl == "portable":
            lanes = _generic_lanes(prod)
            sums = np.zeros(8, np.float32)
            sumf = F32(0)
            for i in range(nb):
                d = F32(W["d"][i] * A["d"][i])
                sums = (sums + (d * lanes[i]).astype(np.float32)).astype(np.float32)
                if msum is not None:
                    dmin = F32(W["dmin"][i] * A["d"][i])
                    sumf = F32(sumf - F32(dmin * F32(msum[i])))
            for lane in range(8):
                sumf = F32(sumf + sums[lane])
            return sumf
        lanes = _avx2_lanes(prod)
        acc = np.zeros(8, np.float32)
        acc_m = np.zeros(4, np.float32)
        summs = F32(0)
        for i in range(nb):
            d = F32(A["d"][i] * W["d"][i])
            if cls.wtype == T.Q4_K:
                acc_m = fma32(F32(-A["d"][i] * W["dmin"][i]), msum[i].astype(np.float32), acc_m)
            elif cls.wtype == T.Q5_K:
                summs = F32(summs + F32(F32(-A["d"][i] * W["dmin"][i]) * F32(msum[i].sum())))
            acc = fma32(d, lanes[i], acc)
        res = hsum_float_8(acc)
        if cls.wtype == T.Q4_K:
            return F32(res + F32(F32(acc_m[0] + acc_m[2]) + F32(acc_m[1] + acc_m[3])))
        return F32(res + summs) if cls.wtype == T.Q5_K else res


def _q45_k(b: np.ndarray, qs: np.ndarray, qh: np.ndarray | None) -> dict:
    sc, mn = scale_min_k4(b[:, 4:16])
    q = np.empty((b.shape[0], QK_K), np.int64)
    for c in range(4):
        chunk = qs[:, 32 * c : 32 * c + 32].astype(np.int64)
        q[:, 64 * c : 64 * c + 32] = chunk & 0x0F
        q[:, 64 * c + 32 : 64 * c + 64] = chunk >> 4
        if qh is not None:
            q[:, 64 * c : 64 * c + 32] += ((qh >> (2 * c)) & 1) << 4
            q[:, 64 * c + 32 : 64 * c + 64] += ((qh >> (2 * c + 1)) & 1) << 4
    return {"d": f16_at(b, 0), "dmin": f16_at(b, 2), "q": q, "sc": np.repeat(sc, 32, axis=1), "mn": mn}


class Q4_K(_K456):
    wtype = T.Q4_K

    @classmethod
    def decode(cls, row: np.ndarray, n: int) -> dict:
        b = blocks_of(row, n, QK_K, 144)
        return _q45_k(b, b[:, 16:144], None)

    @classmethod
    def _repacked(cls, row: np.ndarray, act: np.ndarray, n: int, gemm: bool) -> np.float32:
        """acc = fma(I, x.d * y.d, acc), accm = fma(M, x.dmin * y.d, accm), out = acc - accm, with I = sum
        of scale * q4 * q8 and M = sum of min * (the two bsums of the sub-block), per super-block (gemv) or
        per 64 elements (gemm)."""
        W, A = cls.decode(row, n), decode_act(T.Q8_K, act, n)
        nb = W["q"].shape[0]
        isum = (W["sc"] * W["q"] * A["q"]).reshape(nb, 4, 64).sum(axis=2)
        q8s = A["bsums"].reshape(nb, 8, 2).sum(axis=2)
        msum = (W["mn"] * q8s).reshape(nb, 4, 2).sum(axis=2)
        if not gemm:
            isum, msum = isum.sum(axis=1, keepdims=True), msum.sum(axis=1, keepdims=True)
        acc, accm = F32(0), F32(0)
        for i in range(nb):
            d, dmin = F32(W["d"][i] * A["d"][i]), F32(W["dmin"][i] * A["d"][i])
            for c in range(isum.shape[1]):
                acc = fma32(F32(isum[i, c]), d, acc)
                accm = fma32(F32(msum[i, c]), dmin, accm)
        return F32(F32(acc) - F32(accm))

    @classmethod
    def gemv(cls, row: np.ndarray, act: np.ndarray, n: int) -> np.float32:
        """llama.cpp's x86 ggml_gemv_q4_K_8x8_q8_K (one activation row)."""
        return cls._repacked(row, act, n, gemm=False)

    @classmethod
    def gemm(cls, row: np.ndarray, act: np.ndarray, n: int) -> np.float32:
        """llama.cpp's x86 ggml_gemm_q4_K_8x8_q8_K (activation rows in groups of 4)."""
        return cls._repacked(row, act, n, gemm=True)


class Q5_K(_K456):
    wtype = T.Q5_K

    @classmethod
    def decode(cls, row: np.ndarray, n: int) -> dict:
        b = blocks_of(row, n, QK_K, 176)
        return _q45_k(b, b[:, 48:176], b[:, 16:48].astype(np.int64))


class Q6_K(_K456):
    wtype = T.Q6_K

    @classmethod
    def decode(cls, row: np.ndarray, n: int) -> dict:
        b = blocks_of(row, n, QK_K, 210)
        ql, qh = b[:, 0:128].astype(np.int64), b[:, 128:192].astype(np.int64)
        q = np.empty((b.shape[0], QK_K), np.int64)
        for h in range(2):
            lo, hi, hb = ql[:, 64 * h : 64 * h + 32], ql[:, 64 * h + 32 : 64 * h + 64], qh[:, 32 * h : 32 * h + 32]
            q[:, 128 * h + 0 : 128 * h + 32] = (lo & 0x0F) | (((hb >> 0) & 3) << 4)
            q[:, 128 * h + 32 : 128 * h + 64] = (hi & 0x0F) | (((hb >> 2) & 3) << 4)
            q[:, 128 * h + 64 : 128 * h + 96] = (lo >> 4) | (((hb >> 4) & 3) << 4)
            q[:, 128 * h + 96 : 128 * h + 128] = (hi >> 4) | (((hb >> 6) & 3) << 4)
        scales = b[:, 192:208].view(np.int8).astype(np.int64)
        return {"d": f16_at(b, 208), "q": q - 32, "sc": np.repeat(scales, 16, axis=1)}
