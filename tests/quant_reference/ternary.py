"""numpy references of ggml's dot products for the ternary types TQ1_0 and TQ2_0 (activation Q8_K).

Sources: llama.cpp ggml/src/ggml-common.h (block_tq1_0 = qs[48] | qh[4] | f16 d, 54 bytes;
block_tq2_0 = qs[64] | f16 d, 66 bytes), ggml/src/ggml-quants.c (dequantize_row_tq1_0 / _tq2_0,
element order), ggml/src/ggml-cpu/quants.c (ggml_vec_dot_tq1_0_q8_K_generic / _tq2_0_q8_K_generic),
ggml/src/ggml-cpu/arch/x86/quants.c (the __AVX2__ branches of ggml_vec_dot_tq1_0_q8_K / _tq2_0_q8_K).

Both types store per element an unsigned code c (TQ1_0: a base-3 trit 0..2; TQ2_0: 2 bits 0..3, 3
never written by the quantizer) and the value d * (c - 1).

* portable: per block the exact integer sum of (c - 1) * q8, then, block after block,
  sumf += float(sum) * (fp16(x.d) * y.d) in float32.
* avx2: 8 int32 lanes per block, lane j = sum over chunks k < 8 and i < 4 of
  c[32k + 4j + i] * q8[32k + 4j + i] - (bsums[2j] + bsums[2j + 1]) (maddubs on the unsigned codes,
  int16 lane sums, the stored bsums subtracted, pairs added by madd); acc = float(lane) * d + acc with
  d = y.d * fp16(x.d) (a multiply, then an add: no FMA); the result is hsum_float_8(acc).

These are the operations as the C source writes them (what Fireside's kernels, built with
-ffp-contract=off, reproduce). GCC's default -ffp-contract=fast fuses both "float(sum) * d + sumf"
steps into one FMA, and llama.cpp release builds are compiled that way (the libggml-cpu.so of
llama_cpp_python 0.3.36 has vfmadd231ss in the *_generic functions and vfmadd231ps in the AVX2
ones); ``dot(..., fused=True)`` gives the bits of such a build.
"""
from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType as T

from .common import F32, Reference, blocks_of, decode_act, f16_at, fma32, hsum_float_8

_POW3 = np.array([1, 3, 9, 27, 81], dtype=np.uint16)


def _trits(b: np.ndarray, k: int) -> np.ndarray:
    """Trit k of bytes b (any shape): ((uint8)(b * 3^k) * 3) >> 8, in 0..2 for every byte value."""
    q = (b.astype(np.uint16) * _POW3[k]) & 0xFF
    return ((q * 3) >> 8).astype(np.int64)


def tq1_0_codes(blocks: np.ndarray) -> np.ndarray:
    """Codes 0..2 of TQ1_0 blocks (nb, 54), shape (nb, 256), in ggml's element order:
    32k + m: trit k of qs[m]; 160 + 16k + m: trit k of qs[32 + m]; 240 + 4k + j: trit k of qh[j]."""
    qs0, qs1, qh = blocks[:, :32], blocks[:, 32:48], blocks[:, 48:52]
    parts = [_trits(qs0, k) for k in range(5)] + [_trits(qs1, k) for k in range(5)] + [_trits(qh, k) for k in range(4)]
    return np.concatenate(parts, axis=1)


def tq2_0_codes(blocks: np.ndarray) -> np.ndarray:
    """Codes 0..3 of TQ2_0 blocks (nb, 66), shape (nb, 256): 128h + 32l + m = (qs[32h + m] >> 2l) & 3."""
    qs = blocks[:, :64].reshape(-1, 2, 1, 32).astype(np.int64)
    return ((qs >> (2 * np.arange(4).reshape(1, 1, 4, 1))) & 3).reshape(-1, 256)


class _Ternary(Reference):
    act_type = T.Q8_K
    block_bytes: int
    d_offset: int

    @classmethod
    def codes(cls, blocks: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def dot(cls, impl: str, row: np.ndarray, act: np.ndarray, n: int, fused: bool = False) -> np.float32:
        xb = blocks_of(row, n, 256, cls.block_bytes)
        xd = f16_at(xb, cls.d_offset)
        c = cls.codes(xb)
        a = decode_act(T.Q8_K, act, n)
        yd, q = a["d"], a["q"]
        if impl == "portable":
            sums = ((c - 1) * q).sum(axis=1)
            sumf = F32(0)
            for i in range(len(xb)):
                d = F32(xd[i] * yd[i])
                sumf = F32(fma32(F32(sums[i]), d, sumf)) if fused else F32(sumf + F32(F32(sums[i]) * d))
            return sumf
        if impl == "avx2":
            prod = (c * q).reshape(-1, 8, 8, 4).sum(axis=(1, 3))  # (nb, lane j): chunks k, bytes 4j..4j+3
            lanes = prod - a["bsums"].reshape(-1, 8, 2).sum(axis=2)
            acc = np.zeros(8, np.float32)
            for i in range(len(xb)):
                d = F32(yd[i] * xd[i])
                lf = lanes[i].astype(np.float32)
                acc = fma32(lf, np.full(8, d), acc) if fused else (lf * d).astype(np.float32) + acc
            return hsum_float_8(acc)
        raise ValueError(impl)


class TQ1_0(_Ternary):
    """TQ1_0: ggml_vec_dot_tq1_0_q8_K_generic ("portable") and its __AVX2__ branch ("avx2")."""

    wtype = T.TQ1_0
    block_bytes = 54
    d_offset = 52

    @classmethod
    def codes(cls, blocks: np.ndarray) -> np.ndarray:
        return tq1_0_codes(blocks)


class TQ2_0(_Ternary):
    """TQ2_0: ggml_vec_dot_tq2_0_q8_K_generic ("portable") and its __AVX2__ branch ("avx2")."""

    wtype = T.TQ2_0
    block_bytes = 66
    d_offset = 64

    @classmethod
    def codes(cls, blocks: np.ndarray) -> np.ndarray:
        return tq2_0_codes(blocks)
