/* The 32-element block types Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and their activation formats Q8_0 / Q8_1
 * (Fireside's family file; see fs_kernel.h and fs_traits.c).
 *
 * Sources (llama.cpp, read for the algorithms; this is an independent implementation):
 *   ggml/src/ggml-common.h            block_q4_0 ... block_q8_0, block_q8_1
 *   ggml/src/ggml-quants.c            dequantize_row_q4_0 ... q8_0, quantize_row_q8_0_ref / q8_1_ref
 *   ggml/src/ggml-cpu/quants.c        ggml_vec_dot_{q4_0,q5_0,q8_0}_q8_0_generic, {q4_1,q5_1}_q8_1_generic
 *   ggml/src/ggml-cpu/arch/x86/quants.c  the __AVX2__ branches, quantize_row_q8_0 / q8_1 (AVX2),
 *                                     bytes_from_nibbles_32, bytes_from_bits_32, mul_sum_*_pairs_float
 *   ggml/src/ggml-cpu/arch/x86/repack.cpp  gemv_q4_b32_8x8_q8_0_lut_avx / gemm_... (repacked Q4_0)
 *   gguf-py gguf/quants.py            the dequantization reference (bit-identical)
 * fs_vecdot.c explains the repacked products and when llama.cpp uses them.
 */
#include "fs_families.h"

/* ---- dequantization (gguf.quants.dequantize) -------------------------------------------------- */

/* ---- 32-element blocks ------------------------------------------------------------------- */

/* The loops below first unpack a block's 4-bit values into a 32-byte array, then convert all 32
 * at once: a 32-iteration loop vectorizes well, where one of 16 iterations writing y[j] and
 * y[j + 16] does not. */

/* kBit[j] = 1 << j: testing bit j of the Q5 high-bit mask against a table entry instead of
 * shifting by j keeps the loop vectorizable without per-lane variable shifts (absent in SSE2). */
static const uint32_t kBit[32] = {
    1u << 0,  1u << 1,  1u << 2,  1u << 3,  1u << 4,  1u << 5,  1u << 6,  1u << 7,
    1u << 8,  1u << 9,  1u << 10, 1u << 11, 1u << 12, 1u << 13, 1u << 14, 1u << 15,
    1u << 16, 1u << 17, 1u << 18, 1u << 19, 1u << 20, 1u << 21, 1u << 22, 1u << 23,
    1u << 24, 1u << 25, 1u << 26, 1u << 27, 1u << 28, 1u << 29, 1u << 30, 1u << 31,
};

/* q[j] = low nibble of qs[j], q[j + 16] = high nibble of qs[j] (j < 16): the nibble order of
 * every 32-element type (ggml-quants.c: x[i*qk + j] uses qs[j] & 0x0F, x[i*qk + j + qk/2] uses
 * qs[j] >> 4). */
static inline void unpack_nibbles(const uint8_t *qs, uint8_t q[QK]) {
    for (int j = 0; j < QK / 2; j++) {
        q[j] = (uint8_t)(qs[j] & 0x0F);
        q[j + QK / 2] = (uint8_t)(qs[j] >> 4);
    }
}

/* Q4_0, 18 bytes: f16 d | 16 bytes qs. Element j < 16 is the low nibble of qs[j], element
 * j + 16 the high nibble. Reference: d * (float)(q - 8). */
FS_DISPATCH void fs_dequant_q4_0(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *b = src + ib * 18;
        const float d = dq_f16(b);
        float *y = dst + ib * QK;
        uint8_t q[QK];
        unpack_nibbles(b + 2, q);
        for (int j = 0; j < QK; j++) y[j] = d * (float)((int)q[j] - 8);
    }
}

/* Q4_1, 20 bytes: f16 d | f16 m | 16 bytes qs (nibbles as Q4_0). Reference: (d * (float)q) + m. */
FS_DISPATCH void fs_dequant_q4_1(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *b = src + ib * 20;
        const float d = dq_f16(b);
        const float m = dq_f16(b + 2);
        float *y = dst + ib * QK;
        uint8_t q[QK];
        unpack_nibbles(b + 4, q);
        for (int j = 0; j < QK; j++) y[j] = d * (float)q[j] + m;
    }
}

/* Q5_0, 22 bytes: f16 d | u32 qh (little-endian) | 16 bytes qs. Element j's fifth bit is bit j
 * of qh; its low four bits are the nibbles as in Q4_0. Reference: d * (float)(q - 16). */
FS_DISPATCH void fs_dequant_q5_0(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *b = src + ib * 22;
        const float d = dq_f16(b);
        const uint32_t qh = rd_u32(b + 2);
        float *y = dst + ib * QK;
        uint8_t q[QK];
        unpack_nibbles(b + 6, q);
        for (int j = 0; j < QK; j++) y[j] = d * (float)((int)(q[j] | ((qh & kBit[j]) ? 16 : 0)) - 16);
    }
}

/* Q5_1, 24 bytes: f16 d | f16 m | u32 qh | 16 bytes qs (bits as Q5_0).
 * Reference: (d * (float)q) + m. */
FS_DISPATCH void fs_dequant_q5_1(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *b = src + ib * 24;
        const float d = dq_f16(b);
        const float m = dq_f16(b + 2);
        const uint32_t qh = rd_u32(b + 4);
        float *y = dst + ib * QK;
        uint8_t q[QK];
        unpack_nibbles(b + 8, q);
        for (int j = 0; j < QK; j++) y[j] = d * (float)(q[j] | ((qh & kBit[j]) ? 16 : 0)) + m;
    }
}

/* Q8_0, 34 bytes: f16 d | 32 x int8. Reference: (float)q * d. */
FS_DISPATCH void fs_dequant_q8_0(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *b = src + ib * 34;
        const float d = dq_f16(b);
        const uint8_t *qs = b + 2;
        float *y = dst + ib * QK;
        for (int j = 0; j < QK; j++) y[j] = (float)as_i8(qs[j]) * d;
    }
}

/* ---- activation quantization (x86 quantize_row_q8_0 / q8_1) ----------------------------------- */

/* Q8_0 activations as llama.cpp's x86 quantize_row_q8_0 (ggml-cpu/arch/x86/quants.c) computes
 * them: amax = max |x|; d = amax / 127; id = amax ? 127 / amax : 0; qs = round-half-even(x * id)
 * (_mm256_round_ps). This differs from quantize_row_q8_0_ref (id = 1/d, roundf) in rare last-bit
 * cases; following the SIMD version keeps our greedy decoding on llama.cpp's path on x86. The
 * same bytes are produced on every CPU. The block stores fp16(d). */
FS_DISPATCH void fs_quant_act_q8_0(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t ib = 0; ib < nb; ib++, x += QK, y += B_Q8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) {
            const float v = fabsf(x[j]);
            amax = amax > v ? amax : v; /* ggml MAX(amax, v) */
        }
        const float d = amax / 127;
        const float id = amax != 0.0f ? 127.f / amax : 0.0f;
        wr_u16(y, fp32_to_fp16(d));
        for (int j = 0; j < QK; j++) y[2 + j] = (uint8_t)(int8_t)nearest_int(x[j] * id);
    }
}

/* Q8_1 as x86 quantize_row_q8_1: as Q8_0 above, plus s = fp16(d * sum(qs)) with the float32 d. */
FS_DISPATCH void fs_quant_act_q8_1(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t ib = 0; ib < nb; ib++, x += QK, y += B_Q8_1) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++) {
            const float v = fabsf(x[j]);
            amax = amax > v ? amax : v;
        }
        const float d = amax / 127;
        const float id = amax != 0.0f ? 127.f / amax : 0.0f;
        wr_u16(y, fp32_to_fp16(d));
        int sum = 0;
        for (int j = 0; j < QK; j++) {
            const int8_t q = (int8_t)nearest_int(x[j] * id);
            y[4 + j] = (uint8_t)q;
            sum += q;
        }
        wr_u16(y + 2, fp32_to_fp16((float)sum * d));
    }
}

/* ---- portable dot products: ggml's *_generic functions ------------------------------------------ */
/* Each dot_* takes one weight row, the quantized activation row and the number of elements. The
 * integer block sums are exact whatever the evaluation order; the float expressions are written
 * exactly as in ggml (C evaluates a * b * c as (a * b) * c). The quants are first unpacked to int8
 * (block_dot_i8 is the loop compilers vectorize best). */

/* Integer dot of one Q4_0 block (nibbles - 8: low nibbles are elements 0..15, high 16..31) with
 * one Q8_0 block; the vec_dot and repack products differ only in how they accumulate it. */
FS_VD_INLINE int q4_0_block_sumi(const uint8_t *x, const uint8_t *y) {
    const uint8_t *qs = x + 2;
    int8_t a[QK];
    for (int j = 0; j < QK / 2; j++) {
        a[j] = (int8_t)((qs[j] & 0x0F) - 8);
        a[j + QK / 2] = (int8_t)((qs[j] >> 4) - 8);
    }
    return block_dot_i8(a, (const int8_t *)(y + 2));
}

/* ggml_vec_dot_q4_0_q8_0_generic: sumf += sumi * dx * dy. */
FS_VD_INLINE float dot_q4_0_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK;
    float sumf = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q4_0, y += B_Q8_0) {
        const int sumi = q4_0_block_sumi(x, y);
        sumf += (float)sumi * rd_f16(x) * rd_f16(y);
    }
    return sumf;
}

/* ggml_vec_dot_q4_1_q8_1_generic: sumf += (dx * dy) * sumi + mx * sy. */
FS_VD_INLINE float dot_q4_1_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK;
    float sumf = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q4_1, y += B_Q8_1) {
        const uint8_t *qs = x + 4;
        int8_t a[QK];
        for (int j = 0; j < QK / 2; j++) {
            a[j] = (int8_t)(qs[j] & 0x0F);
            a[j + QK / 2] = (int8_t)(qs[j] >> 4);
        }
        const int sumi = block_dot_i8(a, (const int8_t *)(y + 4));
        sumf += (rd_f16(x) * rd_f16(y)) * (float)sumi + rd_f16(x + 2) * rd_f16(y + 2);
    }
    return sumf;
}

/* ggml_vec_dot_q5_0_q8_0_generic: the fifth bit of element j is bit j of qh; value - 16;
 * sumf += (dx * dy) * sumi. */
FS_VD_INLINE float dot_q5_0_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK;
    float sumf = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q5_0, y += B_Q8_0) {
        const uint32_t qh = rd_u32(x + 2);
        const uint8_t *qs = x + 6;
        int8_t a[QK];
        for (int j = 0; j < QK / 2; j++) {
            const int xh0 = (int)(((qh >> j) << 4) & 0x10);
            const int xh1 = (int)((qh >> (j + 12)) & 0x10);
            a[j] = (int8_t)(((qs[j] & 0x0F) | xh0) - 16);
            a[j + QK / 2] = (int8_t)(((qs[j] >> 4) | xh1) - 16);
        }
        const int sumi = block_dot_i8(a, (const int8_t *)(y + 2));
        sumf += (rd_f16(x) * rd_f16(y)) * (float)sumi;
    }
    return sumf;
}

/* ggml_vec_dot_q5_1_q8_1_generic: sumf += (dx * dy) * sumi + mx * sy. */
FS_VD_INLINE float dot_q5_1_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK;
    float sumf = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q5_1, y += B_Q8_1) {
        const uint32_t qh = rd_u32(x + 4);
        const uint8_t *qs = x + 8;
        int8_t a[QK];
        for (int j = 0; j < QK / 2; j++) {
            const int xh0 = (int)(((qh >> j) << 4) & 0x10);
            const int xh1 = (int)((qh >> (j + 12)) & 0x10);
            a[j] = (int8_t)((qs[j] & 0x0F) | xh0);
            a[j + QK / 2] = (int8_t)((qs[j] >> 4) | xh1);
        }
        const int sumi = block_dot_i8(a, (const int8_t *)(y + 4));
        sumf += (rd_f16(x) * rd_f16(y)) * (float)sumi + rd_f16(x + 2) * rd_f16(y + 2);
    }
    return sumf;
}

/* ggml_vec_dot_q8_0_q8_0_generic: sumf += sumi * (dx * dy). */
FS_VD_INLINE float dot_q8_0_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK;
    float sumf = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q8_0, y += B_Q8_0) {
        const int sumi = block_dot_i8((const int8_t *)(x + 2), (const int8_t *)(y + 2));
        sumf += (float)sumi * (rd_f16(x) * rd_f16(y));
    }
    return sumf;
}


/* The repacked Q4_0 product (gemv and gemm): acc = fma(sumi, dx * dy, acc) per block. */
FS_VD_INLINE float dot_q4_0_gemv_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK;
    float acc = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q4_0, y += B_Q8_0) {
        const int sumi = q4_0_block_sumi(x, y);
        acc = fmaf((float)sumi, rd_f16(x) * rd_f16(y), acc);
    }
    return acc;
}

FS_ROWS(fs_rows_q4_0_c, dot_q4_0_c, )
FS_ROWS(fs_rows_q4_1_c, dot_q4_1_c, )
FS_ROWS(fs_rows_q5_0_c, dot_q5_0_c, )
FS_ROWS(fs_rows_q5_1_c, dot_q5_1_c, )
FS_ROWS(fs_rows_q8_0_c, dot_q8_0_c, )
FS_ROWS(fs_gemv_q4_0_c, dot_q4_0_gemv_c, )

/* ---- AVX2 dot products: ggml's __AVX2__ code ----------------------------------------------------- */
#if FS_HAVE_AVX2_CODE

/* ggml_vec_dot_q4_0_q8_0 (AVX2): acc = fma(dx * dy, quads(q - 8, y), acc); hsum. */
static inline FS_AVX2_FN float dot_q4_0_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q4_0, y += B_Q8_0) {
        const __m256 d = _mm256_set1_ps(h2f(x) * h2f(y));
        const __m256i qx = _mm256_sub_epi8(nibbles_32(x + 2), _mm256_set1_epi8(8));
        const __m256i qy = _mm256_loadu_si256((const __m256i *)(y + 2));
        acc = _mm256_fmadd_ps(d, i8_quads(qx, qy), acc);
    }
    return hsum_f32x8(acc);
}

/* ggml_vec_dot_q4_1_q8_1 (AVX2): acc = fma(dx * dy, quads(q, y), acc); summs += mx * sy;
 * result hsum(acc) + summs. */
static inline FS_AVX2_FN float dot_q4_1_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q4_1, y += B_Q8_1) {
        summs += h2f(x + 2) * h2f(y + 2);
        const __m256 d0d1 = _mm256_mul_ps(_mm256_set1_ps(h2f(x)), _mm256_set1_ps(h2f(y)));
        const __m256i qx = nibbles_32(x + 4);
        const __m256i qy = _mm256_loadu_si256((const __m256i *)(y + 4));
        acc = _mm256_fmadd_ps(d0d1, us8_quads(qx, qy), acc);
    }
    return hsum_f32x8(acc) + summs;
}

/* ggml_vec_dot_q5_0_q8_0 (AVX2): q = nibble | (bit clear ? 0xF0 : 0), i.e. the signed value
 * (nibble | bit << 4) - 16; acc = fma(dx * dy, quads(q, y), acc). */
static inline FS_AVX2_FN float dot_q5_0_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q5_0, y += B_Q8_0) {
        const __m256 d = _mm256_set1_ps(h2f(x) * h2f(y));
        __m256i qx = nibbles_32(x + 6);
        const __m256i hi = _mm256_andnot_si256(bits_32(x + 2), _mm256_set1_epi8((char)0xF0));
        qx = _mm256_or_si256(qx, hi);
        const __m256i qy = _mm256_loadu_si256((const __m256i *)(y + 2));
        acc = _mm256_fmadd_ps(d, i8_quads(qx, qy), acc);
    }
    return hsum_f32x8(acc);
}

/* ggml_vec_dot_q5_1_q8_1 (AVX2): q = nibble | (bit ? 0x10 : 0); acc = fma(quads, dx * dy, acc);
 * summs += mx * sy; result hsum(acc) + summs. */
static inline FS_AVX2_FN float dot_q5_1_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q5_1, y += B_Q8_1) {
        const __m256 dx = _mm256_set1_ps(h2f(x));
        summs += h2f(x + 2) * h2f(y + 2);
        __m256i qx = nibbles_32(x + 8);
        qx = _mm256_or_si256(qx, _mm256_and_si256(bits_32(x + 4), _mm256_set1_epi8(0x10)));
        const __m256 dy = _mm256_set1_ps(h2f(y));
        const __m256i qy = _mm256_loadu_si256((const __m256i *)(y + 4));
        acc = _mm256_fmadd_ps(us8_quads(qx, qy), _mm256_mul_ps(dx, dy), acc);
    }
    return hsum_f32x8(acc) + summs;
}

/* ggml_vec_dot_q8_0_q8_0 (AVX2): acc = fma(dx * dy, quads(x, y), acc). */
/* Bytes ahead that the AVX2 Q8_0 row dot prefetches its row (FS_ROW_PREFETCH, every other block: two
 * blocks are about a line). Sapphire Rapids, 1B Q8_0 ffn_gate from memory, 1 thread: none 5.5-6.3
 * GB/s, 1 KB 7.9-8.2, 2 KB 8.6-9.0, 4 KB 8.6-9.4. */
#define Q8_0_ROWS_PREFETCH 2048
static inline FS_AVX2_FN float dot_q8_0_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q8_0, y += B_Q8_0) {
        if (ib % 2 == 0) FS_ROW_PREFETCH(x, 2 * B_Q8_0, Q8_0_ROWS_PREFETCH);
        const __m256 d = _mm256_set1_ps(h2f(x) * h2f(y));
        const __m256i qx = _mm256_loadu_si256((const __m256i *)(x + 2));
        const __m256i qy = _mm256_loadu_si256((const __m256i *)(y + 2));
        acc = _mm256_fmadd_ps(d, i8_quads(qx, qy), acc);
    }
    return hsum_f32x8(acc);
}

FS_ROWS(fs_rows_q4_0_avx2, dot_q4_0_avx2, FS_AVX2_FN)
FS_ROWS(fs_rows_q4_1_avx2, dot_q4_1_avx2, FS_AVX2_FN)
FS_ROWS(fs_rows_q5_0_avx2, dot_q5_0_avx2, FS_AVX2_FN)
FS_ROWS(fs_rows_q5_1_avx2, dot_q5_1_avx2, FS_AVX2_FN)
FS_ROWS(fs_rows_q8_0_avx2, dot_q8_0_avx2, FS_AVX2_FN)

/* The repacked Q4_0 product (gemv_q4_b32_8x8_q8_0_lut_avx): fs_kernel.h's gemv_b32_rows over the exact
 * integer products of one block, (q - 8) * y, as 8 int32 lanes. */
static inline FS_AVX2_FN __m256i q4_0_block_lanes(const uint8_t *x, __m256i qy) {
    const __m256i qx = _mm256_sub_epi8(nibbles_32(x + 2), _mm256_set1_epi8(8));
    const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(qx, qx), _mm256_sign_epi8(qy, qx));
    return _mm256_madd_epi16(_mm256_set1_epi16(1), p16);
}

FS_AVX2_FN void fs_gemv_q4_0_avx2(const uint8_t *w, size_t row_bytes, int64_t n_rows, const uint8_t *act, int64_t n,
                                  float *out) {
    gemv_b32_rows(w, row_bytes, n_rows, act, n, out, B_Q4_0, q4_0_block_lanes);
}

/* The repacked Q4_0 product for several activation rows (the gemm_tiles and gemv_tiles of the traits):
 * for every (weight row, activation row) the float steps of fs_gemv_q4_0_avx2, acc = fma((float)sumi,
 * fp16(x.d) * y.d, acc) per block in block order (llama.cpp's gemm_q4_b32_8x8_q8_0 takes the same
 * steps as its gemv), so the bits equal the gemv's for each activation row. Each weight block is
 * unpacked once for a tile of 4 weight rows x 2 activation rows; sumi = sum(q y) - 8 sum(y) with q the
 * unsigned nibbles: the 8 pairs' int32 lanes (lanes_fn; a constant at each call, so it is inlined) are
 * reduced at once (hsum_i32x8x8). act_fn prepares an activation block's side of the -8 sum(y) term. */
typedef __m256i (*q4_0_act_fn)(__m256i qy);
typedef __m256i (*q4_0_lanes_fn)(__m256i q, __m256i qy, __m256i side);

/* AVX2: side = maddubs(8, y); lanes = madd(1, maddubs(q, y) - side) (16-bit pairs: |.| <= 2 * 15 * 127). */
static inline FS_AVX2_FN __m256i q4_0_act_avx2(__m256i qy) { return _mm256_maddubs_epi16(_mm256_set1_epi8(8), qy); }
static inline FS_AVX2_FN __m256i q4_0_lanes_avx2(__m256i q, __m256i qy, __m256i side) {
    return _mm256_madd_epi16(_mm256_set1_epi16(1), _mm256_sub_epi16(_mm256_maddubs_epi16(q, qy), side));
}

FS_VD_INLINE FS_AVX2_FN void q4_0_gemm_tiles(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a, size_t ab,
                                             int64_t n_act, int64_t n, float *out, int64_t os, q4_0_act_fn act_fn,
                                             q4_0_lanes_fn lanes_fn) {
    const int64_t nb = n / QK;
    for (int64_t t = 0; t < n_act; t += 2) {
        const int tn = n_act - t < 2 ? 1 : 2;
        const uint8_t *y0 = a + (size_t)t * ab, *y1 = a + (size_t)(t + tn - 1) * ab;
        for (int64_t r = 0; r < n_rows; r += 4) {
            const int rows = n_rows - r < 4 ? (int)(n_rows - r) : 4;
            const uint8_t *x[4];
            for (int k = 0; k < 4; k++) x[k] = w + (size_t)(r + (k < rows ? k : 0)) * rb;
            __m256 acc = _mm256_setzero_ps(); /* lane k: (row k, activation t), lane 4 + k: (row k, t + 1) */
            for (int64_t ib = 0; ib < nb; ib++) {
                const uint8_t *ya = y0 + (size_t)ib * B_Q8_0, *yb = y1 + (size_t)ib * B_Q8_0;
                const __m256i qa = _mm256_loadu_si256((const __m256i *)(ya + 2));
                const __m256i qb = _mm256_loadu_si256((const __m256i *)(yb + 2));
                const __m256i sa = act_fn(qa), sb = act_fn(qb);
                __m256i l[8];
                for (int k = 0; k < 4; k++) {
                    const __m256i q = nibbles_32(x[k] + (size_t)ib * B_Q4_0 + 2);
                    l[k] = lanes_fn(q, qa, sa);
                    l[4 + k] = lanes_fn(q, qb, sb);
                }
                const size_t o = (size_t)ib * B_Q4_0;
                const __m128 dx = h2f_x4(x[0] + o, x[1] + o, x[2] + o, x[3] + o);
                const __m256 d = _mm256_mul_ps(_mm256_set_m128(dx, dx),
                                               _mm256_set_m128(_mm_set1_ps(h2f(yb)), _mm_set1_ps(h2f(ya))));
                acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(hsum_i32x8x8(l)), d, acc);
            }
            float v[8];
            _mm256_storeu_ps(v, acc);
            for (int k = 0; k < rows; k++) {
                out[(size_t)t * os + r + k] = v[k];
                if (tn == 2) out[(size_t)(t + 1) * os + r + k] = v[4 + k];
            }
        }
    }
}

FS_AVX2_FN void fs_gemm_tiles_q4_0_avx2(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a, size_t ab,
                                        int64_t n_act, int64_t n, float *out, int64_t os) {
    q4_0_gemm_tiles(w, rb, n_rows, a, ab, n_act, n, out, os, q4_0_act_avx2, q4_0_lanes_avx2);
}

/* ---- register-tiled products (several weight rows x several activation rows) ---------------
 *
 * tinyBLAS's idea (llama.cpp ggml/src/ggml-cpu/llamafile/sgemm.cpp): hold an RM x RN tile of
 * accumulators in registers and walk the blocks once, so each weight block is unpacked once for RN
 * activation rows and each activation block loaded once for RM weight rows. Every (row, activation)
 * pair keeps its own 8-lane accumulator and scalar sums and sees exactly the operations of the
 * single-pair functions above, in the same order, so the results are bit for bit those of
 * fs_vec_dot_rows_norepack. */

/* The int8 weight values of one 32-element block (signed for the Q8_0-activation types, unsigned
 * 0..31 for Q4_1 / Q5_1), as the single-pair functions unpack them. */
FS_VD_INLINE FS_AVX2_FN __m256i unpack_block32(int type, const uint8_t *x) {
    switch (type) {
    case FS_Q4_0: return _mm256_sub_epi8(nibbles_32(x + 2), _mm256_set1_epi8(8));
    case FS_Q5_0:
        return _mm256_or_si256(nibbles_32(x + 6), _mm256_andnot_si256(bits_32(x + 2), _mm256_set1_epi8((char)0xF0)));
    case FS_Q8_0: return _mm256_loadu_si256((const __m256i *)(x + 2));
    case FS_Q4_1: return nibbles_32(x + 4);
    default: /* FS_Q5_1 */
        return _mm256_or_si256(nibbles_32(x + 8), _mm256_and_si256(bits_32(x + 4), _mm256_set1_epi8(0x10)));
    }
}

/* The weight values of a Q4_0 / Q5_0 / Q8_0 block as unsigned bytes, value + block32_offset(type): for
 * dpbusd (unsigned x signed) without the sign trick; the offset times the activation's sum is taken off
 * after, in exact int32 arithmetic. */
FS_VD_INLINE FS_AVX2_FN __m256i unpack_block32_u(int type, const uint8_t *x) {
    switch (type) {
    case FS_Q4_0: return nibbles_32(x + 2);
    case FS_Q5_0: return _mm256_or_si256(nibbles_32(x + 6), _mm256_and_si256(bits_32(x + 2), _mm256_set1_epi8(0x10)));
    default: /* FS_Q8_0 */
        return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(x + 2)), _mm256_set1_epi8((char)0x80));
    }
}

/* A block's scale d and, for Q4_1 / Q5_1, its min m (the fp16 header) as float lanes 0 and 1: one
 * vcvtph2ps for both, exact as h2f. */
FS_VD_INLINE FS_AVX2_FN __m128 block32_dm(int type, const uint8_t *x) {
    const int q81 = type == FS_Q4_1 || type == FS_Q5_1;
    return _mm_cvtph_ps(_mm_cvtsi32_si128(q81 ? (int)rd_u32(x) : (int)rd_u16(x)));
}

FS_VD_INLINE int block32_offset(int type) { return type == FS_Q4_0 ? 8 : type == FS_Q5_0 ? 16 : 128; }

FS_VD_INLINE int block32_bytes(int type) {
    switch (type) {
    case FS_Q4_0: return B_Q4_0;
    case FS_Q5_0: return B_Q5_0;
    case FS_Q8_0: return B_Q8_0;
    case FS_Q4_1: return B_Q4_1;
    default: return B_Q5_1;
    }
}

/* How far ahead (in weight rows) a tile prefetches the block it is reading. A tile reads RM rows
 * side by side, a few bytes of each in turn; from memory that interleaved pattern defeats the hardware
 * stream prefetchers (SmolLM2's Q8_0 output matrix, 49152 x 576, one thread, AVX-512, this repo's
 * Zen 4 VM: 6.6 GB/s against 22 GB/s for the row-by-row kernel). Prefetching the same place
 * TILE_PREFETCH_ROWS rows on (the next rows of the thread's contiguous range) brings it to 12-14 GB/s
 * for 1-2 activation rows and makes 4 compute-bound; a prefetch never faults, so reading past the
 * matrix is harmless. */
#define TILE_PREFETCH_ROWS 16

/* Weight rows per register tile: 4 with AVX2 (the 4 x 4 accumulators take all 16 ymm registers, so
 * some live on the stack, yet 4 rows measured faster than 3 or 2: SmolLM2's Q4_1 FFN and Q8_0 rows, one
 * thread, 4 and 16 activation rows, 2-8% over 3 rows and 10-15% over 2; -DTILE_RM_AVX2 builds others),
 * 8 with AVX-512 (8 x 2 zmm accumulators of its 32; the activation blocks' loads and scale conversions
 * are shared by twice the rows: 7-12% faster for 2-4 activation rows, SmolLM2's matrices, one thread). */
#ifndef TILE_RM_AVX2
#define TILE_RM_AVX2 4
#endif
#define TILE_RM_AVX512 8
#define TILE_RN 4 /* activation rows per register tile */

/* The fp16 values at a + j * ab + off of activation rows j < RN as 4 float lanes (0 for j >= RN): one
 * vcvtph2ps, exact as h2f is. */
FS_VD_INLINE FS_AVX2_FN __m128 h2f_rows4(const uint8_t *a, size_t ab, size_t off, const int RN) {
    uint16_t h[4] = {0, 0, 0, 0};
    for (int j = 0; j < RN; j++) h[j] = rd_u16(a + (size_t)j * ab + off);
    return _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)h));
}

/* out[j * os + i] = dot(weight row i, activation row j), i < RM, j < RN, for the 32-element block
 * types. RM and RN are compile-time constants at every call site, so the tile lives in registers. */
FS_VD_INLINE FS_AVX2_FN void tile32(int type, const uint8_t *w, size_t rb, const uint8_t *a, size_t ab, int64_t nb,
                                    float *out, int64_t os, const int RM, const int RN) {
    const int q81 = type == FS_Q4_1 || type == FS_Q5_1; /* activations in Q8_1 (d, s, qs) */
    const int xbs = block32_bytes(type), ybs = q81 ? B_Q8_1 : B_Q8_0, yq = q81 ? 4 : 2;
    __m256 acc[TILE_RM_AVX2][4];
    __m128 summs[TILE_RM_AVX2]; /* lane j: the scalar sum of pair (i, j), added lane-wise in the same order */
    for (int i = 0; i < RM; i++) {
        summs[i] = _mm_setzero_ps();
        for (int j = 0; j < RN; j++) acc[i][j] = _mm256_setzero_ps();
    }
    for (int64_t ib = 0; ib < nb; ib++) {
        __m256i qy[4];
        __m256 dy[4]; /* each activation block's scale in all 8 lanes: one vmulps per pair gives dx * dy */
        for (int j = 0; j < RN; j++) {
            const uint8_t *y = a + (size_t)j * ab + (size_t)ib * ybs;
            qy[j] = _mm256_loadu_si256((const __m256i *)(y + yq));
            dy[j] = _mm256_set1_ps(h2f(y));
        }
        const __m128 sy = q81 ? h2f_rows4(a, ab, (size_t)ib * ybs + 2, RN) : _mm_setzero_ps();
        for (int i = 0; i < RM; i++) {
            const uint8_t *x = w + (size_t)i * rb + (size_t)ib * xbs;
            _mm_prefetch((const char *)(x + TILE_PREFETCH_ROWS * rb), _MM_HINT_T0);
            const __m256i qx = unpack_block32(type, x);
            const __m128 dm = block32_dm(type, x);
            const __m256 dx = _mm256_broadcastss_ps(dm);
            if (q81) {
                summs[i] = _mm_add_ps(summs[i], _mm_mul_ps(_mm_permute_ps(dm, 0x55), sy));
                for (int j = 0; j < RN; j++)
                    acc[i][j] = _mm256_fmadd_ps(_mm256_mul_ps(dx, dy[j]), us8_quads(qx, qy[j]), acc[i][j]);
            } else {
                const __m256i ax = _mm256_sign_epi8(qx, qx);
                for (int j = 0; j < RN; j++) {
                    const __m256 q = us8_quads(ax, _mm256_sign_epi8(qy[j], qx));
                    acc[i][j] = _mm256_fmadd_ps(_mm256_mul_ps(dx, dy[j]), q, acc[i][j]);
                }
            }
        }
    }
    for (int i = 0; i < RM; i++) {
        float sm[4];
        _mm_storeu_ps(sm, summs[i]);
        for (int j = 0; j < RN; j++) out[(size_t)j * os + i] = q81 ? hsum_f32x8(acc[i][j]) + sm[j] : hsum_f32x8(acc[i][j]);
    }
}

/* A register tile function (tile32 or tile32_avx512). */
typedef void (*tile32_fn)(int type, const uint8_t *w, size_t rb, const uint8_t *a, size_t ab, int64_t nb, float *out,
                          int64_t os, const int RM, const int RN);

/* The tiles of a whole product through `tile` with RM weight rows per tile (constants at each call, so
 * the tile is inlined with its RM and RN). */
FS_VD_INLINE FS_AVX2_FN void tile32_all(int type, const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a, size_t ab,
                                        int64_t n_act, int64_t n, float *out, int64_t os, tile32_fn tile32,
                                        const int RM) {
    const int64_t nb = n / QK;
    for (int64_t j = 0; j < n_act; j += TILE_RN) {
        const int64_t rn = n_act - j < TILE_RN ? n_act - j : TILE_RN;
        const uint8_t *aj = a + (size_t)j * ab;
        float *oj = out + j * os;
        int64_t i = 0;
        for (; i + RM <= n_rows; i += RM) {
            const uint8_t *wi = w + (size_t)i * rb;
            if (rn == 4) tile32(type, wi, rb, aj, ab, nb, oj + i, os, RM, 4);
            else if (rn == 3) tile32(type, wi, rb, aj, ab, nb, oj + i, os, RM, 3);
            else if (rn == 2) tile32(type, wi, rb, aj, ab, nb, oj + i, os, RM, 2);
            else tile32(type, wi, rb, aj, ab, nb, oj + i, os, RM, 1);
        }
        for (; i < n_rows; i++) {
            const uint8_t *wi = w + (size_t)i * rb;
            if (rn == 4) tile32(type, wi, rb, aj, ab, nb, oj + i, os, 1, 4);
            else if (rn == 3) tile32(type, wi, rb, aj, ab, nb, oj + i, os, 1, 3);
            else if (rn == 2) tile32(type, wi, rb, aj, ab, nb, oj + i, os, 1, 2);
            else tile32(type, wi, rb, aj, ab, nb, oj + i, os, 1, 1);
        }
    }
}

/* One function per type and variant (attrs, tile) so that `type` is a constant inside each (the
 * switch folds away). */
#define FS_TILE32_FN(name, TYPE, attrs, tile, RM)                                                          \
    attrs void name(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a, size_t ab,             \
                    int64_t n_act, int64_t n, float *out, int64_t os) {                                    \
        tile32_all(TYPE, w, rb, n_rows, a, ab, n_act, n, out, os, tile, RM);                               \
    }
FS_TILE32_FN(fs_tiles_q4_0_avx2, FS_Q4_0, FS_AVX2_FN, tile32, TILE_RM_AVX2)
FS_TILE32_FN(fs_tiles_q4_1_avx2, FS_Q4_1, FS_AVX2_FN, tile32, TILE_RM_AVX2)
FS_TILE32_FN(fs_tiles_q5_0_avx2, FS_Q5_0, FS_AVX2_FN, tile32, TILE_RM_AVX2)
FS_TILE32_FN(fs_tiles_q5_1_avx2, FS_Q5_1, FS_AVX2_FN, tile32, TILE_RM_AVX2)
FS_TILE32_FN(fs_tiles_q8_0_avx2, FS_Q8_0, FS_AVX2_FN, tile32, TILE_RM_AVX2)

#if FS_HAVE_AVX512_CODE
/* tile32 with AVX-512 and VNNI, its bits: two activation rows share one 512-bit accumulator per weight
 * row (their 8 float lanes side by side; the FMAs are lane-wise, so each pair sees tile32's operations),
 * and the byte products are one dpbusd (the exact int32 sums of maddubs + madd, which never saturate
 * here: |x| <= 128 and |y| <= 127 pairwise stay below 2^15). For the signed weight types the weight is
 * taken unsigned, x + c (unpack_block32_u), and each int32 lane starts from -c * (its 4 activation bytes'
 * sum), itself one dpbusd per activation block shared by the tile's rows: sum((x + c) y) - c sum(y) =
 * sum(x y) exactly (|sums| < 2^17), so the lanes hold tile32's integers. */
/* A block's weight values (unpack_block32, or unpack_block32_u for the signed types) in both 256-bit
 * halves; the 4-bit types unpacked in place (nibbles_32's steps on a 4-fold broadcast). */
FS_VD_INLINE FS_AVX512_FN __m512i unpack_block32_x2(int type, const uint8_t *x) {
    if (type == FS_Q4_0 || type == FS_Q4_1) {
        const __m512i t = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(x + (type == FS_Q4_0 ? 2 : 4))));
        return _mm512_and_si512(_mm512_srlv_epi64(t, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0)), _mm512_set1_epi8(0x0F));
    }
    return _mm512_broadcast_i64x4(type == FS_Q5_1 ? unpack_block32(type, x) : unpack_block32_u(type, x));
}

FS_VD_INLINE FS_AVX512_FN void tile32_avx512(int type, const uint8_t *w, size_t rb, const uint8_t *a, size_t ab,
                                             int64_t nb, float *out, int64_t os, const int RM, const int RN) {
    const int q81 = type == FS_Q4_1 || type == FS_Q5_1;
    const int xbs = block32_bytes(type), ybs = q81 ? B_Q8_1 : B_Q8_0, yq = q81 ? 4 : 2;
    const int RP = (RN + 1) / 2; /* activation pairs (2p, 2p + 1); an odd last row is paired with itself */
    __m512 acc[TILE_RM_AVX512][2];
    __m128 summs[TILE_RM_AVX512]; /* lane j: the scalar sum of pair (i, j), as in tile32 */
    for (int i = 0; i < RM; i++) {
        for (int p = 0; p < RP; p++) acc[i][p] = _mm512_setzero_ps();
        summs[i] = _mm_setzero_ps();
    }
    for (int64_t ib = 0; ib < nb; ib++) {
        __m512i qy[2];
        __m512 dy[2];
        for (int p = 0; p < RP; p++) {
            const int j0 = 2 * p, j1 = 2 * p + 1 < RN ? 2 * p + 1 : 2 * p;
            const uint8_t *y0 = a + (size_t)j0 * ab + (size_t)ib * ybs, *y1 = a + (size_t)j1 * ab + (size_t)ib * ybs;
            qy[p] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(y0 + yq))),
                                       _mm256_loadu_si256((const __m256i *)(y1 + yq)), 1);
            dy[p] = _mm512_insertf32x8(_mm512_set1_ps(h2f(y0)), _mm256_set1_ps(h2f(y1)), 1);
        }
        const __m128 sy = q81 ? h2f_rows4(a, ab, (size_t)ib * ybs + 2, RN) : _mm_setzero_ps();
        __m512i base[2]; /* signed types: -c * the activation bytes' sums, per int32 lane */
        if (!q81)
            for (int p = 0; p < RP; p++)
                base[p] = _mm512_sub_epi32(_mm512_setzero_si512(),
                                           _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                                               _mm512_set1_epi8((char)block32_offset(type)), qy[p]));
        for (int i = 0; i < RM; i++) {
            const uint8_t *x = w + (size_t)i * rb + (size_t)ib * xbs;
            _mm_prefetch((const char *)(x + TILE_PREFETCH_ROWS * rb), _MM_HINT_T0);
            const __m512i qx = unpack_block32_x2(type, x);
            const __m128 dm = block32_dm(type, x);
            const __m512 dx = _mm512_broadcastss_ps(dm);
            if (q81) {
                summs[i] = _mm_add_ps(summs[i], _mm_mul_ps(_mm_permute_ps(dm, 0x55), sy));
                for (int p = 0; p < RP; p++) {
                    const __m512 q = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), qx, qy[p]));
                    acc[i][p] = _mm512_fmadd_ps(_mm512_mul_ps(dx, dy[p]), q, acc[i][p]);
                }
            } else {
                for (int p = 0; p < RP; p++) {
                    const __m512 q = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(base[p], qx, qy[p]));
                    acc[i][p] = _mm512_fmadd_ps(_mm512_mul_ps(dx, dy[p]), q, acc[i][p]);
                }
            }
        }
    }
    for (int i = 0; i < RM; i++) {
        float sm[4];
        _mm_storeu_ps(sm, summs[i]);
        for (int j = 0; j < RN; j++) {
            const __m512 v = acc[i][j / 2];
            const float r = hsum_f32x8(j % 2 == 0 ? _mm512_castps512_ps256(v) : _mm512_extractf32x8_ps(v, 1));
            out[(size_t)j * os + i] = q81 ? r + sm[j] : r;
        }
    }
}

FS_TILE32_FN(fs_tiles_q4_0_avx512, FS_Q4_0, FS_AVX512_FN, tile32_avx512, TILE_RM_AVX512)
FS_TILE32_FN(fs_tiles_q4_1_avx512, FS_Q4_1, FS_AVX512_FN, tile32_avx512, TILE_RM_AVX512)
FS_TILE32_FN(fs_tiles_q5_0_avx512, FS_Q5_0, FS_AVX512_FN, tile32_avx512, TILE_RM_AVX512)
FS_TILE32_FN(fs_tiles_q5_1_avx512, FS_Q5_1, FS_AVX512_FN, tile32_avx512, TILE_RM_AVX512)
FS_TILE32_FN(fs_tiles_q8_0_avx512, FS_Q8_0, FS_AVX512_FN, tile32_avx512, TILE_RM_AVX512)

/* q4_0_gemm_tiles with VNNI: side = -dpbusd(0, 8, y) = -8 (the 4-byte sums of y), lanes = dpbusd(side, q, y):
 * the same int32 lanes' sums, one instruction per pair instead of three. */
static inline FS_AVX512_FN __m256i q4_0_act_vnni(__m256i qy) {
    return _mm256_sub_epi32(_mm256_setzero_si256(),
                            _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(8), qy));
}
static inline FS_AVX512_FN __m256i q4_0_lanes_vnni(__m256i q, __m256i qy, __m256i side) {
    return _mm256_dpbusd_epi32(side, q, qy);
}

FS_AVX512_FN void fs_gemm_tiles_q4_0_avx512(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a, size_t ab,
                                            int64_t n_act, int64_t n, float *out, int64_t os) {
    q4_0_gemm_tiles(w, rb, n_rows, a, ab, n_act, n, out, os, q4_0_act_vnni, q4_0_lanes_vnni);
}

/* dot_q8_0_avx2's operations (ggml_vec_dot_q8_0_q8_0, AVX2) for four weight rows at a time, for decode:
 * rows r and r + 1 share one 512-bit accumulator (their 8 float lanes side by side, lane-wise FMAs in
 * block order, as in dot_q8_0_avx2), rows r + 2 and r + 3 another, and the activation block, its scale
 * and the -128 * (its 4-byte sums) that the unsigned weights x + 128 need (tile32_avx512's identity) are
 * loaded once for the four. Each row's d = dx * dy is the same float product, here four in one vector.
 * The four rows are four streams through memory at once, where dot_q8_0_avx2 reads one. Rows past the
 * last multiple of four go through dot_q8_0_avx2. Same bits as fs_rows_q8_0_avx2. */
/* Each row's stream is prefetched this many bytes ahead (prefetches never fault, past the end included):
 * 1B Q8_0 decode, 2 threads, Sapphire Rapids: 256 B 17.0 t/s, 512 B 17.8, 1024 B 16.8, 2048 B 15.7, none 14.5. */
#define FS_Q8_0_PF 512
FS_AVX512_FN void fs_rows_q8_0_avx512(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *act, int64_t n,
                                      float *out) {
    const int64_t nb = n / QK;
    const __m512i c80 = _mm512_set1_epi8((char)0x80);
    const __m512i lo2 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m512i hi2 = _mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    int64_t r = 0;
    for (; r + 4 <= n_rows; r += 4) {
        const uint8_t *x0 = w + (size_t)r * rb, *x1 = x0 + rb, *x2 = x1 + rb, *x3 = x2 + rb, *y = act;
        __m512 acc01 = _mm512_setzero_ps(), acc23 = _mm512_setzero_ps();
        for (int64_t ib = 0; ib < nb; ib++, x0 += B_Q8_0, x1 += B_Q8_0, x2 += B_Q8_0, x3 += B_Q8_0, y += B_Q8_0) {
            FS_ROW_PREFETCH(x0, B_Q8_0, FS_Q8_0_PF);
            FS_ROW_PREFETCH(x1, B_Q8_0, FS_Q8_0_PF);
            FS_ROW_PREFETCH(x2, B_Q8_0, FS_Q8_0_PF);
            FS_ROW_PREFETCH(x3, B_Q8_0, FS_Q8_0_PF);
            const __m512i qy = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(y + 2)));
            const __m512i base = _mm512_sub_epi32(_mm512_setzero_si512(),
                                                  _mm512_dpbusd_epi32(_mm512_setzero_si512(), c80, qy));
            const __m512i q01 = _mm512_xor_si512(
                _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(x0 + 2))),
                                   _mm256_loadu_si256((const __m256i *)(x1 + 2)), 1), c80);
            const __m512i q23 = _mm512_xor_si512(
                _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(x2 + 2))),
                                   _mm256_loadu_si256((const __m256i *)(x3 + 2)), 1), c80);
            const __m512 d = _mm512_castps128_ps512(_mm_mul_ps(h2f_x4(x0, x1, x2, x3), _mm_set1_ps(h2f(y))));
            acc01 = _mm512_fmadd_ps(_mm512_permutexvar_ps(lo2, d), _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(base, q01, qy)),
                                    acc01);
            acc23 = _mm512_fmadd_ps(_mm512_permutexvar_ps(hi2, d), _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(base, q23, qy)),
                                    acc23);
        }
        out[r] = hsum_f32x8(_mm512_castps512_ps256(acc01));
        out[r + 1] = hsum_f32x8(_mm512_extractf32x8_ps(acc01, 1));
        out[r + 2] = hsum_f32x8(_mm512_castps512_ps256(acc23));
        out[r + 3] = hsum_f32x8(_mm512_extractf32x8_ps(acc23, 1));
    }
    for (; r < n_rows; r++) out[r] = dot_q8_0_avx2(w + (size_t)r * rb, act, n);
}
#endif /* FS_HAVE_AVX512_CODE */

#endif /* FS_HAVE_AVX2_CODE */

/* ---- arm64 NEON + dot-product products: ggml's __ARM_NEON code ------------------------------------
 * ggml/src/ggml-cpu/arch/arm/quants.c, ggml_vec_dot_{q4_0,q5_0,q8_0}_q8_0 and {q4_1,q5_1}_q8_1 (the
 * __ARM_NEON branch, nrc == 1; read at ggml-org/llama.cpp 0549d660). Per pair of blocks (2b, 2b + 1):
 * each block's 32 products are summed by SDOT into 4 exact int32 lanes (neon_block_lanes), converted
 * to float and accumulated lane-wise into its own accumulator, sumv0 for the even block, sumv1 for the
 * odd one: sumv = fma(float(lanes), fp16(x.d) * fp16(y.d), sumv) (see neon_mla_n for fused). After the
 * pairs: sumf = vaddvq(sumv0) + vaddvq(sumv1) (vaddvq_f32: (l0 + l1) + (l2 + l3)), then a last odd
 * block the *_generic way. Q4_1 / Q5_1 add the min terms in scalar float (their own order each, as
 * ggml). So the float operations differ from the portable code's (one running sum): the results agree
 * to within float summation error (tests/arm64/neon_check.c states the bound), not bit for bit.
 * Not measured here: speed on real arm64 hardware (this machine only runs them under qemu-user). */
#if FS_HAVE_NEON_CODE

/* The signed weight values of one Q4_0 block (nibble - 8) as two 16-byte halves. */
static inline FS_NEON_FN void neon_q4_0_unpack(const uint8_t *x, int8x16_t *lo, int8x16_t *hi) {
    const uint8x16_t v = vld1q_u8(x + 2);
    *lo = vsubq_s8(neon_lo_nibbles(v), vdupq_n_s8(8));
    *hi = vsubq_s8(neon_hi_nibbles(v), vdupq_n_s8(8));
}

static inline FS_NEON_FN int32x4_t neon_q4_0_lanes(const uint8_t *x, const uint8_t *y) {
    int8x16_t lo, hi;
    neon_q4_0_unpack(x, &lo, &hi);
    return neon_block_lanes(lo, hi, y + 2);
}

/* Q5_0: (nibble | fifth bit << 4) - 16. */
static inline FS_NEON_FN int32x4_t neon_q5_0_lanes(const uint8_t *x, const uint8_t *y) {
    uint8x16_t hl, hh;
    neon_fifth_bits(x + 2, &hl, &hh);
    const uint8x16_t v = vld1q_u8(x + 6);
    const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vandq_u8(v, vdupq_n_u8(0x0F)), hl)), vdupq_n_s8(16));
    const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(v, 4), hh)), vdupq_n_s8(16));
    return neon_block_lanes(lo, hi, y + 2);
}

static inline FS_NEON_FN int32x4_t neon_q8_0_lanes(const uint8_t *x, const uint8_t *y) {
    return neon_block_lanes(vld1q_s8((const int8_t *)x + 2), vld1q_s8((const int8_t *)x + 18), y + 2);
}

/* Q4_1: the unsigned nibbles 0..15 (Q8_1 activations: quants at y + 4). */
static inline FS_NEON_FN int32x4_t neon_q4_1_lanes(const uint8_t *x, const uint8_t *y) {
    const uint8x16_t v = vld1q_u8(x + 4);
    return neon_block_lanes(neon_lo_nibbles(v), neon_hi_nibbles(v), y + 4);
}

/* Q5_1: nibble | fifth bit << 4, 0..31. */
static inline FS_NEON_FN int32x4_t neon_q5_1_lanes(const uint8_t *x, const uint8_t *y) {
    uint8x16_t hl, hh;
    neon_fifth_bits(x + 4, &hl, &hh);
    const uint8x16_t v = vld1q_u8(x + 8);
    const int8x16_t lo = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(v, vdupq_n_u8(0x0F)), hl));
    const int8x16_t hi = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(v, 4), hh));
    return neon_block_lanes(lo, hi, y + 4);
}

/* The exact integer dot of one block: the sum of its 4 lanes. */
#define NEON_SUMI(lanes) vaddvq_s32(lanes)

/* ggml_vec_dot_q4_0_q8_0 / q5_0_q8_0 / q8_0_q8_0 (NEON). The odd last block: Q4_0
 * sumf += sumi * dx * dy ((sumi * dx) * dy); Q5_0 sumf += (dx * dy) * sumi; Q8_0 sumf += sumi * (dx * dy). */
enum { NEON_TAIL_Q4_0, NEON_TAIL_Q5_0, NEON_TAIL_Q8_0 };

FS_VD_INLINE FS_NEON_FN float neon_dot_b32_q8_0(const uint8_t *x, const uint8_t *y, int64_t n, int64_t xbytes,
                                                int tail, int32x4_t (*lanes)(const uint8_t *, const uint8_t *)) {
    const int64_t nb = n / QK;
    float32x4_t sumv0 = vdupq_n_f32(0.0f), sumv1 = vdupq_n_f32(0.0f);
    int64_t ib = 0;
    for (; ib + 1 < nb; ib += 2, x += 2 * xbytes, y += 2 * B_Q8_0) {
        const uint8_t *x1 = x + xbytes, *y1 = y + B_Q8_0;
        sumv0 = neon_mla_n(sumv0, lanes(x, y), neon_h2f(x) * neon_h2f(y));
        sumv1 = neon_mla_n(sumv1, lanes(x1, y1), neon_h2f(x1) * neon_h2f(y1));
    }
    float sumf = vaddvq_f32(sumv0) + vaddvq_f32(sumv1);
    if (ib < nb) {
        const int sumi = NEON_SUMI(lanes(x, y));
        const float dx = neon_h2f(x), dy = neon_h2f(y);
        if (tail == NEON_TAIL_Q4_0) sumf += (float)sumi * dx * dy;
        else if (tail == NEON_TAIL_Q5_0) sumf += (dx * dy) * (float)sumi;
        else sumf += (float)sumi * (dx * dy);
    }
    return sumf;
}

FS_VD_INLINE FS_NEON_FN float dot_q4_0_neon(const uint8_t *x, const uint8_t *y, int64_t n) {
    return neon_dot_b32_q8_0(x, y, n, B_Q4_0, NEON_TAIL_Q4_0, neon_q4_0_lanes);
}

FS_VD_INLINE FS_NEON_FN float dot_q5_0_neon(const uint8_t *x, const uint8_t *y, int64_t n) {
    return neon_dot_b32_q8_0(x, y, n, B_Q5_0, NEON_TAIL_Q5_0, neon_q5_0_lanes);
}

FS_VD_INLINE FS_NEON_FN float dot_q8_0_neon(const uint8_t *x, const uint8_t *y, int64_t n) {
    return neon_dot_b32_q8_0(x, y, n, B_Q8_0, NEON_TAIL_Q8_0, neon_q8_0_lanes);
}

/* ggml_vec_dot_q4_1_q8_1 / q5_1_q8_1 (NEON): the weight's min m times the activation's s = d * sum(qs).
 * Q4_1 keeps one scalar sum, summs += mx0 * sy0 + mx1 * sy1 per pair, and returns
 * (vaddvq(sumv0) + vaddvq(sumv1)) + summs; Q5_1 keeps one per accumulator (summs0 += mx0 * sy0,
 * summs1 += mx1 * sy1) and returns ((vaddvq(sumv0) + vaddvq(sumv1)) + summs0) + summs1. The odd last
 * block: sumf += (dx * dy) * sumi + mx * sy. */
FS_VD_INLINE FS_NEON_FN float neon_dot_b32_q8_1(const uint8_t *x, const uint8_t *y, int64_t n, int64_t xbytes,
                                                int split_summs,
                                                int32x4_t (*lanes)(const uint8_t *, const uint8_t *)) {
    const int64_t nb = n / QK;
    float32x4_t sumv0 = vdupq_n_f32(0.0f), sumv1 = vdupq_n_f32(0.0f);
    float summs0 = 0.0f, summs1 = 0.0f;
    int64_t ib = 0;
    for (; ib + 1 < nb; ib += 2, x += 2 * xbytes, y += 2 * B_Q8_1) {
        const uint8_t *x1 = x + xbytes, *y1 = y + B_Q8_1;
        if (split_summs) {
            summs0 += neon_h2f(x + 2) * neon_h2f(y + 2);
            summs1 += neon_h2f(x1 + 2) * neon_h2f(y1 + 2);
        } else {
            summs0 += neon_h2f(x + 2) * neon_h2f(y + 2) + neon_h2f(x1 + 2) * neon_h2f(y1 + 2);
        }
        sumv0 = neon_mla_n(sumv0, lanes(x, y), neon_h2f(x) * neon_h2f(y));
        sumv1 = neon_mla_n(sumv1, lanes(x1, y1), neon_h2f(x1) * neon_h2f(y1));
    }
    float sumf = vaddvq_f32(sumv0) + vaddvq_f32(sumv1) + summs0;
    if (split_summs) sumf += summs1;
    if (ib < nb) {
        const int sumi = NEON_SUMI(lanes(x, y));
        sumf += (neon_h2f(x) * neon_h2f(y)) * (float)sumi + neon_h2f(x + 2) * neon_h2f(y + 2);
    }
    return sumf;
}

FS_VD_INLINE FS_NEON_FN float dot_q4_1_neon(const uint8_t *x, const uint8_t *y, int64_t n) {
    return neon_dot_b32_q8_1(x, y, n, B_Q4_1, 0, neon_q4_1_lanes);
}

FS_VD_INLINE FS_NEON_FN float dot_q5_1_neon(const uint8_t *x, const uint8_t *y, int64_t n) {
    return neon_dot_b32_q8_1(x, y, n, B_Q5_1, 1, neon_q5_1_lanes);
}

/* The repacked Q4_0 product (fs_vecdot.c: llama.cpp's x86 gemv / gemm), the portable
 * dot_q4_0_gemv_c's operations exactly: the block's exact integer dot by SDOT, then
 * acc = fmaf(sumi, dx * dy, acc) block by block, so the bits equal fs_gemv_q4_0_c's. */
FS_VD_INLINE FS_NEON_FN float dot_q4_0_gemv_neon(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK;
    float acc = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q4_0, y += B_Q8_0)
        acc = fmaf((float)NEON_SUMI(neon_q4_0_lanes(x, y)), neon_h2f(x) * neon_h2f(y), acc);
    return acc;
}

FS_ROWS(fs_rows_q4_0_neon, dot_q4_0_neon, FS_NEON_FN)
FS_ROWS(fs_rows_q4_1_neon, dot_q4_1_neon, FS_NEON_FN)
FS_ROWS(fs_rows_q5_0_neon, dot_q5_0_neon, FS_NEON_FN)
FS_ROWS(fs_rows_q5_1_neon, dot_q5_1_neon, FS_NEON_FN)
FS_ROWS(fs_rows_q8_0_neon, dot_q8_0_neon, FS_NEON_FN)
FS_ROWS(fs_gemv_q4_0_neon, dot_q4_0_gemv_neon, FS_NEON_FN)

#endif /* FS_HAVE_NEON_CODE */
