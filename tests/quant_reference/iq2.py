"""numpy references of the 2-bit lattice types IQ2_XXS, IQ2_XS, IQ2_S dotted with Q8_K.

Sources: llama.cpp ggml/src/ggml-common.h (block_iq2_xxs / _xs / _s, ksigns_iq2xs, the grids),
ggml/src/ggml-cpu/quants.c (ggml_vec_dot_iq2_{xxs,xs,s}_q8_K_generic), ggml/src/ggml-cpu/arch/x86/
quants.c (the __AVX2__ branches of ggml_vec_dot_iq2_{xxs,xs,s}_q8_K). The grids and ksigns come from
gguf-py (gguf.quants.IQ2_XXS / IQ2_XS / IQ2_S), whose dequantization is the dequantizers' reference.

Every super-block of 256 elements decodes to, per element e: g (the grid byte, 8 / 25 / 43),
sign (+1 / -1) and ls = 2 s + 1 (s: the 4-bit scale of e's half sub-block of 16). With
D = fp16(x.d) * y.d (float32) and q = the Q8_K int8 values:
  portable: B = sum_e ls * g * sign * q (exact); sumf = sumf + D * float32(B) per super-block, in
            order; result 0.125f * sumf.
  avx2:     the same products, with sign * q wrapped to int8 (_mm256_sign_epi8 keeps -128), summed
            into 8 int32 lanes (lane k: elements 4k .. 4k+3 of each 32); acc = fma(D, float32(lanes),
            acc) per super-block; result 0.125f * hsum_float_8(acc).
"""
from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants as gq

from .common import (
    F32, KSIGNS, blocks_of, decode_act, f16_at, fma32, grid_of, hsum_float_8, Reference, signs_of,
)


class _IQ2(Reference):
    act_type = T.Q8_K
    block_bytes: int

    @classmethod
    def decode(cls, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Blocks (nb, bytes) -> g, sign, ls, each int64 of shape (nb, 256)."""
        raise NotImplementedError

    @staticmethod
    def _half_scales(sc: np.ndarray) -> np.ndarray:
        """scales[8] per block -> ls per element: 2 (sc & 15) + 1 for elements 0-15 of each 32,
        2 (sc >> 4) + 1 for 16-31."""
        s = np.stack([sc & 15, sc >> 4], axis=-1).astype(np.int64)  # (nb, 8, 2)
        return np.repeat(2 * s + 1, 16, axis=-1).reshape(sc.shape[0], 256)

    @classmethod
    def dot(cls, impl: str, row: np.ndarray, act: np.ndarray, n: int) -> np.float32:
        b = blocks_of(row, n, 256, cls.block_bytes)
        a = decode_act(T.Q8_K, act, n)
        g, sign, ls = cls.decode(b)
        xd = f16_at(b, 0)
        D = (xd * a["d"]).astype(np.float32)
        q = a["q"]
        if impl == "portable":
            B = (ls * g * sign * q).sum(axis=1)
            sumf = F32(0)
            for i in range(b.shape[0]):
                sumf = F32(sumf + F32(D[i] * F32(B[i])))
            return F32(F32(0.125) * sumf)
        if impl == "avx2":
            qs = ((sign * q + 128) % 256) - 128  # _mm256_sign_epi8: -(-128) stays -128
            lanes = (ls * g * qs).reshape(-1, 8, 8, 4).sum(axis=(1, 3))  # (nb, lane k)
            acc = np.zeros(8, np.float32)
            for i in range(b.shape[0]):
                acc = fma32(np.full(8, D[i], np.float32), lanes[i].astype(np.float32), acc)
            return F32(F32(0.125) * hsum_float_8(acc))
        raise ValueError(impl)


class IQ2_XXS(_IQ2):
    """66 bytes: f16 d | uint16 qs[32]; sub-block b: words a0 = u32(qs + 8b) (4 grid indices, one
    byte each), a1 = u32(qs + 8b + 4) (4 x 7 sign-index bits, scale a1 >> 28)."""

    wtype = T.IQ2_XXS
    block_bytes = 66

    @classmethod
    def decode(cls, b):
        nb = b.shape[0]
        w = np.ascontiguousarray(b[:, 2:66]).view("<u4").astype(np.int64).reshape(nb, 8, 2)
        a0, a1 = w[..., 0], w[..., 1]
        idx = (a0[..., None] >> (8 * np.arange(4))) & 255  # (nb, 8, 4)
        sidx = (a1[..., None] >> (7 * np.arange(4))) & 127
        g = grid_of(gq.IQ2_XXS)[idx].reshape(nb, 256)
        sign = signs_of(KSIGNS[sidx].reshape(nb, 32))
        ls = np.repeat(2 * (a1 >> 28) + 1, 32, axis=1)
        return g, sign, ls


class IQ2_XS(_IQ2):
    """74 bytes: f16 d | uint16 qs[32] | scales[8]; group q: grid index q & 511, sign index q >> 9."""

    wtype = T.IQ2_XS
    block_bytes = 74

    @classmethod
    def decode(cls, b):
        nb = b.shape[0]
        q = np.ascontiguousarray(b[:, 2:66]).view("<u2").astype(np.int64)  # (nb, 32)
        g = grid_of(gq.IQ2_XS)[q & 511].reshape(nb, 256)
        sign = signs_of(KSIGNS[q >> 9])
        return g, sign, cls._half_scales(b[:, 66:74])


class IQ2_S(_IQ2):
    """82 bytes: f16 d | qs[32] | signs[32] | qh[8] | scales[8]; group l of sub-block b: grid
    index qs[4b + l] | ((qh[b] >> 2l) & 3) << 8, sign byte signs[4b + l]."""

    wtype = T.IQ2_S
    block_bytes = 82

    @classmethod
    def decode(cls, b):
        nb = b.shape[0]
        qs = b[:, 2:34].astype(np.int64).reshape(nb, 8, 4)
        qh = b[:, 66:74].astype(np.int64)
        idx = qs | (((qh[..., None] >> (2 * np.arange(4))) & 3) << 8)
        g = grid_of(gq.IQ2_S)[idx].reshape(nb, 256)
        sign = signs_of(b[:, 34:66].astype(np.int64))
        return g, sign, cls._half_scales(b[:, 74:82])
