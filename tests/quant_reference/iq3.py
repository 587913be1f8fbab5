"""numpy references of the 3-bit lattice types IQ3_XXS and IQ3_S dotted with Q8_K: what ggml's
vec_dot gives, bit for bit.

Layouts (ggml-common.h): block_iq3_xxs = f16 d | qs[64] | u32 aux[8] (98 bytes; qs: one
iq3xxs_grid index per 4 elements; aux[s] for sub-block s of 32: four 7-bit ksigns_iq2xs indices,
one per 8 elements, in bits 0..27, the 4-bit scale a in bits 28..31); block_iq3_s = f16 d |
qs[64] | qh[8] | signs[32] | scales[4] (110 bytes; grid index k of sub-block s = qs[8 s + k] | bit
k of qh[s] << 8 into iq3s_grid[512]; sign of element e = bit e % 8 of signs[e / 8]; scale a of
sub-block s = nibble s % 2 of scales[s / 2]).

Sources (llama.cpp): ggml/src/ggml-cpu/quants.c ggml_vec_dot_iq3_xxs_q8_K_generic,
ggml_vec_dot_iq3_s_q8_K_generic; ggml/src/ggml-cpu/arch/x86/quants.c the __AVX2__ branches of
ggml_vec_dot_iq3_xxs_q8_K and ggml_vec_dot_iq3_s_q8_K. Grids and ksigns from gguf-py
(gguf.quants.IQ3_XXS / IQ3_S / IQ2_XXS), whose dequantization is the dequantizers' reference.

Per element e: g (the unsigned grid byte), sign (+1 / -1), ls = 2 a + 1 of its sub-block; with
D = fp16(x.d) * y.d (float32) and q the Q8_K int8 values:
  portable: B = sum_e ls * g * sign * q (exact); sumf = sumf + D * float32(B) per super-block, in
            order; result 0.25f * sumf (IQ3_XXS) or sumf (IQ3_S).
  avx2:     the same products with sign * q wrapped to int8 (-(-128) stays -128, as _mm256_sign_epi8
            and (q ^ m) - m), summed into 8 int32 lanes (lane k: elements 4k .. 4k+3 of every 32);
            acc = fma(D, float32(lanes), acc) per super-block; result 0.25f * hsum_float_8(acc)
            (IQ3_XXS) or hsum_float_8(acc) (IQ3_S).
"""
from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants as gq

from .common import (
    BITS, F32, KSIGNS, blocks_of, decode_act, f16_at, fma32, grid_of, hsum_float_8, Reference, signs_of,
)


class _IQ3(Reference):
    act_type = T.Q8_K
    block_bytes: int
    final_scale: float  # 0.25 (IQ3_XXS) or 1 (IQ3_S)

    @classmethod
    def decode(cls, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Blocks (nb, bytes) -> g, sign, ls, each int64 of shape (nb, 256)."""
        raise NotImplementedError

    @classmethod
    def dot(cls, impl: str, row: np.ndarray, act: np.ndarray, n: int) -> np.float32:
        b = blocks_of(row, n, 256, cls.block_bytes)
        a = decode_act(T.Q8_K, act, n)
        g, sign, ls = cls.decode(b)
        D = (f16_at(b, 0) * a["d"]).astype(np.float32)
        q = a["q"]
        fs = F32(cls.final_scale)
        if impl == "portable":
            B = (ls * g * sign * q).sum(axis=1)
            sumf = F32(0)
            for i in range(b.shape[0]):
                sumf = F32(sumf + F32(D[i] * F32(B[i])))
            return F32(fs * sumf) if cls.final_scale != 1 else sumf
        if impl == "avx2":
            qs = ((sign * q + 128) % 256) - 128
            lanes = (ls * g * qs).reshape(-1, 8, 8, 4).sum(axis=(1, 3))  # (nb, lane k)
            acc = np.zeros(8, np.float32)
            for i in range(b.shape[0]):
                acc = fma32(np.full(8, D[i], np.float32), lanes[i].astype(np.float32), acc)
            h = hsum_float_8(acc)
            return F32(fs * h) if cls.final_scale != 1 else h
        raise ValueError(impl)


class IQ3_XXS(_IQ3):
    wtype = T.IQ3_XXS
    block_bytes = 98
    final_scale = 0.25

    @classmethod
    def decode(cls, b):
        nb = b.shape[0]
        g = grid_of(gq.IQ3_XXS)[b[:, 2:66].astype(np.int64)].reshape(nb, 256)
        aux = np.ascontiguousarray(b[:, 66:98]).view("<u4").astype(np.int64)  # (nb, 8)
        idx = (aux[:, :, None] >> (7 * np.arange(4))) & 127  # (nb, 8, 4): one per 8 elements
        sign = signs_of(KSIGNS[idx].reshape(nb, 32))
        ls = np.repeat(2 * (aux >> 28) + 1, 32, axis=1)
        return g, sign, ls


class IQ3_S(_IQ3):
    wtype = T.IQ3_S
    block_bytes = 110
    final_scale = 1.0

    @classmethod
    def decode(cls, b):
        nb = b.shape[0]
        qh = b[:, 66:74].astype(np.int64)
        hi = ((qh[:, :, None] >> BITS) & 1).reshape(nb, 64)  # bit k of qh[s] -> index 8 s + k
        g = grid_of(gq.IQ3_S)[b[:, 2:66].astype(np.int64) | (hi << 8)].reshape(nb, 256)
        sign = signs_of(b[:, 74:106].astype(np.int64))
        sc = b[:, 106:110].astype(np.int64)
        a = np.stack([sc & 15, sc >> 4], axis=-1).reshape(nb, 8)
        ls = np.repeat(2 * a + 1, 32, axis=1)
        return g, sign, ls
