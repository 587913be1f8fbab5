/* Half-precision (IEEE binary16) conversions in portable C, shared by the kernels.
 *
 * The constructions are those of the FP16 library as used by ggml (ggml_compute_fp16_to_fp32,
 * ggml_compute_fp32_to_fp16 in ggml/src/ggml-impl.h); fp32_to_fp16 gives the same bits as F16C's
 * vcvtps2ph with round-to-nearest-even for every non-NaN input.
 */
#ifndef FS_HALF_H
#define FS_HALF_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float f32_from_bits(uint32_t w) {
    float f;
    memcpy(&f, &w, sizeof f);
    return f;
}

static inline uint32_t f32_to_bits(float f) {
    uint32_t w;
    memcpy(&w, &f, sizeof w);
    return w;
}

/* binary16 -> binary32, exact for every input (normal, subnormal, zero, inf, NaN). The same
 * branch-free construction as ggml's ggml_compute_fp16_to_fp32 (from the FP16 library):
 * normals are rebiased and scaled by 2^-112, subnormals built as a float with the mantissa in
 * its low bits minus 0.5. */
static inline float fp16_to_fp32(uint16_t h) {
    const uint32_t w = (uint32_t)h << 16;
    const uint32_t sign = w & 0x80000000u;
    const uint32_t two_w = w + w;
    const float normalized = f32_from_bits((two_w >> 4) + (0xE0u << 23)) * f32_from_bits(0x07800000u); /* 2^-112 */
    const float denormalized = f32_from_bits((two_w >> 17) | (126u << 23)) - 0.5f;
    const uint32_t result =
        sign | (two_w < (1u << 27) ? f32_to_bits(denormalized) : f32_to_bits(normalized));
    return f32_from_bits(result);
}

/* binary32 -> binary16, round to nearest even, overflow to infinity, NaN -> 0x7E00 | sign: ggml's
 * ggml_compute_fp32_to_fp16 (FP16 library), which gives the same bits as F16C's vcvtps2ph with
 * rounding mode 0 (what ggml uses on x86) for every non-NaN input. The two multiplications by
 * 2^112 and 2^-110 round the mantissa at the right place for normals and subnormals alike. */
static inline uint16_t fp32_to_fp16(float f) {
    const float scale_to_inf = f32_from_bits(0x77800000u);  /* 2^112 */
    const float scale_to_zero = f32_from_bits(0x08800000u); /* 2^-110 */
    float base = (fabsf(f) * scale_to_inf) * scale_to_zero;
    const uint32_t w = f32_to_bits(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xFF000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    base = f32_from_bits((bias >> 1) + 0x07800000u) + base;
    const uint32_t bits = f32_to_bits(base);
    const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
    const uint32_t mantissa_bits = bits & 0x00000FFFu;
    const uint32_t nonsign = exp_bits + mantissa_bits;
    return (uint16_t)((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

#endif /* FS_HALF_H */
