"""numpy references of the 1-bit lattice types IQ1_S and IQ1_M dotted with Q8_K: what ggml's vec_dot
gives, bit for bit.

Layouts (ggml-common.h): block_iq1_s = f16 d | qs[32] | u16 qh[8] (50 bytes; group l < 4 of
sub-block s (8 elements) is iq1s_grid[qs[4 s + l] | ((qh[s] >> 3 l) & 7) << 8], scale code
a = (qh[s] >> 12) & 7, delta sign bit 15 of qh[s]); block_iq1_m = qs[32] | qh[16] | u16 sc[4]
(56 bytes; group g = 4 s + l: nibble h = qh[2 s + l / 2] >> 4 (l % 2), index qs[g] | (h & 7) << 8,
delta sign h & 8, scale code a = (sc[s / 2] >> (6 (s % 2) + 3 (l / 2))) & 7; the f16 d is the top
nibbles of sc[0..3], sc[0]'s lowest). Elements: (d * (2 a + 1)) * (grid + delta), delta = +-0.125
(IQ1S_DELTA = IQ1M_DELTA).

Sources (llama.cpp): ggml/src/ggml-cpu/quants.c ggml_vec_dot_iq1_s_q8_K_generic,
ggml_vec_dot_iq1_m_q8_K_generic; ggml/src/ggml-cpu/arch/x86/quants.c the __AVX2__ branches of
ggml_vec_dot_iq1_s_q8_K and ggml_vec_dot_iq1_m_q8_K. The grid comes from gguf-py (gguf.quants.IQ1_S).

Per element e: g (-1 / 0 / 1), sgn (the delta sign, +1 / -1), ls = 2 a + 1; q the Q8_K values,
D = fp16(d) * y.d (float32):
  portable: I = sum_e ls g q, J = sum_e ls sgn q (exact; IQ1_S takes sum q from the bsums);
            sumf = sumf + D * (float32(I) + 0.125f * float32(J)) per super-block, in order.
  avx2:     the products g q and sgn q with the negation of -128 wrapped to int8 (_mm256_sign_epi8),
            times ls, summed into 8 int32 lanes (lane k: elements 4k .. 4k+3 of every 32).
            IQ1_S: acc = fma(D, float32(lanes of g q), acc), acc1 = acc1 + D * float32(J) (two
            roundings: scalar C without FMA contraction); result hsum_float_8(acc) + 0.125f * acc1.
            IQ1_M: acc1 / acc2 = fma(D, float32(lanes of g q / of sgn q), acc1 / acc2); result
            hsum_float_8(acc1) + 0.125f * hsum_float_8(acc2).
"""
from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants as gq

from .common import F32, Reference, blocks_of, decode_act, f16_at, fma32, hsum_float_8, grid_of

DELTA = F32(0.125)  # IQ1S_DELTA == IQ1M_DELTA


def _wrap8(v: np.ndarray) -> np.ndarray:
    """Values as int8 (two's complement): what _mm256_sign_epi8 leaves of -(-128)."""
    return ((v + 128) % 256) - 128


def _lanes(v: np.ndarray) -> np.ndarray:
    """(nb, 256) int64 -> (nb, 8) int32 lanes: lane k sums elements 4k .. 4k+3 of every 32."""
    return v.reshape(v.shape[0], 8, 8, 4).sum(axis=(1, 3))


class _IQ1(Reference):
    act_type = T.Q8_K
    block_bytes: int

    @classmethod
    def decode(cls, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Blocks (nb, bytes) -> d (float32, nb) and g, sgn, ls (int64, (nb, 256))."""
        raise NotImplementedError

    @classmethod
    def dot(cls, impl: str, row: np.ndarray, act: np.ndarray, n: int) -> np.float32:
        b = blocks_of(row, n, 256, cls.block_bytes)
        a = decode_act(T.Q8_K, act, n)
        d, g, sgn, ls = cls.decode(b)
        D = (d * a["d"]).astype(np.float32)
        q = a["q"]
        nb = b.shape[0]
        if impl == "portable":
            isum = (ls * g * q).sum(axis=1)
            jsum = (ls * sgn * q).sum(axis=1)
            sumf = F32(0)
            for i in range(nb):
                sumf = F32(sumf + F32(D[i] * F32(F32(isum[i]) + F32(DELTA * F32(jsum[i])))))
            return sumf
        if impl == "avx2":
            l1 = _lanes(ls * _wrap8(g * q)).astype(np.float32)
            acc = np.zeros(8, np.float32)
            for i in range(nb):
                acc = fma32(np.full(8, D[i], np.float32), l1[i], acc)
            if cls is IQ1_S:
                jsum = (ls * sgn * q).sum(axis=1)  # from the bsums, exact
                acc1 = F32(0)
                for i in range(nb):
                    acc1 = F32(acc1 + F32(D[i] * F32(jsum[i])))
                return F32(hsum_float_8(acc) + F32(DELTA * acc1))
            l2 = _lanes(ls * _wrap8(sgn * q)).astype(np.float32)
            acc2 = np.zeros(8, np.float32)
            for i in range(nb):
                acc2 = fma32(np.full(8, D[i], np.float32), l2[i], acc2)
            return F32(hsum_float_8(acc) + F32(DELTA * hsum_float_8(acc2)))
        raise ValueError(impl)


class IQ1_S(_IQ1):
    wtype = T.IQ1_S
    block_bytes = 50

    @classmethod
    def decode(cls, b):
        nb = b.shape[0]
        qh = np.ascontiguousarray(b[:, 34:50]).view("<u2").astype(np.int64)  # (nb, 8)
        hi = (qh[:, :, None] >> (3 * np.arange(4))) & 7  # (nb, 8, 4): one per group of 8
        idx = b[:, 2:34].astype(np.int64) | (hi.reshape(nb, 32) << 8)
        g = grid_of(gq.IQ1_S)[idx].reshape(nb, 256)
        sgn = np.repeat(np.where(qh & 0x8000, -1, 1), 32, axis=1)
        ls = np.repeat(2 * ((qh >> 12) & 7) + 1, 32, axis=1)
        return f16_at(b, 0), g, sgn, ls


class IQ1_M(_IQ1):
    wtype = T.IQ1_M
    block_bytes = 56

    @staticmethod
    def scale(b: np.ndarray) -> np.ndarray:
        """The f16 d of each block, assembled from the top nibbles of sc[0..3], as float32."""
        sc = np.ascontiguousarray(b[:, 48:56]).view("<u2").astype(np.int64)  # (nb, 4)
        u = (sc[:, 0] >> 12) | ((sc[:, 1] >> 8) & 0x00F0) | ((sc[:, 2] >> 4) & 0x0F00) | (sc[:, 3] & 0xF000)
        return u.astype(np.uint16).view(np.float16).astype(np.float32)

    @classmethod
    def decode(cls, b):
        nb = b.shape[0]
        qh = b[:, 32:48].astype(np.int64)
        nib = np.stack([qh & 15, qh >> 4], axis=-1).reshape(nb, 32)  # group g: nibble g % 2 of qh[g / 2]
        g = grid_of(gq.IQ1_S)[b[:, 0:32].astype(np.int64) | ((nib & 7) << 8)].reshape(nb, 256)
        sgn = np.repeat(np.where(nib & 8, -1, 1), 8, axis=1)
        sc = np.ascontiguousarray(b[:, 48:56]).view("<u2").astype(np.int64)  # (nb, 4)
        # half sub-block t = 2 s + h (16 elements): (sc[s / 2] >> (6 (s % 2) + 3 h)) & 7
        a = (sc[:, :, None] >> np.array([0, 3, 6, 9])) & 7  # (nb, 4, 4): sc[k] gives s = 2k, 2k + 1
        ls = np.repeat(2 * a.reshape(nb, 16) + 1, 16, axis=1)
        return cls.scale(b), g, sgn, ls
