/* The float weight types F32, F16, BF16: conversion of activations, dequantization and dot products
 * (Fireside's family file for 1-element "blocks"; see fs_kernel.h and fs_traits.c).
 *
 * Sources (llama.cpp): ggml/src/ggml-cpu/vec.cpp (ggml_vec_dot_f32, _f16, _bf16), ggml-cpu/simd-mappings.h
 * (GGML_F32x8 / GGML_F32Cx8 with 4 accumulators, GGML_F32x8_REDUCE), ggml-impl.h (GGML_FP32_TO_BF16);
 * gguf-py gguf/quants.py for the dequantization reference.
 */
#include "fs_families.h"

/* binary32 -> bfloat16, round to nearest even; NaN keeps its top bits and is made quiet.
 * ggml's ggml_compute_fp32_to_bf16 (GGML_FP32_TO_BF16). */
static inline uint16_t fp32_to_bf16(float f) {
    const uint32_t u = f32_to_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 64u);
    return (uint16_t)((u + (0x7FFFu + ((u >> 16) & 1u))) >> 16);
}

static inline float bf16_to_fp32(uint16_t h) { return f32_from_bits((uint32_t)h << 16); }

/* ---- activation formats: the weight's own type ---------------------------------------------- */

void fs_quant_act_f32(const float *x, uint8_t *y, int64_t n) { memcpy(y, x, (size_t)n * 4); }

void fs_quant_act_f16(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) wr_u16(y + 2 * i, fp32_to_fp16(x[i]));
}

void fs_quant_act_bf16(const float *x, uint8_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) wr_u16(y + 2 * i, fp32_to_bf16(x[i]));
}

/* ---- dequantization (gguf.quants.dequantize) -------------------------------------------------- */

/* F32: a copy (little-endian host assumed, see fs_quants.h). */
void fs_dequant_f32(const uint8_t *src, float *dst, int64_t n) { memcpy(dst, src, (size_t)n * sizeof(float)); }

/* F16: reference data.view(float16).astype(float32): an exact conversion. */
FS_DISPATCH void fs_dequant_f16(const uint8_t *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = dq_half_to_float(rd_u16(src + 2 * i));
}

/* BF16: reference (int16 -> int32) << 16 viewed as float32: the 16 bits become the top half of
 * the float32 bit pattern; no float operation, NaN payloads kept. */
FS_DISPATCH void fs_dequant_bf16(const uint8_t *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = f32_from_bits((uint32_t)rd_u16(src + 2 * i) << 16);
}

/* ---- portable dot products -------------------------------------------------------------------- */

/* ggml_vec_dot_f32 / _f16 / _bf16 without SIMD: each product rounded to float, summed in double
 * (ggml_float), the total rounded to float. */
FS_VD_INLINE float dot_f32_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    double sumf = 0.0;
    for (int64_t i = 0; i < n; i++) sumf += (double)(rd_f32(x + 4 * i) * rd_f32(y + 4 * i));
    return (float)sumf;
}

FS_VD_INLINE float dot_f16_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    double sumf = 0.0;
    for (int64_t i = 0; i < n; i++) sumf += (double)(rd_f16(x + 2 * i) * rd_f16(y + 2 * i));
    return (float)sumf;
}

FS_VD_INLINE float dot_bf16_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    double sumf = 0.0;
    for (int64_t i = 0; i < n; i++) sumf += (double)(bf16_to_fp32(rd_u16(x + 2 * i)) * bf16_to_fp32(rd_u16(y + 2 * i)));
    return (float)sumf;
}

FS_ROWS(fs_rows_f32_c, dot_f32_c, )
FS_ROWS(fs_rows_f16_c, dot_f16_c, )
FS_ROWS(fs_rows_bf16_c, dot_bf16_c, )

/* ---- AVX2 dot products (vec.cpp with GGML_F32x8) ----------------------------------------------- */
#if FS_HAVE_AVX2_CODE

/* GGML_F32x8_REDUCE with GGML_F32_ARR = 4: s0 += s2, s1 += s3, s0 += s1; then (lo + hi) and two
 * horizontal adds. */
static inline FS_AVX2_FN float reduce_f32x8x4(__m256 s0, __m256 s1, __m256 s2, __m256 s3) {
    s0 = _mm256_add_ps(s0, s2);
    s1 = _mm256_add_ps(s1, s3);
    s0 = _mm256_add_ps(s0, s1);
    const __m128 t0 = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
    const __m128 t1 = _mm_hadd_ps(t0, t0);
    return _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
}

/* ggml_vec_dot_f32 (AVX + FMA): four 8-lane FMA accumulators over 32 elements at a time,
 * GGML_F32x8_REDUCE, then the leftover elements added one by one in float. */
static inline FS_AVX2_FN float dot_f32_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t np = n & ~(int64_t)31;
    const float *xf = (const float *)(const void *)x; /* only read through unaligned loads */
    const float *yf = (const float *)(const void *)y;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int64_t i = 0; i < np; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(xf + i), _mm256_loadu_ps(yf + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(xf + i + 8), _mm256_loadu_ps(yf + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(xf + i + 16), _mm256_loadu_ps(yf + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(xf + i + 24), _mm256_loadu_ps(yf + i + 24), s3);
    }
    float sumf = reduce_f32x8x4(s0, s1, s2, s3);
    for (int64_t i = np; i < n; i++) sumf += rd_f32(x + 4 * i) * rd_f32(y + 4 * i);
    return sumf;
}

/* ggml_vec_dot_f16 (AVX + F16C + FMA): as F32 on converted halves; the reduced sum and the leftover
 * products are accumulated in double. */
static inline FS_AVX2_FN float dot_f16_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t np = n & ~(int64_t)31;
#define FS_LDH(p, i) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((p) + 2 * (i))))
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int64_t i = 0; i < np; i += 32) {
        s0 = _mm256_fmadd_ps(FS_LDH(x, i), FS_LDH(y, i), s0);
        s1 = _mm256_fmadd_ps(FS_LDH(x, i + 8), FS_LDH(y, i + 8), s1);
        s2 = _mm256_fmadd_ps(FS_LDH(x, i + 16), FS_LDH(y, i + 16), s2);
        s3 = _mm256_fmadd_ps(FS_LDH(x, i + 24), FS_LDH(y, i + 24), s3);
    }
#undef FS_LDH
    double sumf = (double)reduce_f32x8x4(s0, s1, s2, s3);
    for (int64_t i = np; i < n; i++) sumf += (double)(h2f(x + 2 * i) * h2f(y + 2 * i));
    return (float)sumf;
}

/* ggml_vec_dot_bf16 (AVX2 branch): four 8-lane accumulators c += x * y (separate multiply and add,
 * no FMA) over 32 elements at a time; c1 = (c1 + c3) + (c2 + c4); hsum; leftovers in double. */
static inline FS_AVX2_FN float dot_bf16_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
#define FS_LDB(p, i) \
    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((p) + 2 * (i)))), 16))
    int64_t i = 0;
    double sumf = 0.0;
    __m256 c1 = _mm256_setzero_ps(), c2 = c1, c3 = c1, c4 = c1;
    for (; i + 32 <= n; i += 32) {
        c1 = _mm256_add_ps(_mm256_mul_ps(FS_LDB(x, i), FS_LDB(y, i)), c1);
        c2 = _mm256_add_ps(_mm256_mul_ps(FS_LDB(x, i + 8), FS_LDB(y, i + 8)), c2);
        c3 = _mm256_add_ps(_mm256_mul_ps(FS_LDB(x, i + 16), FS_LDB(y, i + 16)), c3);
        c4 = _mm256_add_ps(_mm256_mul_ps(FS_LDB(x, i + 24), FS_LDB(y, i + 24)), c4);
    }
#undef FS_LDB
    c1 = _mm256_add_ps(_mm256_add_ps(c1, c3), _mm256_add_ps(c2, c4));
    __m128 g = _mm_add_ps(_mm256_extractf128_ps(c1, 1), _mm256_castps256_ps128(c1));
    g = _mm_add_ps(g, _mm_movehl_ps(g, g));
    g = _mm_add_ss(g, _mm_movehdup_ps(g));
    sumf += (double)_mm_cvtss_f32(g);
    for (; i < n; i++) sumf += (double)(bf16_to_fp32(rd_u16(x + 2 * i)) * bf16_to_fp32(rd_u16(y + 2 * i)));
    return (float)sumf;
}

FS_ROWS(fs_rows_f32_avx2, dot_f32_avx2, FS_AVX2_FN)
FS_ROWS(fs_rows_f16_avx2, dot_f16_avx2, FS_AVX2_FN)
FS_ROWS(fs_rows_bf16_avx2, dot_bf16_avx2, FS_AVX2_FN)

#endif /* FS_HAVE_AVX2_CODE */
