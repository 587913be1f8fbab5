"""numpy reference for MXFP4 (OCP microscaling FP4, gpt-oss's expert weights): what ggml's vec_dot gives,
bit for bit, and llama.cpp's x86 repacked product.

Layout (ggml-common.h block_mxfp4): uint8 e | qs[16] (17 bytes, 32 elements; element j < 16 is
d * kv[qs[j] & 15], element 16 + j is d * kv[qs[j] >> 4]) with kv = kvalues_mxfp4 (the E2M1 values doubled)
and d = GGML_E8M0_TO_FP32_HALF(e) (ggml-impl.h ggml_e8m0_to_fp32_half: 2^(e - 128), the bits (e - 1) << 23
for e >= 2, 0x00200000 << e for e < 2; gguf-py's MXFP4.e8m0_to_fp32_half). Activations: Q8_0.

Sources (llama.cpp): ggml/src/ggml-cpu/quants.c ggml_vec_dot_mxfp4_q8_0_generic; ggml/src/ggml-cpu/arch/x86/
quants.c the __AVX2__ branch of ggml_vec_dot_mxfp4_q8_0; ggml/src/ggml-cpu/arch/x86/repack.cpp
ggml_gemv_mxfp4_8x8_q8_0 / ggml_gemm_mxfp4_8x8_q8_0 (gemv_q4_b32_8x8_q8_0_lut_avx / gemm_q4_b32_8x8_q8_0_lut_avx
with block_mxfp4x8).

Scalar ``a * b + c`` of the C sources is two float32 roundings here (the C semantics without FMA
contraction), vector FMAs one (fma32).
"""
from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType as T

from .common import F32, blocks_of, decode_act, fma32
from .iq4 import IQ4_NL

#: kvalues_mxfp4 (ggml-common.h)
KVALUES = np.array([0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12], np.int64)


def e8m0_half(e: np.ndarray) -> np.ndarray:
    """GGML_E8M0_TO_FP32_HALF of E8M0 bytes (uint8 array) as float32, from the bit patterns."""
    e = np.asarray(e, np.uint32)
    bits = np.where(e < 2, np.uint32(0x00200000) << e, (e - np.uint32(1)) << np.uint32(23)).astype(np.uint32)
    return bits.view(np.float32)


class MXFP4(IQ4_NL):
    """IQ4_NL's arithmetic (ggml's MXFP4 dot products are IQ4_NL's with an E8M0 scale), its own blocks."""

    wtype = T.MXFP4
    act_type = T.Q8_0
    QK, BYTES = 32, 17

    @classmethod
    def _parts(cls, row: np.ndarray, act: np.ndarray, n: int):
        """Per block: e8m0_half(x.e), fp16(y.d) (float32) and the 32 exact products kv * q8 (int64)."""
        b = blocks_of(row, n, cls.QK, cls.BYTES)
        a = decode_act(cls.act_type, act, n)
        qs = b[:, 1:]
        levels = KVALUES[np.concatenate([qs & 0x0F, qs >> 4], axis=-1)]
        return e8m0_half(b[:, 0]), a["d"], levels * a["q"]

    @classmethod
    def dot(cls, impl: str, row: np.ndarray, act: np.ndarray, n: int) -> np.float32:
        """IQ4_NL's generic / AVX2 arithmetic; E8M0 scales up to 2^127 may overflow to inf, as in C."""
        with np.errstate(over="ignore", invalid="ignore"):
            return super().dot(impl, row, act, n)

    @classmethod
    def gemv(cls, row: np.ndarray, act: np.ndarray, n: int) -> np.float32:
        """llama.cpp's x86 repacked MXFP4 product (gemv_q4_b32_8x8_q8_0_lut_avx with block_mxfp4x8, and the
        gemm alike): acc = fma((float)sumi, e8m0_half(x.e) * fp16(y.d), acc) over the blocks, no horizontal sum."""
        dx, dy, prod = cls._parts(row, act, n)
        with np.errstate(over="ignore", invalid="ignore"):
            d = (dx * dy).astype(np.float32)
            sumi = prod.sum(axis=1).astype(np.float32)
            acc = F32(0)
            for ib in range(prod.shape[0]):
                acc = F32(fma32(sumi[ib], d[ib], acc))
        return acc
