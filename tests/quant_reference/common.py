"""Shared pieces of the numpy references: float32 arithmetic as ggml does it, and the activation
formats (Q8_0, Q8_1, Q8_K) the weight types are dotted with.

Sources: llama.cpp ggml/src/ggml-common.h (block layouts), ggml/src/ggml-quants.c
(quantize_row_q8_K_ref, nearest_int), ggml/src/ggml-cpu/arch/x86/quants.c (quantize_row_q8_0 /
q8_1 with AVX2, hsum_float_8).
"""
from __future__ import annotations

import numpy as np
from gguf import GGML_QUANT_SIZES
from gguf import quants as gquants
from gguf import GGMLQuantizationType as T

F32 = np.float32

#: elements and bytes of one block of each activation format
ACT_BLOCK = {T.Q8_0: (32, 34), T.Q8_1: (32, 36), T.Q8_K: (256, 292)}


def f16_at(blocks: np.ndarray, off: int) -> np.ndarray:
    """The f16 at byte ``off`` of every block (nb, bytes) as float32, shape (nb,)."""
    return np.ascontiguousarray(blocks[:, off : off + 2]).view(np.float16)[:, 0].astype(np.float32)


def blocks_of(row: np.ndarray, n: int, qk: int, bs: int) -> np.ndarray:
    """The first n elements' blocks of one row of bytes, shape (n // qk, bs)."""
    return np.ascontiguousarray(row[: (n // qk) * bs]).reshape(n // qk, bs)


def fma32(a, b, c) -> np.ndarray:
    """float32 fused multiply-add, correctly rounded, elementwise: a * b is exact in float64; the
    rounding error of the float64 sum is recovered with TwoSum, and it only matters when the float64
    sum falls exactly halfway between two float32 values."""
    a, b, c = (np.asarray(v, np.float32) for v in (a, b, c))
    p = a.astype(np.float64) * b.astype(np.float64)
    c64 = c.astype(np.float64)
    s = p + c64
    t = s - p
    err = (p - (s - t)) + (c64 - t)
    r = s.astype(np.float32)
    r64 = r.astype(np.float64)
    lo = np.where(r64 <= s, r, np.nextafter(r, np.float32(-np.inf)))
    hi = np.where(r64 >= s, r, np.nextafter(r, np.float32(np.inf)))
    mid = (lo.astype(np.float64) + hi.astype(np.float64)) / 2
    tie = (s == mid) & (r64 != s)
    return np.where(tie & (err > 0), hi, np.where(tie & (err < 0), lo, r)).astype(np.float32)


def hsum_float_8(v: np.ndarray) -> np.float32:
    """ggml hsum_float_8: (hi + lo), then lanes (0 + 2, 1 + 3), then lane 0 + lane 1."""
    r = (v[4:] + v[:4]).astype(np.float32)
    return F32(F32(r[0] + r[2]) + F32(r[1] + r[3]))


def hsum_float_4(v: np.ndarray) -> np.float32:
    """ggml hsum_float_4x4-style reduction of one 4-lane vector: (0 + 2) + (1 + 3)."""
    return F32(F32(v[0] + v[2]) + F32(v[1] + v[3]))


def grid_of(cls) -> np.ndarray:
    """gguf-py's lattice grid of an IQ class (gguf.quants.IQ2_XXS ...) as int64 values, shape (entries, 4 or 8)."""
    cls.init_grid()
    return np.asarray(cls.grid, np.float32).reshape(cls.grid_shape).astype(np.int64)


#: ksigns_iq2xs[128] (ggml-common.h), from gguf-py
KSIGNS = np.frombuffer(gquants.IQ2_XXS.ksigns, dtype=np.uint8).astype(np.int64)
BITS = np.arange(8, dtype=np.int64)


def signs_of(sign_bytes: np.ndarray) -> np.ndarray:
    """Sign bytes (..., groups) -> +1 / -1 per element (..., groups * 8); bit j: element j negative."""
    bits = (sign_bytes[..., None] >> BITS) & 1
    return np.where(bits == 1, -1, 1).reshape(*sign_bytes.shape[:-1], -1)


def decode_act(vdt: T, act: np.ndarray, n: int) -> dict:
    """A quantized activation row as its parts: d (float32 per block), q (int64 per element; shape
    (nb, qk)), s (Q8_1: the stored f16 d * sum(q)), bsums (Q8_K: int64 sums of 16)."""
    qk, bs = ACT_BLOCK[vdt]
    b = act.reshape(n // qk, bs)
    if vdt == T.Q8_K:
        return {"d": np.ascontiguousarray(b[:, 0:4]).view(np.float32)[:, 0], "q": b[:, 4:260].view(np.int8).astype(np.int64),
                "bsums": np.ascontiguousarray(b[:, 260:292]).view("<i2").astype(np.int64)}
    off = 2 if vdt == T.Q8_0 else 4
    return {"d": f16_at(b, 0), "s": f16_at(b, 2) if vdt == T.Q8_1 else None, "q": b[:, off:].view(np.int8).astype(np.int64)}


def _q8_x86(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x86 quantize_row_q8_0/q8_1: d = amax / 127, id = 127 / amax, qs = rint(x * id) (half to even)."""
    b = x.astype(np.float32).reshape(-1, 32)
    amax = np.abs(b).max(axis=1, keepdims=True)
    d = (amax / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(amax == 0, np.float32(0), np.float32(127) / amax).astype(np.float32)
    q = np.rint((b * inv).astype(np.float32)).astype(np.int8)
    return b, d, q


def ref_q8_0(x: np.ndarray) -> np.ndarray:
    """Q8_0 activation block bytes as llama.cpp's x86 quantize_row_q8_0 writes them."""
    _, d, q = _q8_x86(x)
    return np.concatenate([d.astype(np.float16).view(np.uint8), q.view(np.uint8)], axis=1).reshape(-1)


def ref_q8_1(x: np.ndarray) -> np.ndarray:
    """Q8_1 as x86 quantize_row_q8_1: as Q8_0 plus s = fp16(float32(sum qs) * d) with the float32 d."""
    _, d, q = _q8_x86(x)
    s = (q.astype(np.int32).sum(axis=1, keepdims=True).astype(np.float32) * d).astype(np.float32)
    return np.concatenate(
        [d.astype(np.float16).view(np.uint8), s.astype(np.float16).view(np.uint8), q.view(np.uint8)], axis=1
    ).reshape(-1)


def ref_q8_k(x: np.ndarray) -> np.ndarray:
    """quantize_row_q8_K_ref: max = the first element of largest |x|; iscale = -127 / max;
    qs = min(127, round-half-even(iscale * x)); d = 1 / iscale (float32); bsums of 16."""
    out = []
    for b in x.astype(np.float32).reshape(-1, 256):
        i = int(np.argmax(np.abs(b)))
        if b[i] == 0:
            d, q = np.float32(0), np.zeros(256, np.int8)
        else:
            iscale = np.float32(-127) / b[i]
            q = np.minimum(127, np.rint((iscale * b).astype(np.float32))).astype(np.int8)
            d = np.float32(1) / iscale
        bsums = q.astype(np.int32).reshape(16, 16).sum(axis=1).astype(np.int16)
        out += [np.array([d], np.float32).view(np.uint8), q.view(np.uint8), bsums.view(np.uint8)]
    return np.concatenate(out)


def quantize_act(vdt: T, x: np.ndarray) -> np.ndarray:
    """Activation bytes of x (float32, length a multiple of the block) in format vdt."""
    return {T.Q8_0: ref_q8_0, T.Q8_1: ref_q8_1, T.Q8_K: ref_q8_k}[vdt](x)


# byte offsets of the f16 scales in each block (ggml-common.h) where they are not at byte 0; IQ1_M
# spreads its scale over the top nibbles of its four uint16 scale words (bytes 48 .. 55)
F16_FIELDS = {T.Q2_K: (80, 82), T.Q3_K: (108,), T.Q6_K: (208,), T.TQ1_0: (52,), T.TQ2_0: (64,), T.IQ1_M: ()}


def e8m0_of(scale) -> np.ndarray:
    """The E8M0 byte e whose MXFP4 scale GGML_E8M0_TO_FP32_HALF(e) = 2^(e - 128) is nearest to |scale| in
    log2 (uint8, clipped to 0 .. 255; 0 for a zero scale)."""
    s = np.abs(np.asarray(scale, np.float64))
    e = np.rint(np.log2(np.where(s > 0, s, 1.0))) + 128
    return np.clip(np.where(s > 0, e, 0), 0, 255).astype(np.uint8)


def set_scales(t: T, blocks: np.ndarray, scale) -> None:
    """Write one f16 scale per block (float values, rounded to f16) into blocks (nb, block bytes) of type t,
    in place: every f16 scale field of the block (Q2_K's d and dmin alike). MXFP4's scale is an E8M0 byte
    (a power of two): its byte 0 gets the one nearest to |scale| (e8m0_of)."""
    nb = blocks.shape[0]
    if t == T.MXFP4:
        blocks[:, 0] = e8m0_of(np.asarray(scale, np.float64).reshape(nb))
        return
    scale = np.asarray(scale, np.float32).reshape(nb).astype(np.float16)
    if t == T.IQ1_M:
        bits = scale.view(np.uint16)
        for k in range(4):
            word = blocks[:, 48 + 2 * k : 50 + 2 * k].copy().view("<u2")[:, 0]
            word = (word & 0x0FFF) | (((bits >> (4 * k)) & 0xF) << 12)
            blocks[:, 48 + 2 * k : 50 + 2 * k] = word.astype("<u2").view(np.uint8).reshape(nb, 2)
    else:
        for off in F16_FIELDS.get(t, (0,)):
            blocks[:, off : off + 2] = scale.view(np.uint8).reshape(nb, 2)


def random_blocks(t: T, n_rows: int, n: int, rng: np.random.Generator, scale=None) -> np.ndarray:
    """(n_rows, row_bytes) uint8 of GGML type t: random blocks (every bit pattern of these formats is a
    valid block) whose f16 scales are ``scale`` (one per block, in row order) or, by default, random
    finite values of both signs with magnitude 1e-4 .. 1 (MXFP4: the nearest powers of two, set_scales)."""
    qk, bs = GGML_QUANT_SIZES[t]
    nb = n_rows * (n // qk)
    raw = rng.integers(0, 256, size=(nb, bs), dtype=np.uint8)
    if scale is None:
        scale = rng.uniform(1e-4, 1.0, nb) * rng.choice([-1.0, 1.0], nb)
    set_scales(t, raw, scale)
    return raw.reshape(n_rows, -1)


class Reference:
    """One GGML weight type's numpy reference (as gguf-py's quants.py has one class per type).

    Subclasses set ``wtype`` and ``act_type`` (llama.cpp's vec_dot_type, ggml-cpu.c type_traits_cpu)
    and implement ``dot(impl, row, act, n)``: the float32 that ggml's vec_dot gives for one weight
    row (uint8 bytes) and one quantized activation row (bytes, format ``act_type``) of n elements,
    bit for bit, with ``impl`` "portable" (ggml's scalar *_generic code, ggml-cpu/quants.c) or
    "avx2" (the __AVX2__ code of ggml-cpu/arch/x86/quants.c). Dequantization is gguf-py's own
    (gguf.quants.dequantize), the reference for Fireside's dequantizers.
    """

    wtype: T
    act_type: T

    @classmethod
    def dot(cls, impl: str, row: np.ndarray, act: np.ndarray, n: int) -> np.float32:  # pragma: no cover
        raise NotImplementedError
