"""numpy references for the non-linear 4-bit types IQ4_NL and IQ4_XS: what ggml's vec_dot gives,
bit for bit (and, for IQ4_NL, llama.cpp's x86 repacked product). The one exception: the SIMD IQ4_XS
product sums each super-block exactly into one int before its FMA (fs_iq4.c IQ4XS_BITS), where ggml's
AVX2 code keeps 8 float lanes; the "avx2" reference here follows Fireside's order.

Layouts (ggml-common.h): block_iq4_nl = f16 d | qs[16] (18 bytes, 32 elements; element j < 16 is
d * kv[qs[j] & 15], element 16 + j is d * kv[qs[j] >> 4]); block_iq4_xs = f16 d | u16 scales_h |
scales_l[4] | qs[128] (136 bytes, 256 elements; 8 sub-blocks of 32 laid out as IQ4_NL, each with the
6-bit scale ls = (scales_l nibble) | (2 bits of scales_h) << 4, value (d * (ls - 32)) * kv[nibble]).
kv = kvalues_iq4nl. Activations: Q8_0 for IQ4_NL, Q8_K for IQ4_XS.

Sources (llama.cpp): ggml/src/ggml-cpu/quants.c ggml_vec_dot_iq4_nl_q8_0_generic,
ggml_vec_dot_iq4_xs_q8_K_generic; ggml/src/ggml-cpu/arch/x86/quants.c the __AVX2__ branches of
ggml_vec_dot_iq4_nl_q8_0 and ggml_vec_dot_iq4_xs_q8_K; ggml/src/ggml-cpu/arch/x86/repack.cpp
gemv_q4_b32_8x8_q8_0_lut_avx / gemm_q4_b32_8x8_q8_0_lut_avx (ggml_gemv_iq4_nl_8x8_q8_0).

Scalar ``a * b + c`` of the C sources is two float32 roundings here (the C semantics without FMA
contraction), vector FMAs one (fma32).
"""
from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType as T

from .common import F32, Reference, blocks_of, decode_act, f16_at, fma32, hsum_float_8

#: kvalues_iq4nl (ggml-common.h)
KVALUES = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113], np.int64)


def levels(qs: np.ndarray) -> np.ndarray:
    """The int levels of nibble groups qs (..., 16) uint8 -> (..., 32): low nibbles, then high."""
    return KVALUES[np.concatenate([qs & 0x0F, qs >> 4], axis=-1)]


def _lanes(prod: np.ndarray) -> np.ndarray:
    """The 8 int32 lanes of ggml's maddubs + madd on 32 products (..., 32): lane k = elements 4k .. 4k + 3."""
    return prod.reshape(*prod.shape[:-1], 8, 4).sum(axis=-1)


class IQ4_NL(Reference):
    wtype = T.IQ4_NL
    act_type = T.Q8_0
    QK, BYTES = 32, 18

    @classmethod
    def _parts(cls, row: np.ndarray, act: np.ndarray, n: int):
        """Per block: fp16(x.d), fp16(y.d) (float32) and the 32 exact products kv * q8 (int64)."""
        b = blocks_of(row, n, cls.QK, cls.BYTES)
        a = decode_act(cls.act_type, act, n)
        return f16_at(b, 0), a["d"], levels(b[:, 2:]) * a["q"]

    @classmethod
    def dot(cls, impl: str, row: np.ndarray, act: np.ndarray, n: int) -> np.float32:
        dx, dy, prod = cls._parts(row, act, n)
        nb = prod.shape[0]
        d = (dy * dx).astype(np.float32)  # fp16(y.d) * fp16(x.d)
        sumi = prod.sum(axis=1).astype(np.float32)
        if impl == "portable":  # sumf += d * (float)(sumi1 + sumi2), block by block
            sumf = F32(0)
            for ib in range(nb):
                sumf = F32(sumf + F32(d[ib] * sumi[ib]))
            return sumf
        if impl == "avx2":  # accum1 / accum2 over even / odd blocks of each pair; hsum; odd tail scalar
            lanes = _lanes(prod).astype(np.float32)
            acc1 = np.zeros(8, np.float32)
            acc2 = np.zeros(8, np.float32)
            for ib in range(0, nb - 1, 2):
                acc1 = fma32(d[ib], lanes[ib], acc1)
                acc2 = fma32(d[ib + 1], lanes[ib + 1], acc2)
            sumf = hsum_float_8((acc1 + acc2).astype(np.float32))
            if nb % 2:
                sumf = F32(sumf + F32(d[nb - 1] * sumi[nb - 1]))
            return sumf
        raise ValueError(impl)

    @classmethod
    def gemv(cls, row: np.ndarray, act: np.ndarray, n: int) -> np.float32:
        """llama.cpp's x86 repacked IQ4_NL product (gemv_q4_b32_8x8_q8_0_lut_avx, and the gemm
        alike): acc = fma((float)sumi, fp16(x.d) * fp16(y.d), acc) over the blocks, no horizontal sum."""
        dx, dy, prod = cls._parts(row, act, n)
        d = (dx * dy).astype(np.float32)
        sumi = prod.sum(axis=1).astype(np.float32)
        acc = F32(0)
        for ib in range(prod.shape[0]):
            acc = F32(fma32(sumi[ib], d[ib], acc))
        return acc


class IQ4_XS(Reference):
    wtype = T.IQ4_XS
    act_type = T.Q8_K
    QK, BYTES = 256, 136

    @classmethod
    def scales(cls, b: np.ndarray) -> np.ndarray:
        """ls - 32 of the 8 sub-blocks of each super-block (nb, 136) -> (nb, 8) int64."""
        h = np.ascontiguousarray(b[:, 2:4]).view("<u2").astype(np.int64)  # (nb, 1)
        lo = np.stack([b[:, 4:8] & 0x0F, b[:, 4:8] >> 4], axis=-1).reshape(-1, 8).astype(np.int64)
        hi = (h >> (2 * np.arange(8))) & 3
        return (lo | (hi << 4)) - 32

    @classmethod
    def dot(cls, impl: str, row: np.ndarray, act: np.ndarray, n: int) -> np.float32:
        b = blocks_of(row, n, cls.QK, cls.BYTES)
        a = decode_act(cls.act_type, act, n)
        nb = b.shape[0]
        ls = cls.scales(b)
        prod = levels(b[:, 8:].reshape(nb, 8, 16)) * a["q"].reshape(nb, 8, 32)  # (nb, 8 sub-blocks, 32)
        d4d8 = (f16_at(b, 0) * a["d"]).astype(np.float32)  # fp16(x.d) * y.d
        if impl == "portable":  # per sub-block: sumf += (d4d8 * (float)(ls - 32)) * (float)sumi
            dl = (d4d8[:, None] * ls.astype(np.float32)).astype(np.float32)
            sumi = prod.sum(axis=2).astype(np.float32)
            sumf = F32(0)
            for ib in range(nb):
                for s in range(8):
                    sumf = F32(sumf + F32(dl[ib, s] * sumi[ib, s]))
            return sumf
        if impl == "avx2":  # Fireside's SIMD order (fs_iq4.c IQ4XS_BITS), not ggml's AVX2 one:
            # isum = exact int sum of the super-block, acc = fma(d4d8, (float)isum, acc), no hsum
            isum = (prod.sum(axis=2) * ls).sum(axis=1).astype(np.float32)  # (nb,), |isum| < 2^31
            acc = F32(0)
            for ib in range(nb):
                acc = fma32(d4d8[ib], isum[ib], acc)
            return F32(acc)
        raise ValueError(impl)
