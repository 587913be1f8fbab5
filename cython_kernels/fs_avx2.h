/* Small AVX2 (+FMA, F16C) helpers shared by the C kernels. Include only where FS_HAVE_AVX2_CODE is 1
 * (fs_common.h); every function carries FS_AVX2_FN, so callers run them only after fs_use_avx2(). */
#ifndef FS_AVX2_H
#define FS_AVX2_H

#include "fs_common.h"

#if FS_HAVE_AVX2_CODE
#include <immintrin.h>

/* ggml's hsum_float_8 (ggml-cpu/arch/x86/quants.c): (hi + lo), then (0 + 2, 1 + 3), then lane 0 +
 * lane 1. The order matters: results are compared bit for bit with llama.cpp's. */
static inline FS_AVX2_FN float hsum_f32x8(__m256 x) {
    __m128 r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

/* 8 f16 values (any alignment) as floats. */
static inline FS_AVX2_FN __m256 load_f16x8(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
#endif

#endif /* FS_AVX2_H */
