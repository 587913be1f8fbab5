/* The K-quants Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (256-element super-blocks) and their activation format
 * Q8_K (Fireside's family file; see fs_kernel.h and fs_traits.c). Q4_K .. Q6_K come first, then
 * Q2_K and Q3_K ("the low-bit K-quants" below).
 *
 * Sources (llama.cpp, read for the algorithms; this is an independent implementation):
 *   ggml/src/ggml-common.h            block_q2_K ... block_q6_K, block_q8_K
 *   ggml/src/ggml-quants.c            dequantize_row_q2_K ... q6_K, get_scale_min_k4, quantize_row_q8_K_ref
 *   ggml/src/ggml-cpu/quants.c        ggml_vec_dot_{q2_K,q3_K,q4_K,q5_K,q6_K}_q8_K_generic
 *   ggml/src/ggml-cpu/arch/x86/quants.c  the __AVX2__ branches of the same functions
 *   ggml/src/ggml-cpu/arch/x86/repack.cpp  ggml_gemv_q4_K_8x8_q8_K, ggml_gemm_q4_K_8x8_q8_K,
 *                                     ggml_quantize_mat_q8_K_4x8 (repacked Q4_K)
 *   gguf-py gguf/quants.py            the dequantization reference (bit-identical)
 */
#include "fs_families.h"

#include <stdlib.h>

#define B_Q2_K 84  /* scales[16] | qs[64] | f16 d | f16 dmin */
#define B_Q3_K 110 /* hmask[32] | qs[64] | scales[12] | f16 d */

/* The 12 packed bytes of 6-bit scales and mins of Q4_K / Q5_K (ggml-quants.c get_scale_min_k4),
 * unpacked with the 32-bit utmp / kmask shuffle of ggml's vec_dot code (same 16 bytes):
 * sc[j] = s[j] & 63, mn[j] = s[j + 4] & 63, sc[j + 4] = (s[j + 8] & 15) | (s[j] >> 6) << 4,
 * mn[j + 4] = (s[j + 8] >> 4) | (s[j + 4] >> 6) << 4 for j < 4. */
static inline void scale_min_k4(const uint8_t *s, uint8_t sc[8], uint8_t mn[8]) {
    const uint32_t kmask1 = 0x3f3f3f3fu, kmask2 = 0x0f0f0f0fu, kmask3 = 0x03030303u;
    uint32_t u[3], o[4];
    memcpy(u, s, 12);
    o[0] = u[0] & kmask1;
    o[1] = (u[2] & kmask2) | (((u[0] >> 6) & kmask3) << 4);
    o[2] = u[1] & kmask1;
    o[3] = ((u[2] >> 4) & kmask2) | (((u[1] >> 6) & kmask3) << 4);
    memcpy(sc, o, 8);
    memcpy(mn, o + 2, 8);
}

/* ---- dequantization (gguf.quants.dequantize) -------------------------------------------------- */

/* Q4_K, 144 bytes: f16 d | f16 dmin | 12 bytes scales | 128 bytes qs. Eight sub-blocks of 32;
 * sub-block 2c takes the low nibbles of qs[32c .. 32c+32), sub-block 2c+1 the high nibbles.
 * Reference: ds = d * (float)sc; dm = dmin * (float)m (both rounded to float32 first);
 * y = ds * (float)q - dm. */
FS_DISPATCH void fs_dequant_q4_k(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *b = src + ib * 144;
        const float d = dq_f16(b);
        const float dmin = dq_f16(b + 2);
        uint8_t sc[8], mn[8];
        scale_min_k4(b + 4, sc, mn);
        const uint8_t *qs = b + 16;
        float *y = dst + ib * QK_K;
        for (int c = 0; c < 4; c++) {
            const float d1 = d * (float)sc[2 * c], m1 = dmin * (float)mn[2 * c];
            const float d2 = d * (float)sc[2 * c + 1], m2 = dmin * (float)mn[2 * c + 1];
            const uint8_t *q = qs + 32 * c;
            float *yc = y + 64 * c;
            for (int l = 0; l < 32; l++) {
                yc[l] = d1 * (float)(q[l] & 0x0F) - m1;
                yc[l + 32] = d2 * (float)(q[l] >> 4) - m2;
            }
        }
    }
}

/* Q5_K, 176 bytes: f16 d | f16 dmin | 12 bytes scales | 32 bytes qh | 128 bytes qs. Low nibbles
 * as Q4_K; the fifth bit of element l of sub-block s is bit s of qh[l].
 * Reference: y = (d * (float)sc) * (float)q - (dmin * (float)m), as Q4_K. */
FS_DISPATCH void fs_dequant_q5_k(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *b = src + ib * 176;
        const float d = dq_f16(b);
        const float dmin = dq_f16(b + 2);
        uint8_t sc[8], mn[8];
        scale_min_k4(b + 4, sc, mn);
        const uint8_t *qh = b + 16;
        const uint8_t *qs = b + 48;
        float *y = dst + ib * QK_K;
        for (int c = 0; c < 4; c++) {
            const float d1 = d * (float)sc[2 * c], m1 = dmin * (float)mn[2 * c];
            const float d2 = d * (float)sc[2 * c + 1], m2 = dmin * (float)mn[2 * c + 1];
            const uint8_t *q = qs + 32 * c;
            const int s1 = 2 * c, s2 = 2 * c + 1;
            float *yc = y + 64 * c;
            for (int l = 0; l < 32; l++) {
                yc[l] = d1 * (float)((q[l] & 0x0F) | (((qh[l] >> s1) & 1) << 4)) - m1;
                yc[l + 32] = d2 * (float)((q[l] >> 4) | (((qh[l] >> s2) & 1) << 4)) - m2;
            }
        }
    }
}

/* Q6_K, 210 bytes: 128 bytes ql | 64 bytes qh | 16 x int8 scales | f16 d. Two halves of 128
 * elements; in half h, element 32k + l (k = 0..3, l = 0..31) has low four bits from
 * ql[64h + l + 32(k & 1)] (low nibble for k < 2, high nibble for k >= 2) and high two bits from
 * (qh[32h + l] >> 2k) & 3; q = that 6-bit value - 32; scale index = element / 16.
 * Reference: ds = d * (float)scale (rounded to float32 first); y = ds * (float)q. */
FS_DISPATCH void fs_dequant_q6_k(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *b = src + ib * 210;
        const float d = dq_f16(b + 208);
        float ds[16];
        for (int i = 0; i < 16; i++) ds[i] = d * (float)as_i8(b[192 + i]);
        float *y = dst + ib * QK_K;
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = b + 64 * h;
            const uint8_t *qh = b + 128 + 32 * h;
            const float *dh = ds + 8 * h;
            float *yh = y + 128 * h;
            for (int is = 0; is < 2; is++) {
                for (int l = 16 * is; l < 16 * is + 16; l++) {
                    const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    yh[l] = dh[is] * (float)q1;
                    yh[l + 32] = dh[is + 2] * (float)q2;
                    yh[l + 64] = dh[is + 4] * (float)q3;
                    yh[l + 96] = dh[is + 6] * (float)q4;
                }
            }
        }
    }
}

/* ---- activation quantization (quantize_row_q8_K_ref) ------------------------------------------ */

/* quantize_row_q8_K_ref: max = the element of largest |x| (the first one on ties);
 * iscale = -127 / max; qs = min(127, nearest_int(iscale * x)); d = 1 / iscale (float32, not f16);
 * bsums[j] = sum of qs[16j .. 16j+16). An all-zero block gets d = 0 and qs = 0; ggml leaves its
 * bsums unwritten there, this writes zeros (the dot products multiply them by d = 0). */
FS_DISPATCH void fs_quant_act_q8_k(const float *x, uint8_t *y, int64_t nb) {
    for (int64_t ib = 0; ib < nb; ib++, x += QK_K, y += B_Q8_K) {
        float vmax = 0.0f, amax = 0.0f;
        for (int j = 0; j < QK_K; j++) {
            const float ax = fabsf(x[j]);
            if (ax > amax) {
                amax = ax;
                vmax = x[j];
            }
        }
        int8_t *qs = (int8_t *)(y + Q8K_QS);
        int16_t bsums[QK_K / 16];
        float d;
        if (amax == 0.0f) {
            d = 0.0f;
            memset(qs, 0, QK_K);
            memset(bsums, 0, sizeof bsums);
        } else {
            const float iscale = -127.f / vmax;
            for (int j = 0; j < QK_K; j++) {
                const int v = nearest_int(iscale * x[j]);
                qs[j] = (int8_t)(uint8_t)(v < 127 ? v : 127);
            }
            for (int j = 0; j < QK_K / 16; j++) {
                int sum = 0;
                for (int ii = 0; ii < 16; ii++) sum += qs[j * 16 + ii];
                bsums[j] = (int16_t)sum;
            }
            d = 1 / iscale;
        }
        memcpy(y, &d, sizeof d);
        memcpy(y + Q8K_BSUMS, bsums, sizeof bsums);
    }
}

/* ---- portable dot products: ggml's *_generic functions ------------------------------------------ */

/* The K-quant generic functions accumulate eight int32 lanes per super-block: lane l receives
 * scale(k) * q8[k] * q[k] for every element k with k % 8 == l; then sums[l] += d * lane[l] in
 * float, and the eight sums are added to sumf (in lane order) only after the last super-block.
 * The lane split matters for the float result, so it is reproduced exactly. As in ggml, the
 * quants are first unpacked to one int8 per element and the lanes are filled by short fixed-length
 * loops, which compilers vectorize. */

/* Lanes of one super-block: aux32[l] = sum over k % 8 == l of scale[k / per_scale] * q8[k] * a[k]
 * (per_scale = 32 for Q4_K / Q5_K, 16 for Q6_K), taken 16 elements at a time (one scale); the
 * integer result is that of ggml's per-element aux16 / aux32 loops. */
FS_VD_INLINE void kq_lanes(const int8_t *a, const int8_t *q8, const int32_t *scale, int per_scale,
                           int32_t aux32[8]) {
    for (int l = 0; l < 8; l++) aux32[l] = 0;
    for (int j = 0; j < QK_K / 16; j++) {
        const int32_t sc = scale[(16 * j) / per_scale];
        const int8_t *qa = a + 16 * j, *qy = q8 + 16 * j;
        for (int l = 0; l < 8; l++) aux32[l] += sc * (qy[l] * qa[l] + qy[l + 8] * qa[l + 8]);
    }
}

/* ggml_vec_dot_q4_K_q8_K_generic. Elements 64c + l (l < 32) are the low nibbles of qs[32c + l]
 * (sub-block 2c), elements 64c + 32 + l the high nibbles (sub-block 2c + 1).
 * d = fp16(x.d) * y.d; dmin = fp16(x.dmin) * y.d; sumf -= dmin * sum_j(bsums[j] * min[j / 2]). */
FS_VD_INLINE float dot_q4_k_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    float sums[8] = {0};
    float sumf = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q4_K, y += B_Q8_K) {
        const float yd = rd_f32(y);
        int16_t bsums[16];
        memcpy(bsums, y + Q8K_BSUMS, sizeof bsums);
        uint8_t sc[8], mn[8];
        scale_min_k4(x + 4, sc, mn);
        const uint8_t *q4 = x + 16;
        int8_t a[QK_K];
        for (int c = 0; c < 4; c++) {
            for (int l = 0; l < 32; l++) a[64 * c + l] = (int8_t)(q4[32 * c + l] & 0x0F);
            for (int l = 0; l < 32; l++) a[64 * c + 32 + l] = (int8_t)(q4[32 * c + l] >> 4);
        }
        int32_t scale[8], aux32[8];
        for (int j = 0; j < 8; j++) scale[j] = sc[j];
        kq_lanes(a, (const int8_t *)(y + Q8K_QS), scale, 32, aux32);
        int sumi = 0;
        for (int j = 0; j < 16; j++) sumi += bsums[j] * mn[j / 2];
        const float d = rd_f16(x) * yd;
        for (int l = 0; l < 8; l++) sums[l] += d * (float)aux32[l];
        const float dmin = rd_f16(x + 2) * yd;
        sumf -= dmin * (float)sumi;
    }
    for (int l = 0; l < 8; l++) sumf += sums[l];
    return sumf;
}

/* ggml_vec_dot_q5_K_q8_K_generic: as Q4_K with the fifth bit of element 64c + l from bit 2c of
 * qh[l] and of element 64c + 32 + l from bit 2c + 1. */
FS_VD_INLINE float dot_q5_k_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    float sums[8] = {0};
    float sumf = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q5_K, y += B_Q8_K) {
        const float yd = rd_f32(y);
        int16_t bsums[16];
        memcpy(bsums, y + Q8K_BSUMS, sizeof bsums);
        uint8_t sc[8], mn[8];
        scale_min_k4(x + 4, sc, mn);
        const uint8_t *qh = x + 16;
        const uint8_t *q5 = x + 48;
        int8_t a[QK_K];
        for (int c = 0; c < 4; c++) {
            for (int l = 0; l < 32; l++)
                a[64 * c + l] = (int8_t)((q5[32 * c + l] & 0x0F) | (((qh[l] >> (2 * c)) & 1) << 4));
            for (int l = 0; l < 32; l++)
                a[64 * c + 32 + l] = (int8_t)((q5[32 * c + l] >> 4) | (((qh[l] >> (2 * c + 1)) & 1) << 4));
        }
        int32_t scale[8], aux32[8];
        for (int j = 0; j < 8; j++) scale[j] = sc[j];
        kq_lanes(a, (const int8_t *)(y + Q8K_QS), scale, 32, aux32);
        int sumi = 0;
        for (int j = 0; j < 16; j++) sumi += bsums[j] * mn[j / 2];
        const float d = rd_f16(x) * yd;
        for (int l = 0; l < 8; l++) sums[l] += d * (float)aux32[l];
        const float dmin = rd_f16(x + 2) * yd;
        sumf -= dmin * (float)sumi;
    }
    for (int l = 0; l < 8; l++) sumf += sums[l];
    return sumf;
}

/* ggml_vec_dot_q6_K_q8_K_generic. In half h (128 elements), element 32k + l (k = 0..3) has low
 * four bits from ql[64h + l + 32(k & 1)] (low nibble for k < 2, high for k >= 2) and high two bits
 * (qh[32h + l] >> 2k) & 3, minus 32; the int8 scale of element e is scales[e / 16].
 * d = fp16(x.d) * y.d. */
FS_VD_INLINE float dot_q6_k_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    float sums[8] = {0};
    float sumf = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q6_K, y += B_Q8_K) {
        const float yd = rd_f32(y);
        int8_t a[QK_K];
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x + 64 * h;
            const uint8_t *qh = x + 128 + 32 * h;
            int8_t *ah = a + 128 * h;
            for (int l = 0; l < 32; l++) {
                ah[l + 0] = (int8_t)(((ql[l + 0] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32);
                ah[l + 32] = (int8_t)(((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32);
                ah[l + 64] = (int8_t)(((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                ah[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
        }
        int32_t scale[16], aux32[8];
        for (int j = 0; j < 16; j++) scale[j] = ((const int8_t *)x)[192 + j];
        kq_lanes(a, (const int8_t *)(y + Q8K_QS), scale, 16, aux32);
        const float d = rd_f16(x + 208) * yd;
        for (int l = 0; l < 8; l++) sums[l] += d * (float)aux32[l];
    }
    for (int l = 0; l < 8; l++) sumf += sums[l];
    return sumf;
}

/* ---- portable: llama.cpp's x86 repacked matrix products (ggml-cpu/repack.cpp) ------------- */
/* On x86 with AVX2, llama.cpp keeps Q4_0 and Q4_K weight tensors whose row count ne[1] is a
 * multiple of 8 in an interleaved layout (repack.cpp, ggml_repack_get_optimal_repack_type:
 * q4_0_8x8_q8_0, q4_K_8x8_q8_K) and multiplies them in tensor_traits::forward_mul_mat, not with
 * ggml_vec_dot_*: activation rows 0 .. ne11 - ne11 % 4 are quantized 4 at a time
 * (ggml_quantize_mat_q8_K_4x8 / ggml_quantize_mat_q8_0_4x8) and multiplied in groups of 4 by
 * ggml_gemm_*_8x8; the last ne11 % 4 rows are quantized by the type's from_float
 * (quantize_row_q8_K = quantize_row_q8_K_ref; x86 quantize_row_q8_0) and multiplied one at a time
 * by ggml_gemv_*_8x8. The interleaved layout only moves bytes; what matters is the float arithmetic
 * per output element, which the x86 code (arch/x86/repack.cpp) does as follows (I, M: exact int32
 * sums; fma: one rounding; d products in float):
 *
 *   Q4_K, gemv (ggml_gemv_q4_K_8x8_q8_K, AVX2): per super-block
 *     I = sum_j sc[j] * sum_{k in sub-block j} q4[k] * q8[k]          (j = 0..7, 32 elements each)
 *     M = sum_j mn[j] * (bsums[2j] + bsums[2j+1])
 *     acc  = fma((float)I, fp16(x.d)    * y.d, acc)
 *     accm = fma((float)M, fp16(x.dmin) * y.d, accm)
 *   out = acc - accm                       (no horizontal sum: one output per SIMD lane)
 *
 *   Q4_K, gemm (ggml_gemm_q4_K_8x8_q8_K, AVX2 and AVX512 paths alike): the same, but the two FMAs
 *   are taken once per 64 elements (c = 0..3 within each super-block, in order):
 *     I_c = sc[2c] * dot(sub-block 2c) + sc[2c+1] * dot(sub-block 2c+1)
 *     M_c = mn[2c] * (bsums[4c] + bsums[4c+1]) + mn[2c+1] * (bsums[4c+2] + bsums[4c+3])
 *     acc = fma((float)I_c, fp16(x.d) * y.d, acc); accm = fma((float)M_c, fp16(x.dmin) * y.d, accm)
 *   so gemm and gemv round differently (4 FMAs per super-block instead of 1).
 *
 *   Q4_0 (gemv_q4_b32_8x8_q8_0_lut_avx and gemm_q4_b32_8x8_q8_0_lut_avx, AVX2 / AVX512 alike):
 *   per block of 32, acc = fma((float)I, fp16(x.d) * fp16(y.d), acc); out = acc. gemm == gemv.
 *
 * Activations: ggml_quantize_mat_q8_0_4x8 (AVX2) computes the same bytes as x86
 * quantize_row_q8_0 (quant_q8_0 above). ggml_quantize_mat_q8_K_4x8 (AVX2) equals
 * quantize_row_q8_K_ref except for the sign of the scale: it takes iscale = -127 / amax when +amax
 * occurs in the super-block and +127 / amax otherwise, while the reference takes the sign of the
 * first element of largest magnitude. They differ only when both +amax and -amax occur with -amax
 * first, and then d, every qs and every bsum are exactly negated, which leaves every product in
 * the formulas above, and so every output, unchanged (up to the sign of an exact zero). So the
 * activation bytes of fs_quantize_act serve gemm and gemv alike.
 *
 * C's fmaf is a correctly rounded fused multiply-add, as _mm256_fmadd_ps is, so these portable
 * versions give the same bits as the AVX2 ones. */

/* q4 * q8 summed over each of the 8 sub-blocks (32 elements) of one Q4_K super-block. */
FS_VD_INLINE void q4_k_subblock_dots(const uint8_t *x, const int8_t *q8, int32_t dots[8]) {
    const uint8_t *q4 = x + 16;
    for (int c = 0; c < 4; c++) {
        int8_t lo[QK], hi[QK];
        for (int l = 0; l < QK; l++) {
            lo[l] = (int8_t)(q4[32 * c + l] & 0x0F);
            hi[l] = (int8_t)(q4[32 * c + l] >> 4);
        }
        dots[2 * c] = block_dot_i8(lo, q8 + 64 * c);
        dots[2 * c + 1] = block_dot_i8(hi, q8 + 64 * c + 32);
    }
}

/* One super-block of the repacked Q4_K product, given its 8 exact sub-block dots (whichever code
 * computed them): acc and accm as described above; per_chunk = 0: gemv, 1: gemm. */
FS_VD_INLINE void q4_k_repack_block(const uint8_t *x, const uint8_t *y, const int32_t dots[8], int per_chunk,
                                    float *acc, float *accm) {
    const float yd = rd_f32(y);
    const float d = rd_f16(x) * yd;        /* _mm256_mul_ps(col_scale_f32, row_scale_f32) */
    const float dmin = rd_f16(x + 2) * yd; /* _mm256_mul_ps(col_dmin_f32, row_scale_f32) */
    uint8_t sc[8], mn[8];
    scale_min_k4(x + 4, sc, mn);
    int16_t bsums[16];
    memcpy(bsums, y + Q8K_BSUMS, sizeof bsums);
    int32_t isum[4], msum[4];
    for (int c = 0; c < 4; c++) {
        isum[c] = sc[2 * c] * dots[2 * c] + sc[2 * c + 1] * dots[2 * c + 1];
        msum[c] = mn[2 * c] * (bsums[4 * c] + bsums[4 * c + 1]) + mn[2 * c + 1] * (bsums[4 * c + 2] + bsums[4 * c + 3]);
    }
    if (per_chunk) {
        for (int c = 0; c < 4; c++) {
            *acc = fmaf((float)isum[c], d, *acc);
            *accm = fmaf((float)msum[c], dmin, *accm);
        }
    } else {
        *acc = fmaf((float)(isum[0] + isum[1] + isum[2] + isum[3]), d, *acc);
        *accm = fmaf((float)(msum[0] + msum[1] + msum[2] + msum[3]), dmin, *accm);
    }
}

/* The repacked Q4_K product of one row; per_chunk = 0: gemv, 1: gemm (see above). */
FS_VD_INLINE float dot_q4_k_repack_c(const uint8_t *x, const uint8_t *y, int64_t n, int per_chunk) {
    const int64_t nb = n / QK_K;
    float acc = 0.0f, accm = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q4_K, y += B_Q8_K) {
        int32_t dots[8];
        q4_k_subblock_dots(x, (const int8_t *)(y + Q8K_QS), dots);
        q4_k_repack_block(x, y, dots, per_chunk, &acc, &accm);
    }
    return acc - accm;
}

FS_VD_INLINE float dot_q4_k_gemv_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    return dot_q4_k_repack_c(x, y, n, 0);
}

FS_VD_INLINE float dot_q4_k_gemm_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    return dot_q4_k_repack_c(x, y, n, 1);
}

FS_ROWS(fs_rows_q4_k_c, dot_q4_k_c, )
FS_ROWS(fs_rows_q5_k_c, dot_q5_k_c, )
FS_ROWS(fs_rows_q6_k_c, dot_q6_k_c, )
FS_ROWS(fs_gemv_q4_k_c, dot_q4_k_gemv_c, )
FS_ROWS(fs_gemm_q4_k_c, dot_q4_k_gemm_c, )

/* ---- AVX2 dot products: ggml's __AVX2__ code ----------------------------------------------------- */
#if FS_HAVE_AVX2_CODE

/* The Q8_K activation block y's 8 sub-block (32-element) sums as int16, from its 16 bsums
 * (hadd_epi16(bsums[0..8), bsums[8..16))); shared by every weight row. */
static inline FS_AVX2_FN __m128i q8_k_sub_sums(const uint8_t *y) {
    const __m256i q8sums = _mm256_loadu_si256((const __m256i *)(y + Q8K_BSUMS));
    return _mm_hadd_epi16(_mm256_castsi256_si128(q8sums), _mm256_extracti128_si256(q8sums, 1));
}

/* Mins term of Q4_K / Q5_K: madd(mins as int16, q8_k_sub_sums), i.e. four int32 lanes
 * min[2i] * (b[4i] + b[4i+1]) + min[2i+1] * (b[4i+2] + b[4i+3]). */
static inline FS_AVX2_FN __m128i kq_min_prod(const uint8_t *mn, const uint8_t *yblock) {
    const __m128i q8s = q8_k_sub_sums(yblock);
    const __m128i mins = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)mn));
    return _mm_madd_epi16(mins, q8s);
}

/* ggml_vec_dot_q4_K_q8_K (AVX2). Per super-block: d = y.d * fp16(x.d), dmin = -y.d * fp16(x.dmin);
 * acc_m = fma(dmin, min products, acc_m) (4 lanes); for each 64 elements, the 32 low and 32 high
 * nibbles times y through maddubs, each scaled by its sub-block scale with madd, added into 8 int32
 * lanes; acc = fma(d, lanes, acc). Result hsum(acc) + ((m0 + m2) + (m1 + m3)). */
static inline FS_AVX2_FN float dot_q4_k_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    __m128 acc_m = _mm_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q4_K, y += B_Q8_K) {
        const float yd = rd_f32(y);
        const float d = yd * h2f(x);
        const float dmin = -yd * h2f(x + 2);
        uint8_t sc[8], mn[8];
        scale_min_k4(x + 4, sc, mn);
        acc_m = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(kq_min_prod(mn, y)), acc_m);
        const uint8_t *q4 = x + 16;
        const int8_t *q8 = (const int8_t *)(y + Q8K_QS);
        __m256i sumi = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            const __m256i scale_l = _mm256_set1_epi16(sc[2 * c]);
            const __m256i scale_h = _mm256_set1_epi16(sc[2 * c + 1]);
            const __m256i q4bits = _mm256_loadu_si256((const __m256i *)(q4 + 32 * c));
            const __m256i q4l = _mm256_and_si256(q4bits, m4);
            const __m256i q4h = _mm256_and_si256(_mm256_srli_epi16(q4bits, 4), m4);
            const __m256i q8l = _mm256_loadu_si256((const __m256i *)(q8 + 64 * c));
            const __m256i q8h = _mm256_loadu_si256((const __m256i *)(q8 + 64 * c + 32));
            const __m256i p16l = _mm256_madd_epi16(scale_l, _mm256_maddubs_epi16(q4l, q8l));
            const __m256i p16h = _mm256_madd_epi16(scale_h, _mm256_maddubs_epi16(q4h, q8h));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p16l, p16h));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    acc_m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
    acc_m = _mm_add_ss(acc_m, _mm_movehdup_ps(acc_m));
    return hsum_f32x8(acc) + _mm_cvtss_f32(acc_m);
}

/* ---- AVX2: the repacked products (see "llama.cpp's x86 repacked matrix products" above) ---- */
/* These keep ggml_vec_dot's integer work per row (same maddubs / madd lanes), then reduce the
 * int32 lanes exactly to the block sums that the 8-column repacked kernels convert to float; the
 * float work per row is then a chain of FMAs (one row per SIMD lane in llama.cpp, and in the
 * 4-row loops below; the single-row functions here serve the leftover rows). */


/* Elements 64c .. 64c + 64 of a Q4_K super-block times y, scaled by their sub-block scales, as
 * 8 int32 lanes whose sum is sc[2c] * dot(sub-block 2c) + sc[2c+1] * dot(sub-block 2c+1). */
static inline FS_AVX2_FN __m256i q4_k_chunk_lanes(const uint8_t *q4, const int8_t *q8, const uint8_t *sc, int c) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i q4bits = _mm256_loadu_si256((const __m256i *)(q4 + 32 * c));
    const __m256i q4l = _mm256_and_si256(q4bits, m4);
    const __m256i q4h = _mm256_and_si256(_mm256_srli_epi16(q4bits, 4), m4);
    const __m256i q8l = _mm256_loadu_si256((const __m256i *)(q8 + 64 * c));
    const __m256i q8h = _mm256_loadu_si256((const __m256i *)(q8 + 64 * c + 32));
    const __m256i p16l = _mm256_madd_epi16(_mm256_set1_epi16(sc[2 * c]), _mm256_maddubs_epi16(q4l, q8l));
    const __m256i p16h = _mm256_madd_epi16(_mm256_set1_epi16(sc[2 * c + 1]), _mm256_maddubs_epi16(q4h, q8h));
    return _mm256_add_epi32(p16l, p16h);
}

/* [fp16(x.d) * y.d, fp16(x.dmin) * y.d, 0, 0]: x.d and x.dmin are the first 4 bytes of the block. */
static inline FS_AVX2_FN __m128 q4_k_d_dmin(const uint8_t *x, float yd) {
    int32_t dd;
    memcpy(&dd, x, sizeof dd);
    return _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(dd)), _mm_set1_ps(yd));
}

/* ggml_gemm_q4_K_8x8_q8_K (x86): the same FMAs once per 64 elements c = 0..3, in order, with
 * I_c = sc[2c] * dot(sub-block 2c) + sc[2c+1] * dot(sub-block 2c+1) and M_c = lane c of
 * kq_min_prod = mn[2c] * (bsums[4c] + bsums[4c+1]) + mn[2c+1] * (bsums[4c+2] + bsums[4c+3]).
 * Lanes 0 / 1 of acc are acc / accm as in the gemv; each step feeds [I_c, M_c] to them. */
static inline FS_AVX2_FN float dot_q4_k_gemm_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    __m128 acc = _mm_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q4_K, y += B_Q8_K) {
        __m128 dd = q4_k_d_dmin(x, rd_f32(y));
        dd = _mm_movelh_ps(dd, dd); /* [d, dmin, d, dmin] */
        uint8_t sc[8], mn[8];
        scale_min_k4(x + 4, sc, mn);
        const __m128 m = _mm_cvtepi32_ps(kq_min_prod(mn, y));
        const uint8_t *q4 = x + 16;
        const int8_t *q8 = (const int8_t *)(y + Q8K_QS);
        const __m128 i = _mm_cvtepi32_ps(hsum_i32x8x4(q4_k_chunk_lanes(q4, q8, sc, 0), q4_k_chunk_lanes(q4, q8, sc, 1),
                                                      q4_k_chunk_lanes(q4, q8, sc, 2), q4_k_chunk_lanes(q4, q8, sc, 3)));
        const __m128 im01 = _mm_unpacklo_ps(i, m); /* [I0, M0, I1, M1] */
        const __m128 im23 = _mm_unpackhi_ps(i, m); /* [I2, M2, I3, M3] */
        acc = _mm_fmadd_ps(im01, dd, acc);
        acc = _mm_fmadd_ps(_mm_movehl_ps(im01, im01), dd, acc);
        acc = _mm_fmadd_ps(im23, dd, acc);
        acc = _mm_fmadd_ps(_mm_movehl_ps(im23, im23), dd, acc);
    }
    return _mm_cvtss_f32(_mm_sub_ss(acc, _mm_movehdup_ps(acc)));
}

static inline FS_AVX2_FN __m256i q4_k_scales_mins16(const uint8_t *s); /* below, with the Q4_K gemv */

/* The 5-bit values of 32-value groups 2c and 2c + 1 of a Q5_K block x (the low nibbles and high nibbles
 * of its 32 quant bytes x + 48 + 32c, fifth bits from *hb) into *q5l, *q5h, and their scales as 16-bit
 * lanes (byte shuffles of scb, the block's 8 scales as int16 in both 128-bit halves, by the index *sci)
 * into *scl, *sch. *hb enters as the block's 32 high-bit bytes x + 16 shifted right by 2c (bits 0 and 1
 * of each of its bytes are the groups' fifth bits) and *sci as the shuffle index of scale 2c; both leave
 * advanced to group 2c + 2. Shifting a fifth bit to bit 4 within 16-bit lanes moves bits across bytes
 * only outside bit 4, which the mask drops. */
static inline FS_AVX2_FN void q5_k_pair_unpack(const uint8_t *x, int c, __m256i scb, __m256i *hb, __m256i *sci,
                                               __m256i *q5l, __m256i *q5h, __m256i *scl, __m256i *sch) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m10 = _mm256_set1_epi8(0x10), sc_step = _mm256_set1_epi16(0x0202);
    const __m256i q5bits = _mm256_loadu_si256((const __m256i *)(x + 48 + 32 * c));
    *q5l = _mm256_or_si256(_mm256_and_si256(q5bits, m4), _mm256_and_si256(_mm256_slli_epi16(*hb, 4), m10));
    *q5h = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q5bits, 4), m4),
                           _mm256_and_si256(_mm256_slli_epi16(*hb, 3), m10));
    *hb = _mm256_srli_epi16(*hb, 2);
    *scl = _mm256_shuffle_epi8(scb, *sci);
    *sci = _mm256_add_epi16(*sci, sc_step);
    *sch = _mm256_shuffle_epi8(scb, *sci);
    *sci = _mm256_add_epi16(*sci, sc_step);
}

/* ggml_vec_dot_q5_K_q8_K (AVX2): per super-block d = y.d * fp16(x.d), dmin = -y.d * fp16(x.dmin); the
 * mins term is one integer, msum = sum of kq_min_prod's lanes: summs += dmin * (float)msum; the 5-bit
 * values (q5_k_pair_unpack) times y through maddubs, each 32 scaled by its sub-block scale with madd,
 * added into 8 int32 lanes: acc = fma(d, lanes, acc). Result hsum(acc) + summs. The scales and mins
 * are unpacked in vector registers (q4_k_scales_mins16) and the scales broadcast by byte shuffles
 * (ggml's get_scale_shuffle_k4), not from a byte array filled by scalar stores: the same integers. */
/* Bytes ahead that the Q5_K row dot prefetches its row (decode reads each weight row once, front to
 * back). Sapphire Rapids, 1B Q5_K_M ffn_gate from memory, 1 thread: none 4.8 GB/s (16.6 from cache),
 * 256 B 9.0, 512 B 11.9, 1 KB 12.5, 2 KB 13.2-13.7, 4 KB 12.4. */
#define Q5K_ROWS_PREFETCH 2048
/* The same for the Q6_K row dots (AVX2 and AVX-512). Sapphire Rapids, 1B Q4_K_M ffn_down from memory,
 * 1 thread, AVX2 / AVX-512: none 6.0-6.3 / 7.0-7.3 GB/s, 1 KB 7.1-7.2 / 7.6-7.9, 2 KB 7.3-7.5 / 8.0-8.3,
 * 4 KB 7.1-7.3 / 8.2. */
#define Q6K_ROWS_PREFETCH 2048
static inline FS_AVX2_FN float dot_q5_k_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q5_K, y += B_Q8_K) {
        FS_ROW_PREFETCH(x, B_Q5_K, Q5K_ROWS_PREFETCH);
        const float yd = rd_f32(y);
        const float d = yd * h2f(x);
        const float dmin = -yd * h2f(x + 2);
        const __m256i scm = q4_k_scales_mins16(x + 4);
        const __m128i prod = _mm_madd_epi16(_mm256_extracti128_si256(scm, 1), q8_k_sub_sums(y));
        summs += dmin * (float)hsum_i32x4(prod);
        const __m256i scb = _mm256_permute2x128_si256(scm, scm, 0x00);
        __m256i hb = _mm256_loadu_si256((const __m256i *)(x + 16)), sci = _mm256_set1_epi16(0x0100);
        const int8_t *q8 = (const int8_t *)(y + Q8K_QS);
        __m256i sumi = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i q5l, q5h, scl, sch;
            q5_k_pair_unpack(x, c, scb, &hb, &sci, &q5l, &q5h, &scl, &sch);
            const __m256i p0 = _mm256_madd_epi16(scl, _mm256_maddubs_epi16(q5l, _mm256_loadu_si256((const __m256i *)(q8 + 64 * c))));
            const __m256i p1 = _mm256_madd_epi16(sch, _mm256_maddubs_epi16(q5h, _mm256_loadu_si256((const __m256i *)(q8 + 64 * c + 32))));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p0, p1));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_f32x8(acc) + summs;
}

/* Group k (elements 32k .. 32k + 31) of half h of a Q6_K block: its 6-bit values (q in [0, 64)) from the
 * half's low-bit vectors b1 (x + 64h), b2 (x + 64h + 32) and high-bit vector bh (x + 128 + 32h) into *q4,
 * and its two scales, widened to int16 per 16 elements, from the block's 16 scales into *sc16 (ggml's
 * get_scale_shuffle(4h + k): bytes 0..7 pick scale 2i, bytes 8..15 scale 2i + 1). */
static inline FS_AVX2_FN void q6_k_group_unpack(__m256i b1, __m256i b2, __m256i bh, __m128i scales, int h, int k,
                                                __m256i *q4, __m256i *sc16) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
    const __m256i lo = k & 1 ? b2 : b1;
    *q4 = _mm256_or_si256(_mm256_and_si256(k < 2 ? lo : _mm256_srli_epi16(lo, 4), m4),
                          _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 2 * k), m2), 4));
    const long long i2 = 2 * (4 * h + k);
    const __m128i shuf = _mm_set_epi64x(0x0101010101010101LL * (i2 + 1), 0x0101010101010101LL * i2);
    *sc16 = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, shuf));
}

/* The 6-bit values of one half (128 elements) of a Q6_K block x into q4[4] and its scales into sc16[4]
 * (q6_k_group_unpack for k = 0 .. 3). */
FS_VD_INLINE FS_AVX2_FN void q6_k_half_unpack(const uint8_t *x, int h, __m256i q4[4], __m256i sc16[4]) {
    const __m128i scales = _mm_loadu_si128((const __m128i *)(x + 192));
    const __m256i b1 = _mm256_loadu_si256((const __m256i *)(x + 64 * h));
    const __m256i b2 = _mm256_loadu_si256((const __m256i *)(x + 64 * h + 32));
    const __m256i bh = _mm256_loadu_si256((const __m256i *)(x + 128 + 32 * h));
    for (int k = 0; k < 4; k++) q6_k_group_unpack(b1, b2, bh, scales, h, k, &q4[k], &sc16[k]);
}

/* The 8 int32 lanes of one half of a Q6_K block times the activation quants yh (128 int8): per 32
 * elements k, madd(sc16[k], maddubs(q4[k], y) - maddubs(32, y)), the -32 offset taken through the
 * second product. m32, if not NULL, holds those offset products already made (the activation's
 * alone, shared by every row): the same int16 values. */
FS_VD_INLINE FS_AVX2_FN __m256i q6_k_half_lanes(const __m256i q4[4], const __m256i sc16[4], const int8_t *yh,
                                                const __m256i *m32) {
    const __m256i m32s = _mm256_set1_epi8(32);
    __m256i p[4];
    for (int k = 0; k < 4; k++) {
        const __m256i q8 = _mm256_loadu_si256((const __m256i *)(yh + 32 * k));
        const __m256i off = m32 != NULL ? m32[k] : _mm256_maddubs_epi16(m32s, q8);
        p[k] = _mm256_madd_epi16(sc16[k], _mm256_sub_epi16(_mm256_maddubs_epi16(q4[k], q8), off));
    }
    return _mm256_add_epi32(_mm256_add_epi32(p[0], p[1]), _mm256_add_epi32(p[2], p[3]));
}

/* ggml_vec_dot_q6_K_q8_K (AVX2) over nb super-blocks: the two halves' lanes (q6_k_half_lanes) summed
 * exactly, acc = fma(y.d * fp16(x.d), lanes, acc), result hsum(acc). m32: NULL, or the activation's
 * offset products, 8 vectors per super-block. */
FS_VD_INLINE FS_AVX2_FN float q6_k_row_avx2(const uint8_t *x, const uint8_t *y, int64_t nb, const __m256i (*m32)[8]) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q6_K, y += B_Q8_K) {
        FS_ROW_PREFETCH(x, B_Q6_K, Q6K_ROWS_PREFETCH);
        const float d = rd_f32(y) * h2f(x + 208);
        const int8_t *q8 = (const int8_t *)(y + Q8K_QS);
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i q4[4], sc16[4];
            q6_k_half_unpack(x, h, q4, sc16);
            sumi = _mm256_add_epi32(sumi, q6_k_half_lanes(q4, sc16, q8 + 128 * h, m32 != NULL ? m32[ib] + 4 * h : NULL));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_f32x8(acc);
}

static inline FS_AVX2_FN float dot_q6_k_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    return q6_k_row_avx2(x, y, n / QK_K, NULL);
}

FS_ROWS(fs_rows_q4_k_avx2, dot_q4_k_avx2, FS_AVX2_FN)
FS_ROWS(fs_rows_q5_k_avx2, dot_q5_k_avx2, FS_AVX2_FN)

/* The activation side of the Q4_K / Q5_K mins terms for 8 activation rows (fewer: the rest zero) of
 * one super-block: m2[t] holds q8_k_sub_sums of rows 2t (low 128 bits) and 2t + 1 (high), and yd the
 * rows' scales y.d in the lane order [0, 2, 4, 6, 1, 3, 5, 7] that kq_min_sums8 leaves its sums in. */
typedef struct {
    __m256i m2[4];
    __m256 yd;
} kq_act8;

static inline FS_AVX2_FN void kq_act8_fill(kq_act8 *k, const uint8_t *y, size_t ab, int rn) {
    float yd[8] = {0};
    for (int t = 0; t < 4; t++) {
        __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
        if (2 * t < rn) {
            const __m256i b = _mm256_loadu_si256((const __m256i *)(y + (size_t)(2 * t) * ab + Q8K_BSUMS));
            lo = b;
            hi = b;
            yd[t] = rd_f32(y + (size_t)(2 * t) * ab);
        }
        if (2 * t + 1 < rn) {
            const __m256i b = _mm256_loadu_si256((const __m256i *)(y + (size_t)(2 * t + 1) * ab + Q8K_BSUMS));
            lo = _mm256_permute2x128_si256(lo, b, 0x20);
            hi = _mm256_permute2x128_si256(hi, b, 0x31);
            yd[4 + t] = rd_f32(y + (size_t)(2 * t + 1) * ab);
        } else {
            lo = _mm256_permute2x128_si256(lo, lo, 0x80); /* row 2t in the low half, zero above */
            hi = _mm256_permute2x128_si256(hi, hi, 0x81);
        }
        k->m2[t] = _mm256_hadd_epi16(lo, hi); /* per 128-bit half: hadd(bsums[0..8), bsums[8..16)) */
    }
    k->yd = _mm256_loadu_ps(yd);
}

/* msum of kq_min_prod (summed over its 4 lanes) for the 8 rows of k at once, with one weight
 * super-block's 8 mins (int16, the same 8 in both 128-bit halves): exact int32 sums in the lane order
 * of kq_act8.yd. */
static inline FS_AVX2_FN __m256i kq_min_sums8(const kq_act8 *k, __m256i mins) {
    const __m256i h01 = _mm256_hadd_epi32(_mm256_madd_epi16(mins, k->m2[0]), _mm256_madd_epi16(mins, k->m2[1]));
    const __m256i h23 = _mm256_hadd_epi32(_mm256_madd_epi16(mins, k->m2[2]), _mm256_madd_epi16(mins, k->m2[3]));
    return _mm256_hadd_epi32(h01, h23);
}

/* One Q5_K super-block x of a tile (tile_q5_k, tile_q5_k_avx512) against the activation rows of k:
 * returns its 8 scales as int16 in both 128-bit halves (q5_k_pair_unpack's scb; scale_min_k4's scales
 * and mins unpacked in vector registers, each scale then broadcast by a byte shuffle, ggml's
 * get_scale_shuffle_k4, instead of from a scalar) and adds its mins term, (-y.d * fp16(x.dmin)) *
 * (float)msum lane by lane in kq_act8.yd's order, into *summs. */
static inline FS_AVX2_FN __m256i q5_k_scales_and_mins(const uint8_t *x, const kq_act8 *k, __m256 *summs) {
    const __m256i scm = q4_k_scales_mins16(x + 4);
    const __m256i mnb = _mm256_permute2x128_si256(scm, scm, 0x11);
    const __m256 dmin = _mm256_mul_ps(_mm256_xor_ps(k->yd, _mm256_set1_ps(-0.0f)), _mm256_set1_ps(h2f(x + 2)));
    *summs = _mm256_add_ps(*summs, _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(kq_min_sums8(k, mnb))));
    return _mm256_permute2x128_si256(scm, scm, 0x00);
}

/* Super-blocks of an activation group whose kq_act8 the Q5_K tiles prepare once on the stack (16 KB +):
 * rows up to 32,768 elements; longer rows prepare them per weight row. */
#define Q5K_TILE_MAX_NB 128

/* Q5_K: one weight row x RN <= FS_TILE_RN8 activation rows. Per super-block the row's scales are
 * widened once, then its 5-bit values are unpacked two 32-value groups at a time and every activation
 * row takes its products against them (maddubs, madd with the scale, exact int32 adds) in 8 lanes;
 * the mins terms of all RN rows are one vector (kq_min_sums8 on prepared activation sums `ka`, one per
 * super-block). The int32 lanes are dot_q5_k_avx2's integers and the float operations per pair (row,
 * activation) are its own, the scalar mins steps as lanes, so the bits are equal. */
FS_VD_INLINE FS_AVX2_FN void tile_q5_k(const uint8_t *x, const uint8_t *a, size_t ab, int64_t nb, float *out,
                                       int64_t os, const kq_act8 *ka, const int RN) {
    __m256 acc[FS_TILE_RN8];
    for (int j = 0; j < RN; j++) acc[j] = _mm256_setzero_ps();
    __m256 summs = _mm256_setzero_ps(); /* lanes in kq_act8.yd's order */
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q5_K) {
        const uint8_t *y = a + (size_t)ib * B_Q8_K;
        const float dx = h2f(x);
        kq_act8 kl;
        const kq_act8 *k = ka != NULL ? &ka[ib] : &kl;
        if (ka == NULL) kq_act8_fill(&kl, y, ab, RN);
        const __m256i scb = q5_k_scales_and_mins(x, k, &summs);
        /* two 32-value groups (q5_k_pair_unpack) at a time, their values and scales in four registers,
         * against every activation row: an activation load feeds two multiplies and nothing spills (the
         * int32 sums are exact, so their order is free) */
        __m256i sumi[FS_TILE_RN8];
        for (int j = 0; j < RN; j++) sumi[j] = _mm256_setzero_si256();
        __m256i hb = _mm256_loadu_si256((const __m256i *)(x + 16)), sci = _mm256_set1_epi16(0x0100);
        FS_NO_UNROLL
        for (int c = 0; c < 4; c++) {
            __m256i q5l, q5h, scl, sch;
            q5_k_pair_unpack(x, c, scb, &hb, &sci, &q5l, &q5h, &scl, &sch);
            for (int j = 0; j < RN; j++) {
                const __m256i *q8 = (const __m256i *)(y + (size_t)j * ab + Q8K_QS + 64 * c);
                const __m256i pl = _mm256_madd_epi16(scl, _mm256_maddubs_epi16(q5l, _mm256_loadu_si256(q8)));
                const __m256i ph = _mm256_madd_epi16(sch, _mm256_maddubs_epi16(q5h, _mm256_loadu_si256(q8 + 1)));
                sumi[j] = _mm256_add_epi32(sumi[j], _mm256_add_epi32(pl, ph));
            }
        }
        /* y.d * fp16(x.d) for all rows in one product, row j's broadcast from its lane of kq_act8.yd */
        const __m256 d = _mm256_mul_ps(k->yd, _mm256_set1_ps(dx));
        for (int j = 0; j < RN; j++)
            acc[j] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(d, _mm256_set1_epi32((j >> 1) + 4 * (j & 1))),
                                     _mm256_cvtepi32_ps(sumi[j]), acc[j]);
    }
    float sm[8];
    _mm256_storeu_ps(sm, summs);
    for (int j = 0; j < RN; j++) out[(size_t)j * os] = hsum_f32x8(acc[j]) + sm[(j >> 1) + 4 * (j & 1)];
}

/* out[t * os + r] = fs_rows_q5_k_avx2's dot of weight row r and activation row t, register-tiled:
 * FS_TILE_RN8 activation rows at a time (the last group fewer), every weight row against each, the
 * group's mins sums prepared once. */
FS_AVX2_FN void fs_tiles_q5_k_avx2(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a, size_t ab,
                                   int64_t n_act, int64_t n, float *out, int64_t os) {
    const int64_t nb = n / QK_K;
    kq_act8 ka[Q5K_TILE_MAX_NB];
    for (int64_t j = 0; j < n_act; j += FS_TILE_RN8) {
        const int rn = n_act - j < FS_TILE_RN8 ? (int)(n_act - j) : FS_TILE_RN8;
        const uint8_t *aj = a + (size_t)j * ab;
        const kq_act8 *kp = nb <= Q5K_TILE_MAX_NB ? ka : NULL;
        for (int64_t ib = 0; kp != NULL && ib < nb; ib++) kq_act8_fill(&ka[ib], aj + (size_t)ib * B_Q8_K, ab, rn);
        for (int64_t i = 0; i < n_rows; i++) {
            const uint8_t *wi = w + (size_t)i * rb;
            float *o = out + j * os + i;
            FS_SWITCH_RN8(rn, tile_q5_k, wi, aj, ab, nb, o, os, kp)
        }
    }
}

/* Super-blocks whose activation offset terms fs_rows_q6_k_avx2 keeps on the stack (16 KB): rows up to
 * 16,384 elements; longer rows take dot_q6_k_avx2 as it is. */
#define Q6K_ROWS_MAX_NB 64

/* Q6_K rows (ggml_vec_dot_q6_K_q8_K's bits per row, each row read front to back). Half of that
 * kernel's byte products, maddubs(32, y) for the -32 offset, depend on the activation only: they
 * are made once per call here and shared by the rows. */
FS_AVX2_FN void fs_rows_q6_k_avx2(const uint8_t *w, size_t row_bytes, int64_t n_rows, const uint8_t *act,
                                  int64_t n, float *out) {
    const int64_t nb = n / QK_K;
    if (n_rows < 2 || nb > Q6K_ROWS_MAX_NB) {
        for (int64_t r = 0; r < n_rows; r++) out[r] = dot_q6_k_avx2(w + (size_t)r * row_bytes, act, n);
        return;
    }
    __m256i m32[Q6K_ROWS_MAX_NB][8];
    const __m256i m32s = _mm256_set1_epi8(32);
    for (int64_t ib = 0; ib < nb; ib++)
        for (int j = 0; j < 8; j++)
            m32[ib][j] = _mm256_maddubs_epi16(m32s, _mm256_loadu_si256((const __m256i *)(act + (size_t)ib * B_Q8_K + Q8K_QS + 32 * j)));
    for (int64_t r = 0; r < n_rows; r++)
        out[r] = q6_k_row_avx2(w + (size_t)r * row_bytes, act, nb, (const __m256i (*)[8])m32);
}

/* Integer parts of one Q4_K super-block of one row: chunk[c] = q4_k_chunk_lanes (the scaled
 * products of elements 64c .. 64c + 64 as 8 int32 lanes); returns kq_min_prod (4 lanes). */
static inline FS_AVX2_FN __m128i q4_k_block_ints(const uint8_t *x, const uint8_t *y, __m256i chunk[4]) {
    uint8_t sc[8], mn[8];
    scale_min_k4(x + 4, sc, mn);
    const uint8_t *q4 = x + 16;
    const int8_t *q8 = (const int8_t *)(y + Q8K_QS);
    for (int c = 0; c < 4; c++) chunk[c] = q4_k_chunk_lanes(q4, q8, sc, c);
    return kq_min_prod(mn, y);
}

/* Q4_K gemm rows (fs_vec_dot_rows_gemm), 4 at a time: per 64 elements,
 * acc = fma(I, fp16(x.d) * y.d, acc), accm = fma(M, fp16(x.dmin) * y.d, accm); out = acc - accm. */
static inline FS_AVX2_FN void rows_q4_k_gemm_avx2(const uint8_t *w, size_t row_bytes, int64_t n_rows,
                                                  const uint8_t *act, int64_t n, float *out) {
    const int64_t nb = n / QK_K;
    int64_t r = 0;
    for (; r + 4 <= n_rows; r += 4) {
        const uint8_t *x0 = w + (size_t)r * row_bytes, *x1 = x0 + row_bytes, *x2 = x1 + row_bytes, *x3 = x2 + row_bytes;
        const uint8_t *y = act;
        __m128 acc = _mm_setzero_ps(), accm = _mm_setzero_ps();
        for (int64_t ib = 0; ib < nb; ib++, x0 += B_Q4_K, x1 += B_Q4_K, x2 += B_Q4_K, x3 += B_Q4_K, y += B_Q8_K) {
            const __m128 yd = _mm_set1_ps(rd_f32(y));
            const __m128 d = _mm_mul_ps(h2f_x4(x0, x1, x2, x3), yd);
            const __m128 dmin = _mm_mul_ps(h2f_x4(x0 + 2, x1 + 2, x2 + 2, x3 + 2), yd);
            __m256i k0[4], k1[4], k2[4], k3[4];
            __m128i m0 = q4_k_block_ints(x0, y, k0), m1 = q4_k_block_ints(x1, y, k1);
            __m128i m2 = q4_k_block_ints(x2, y, k2), m3 = q4_k_block_ints(x3, y, k3);
            /* transpose: mc[c] = [lane c of m0, m1, m2, m3] = M_c of the 4 rows */
            const __m128i t0 = _mm_unpacklo_epi32(m0, m1), t1 = _mm_unpacklo_epi32(m2, m3);
            const __m128i t2 = _mm_unpackhi_epi32(m0, m1), t3 = _mm_unpackhi_epi32(m2, m3);
            const __m128i mc[4] = {_mm_unpacklo_epi64(t0, t1), _mm_unpackhi_epi64(t0, t1), _mm_unpacklo_epi64(t2, t3),
                                   _mm_unpackhi_epi64(t2, t3)};
            for (int c = 0; c < 4; c++) {
                const __m128i ic = hsum_i32x8x4(k0[c], k1[c], k2[c], k3[c]);
                acc = _mm_fmadd_ps(_mm_cvtepi32_ps(ic), d, acc);
                accm = _mm_fmadd_ps(_mm_cvtepi32_ps(mc[c]), dmin, accm);
            }
        }
        _mm_storeu_ps(out + r, _mm_sub_ps(acc, accm));
    }
    for (; r < n_rows; r++) {
        const uint8_t *x = w + (size_t)r * row_bytes;
        out[r] = dot_q4_k_gemm_avx2(x, act, n);
    }
}

/* The scales and mins of one Q4_K super-block as 16-bit lanes (scale_min_k4, widened): low 128 bits
 * sc[0..8), high 128 bits mn[0..8). */
static inline FS_AVX2_FN __m256i q4_k_scales_mins16(const uint8_t *s) {
    /* scale_min_k4 in one 16-byte vector (reads s[0 .. 16): the 12 scale bytes and 4 quant bytes of
     * the same block): output byte j < 4: s[j] & 63; 4 <= j < 8: (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
     * 8 <= j < 12: s[j - 4] & 63; j >= 12: (s[j - 4] >> 4) | (s[j - 8] >> 6) << 4. Byte shifts are
     * 16-bit shifts whose spill-over bits the masks drop. (A byte array filled by scalar stores and
     * loaded as a vector stalls on store forwarding.) */
    const __m128i v = _mm_loadu_si128((const __m128i *)s);
    const __m128i a = _mm_shuffle_epi8(v, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
    const __m128i b = _mm_shuffle_epi8(v, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
    const __m128i m1 = _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0);
    const __m128i m2 = _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15);
    const __m128i sm = _mm_or_si128(_mm_or_si128(_mm_and_si128(a, m1), _mm_and_si128(_mm_srli_epi16(a, 4), m2)),
                                    _mm_and_si128(_mm_srli_epi16(b, 2), _mm_set1_epi8(0x30)));
    return _mm256_cvtepu8_epi16(sm);
}

/* Activation rows per pass of the multi-row Q4_K gemv: their integer sums (2 KB each) on the stack. 4, so
 * that a decode step of 4 sequences (each its own part, all gemv) reads each weight row once. */
#define Q4K_GEMV_ACTS 4

/* q4_k_row_ints (below: the case nt = 1) for nt <= Q4K_GEMV_ACTS activation rows (q8[t], q8s[t]) at
 * once: the row's scales and nibbles are unpacked once, each activation gets the same integer
 * operations as alone. */
FS_VD_INLINE FS_AVX2_FN void q4_k_row_ints_acts(const uint8_t *x, const int8_t *const *q8, const __m128i *q8s,
                                                 const int nt, __m256i *sumi, __m128i *m) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i sm = q4_k_scales_mins16(x + 4);
    for (int t = 0; t < nt; t++) {
        m[t] = _mm_madd_epi16(_mm256_extracti128_si256(sm, 1), q8s[t]);
        sumi[t] = _mm256_setzero_si256();
    }
    const __m256i sc = _mm256_permute2x128_si256(sm, sm, 0x00); /* sc[0..8) in both halves */
    const uint8_t *q4 = x + 16;
    for (int c = 0; c < 4; c++) {
        /* bytes 2j, 2j + 1 (the int16 sc[j]) in every 16-bit lane, j = 2c and 2c + 1 */
        const __m256i scl = _mm256_shuffle_epi8(sc, _mm256_set1_epi16((short)(0x0100 + 0x0202 * (2 * c))));
        const __m256i sch = _mm256_shuffle_epi8(sc, _mm256_set1_epi16((short)(0x0100 + 0x0202 * (2 * c + 1))));
        const __m256i bits = _mm256_loadu_si256((const __m256i *)(q4 + 32 * c));
        const __m256i ql = _mm256_and_si256(bits, m4);
        const __m256i qh = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
        for (int t = 0; t < nt; t++) {
            const __m256i pl = _mm256_maddubs_epi16(ql, _mm256_loadu_si256((const __m256i *)(q8[t] + 64 * c)));
            const __m256i ph = _mm256_maddubs_epi16(qh, _mm256_loadu_si256((const __m256i *)(q8[t] + 64 * c + 32)));
            sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(_mm256_madd_epi16(scl, pl), _mm256_madd_epi16(sch, ph)));
        }
    }
}

/* I of one Q4_K super-block of one row (x: the block; q8: the activation's 256 int8) as 8 int32 lanes
 * whose sum is I = sum_j sc[j] * dot(sub-block j); *m gets the 4 lanes whose sum is M (kq_min_prod,
 * with q8s = the activation's 8 sub-block sums as int16, shared by every row). The scales are
 * broadcast by byte shuffles of one vector (ggml's get_scale_shuffle_k4) instead of one scalar
 * extraction each. Exact integers: the lane split does not change I or M. */
static inline FS_AVX2_FN __m256i q4_k_row_ints(const uint8_t *x, const int8_t *q8, __m128i q8s, __m128i *m) {
    __m256i sumi;
    q4_k_row_ints_acts(x, &q8, &q8s, 1, &sumi, m);
    return sumi;
}

/* *I and *M of one row and super-block from q4_k_row_ints' lanes (iv) and min lanes (m): exact sums. */
static inline FS_AVX2_FN void q4_k_store_im(__m256i iv, __m128i m, int32_t *I, int32_t *M) {
    const __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(iv), _mm256_extracti128_si256(iv, 1));
    __m128i im = _mm_hadd_epi32(s4, m);
    im = _mm_hadd_epi32(im, im); /* [I, M, I, M] */
    *I = _mm_cvtsi128_si32(im);
    *M = _mm_extract_epi32(im, 1);
}

/* 8 rows' raw (fp16 d, fp16 dmin) words (dd: one 32-bit word per row) as [d_0..7 | dmin_0..7]: bytes 0, 1
 * of each word (d) into the low 8 bytes of each 128-bit lane, bytes 2, 3 (dmin) into the high 8, then
 * [d0 d1 d2 d3 dmin0..3 | d4..d7 dmin4..7] -> [d0..d7 | dmin0..dmin7]. */
static inline FS_AVX2_FN __m256i q4_k_split_d_dmin(__m256i dd) {
    const __m256i split = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15,
                                           0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
    return _mm256_permute4x64_epi64(_mm256_shuffle_epi8(dd, split), 0xD8);
}

/* The Q4_K gemv's float step for one super-block of 8 rows (one lane each): I, M and dd (the rows'
 * raw fp16 d, dmin words) against the activation block y: acc = fma((float)I, fp16(d) * y.d, acc),
 * accm = fma((float)M, fp16(dmin) * y.d, accm). */
static inline FS_AVX2_FN void q4_k_fma8(const int32_t *I, const int32_t *M, const int32_t *dd, const uint8_t *y,
                                        __m256 *acc, __m256 *accm) {
    const __m256i h = q4_k_split_d_dmin(_mm256_loadu_si256((const __m256i *)dd));
    const __m256 yd = _mm256_set1_ps(rd_f32(y));
    const __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm256_castsi256_si128(h)), yd);
    const __m256 dmin = _mm256_mul_ps(_mm256_cvtph_ps(_mm256_extracti128_si256(h, 1)), yd);
    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)I)), d, *acc);
    *accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)M)), dmin, *accm);
}

/* Super-blocks per pass of the Q4_K gemv: the integer lanes of 8 rows fit in 14 KB of stack. */
#define Q4K_GEMV_CHUNK 32
/* Bytes ahead of the super-block it reads that the Q4_K gemv's integer phase prefetches (the rows of a
 * group are one sequential stream); a prefetch never faults, so reading past the matrix is harmless.
 * On Sapphire Rapids, 1B Q4_K_M ffn_gate from memory, 1 thread: 512 B 7.5 GB/s, 1-8 KB 9.0-9.9.
 * AVX-512 CPUs run this AVX2 gemv too: an AVX-512 integer phase (512-bit loads, dpwssd, the sums
 * reduced 4 blocks at a time) was slower on both measured, Zen 4 (14-15 against 17-20 GB/s from
 * memory) and Sapphire Rapids (8.8 against 9.8 GB/s; the 1B Q4_K_M decode 26 against 31.5 t/s). */
#define Q4K_GEMV_PREFETCH 4096

/* q4_k_fma8 from the unreduced lanes of 8 rows: iv[k] row k's I lanes (q4_k_row_ints), mv its M lanes
 * in the order rows 0, 4, 1, 5, 2, 6, 3, 7, so that the pairs [m0 | m4], [m1 | m5], ... reduce in two
 * levels of horizontal adds to [M0 .. M7]. Same exact I and M, same float operations. */
static inline FS_AVX2_FN void q4_k_fma8_lanes(const __m256i *iv, const __m128i *mv, const int32_t *dd, const uint8_t *y,
                                              __m256 *acc, __m256 *accm) {
    const __m256i *m2 = (const __m256i *)mv;
    const __m256i M = _mm256_hadd_epi32(_mm256_hadd_epi32(_mm256_loadu_si256(m2), _mm256_loadu_si256(m2 + 1)),
                                        _mm256_hadd_epi32(_mm256_loadu_si256(m2 + 2), _mm256_loadu_si256(m2 + 3)));
    const __m256i I = hsum_i32x8x8(iv);
    const __m256i h = q4_k_split_d_dmin(_mm256_loadu_si256((const __m256i *)dd));
    const __m256 yd = _mm256_set1_ps(rd_f32(y));
    const __m256 d = _mm256_mul_ps(_mm256_cvtph_ps(_mm256_castsi256_si128(h)), yd);
    const __m256 dmin = _mm256_mul_ps(_mm256_cvtph_ps(_mm256_extracti128_si256(h, 1)), yd);
    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(I), d, *acc);
    *accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(M), dmin, *accm);
}

/* Where row k (0..7) of a group keeps its M lanes in q4_k_fma8_lanes' order (rows 0, 4, 1, 5, 2, 6, 3, 7). */
static inline int q4k_m_slot(int k) { return 2 * (k & 3) + (k >> 2); }

/* The integer phase of the Q4_K gemv for row k of a group (fs_gemv_q4_k_avx2): for its nc super-blocks at x
 * (their activation blocks at y; q8s[j]: block j's 8 sub-block sums as int16), iv[j][k] = lanes whose
 * sum is I, mv[j][q4k_m_slot(k)] = lanes whose sum is M, and dd[j][k] = the block's first 4 bytes
 * (fp16 d, dmin). Each block's lanes are stored as q4_k_row_ints leaves them; the float phase reduces
 * them 8 rows at a time (with a chain of horizontal adds at the end of every block instead, which the
 * next block's products waited on, the gemv from cache took 1.1-1.25x as long). */
static inline FS_AVX2_FN void q4_k_row_ints_avx2(const uint8_t *x, const uint8_t *y, int nc, const __m128i *q8s,
                                                 __m256i (*iv)[8], __m128i (*mv)[8], int32_t (*dd)[8], int k) {
    for (int j = 0; j < nc; j++, x += B_Q4_K, y += B_Q8_K) {
        FS_ROW_PREFETCH(x, B_Q4_K, Q4K_GEMV_PREFETCH);
        iv[j][k] = q4_k_row_ints(x, (const int8_t *)(y + Q8K_QS), q8s[j], &mv[j][q4k_m_slot(k)]);
        memcpy(&dd[j][k], x, 4);
    }
}

/* Q4_K gemv (the float operations of ggml_gemv_q4_K_8x8_q8_K, one float lane per row): per
 * super-block, acc = fma((float)I, fp16(x.d) * y.d, acc), accm = fma((float)M, fp16(x.dmin) * y.d,
 * accm) with the exact I and M of each row; out = acc - accm.
 *
 * llama.cpp interleaves 8 rows in memory so that its gemv reads one sequential stream. Here the
 * file's layout stays as it is (memory-mapped, no copy) and the work is split in two phases per
 * group of 8 rows: the integer phase (q4_k_row_ints_avx2) runs through each row in turn (a sequential
 * read of the group, which the hardware prefetcher follows; walking 8 rows block by block instead is 8
 * streams 1-4 KB apart and stalls on memory) and keeps each block's I and M (as integer lanes) and fp16
 * (d, dmin); the float phase then reduces the lanes and takes the FMAs 8 rows at a time, in super-block
 * order, as llama.cpp does. The integers are exact, so every variant gives the same bits. */
FS_AVX2_FN void fs_gemv_q4_k_avx2(const uint8_t *w, size_t row_bytes, int64_t n_rows, const uint8_t *act,
                                  int64_t n, float *out) {
    const int64_t nb = n / QK_K;
    __m256i iv[Q4K_GEMV_CHUNK][8]; /* per super-block: the I lanes of rows 0..7 */
    __m128i mv[Q4K_GEMV_CHUNK][8]; /* per super-block: the M lanes of rows 0, 4, 1, 5, 2, 6, 3, 7 */
    int32_t dd[Q4K_GEMV_CHUNK][8]; /* per super-block: the raw (d, dmin) of rows 0..7 */
    __m128i q8s[Q4K_GEMV_CHUNK];   /* per super-block: the activation's 8 sub-block sums, int16 */
    for (int64_t r = 0; r < n_rows; r += 8) {
        const int g = n_rows - r < 8 ? (int)(n_rows - r) : 8;
        __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
        for (int64_t ib0 = 0; ib0 < nb; ib0 += Q4K_GEMV_CHUNK) {
            const int nc = nb - ib0 < Q4K_GEMV_CHUNK ? (int)(nb - ib0) : Q4K_GEMV_CHUNK;
            if (g < 8) { /* lanes of absent rows: zeros, never stored */
                memset(iv, 0, sizeof iv);
                memset(mv, 0, sizeof mv);
                memset(dd, 0, sizeof dd);
            }
            for (int j = 0; j < nc; j++) q8s[j] = q8_k_sub_sums(act + (size_t)(ib0 + j) * B_Q8_K);
            for (int k = 0; k < g; k++)
                q4_k_row_ints_avx2(w + (size_t)(r + k) * row_bytes + (size_t)ib0 * B_Q4_K, act + (size_t)ib0 * B_Q8_K,
                                   nc, q8s, iv, mv, dd, k);
            const uint8_t *y = act + (size_t)ib0 * B_Q8_K;
            for (int j = 0; j < nc; j++, y += B_Q8_K) q4_k_fma8_lanes(iv[j], mv[j], dd[j], y, &acc, &accm);
        }
        float o[8];
        _mm256_storeu_ps(o, _mm256_sub_ps(acc, accm));
        memcpy(out + r, o, (size_t)g * sizeof(float));
    }
}


/* fs_gemv_q4_k_avx2 for nt <= Q4K_GEMV_ACTS activation rows (a + t * ab; out + t * os): each weight row is read
 * once for all of them (the integer phase), then each activation's float phase is fs_gemv_q4_k_avx2's, so
 * every output has the bits of fs_gemv_q4_k_avx2 on its own. For the rows a batch leaves after its groups of 4
 * (2 or 3 slots decoding together), which would otherwise each run the whole gemv. */
FS_VD_INLINE FS_AVX2_FN void q4_k_gemv_acts(const uint8_t *w, size_t row_bytes, int64_t n_rows, const uint8_t *a,
                                            size_t ab, const int nt, int64_t n, float *out, int64_t os) {
    const int64_t nb = n / QK_K;
    int32_t ints[Q4K_GEMV_ACTS][Q4K_GEMV_CHUNK][2][8]; /* per activation, super-block: I, M of rows 0..7 */
    int32_t dd[Q4K_GEMV_CHUNK][8];                     /* per super-block: the raw (d, dmin) of rows 0..7 */
    __m128i q8s[Q4K_GEMV_CHUNK][Q4K_GEMV_ACTS];
    for (int64_t r = 0; r < n_rows; r += 8) {
        const int g = n_rows - r < 8 ? (int)(n_rows - r) : 8;
        __m256 acc[Q4K_GEMV_ACTS], accm[Q4K_GEMV_ACTS];
        for (int t = 0; t < nt; t++) acc[t] = accm[t] = _mm256_setzero_ps();
        for (int64_t ib0 = 0; ib0 < nb; ib0 += Q4K_GEMV_CHUNK) {
            const int nc = nb - ib0 < Q4K_GEMV_CHUNK ? (int)(nb - ib0) : Q4K_GEMV_CHUNK;
            if (g < 8) {
                memset(ints, 0, sizeof ints);
                memset(dd, 0, sizeof dd);
            }
            for (int j = 0; j < nc; j++)
                for (int t = 0; t < nt; t++) q8s[j][t] = q8_k_sub_sums(a + (size_t)t * ab + (size_t)(ib0 + j) * B_Q8_K);
            for (int k = 0; k < g; k++) {
                const uint8_t *x = w + (size_t)(r + k) * row_bytes + (size_t)ib0 * B_Q4_K;
                for (int j = 0; j < nc; j++, x += B_Q4_K) {
                    FS_ROW_PREFETCH(x, B_Q4_K, Q4K_GEMV_PREFETCH);
                    const int8_t *q8[Q4K_GEMV_ACTS];
                    for (int t = 0; t < nt; t++)
                        q8[t] = (const int8_t *)(a + (size_t)t * ab + (size_t)(ib0 + j) * B_Q8_K + Q8K_QS);
                    __m256i iv[Q4K_GEMV_ACTS];
                    __m128i m[Q4K_GEMV_ACTS];
                    q4_k_row_ints_acts(x, q8, q8s[j], nt, iv, m);
                    for (int t = 0; t < nt; t++) q4_k_store_im(iv[t], m[t], &ints[t][j][0][k], &ints[t][j][1][k]);
                    memcpy(&dd[j][k], x, 4);
                }
            }
            for (int t = 0; t < nt; t++) {
                const uint8_t *y = a + (size_t)t * ab + (size_t)ib0 * B_Q8_K;
                for (int j = 0; j < nc; j++, y += B_Q8_K)
                    q4_k_fma8(ints[t][j][0], ints[t][j][1], dd[j], y, &acc[t], &accm[t]);
            }
        }
        for (int t = 0; t < nt; t++) {
            float o[8];
            _mm256_storeu_ps(o, _mm256_sub_ps(acc[t], accm[t]));
            memcpy(out + (size_t)t * os + r, o, (size_t)g * sizeof(float));
        }
    }
}

/* The Q4_K gemv for several activation rows: groups of Q4K_GEMV_ACTS through q4_k_gemv_acts (bits of
 * fs_gemv_q4_k_avx2 for each). */
FS_AVX2_FN void fs_gemv_tiles_q4_k_avx2(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a, size_t ab,
                                        int64_t n_act, int64_t n, float *out, int64_t os) {
    for (int64_t t = 0; t < n_act; t += Q4K_GEMV_ACTS) {
        const int64_t nt = n_act - t < Q4K_GEMV_ACTS ? n_act - t : Q4K_GEMV_ACTS;
        const uint8_t *at = a + (size_t)t * ab;
        float *ot = out + t * os;
        if (nt == 4) q4_k_gemv_acts(w, rb, n_rows, at, ab, 4, n, ot, os);
        else if (nt == 3) q4_k_gemv_acts(w, rb, n_rows, at, ab, 3, n, ot, os);
        else if (nt == 2) q4_k_gemv_acts(w, rb, n_rows, at, ab, 2, n, ot, os);
        else q4_k_gemv_acts(w, rb, n_rows, at, ab, 1, n, ot, os);
    }
}

FS_AVX2_FN void fs_gemm_q4_k_avx2(const uint8_t *w, size_t row_bytes, int64_t n_rows, const uint8_t *act,
                                           int64_t n, float *out) {
    rows_q4_k_gemm_avx2(w, row_bytes, n_rows, act, n, out);
}

/* Q6_K: one weight row x RN activation rows; each 32 of the row's 6-bit values and their scales are
 * unpacked once (q6_k_group_unpack) for all RN rows, one group at a time, so that with RN = 4
 * the four activations' sums, the group and the packed bytes all stay in the 16 registers (unpacking a
 * whole half, 8 vectors, first spilled: 2.3x the 1-row time at 4 rows). Same integer products per
 * lane as dot_q6_k_avx2 (the lanes' int32 sums are exact in any order), same float operations. */
FS_VD_INLINE FS_AVX2_FN void tile_q6_k(const uint8_t *x, const uint8_t *a, size_t ab, int64_t nb, float *out, int64_t os,
                                       const int RN) {
    const __m256i m32s = _mm256_set1_epi8(32);
    __m256 acc[4];
    for (int j = 0; j < RN; j++) acc[j] = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q6_K) {
        const float dx = h2f(x + 208);
        const __m128i scales = _mm_loadu_si128((const __m128i *)(x + 192));
        __m256i sumi[4];
        for (int j = 0; j < RN; j++) sumi[j] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const __m256i b1 = _mm256_loadu_si256((const __m256i *)(x + 64 * h));
            const __m256i b2 = _mm256_loadu_si256((const __m256i *)(x + 64 * h + 32));
            const __m256i bh = _mm256_loadu_si256((const __m256i *)(x + 128 + 32 * h));
            for (int k = 0; k < 4; k++) {
                __m256i q4, sc16;
                q6_k_group_unpack(b1, b2, bh, scales, h, k, &q4, &sc16);
                for (int j = 0; j < RN; j++) {
                    const __m256i q8 = _mm256_loadu_si256(
                        (const __m256i *)(a + (size_t)j * ab + (size_t)ib * B_Q8_K + Q8K_QS + 128 * h + 32 * k));
                    const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q4, q8), _mm256_maddubs_epi16(m32s, q8));
                    sumi[j] = _mm256_add_epi32(sumi[j], _mm256_madd_epi16(sc16, p));
                }
            }
        }
        for (int j = 0; j < RN; j++) {
            const float d = rd_f32(a + (size_t)j * ab + (size_t)ib * B_Q8_K) * dx;
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi[j]), acc[j]);
        }
    }
    for (int j = 0; j < RN; j++) out[(size_t)j * os] = hsum_f32x8(acc[j]);
}

/* Q4_K with the arithmetic of llama.cpp's repacked gemm (dot_q4_k_gemm_avx2): one weight row x RN
 * activation rows; the row's scales and nibbles are unpacked once per super-block for all RN rows.
 * The per-64-element integer sums I_c and M_c are exact whatever the order they are added in, and
 * the float operations on them are those of dot_q4_k_gemm_avx2, so the bits are the same. */
FS_VD_INLINE FS_AVX2_FN void tile_q4_k_gemm(const uint8_t *x, const uint8_t *a, size_t ab, int64_t nb, float *out,
                                            int64_t os, const int RN) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m128 acc[4];
    for (int j = 0; j < RN; j++) acc[j] = _mm_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q4_K) {
        uint8_t sc[8], mn[8];
        scale_min_k4(x + 4, sc, mn);
        int32_t dd32;
        memcpy(&dd32, x, sizeof dd32);
        const __m128 dxm = _mm_cvtph_ps(_mm_cvtsi32_si128(dd32)); /* [x.d, x.dmin, 0, 0] */
        __m256i ql[4], qh[4];
        for (int c = 0; c < 4; c++) {
            const __m256i bits = _mm256_loadu_si256((const __m256i *)(x + 16 + 32 * c));
            ql[c] = _mm256_and_si256(bits, m4);
            qh[c] = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
        }
        for (int j = 0; j < RN; j++) {
            const uint8_t *y = a + (size_t)j * ab + (size_t)ib * B_Q8_K;
            const int8_t *q8 = (const int8_t *)(y + Q8K_QS);
            __m256i lanes[4];
            for (int c = 0; c < 4; c++) {
                const __m256i pl = _mm256_maddubs_epi16(ql[c], _mm256_loadu_si256((const __m256i *)(q8 + 64 * c)));
                const __m256i ph = _mm256_maddubs_epi16(qh[c], _mm256_loadu_si256((const __m256i *)(q8 + 64 * c + 32)));
                lanes[c] = _mm256_add_epi32(_mm256_madd_epi16(_mm256_set1_epi16(sc[2 * c]), pl),
                                            _mm256_madd_epi16(_mm256_set1_epi16(sc[2 * c + 1]), ph));
            }
            const __m128 i = _mm_cvtepi32_ps(hsum_i32x8x4(lanes[0], lanes[1], lanes[2], lanes[3]));
            const __m128 m = _mm_cvtepi32_ps(kq_min_prod(mn, y));
            __m128 dd = _mm_mul_ps(dxm, _mm_set1_ps(rd_f32(y)));
            dd = _mm_movelh_ps(dd, dd); /* [d, dmin, d, dmin] */
            const __m128 im01 = _mm_unpacklo_ps(i, m);
            const __m128 im23 = _mm_unpackhi_ps(i, m);
            acc[j] = _mm_fmadd_ps(im01, dd, acc[j]);
            acc[j] = _mm_fmadd_ps(_mm_movehl_ps(im01, im01), dd, acc[j]);
            acc[j] = _mm_fmadd_ps(im23, dd, acc[j]);
            acc[j] = _mm_fmadd_ps(_mm_movehl_ps(im23, im23), dd, acc[j]);
        }
    }
    for (int j = 0; j < RN; j++) out[(size_t)j * os] = _mm_cvtss_f32(_mm_sub_ss(acc[j], _mm_movehdup_ps(acc[j])));
}

static FS_TILES_1X4(gemm_tiles_q4_k_1x4_avx2, tile_q4_k_gemm, QK_K)

/* ---- Q4_K prefill: 8 weight rows x 4 tokens, the rows interleaved on the fly ----------------------
 * llama.cpp's x86 gemm (ggml_gemm_q4_K_8x8_q8_K) holds 8 weight rows in the lanes of one vector, so
 * its integer sums need no horizontal reductions; it gets that from a layout made at load time. Here
 * each 8-row group of a tile is interleaved into a scratch buffer when the product starts (once per
 * group and call, shared by every token of the batch) and the file's mapping stays as it is.
 * Per super-block the buffer holds (Q4K8_* offsets): the quants unpacked to bytes, [sub-block j][group
 * g of 4 elements][row r][4 bytes] (one 32-byte vector per (j, g): 8 rows x elements 32j + 4g .. + 3);
 * each sub-block's scale per row as a pair of int16 (for madd); each 64-element chunk's two mins per
 * row as an int16 pair; and fp16(d), fp16(dmin) per row as floats. */
#define Q4K8_Q 0
#define Q4K8_SC 2048
#define Q4K8_MN (Q4K8_SC + 8 * 32)
#define Q4K8_D (Q4K8_MN + 4 * 32)
#define Q4K8_DMIN (Q4K8_D + 32)
#define Q4K8_BLOCK (Q4K8_DMIN + 32) /* 2496 bytes per super-block of 8 rows */

/* 8x8 transpose of int32: out[g] lane r = in[r] lane g. */
static inline FS_AVX2_FN void transpose_i32x8x8(const __m256i in[8], __m256i out[8]) {
    __m256i t[8], u[8];
    for (int k = 0; k < 4; k++) {
        t[2 * k] = _mm256_unpacklo_epi32(in[2 * k], in[2 * k + 1]);
        t[2 * k + 1] = _mm256_unpackhi_epi32(in[2 * k], in[2 * k + 1]);
    }
    for (int k = 0; k < 2; k++) {
        u[4 * k + 0] = _mm256_unpacklo_epi64(t[4 * k + 0], t[4 * k + 2]);
        u[4 * k + 1] = _mm256_unpackhi_epi64(t[4 * k + 0], t[4 * k + 2]);
        u[4 * k + 2] = _mm256_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]);
        u[4 * k + 3] = _mm256_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]);
    }
    /* u[0..3]: rows 0-3, columns (0,4), (1,5), (2,6), (3,7) by 128-bit half; u[4..7]: rows 4-7 */
    for (int k = 0; k < 4; k++) {
        out[k] = _mm256_permute2x128_si256(u[k], u[4 + k], 0x20);
        out[k + 4] = _mm256_permute2x128_si256(u[k], u[4 + k], 0x31);
    }
}

/* Chunk c (elements 64c .. 64c + 64) of one super-block (at x, row_bytes apart) of 8 Q4_K rows, unpacked
 * to bytes and transposed: t[h][g] lane r = elements 32(2c + h) + 4g .. + 3 of row r (h = 0: the low
 * nibbles, sub-block 2c; h = 1: the high nibbles, sub-block 2c + 1). The packed 32-bit words are
 * transposed first (byte j of word g holds elements 4g + j of both sub-blocks), then split into
 * nibbles: one 8 x 8 transpose per chunk instead of one per sub-block. */
static inline FS_AVX2_FN void q4_k_quants_t8(const uint8_t *x, size_t row_bytes, int c, __m256i t[2][8]) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256i bits[8], tb[8];
    for (int r = 0; r < 8; r++) bits[r] = _mm256_loadu_si256((const __m256i *)(x + (size_t)r * row_bytes + 16 + 32 * c));
    transpose_i32x8x8(bits, tb);
    for (int g = 0; g < 8; g++) {
        t[0][g] = _mm256_and_si256(tb[g], m4);
        t[1][g] = _mm256_and_si256(_mm256_srli_epi16(tb[g], 4), m4);
    }
}

/* The scale part of one interleaved super-block (o + Q4K8_SC .. Q4K8_BLOCK) of 8 Q4_K rows (x0: the
 * block in row 0, row_bytes apart). The scales and mins of each row come from q4_k_scales_mins16
 * ([sc_0..7 | mn_0..7] as int16) and are transposed to one row per lane with vector shuffles; d and dmin
 * are converted by one vcvtph2ps each (exact, as h2f). At a few tokens per call the interleave is most of
 * the product's time (1B Q4_K_M, ffn_gate 8192 x 2048, 4 tokens: 57% of the samples with the scales
 * unpacked by scalar code). */
FS_VD_INLINE FS_AVX2_FN void q4_k_scales8(const uint8_t *x0, size_t row_bytes, uint8_t *o) {
    __m256i sc[8], sct[8];
    __m128i mn[8];
    for (int r = 0; r < 8; r++) {
        const __m256i sm = q4_k_scales_mins16(x0 + (size_t)r * row_bytes + 4);
        const __m128i s16 = _mm256_castsi256_si128(sm);
        /* lane j: (sc_j, sc_j) as an int16 pair */
        sc[r] = _mm256_set_m128i(_mm_unpackhi_epi16(s16, s16), _mm_unpacklo_epi16(s16, s16));
        mn[r] = _mm256_extracti128_si256(sm, 1); /* lane c: (mn_2c, mn_2c+1) */
    }
    transpose_i32x8x8(sc, sct);
    for (int j = 0; j < 8; j++) _mm256_storeu_si256((__m256i *)(o + Q4K8_SC + j * 32), sct[j]);
    /* mins: lanes [c][r]; rows k and k + 4 share a vector, a 4 x 4 transpose per 128-bit half */
    __m256i m[4], u[4];
    for (int k = 0; k < 4; k++) m[k] = _mm256_set_m128i(mn[k + 4], mn[k]);
    u[0] = _mm256_unpacklo_epi32(m[0], m[1]);
    u[1] = _mm256_unpackhi_epi32(m[0], m[1]);
    u[2] = _mm256_unpacklo_epi32(m[2], m[3]);
    u[3] = _mm256_unpackhi_epi32(m[2], m[3]);
    _mm256_storeu_si256((__m256i *)(o + Q4K8_MN + 0 * 32), _mm256_unpacklo_epi64(u[0], u[2]));
    _mm256_storeu_si256((__m256i *)(o + Q4K8_MN + 1 * 32), _mm256_unpackhi_epi64(u[0], u[2]));
    _mm256_storeu_si256((__m256i *)(o + Q4K8_MN + 2 * 32), _mm256_unpacklo_epi64(u[1], u[3]));
    _mm256_storeu_si256((__m256i *)(o + Q4K8_MN + 3 * 32), _mm256_unpackhi_epi64(u[1], u[3]));
    /* the rows' (d, dmin) fp16 words -> [d_0..7 | dmin_0..7] -> floats */
    const __m256i dd = _mm256_setr_epi32((int)rd_u32(x0), (int)rd_u32(x0 + row_bytes), (int)rd_u32(x0 + 2 * row_bytes),
                                         (int)rd_u32(x0 + 3 * row_bytes), (int)rd_u32(x0 + 4 * row_bytes),
                                         (int)rd_u32(x0 + 5 * row_bytes), (int)rd_u32(x0 + 6 * row_bytes),
                                         (int)rd_u32(x0 + 7 * row_bytes));
    const __m256i h = q4_k_split_d_dmin(dd);
    _mm256_storeu_ps((float *)(o + Q4K8_D), _mm256_cvtph_ps(_mm256_castsi256_si128(h)));
    _mm256_storeu_ps((float *)(o + Q4K8_DMIN), _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1)));
}

/* Interleave super-blocks 0 .. nb of 8 Q4_K rows (w, row_bytes apart) into buf (nb * Q4K8_BLOCK bytes). */
static inline FS_AVX2_FN void q4_k_interleave8(const uint8_t *w, size_t row_bytes, int64_t nb, uint8_t *buf) {
    for (int64_t ib = 0; ib < nb; ib++) {
        uint8_t *o = buf + (size_t)ib * Q4K8_BLOCK;
        const uint8_t *x0 = w + (size_t)ib * B_Q4_K;
        q4_k_scales8(x0, row_bytes, o);
        for (int c = 0; c < 4; c++) {
            __m256i t[2][8];
            q4_k_quants_t8(x0, row_bytes, c, t);
            for (int hh = 0; hh < 2; hh++)
                for (int g = 0; g < 8; g++)
                    _mm256_storeu_si256((__m256i *)(o + Q4K8_Q + ((2 * c + hh) * 8 + g) * 32), t[hh][g]);
        }
    }
}

/* Super-block ib of RN <= 4 Q8_K activation rows (a, ab apart): y[t] = its block in row t,
 * spair[t][c] = (s_2c, s_2c+1) as an int16 pair, s_j = the sum of sub-block j's quants. */
FS_VD_INLINE FS_AVX2_FN void q8_k_tokens(const uint8_t *a, size_t ab, int64_t ib, const int RN, const uint8_t *y[4],
                                         int32_t spair[4][4]) {
    for (int t = 0; t < RN; t++) {
        y[t] = a + (size_t)t * ab + (size_t)ib * B_Q8_K;
        _mm_storeu_si128((__m128i *)spair[t], q8_k_sub_sums(y[t]));
    }
}

/* Sub-block j of 8 interleaved Q4_K rows against RN <= 4 tokens (y[t]: their Q8_K blocks): the 4-element
 * groups g summed as int16 per token, then the scales' madd (p + Q4K8_SC) added to isum[t]. The weight
 * bytes of group g are the 32 bytes at wq + 32 g (an interleaved buffer: gemm8_q4_k), or, with wq NULL,
 * half h's nibbles of the transposed packed words tb[g] (gemm8_q4_k_direct); wq is a constant at each
 * call, so the choice folds away. */
FS_VD_INLINE FS_AVX2_FN void q4_k_sub_block_sums(const uint8_t *wq, const __m256i *tb, const int h,
                                                 const uint8_t *const y[4], const int j, const uint8_t *p, const int RN,
                                                 __m256i isum[4]) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256i s16[4];
    for (int t = 0; t < RN; t++) s16[t] = _mm256_setzero_si256();
    for (int g = 0; g < 8; g++) {
        const __m256i w = wq != NULL ? _mm256_loadu_si256((const __m256i *)(wq + 32 * g))
                        : h ? _mm256_and_si256(_mm256_srli_epi16(tb[g], 4), m4) : _mm256_and_si256(tb[g], m4);
        for (int t = 0; t < RN; t++) {
            int32_t y4;
            memcpy(&y4, y[t] + Q8K_QS + 32 * j + 4 * g, 4);
            s16[t] = _mm256_add_epi16(s16[t], _mm256_maddubs_epi16(w, _mm256_set1_epi32(y4)));
        }
    }
    const __m256i scv = _mm256_loadu_si256((const __m256i *)(p + Q4K8_SC + j * 32));
    for (int t = 0; t < RN; t++) isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(s16[t], scv));
}

/* 8 interleaved rows x RN <= 4 tokens (a: their Q8_K rows, ab apart), written at out[t * os + r].
 * Per token and 64-element chunk c, in order: acc = fma((float)I_c, fp16(x.d) * y.d, acc),
 * accm = fma((float)M_c, fp16(x.dmin) * y.d, accm), one row per lane; out = acc - accm: the float
 * operations of ggml_gemm_q4_K_8x8_q8_K and of tile_q4_k_gemm. I_c: the 8 groups of a sub-block are
 * summed as int16 (at most 8 * 2 * 15 * 127 = 30,480 in magnitude: exact) before the scale's madd. */
FS_VD_INLINE FS_AVX2_FN void gemm8_q4_k(const uint8_t *buf, int64_t nb, const uint8_t *a, size_t ab, float *out,
                                        int64_t os, const int RN) {
    __m256 acc[4], accm[4];
    for (int t = 0; t < RN; t++) acc[t] = accm[t] = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *p = buf + (size_t)ib * Q4K8_BLOCK;
        const uint8_t *y[4];
        int32_t spair[4][4];
        q8_k_tokens(a, ab, ib, RN, y, spair);
        const __m256 dx = _mm256_loadu_ps((const float *)(p + Q4K8_D));
        const __m256 dmx = _mm256_loadu_ps((const float *)(p + Q4K8_DMIN));
        __m256 d[4], dmin[4]; /* fp16(x.d) * y.d and fp16(x.dmin) * y.d per token */
        for (int t = 0; t < RN; t++) {
            const __m256 yd = _mm256_set1_ps(rd_f32(y[t]));
            d[t] = _mm256_mul_ps(dx, yd);
            dmin[t] = _mm256_mul_ps(dmx, yd);
        }
        for (int c = 0; c < 4; c++) {
            __m256i isum[4];
            for (int t = 0; t < RN; t++) isum[t] = _mm256_setzero_si256();
            for (int h = 0; h < 2; h++) q4_k_sub_block_sums(p + Q4K8_Q + (2 * c + h) * 256, NULL, h, y, 2 * c + h, p, RN, isum);
            const __m256i mnv = _mm256_loadu_si256((const __m256i *)(p + Q4K8_MN + c * 32));
            for (int t = 0; t < RN; t++) {
                const __m256i msum = _mm256_madd_epi16(mnv, _mm256_set1_epi32(spair[t][c]));
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), d[t], acc[t]);
                accm[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(msum), dmin[t], accm[t]);
            }
        }
    }
    for (int t = 0; t < RN; t++) _mm256_storeu_ps(out + (size_t)t * os, _mm256_sub_ps(acc[t], accm[t]));
}

/* gemm8_q4_k without the buffer, for a call of at most 4 tokens (one token group, so an interleaved
 * super-block would be written once and read once): per super-block the scales go to a small stack
 * block, and each 64-element chunk's quants are transposed in registers and used at once. The integer
 * sums and the float operations and their order are gemm8_q4_k's, so are the bits. */
FS_VD_INLINE FS_AVX2_FN void gemm8_q4_k_direct(const uint8_t *w, size_t row_bytes, int64_t nb, const uint8_t *a,
                                               size_t ab, float *out, int64_t os, const int RN) {
    __m256 acc[4], accm[4];
    for (int t = 0; t < RN; t++) acc[t] = accm[t] = _mm256_setzero_ps();
    uint8_t p[Q4K8_BLOCK]; /* only the scale part, p + Q4K8_SC .., is used: an interleaved block's layout */
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *x0 = w + (size_t)ib * B_Q4_K;
        _mm_prefetch((const char *)(x0 + Q4K_GEMV_PREFETCH), _MM_HINT_T0);
        q4_k_scales8(x0, row_bytes, p);
        const uint8_t *y[4];
        int32_t spair[4][4];
        q8_k_tokens(a, ab, ib, RN, y, spair);
        const __m256 dx = _mm256_loadu_ps((const float *)(p + Q4K8_D));
        const __m256 dmx = _mm256_loadu_ps((const float *)(p + Q4K8_DMIN));
        for (int c = 0; c < 4; c++) {
            __m256i bits[8], tb[8];
            for (int r = 0; r < 8; r++)
                bits[r] = _mm256_loadu_si256((const __m256i *)(x0 + (size_t)r * row_bytes + 16 + 32 * c));
            transpose_i32x8x8(bits, tb);
            __m256i isum[4];
            for (int t = 0; t < RN; t++) isum[t] = _mm256_setzero_si256();
            /* the low nibbles (sub-block 2c), then the high ones (2c + 1), as gemm8_q4_k's h loop */
            q4_k_sub_block_sums(NULL, tb, 0, y, 2 * c, p, RN, isum);
            q4_k_sub_block_sums(NULL, tb, 1, y, 2 * c + 1, p, RN, isum);
            const __m256i mnv = _mm256_loadu_si256((const __m256i *)(p + Q4K8_MN + c * 32));
            for (int t = 0; t < RN; t++) {
                const __m256 yd = _mm256_set1_ps(rd_f32(y[t]));
                const __m256i msum = _mm256_madd_epi16(mnv, _mm256_set1_epi32(spair[t][c]));
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_mul_ps(dx, yd), acc[t]);
                accm[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_mul_ps(dmx, yd), accm[t]);
            }
        }
    }
    for (int t = 0; t < RN; t++) _mm256_storeu_ps(out + (size_t)t * os, _mm256_sub_ps(acc[t], accm[t]));
}

/* Interleaves `group` rows of a Q4_K tile into a buffer (q4_k_interleave8 / 16). */
typedef void (*q4k_interleave_fn)(const uint8_t *w, size_t row_bytes, int64_t nb, uint8_t *buf);
/* The interleaved rows x RN <= 4 tokens (gemm8_q4_k / gemm16_q4_k). */
typedef void (*q4k_gemm_fn)(const uint8_t *buf, int64_t nb, const uint8_t *a, size_t ab, float *out, int64_t os,
                            const int RN);

/* The Q4_K gemm tiles: groups of `group` rows interleaved once per group (block_bytes per super-block)
 * and multiplied 4 tokens at a time by `gemm`; the rows left over (n_rows % group) go to `rest`.
 * interleave and gemm are constants at each call, so they are inlined. */
FS_VD_INLINE FS_AVX2_FN void q4_k_gemm_groups(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a, size_t ab,
                                              int64_t n_act, int64_t n, float *out, int64_t os, int group,
                                              size_t block_bytes, q4k_interleave_fn interleave, q4k_gemm_fn gemm,
                                              fs_tiles_fn rest) {
    const int64_t nb = n / QK_K;
    int64_t rg = nb > 0 ? n_rows - n_rows % group : 0;
    uint8_t *buf = rg > 0 ? (uint8_t *)malloc((size_t)nb * block_bytes) : NULL;
    if (buf == NULL) rg = 0;
    for (int64_t r = 0; r < rg; r += group) {
        interleave(w + (size_t)r * rb, rb, nb, buf);
        for (int64_t j = 0; j < n_act; j += 4) {
            const int64_t rn = n_act - j < 4 ? n_act - j : 4;
            const uint8_t *aj = a + (size_t)j * ab;
            float *o = out + j * os + r;
            if (rn == 4) gemm(buf, nb, aj, ab, o, os, 4);
            else if (rn == 3) gemm(buf, nb, aj, ab, o, os, 3);
            else if (rn == 2) gemm(buf, nb, aj, ab, o, os, 2);
            else gemm(buf, nb, aj, ab, o, os, 1);
        }
    }
    free(buf);
    if (rg < n_rows) rest(w + (size_t)rg * rb, rb, n_rows - rg, a, ab, n_act, n, out + rg, os);
}

/* The Q4_K gemm tiles: groups of 8 rows through gemm8_q4_k, the rows left over (n_rows % 8) one at a
 * time through tile_q4_k_gemm. Same bits either way. */
#ifndef Q4K_DIRECT_MAX_ACTS
/* Calls of up to this many tokens take gemm8_q4_k_direct. A/B in one process (old and new builds loaded
 * side by side, min of 15, one thread, this repo's AVX2 Zen 3 VM, the 1B Q4_K_M file's Q4_K matrices):
 * 4 tokens 1.26-1.41x the buffered gemm, 8 tokens 1.01-1.09x against the buffered one's 1.03-1.16x. */
#define Q4K_DIRECT_MAX_ACTS 4
#endif
FS_AVX2_FN void fs_gemm_tiles_q4_k_avx2(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a, size_t ab,
                                        int64_t n_act, int64_t n, float *out, int64_t os) {
    if (n_act <= Q4K_DIRECT_MAX_ACTS) {
        const int64_t nb = n / QK_K, rg = n_rows - n_rows % 8;
        for (int64_t r = 0; r < rg; r += 8) {
            for (int64_t j = 0; j < n_act; j += 4) {
                const int64_t rn = n_act - j < 4 ? n_act - j : 4;
                const uint8_t *wr = w + (size_t)r * rb, *aj = a + (size_t)j * ab;
                float *o = out + j * os + r;
                if (rn == 4) gemm8_q4_k_direct(wr, rb, nb, aj, ab, o, os, 4);
                else if (rn == 3) gemm8_q4_k_direct(wr, rb, nb, aj, ab, o, os, 3);
                else if (rn == 2) gemm8_q4_k_direct(wr, rb, nb, aj, ab, o, os, 2);
                else gemm8_q4_k_direct(wr, rb, nb, aj, ab, o, os, 1);
            }
        }
        if (rg < n_rows) gemm_tiles_q4_k_1x4_avx2(w + (size_t)rg * rb, rb, n_rows - rg, a, ab, n_act, n, out + rg, os);
        return;
    }
    q4_k_gemm_groups(w, rb, n_rows, a, ab, n_act, n, out, os, 8, Q4K8_BLOCK, q4_k_interleave8, gemm8_q4_k,
                     gemm_tiles_q4_k_1x4_avx2);
}
FS_TILES_1X4(fs_tiles_q6_k_avx2, tile_q6_k, QK_K)

#endif /* FS_HAVE_AVX2_CODE */

/* ---- AVX-512 (with VNNI): the same products, 64 bytes per instruction ---------------------------
 * Each kernel here computes the same exact integers as its AVX2 counterpart above and then runs that
 * counterpart's float operations unchanged, so the results are the AVX2 ones bit for bit
 * (tests/test_cpu_variants.py). The byte products stay maddubs (unsigned weight x signed activation
 * into int16, as ggml's AVX2 code, so the same saturation-free ranges hold); the scale multiply and
 * the accumulation fold into one VNNI dpwssd. Sub-block scales are spread over 16-bit lanes with one
 * vpermw each. */
#if FS_HAVE_AVX512_CODE

/* Lanes 0..7 of a plus lanes 8..15 of a: the 8 int32 lanes an AVX2 kernel holds for the same work,
 * when the low and high 256 bits of a hold what its two consecutive 256-bit steps did. */
static inline FS_AVX512_FN __m256i fold_i32x16(__m512i a) {
    return _mm256_add_epi32(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));
}

/* vpermw index: 16-bit lanes 0..15 pick lane a, lanes 16..31 lane b. */
static inline FS_AVX512_FN __m512i idx16_halves(int a, int b) {
    return _mm512_inserti64x4(_mm512_set1_epi16((short)a), _mm256_set1_epi16((short)b), 1);
}

/* One Q6_K super-block x unpacked for AVX-512: q[2h + p] = the 6-bit values (0 .. 63) of elements
 * 128h + 64p .. + 64, sc[2h + p] = their scales as 16-bit lanes (lanes 8i .. 8i + 7: scale 8h + 4p + i).
 * Per half h the 64 low-nibble bytes are one load; the 32 high-bit bytes are broadcast to both 256-bit
 * halves and shifted by a different count in each, so q[2h] holds AVX2's q4[0] | q4[1] of that half
 * (q6_k_half_unpack) and q[2h + 1] its q4[2] | q4[3]. */
FS_VD_INLINE FS_AVX512_FN void q6_k_block_unpack512(const uint8_t *x, __m512i q[4], __m512i sc[4]) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    const __m512i shl01 = idx16_halves(4, 2), shr23 = idx16_halves(0, 2); /* 16-bit shift counts */
    const __m512i lane8 = _mm512_srli_epi16(_mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
                                                             16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), 3);
    const __m512i sc16 = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x + 192))));
    for (int h = 0; h < 2; h++) {
        const __m512i b = _mm512_loadu_si512((const void *)(x + 64 * h));
        const __m512i bh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x + 128 + 32 * h)));
        q[2 * h] = _mm512_or_si512(_mm512_and_si512(b, m4), _mm512_and_si512(_mm512_sllv_epi16(bh, shl01), m30));
        q[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(b, 4), m4),
                                       _mm512_and_si512(_mm512_srlv_epi16(bh, shr23), m30));
        for (int p = 0; p < 2; p++)
            sc[2 * h + p] = _mm512_permutexvar_epi16(_mm512_add_epi16(lane8, _mm512_set1_epi16((short)(8 * h + 4 * p))), sc16);
    }
}

/* The 8 int32 lanes of q6_k_row_avx2's sumi for one unpacked Q6_K super-block (q, sc) times the
 * activation quants q8: per 64 elements k, dpwssd(sc[k], maddubs(q[k], y) - maddubs(32, y)), folded
 * to AVX2's lanes. m32: NULL, or the activation's offset products maddubs(32, y) already made (4 per
 * super-block; the same int16 values). */
FS_VD_INLINE FS_AVX512_FN __m256i q6_k_block_lanes512(const __m512i q[4], const __m512i sc[4], const int8_t *q8,
                                                      const __m512i *m32) {
    const __m512i m32s = _mm512_set1_epi8(32);
    __m512i sumi = _mm512_setzero_si512();
    for (int k = 0; k < 4; k++) {
        const __m512i y = _mm512_loadu_si512((const void *)(q8 + 64 * k));
        const __m512i off = m32 != NULL ? m32[k] : _mm512_maddubs_epi16(m32s, y);
        sumi = _mm512_dpwssd_epi32(sumi, _mm512_sub_epi16(_mm512_maddubs_epi16(q[k], y), off), sc[k]);
    }
    return fold_i32x16(sumi);
}

/* Q6_K rows with AVX-512 (fs_rows_q6_k_avx2's bits): the activation's offset products made once per
 * call, then each row front to back: acc = fma(y.d * fp16(x.d), lanes, acc), result hsum(acc). */
FS_AVX512_FN void fs_rows_q6_k_avx512(const uint8_t *w, size_t row_bytes, int64_t n_rows, const uint8_t *act,
                                      int64_t n, float *out) {
    const int64_t nb = n / QK_K;
    if (nb > Q6K_ROWS_MAX_NB) {
        fs_rows_q6_k_avx2(w, row_bytes, n_rows, act, n, out);
        return;
    }
    __m512i m32[Q6K_ROWS_MAX_NB][4];
    const __m512i m32s = _mm512_set1_epi8(32);
    for (int64_t ib = 0; ib < nb; ib++)
        for (int j = 0; j < 4; j++)
            m32[ib][j] = _mm512_maddubs_epi16(m32s, _mm512_loadu_si512((const void *)(act + (size_t)ib * B_Q8_K + Q8K_QS + 64 * j)));
    for (int64_t r = 0; r < n_rows; r++) {
        const uint8_t *x = w + (size_t)r * row_bytes, *y = act;
        __m256 acc = _mm256_setzero_ps();
        for (int64_t ib = 0; ib < nb; ib++, x += B_Q6_K, y += B_Q8_K) {
            FS_ROW_PREFETCH(x, B_Q6_K, Q6K_ROWS_PREFETCH);
            const float d = rd_f32(y) * h2f(x + 208);
            __m512i q[4], sc[4];
            q6_k_block_unpack512(x, q, sc);
            const __m256i sumi = q6_k_block_lanes512(q, sc, (const int8_t *)(y + Q8K_QS), m32[ib]);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        }
        out[r] = hsum_f32x8(acc);
    }
}

/* Q6_K: one weight row x RN activation rows (tile_q6_k's bits): the row's 6-bit values and their
 * scales are unpacked once per super-block for all RN rows; the offset products maddubs(32, y) are made
 * per activation row. */
FS_VD_INLINE FS_AVX512_FN void tile_q6_k_avx512(const uint8_t *x, const uint8_t *a, size_t ab, int64_t nb, float *out,
                                                int64_t os, const int RN) {
    __m256 acc[4];
    for (int j = 0; j < RN; j++) acc[j] = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q6_K) {
        const float dx = h2f(x + 208);
        __m512i q[4], sc[4];
        q6_k_block_unpack512(x, q, sc);
        for (int j = 0; j < RN; j++) {
            const uint8_t *y = a + (size_t)j * ab + (size_t)ib * B_Q8_K;
            const __m256i sumi = q6_k_block_lanes512(q, sc, (const int8_t *)(y + Q8K_QS), NULL);
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(rd_f32(y) * dx), _mm256_cvtepi32_ps(sumi), acc[j]);
        }
    }
    for (int j = 0; j < RN; j++) out[(size_t)j * os] = hsum_f32x8(acc[j]);
}

FS_TILES_1X4_ATTR(fs_tiles_q6_k_avx512, tile_q6_k_avx512, QK_K, FS_AVX512_FN)

/* ---- Q4_K prefill with AVX-512: 16 weight rows x 4 tokens ----------------------------------------
 * gemm8_q4_k's scheme with 16 rows in the 16 lanes of a vector: each 16-row group of a tile is
 * interleaved once per call into Q4K16_* (per super-block: the quants as [sub-block j][group g of 4
 * elements][row r][4 bytes], one 64-byte vector per (j, g); each sub-block's scale per row as an int32;
 * each chunk's two mins per row as an int16 pair; fp16(d), fp16(dmin) per row as floats). The byte
 * products of a sub-block accumulate in int32 with VNNI dpbusd (exact: no int16 step to saturate), then
 * meet the scale in one mullo. */
#define Q4K16_Q 0
#define Q4K16_SC 4096
#define Q4K16_MN (Q4K16_SC + 8 * 64)
#define Q4K16_D (Q4K16_MN + 4 * 64)
#define Q4K16_DMIN (Q4K16_D + 64)
#define Q4K16_BLOCK (Q4K16_DMIN + 64) /* 4992 bytes per super-block of 16 rows */

static inline FS_AVX512_FN void q4_k_interleave16(const uint8_t *w, size_t row_bytes, int64_t nb, uint8_t *buf) {
    for (int64_t ib = 0; ib < nb; ib++) {
        uint8_t *o = buf + (size_t)ib * Q4K16_BLOCK;
        int32_t sc[8][16], mn[4][16];
        float d[16], dmin[16];
        for (int r = 0; r < 16; r++) {
            const uint8_t *x = w + (size_t)r * row_bytes + (size_t)ib * B_Q4_K;
            uint8_t s8[8], m8[8];
            scale_min_k4(x + 4, s8, m8);
            for (int j = 0; j < 8; j++) sc[j][r] = s8[j];
            for (int c = 0; c < 4; c++) mn[c][r] = (int32_t)m8[2 * c] | ((int32_t)m8[2 * c + 1] << 16);
            d[r] = h2f(x);
            dmin[r] = h2f(x + 2);
        }
        memcpy(o + Q4K16_SC, sc, sizeof sc);
        memcpy(o + Q4K16_MN, mn, sizeof mn);
        memcpy(o + Q4K16_D, d, sizeof d);
        memcpy(o + Q4K16_DMIN, dmin, sizeof dmin);
        for (int c = 0; c < 4; c++)
            for (int half = 0; half < 2; half++) {
                __m256i t[2][8];
                q4_k_quants_t8(w + (size_t)(8 * half) * row_bytes + (size_t)ib * B_Q4_K, row_bytes, c, t);
                for (int h = 0; h < 2; h++)
                    for (int g = 0; g < 8; g++)
                        _mm256_storeu_si256((__m256i *)(o + Q4K16_Q + ((2 * c + h) * 8 + g) * 64 + 32 * half), t[h][g]);
            }
    }
}

/* 16 interleaved rows x RN <= 4 tokens: gemm8_q4_k's float operations per row lane, so its bits. */
FS_VD_INLINE FS_AVX512_FN void gemm16_q4_k(const uint8_t *buf, int64_t nb, const uint8_t *a, size_t ab, float *out,
                                           int64_t os, const int RN) {
    __m512 acc[4], accm[4];
    for (int t = 0; t < RN; t++) acc[t] = accm[t] = _mm512_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *p = buf + (size_t)ib * Q4K16_BLOCK;
        const uint8_t *y[4];
        int32_t spair[4][4];
        q8_k_tokens(a, ab, ib, RN, y, spair);
        const __m512 dx = _mm512_loadu_ps((const float *)(p + Q4K16_D));
        const __m512 dmx = _mm512_loadu_ps((const float *)(p + Q4K16_DMIN));
        __m512 d[4], dmin[4];
        for (int t = 0; t < RN; t++) {
            const __m512 yd = _mm512_set1_ps(rd_f32(y[t]));
            d[t] = _mm512_mul_ps(dx, yd);
            dmin[t] = _mm512_mul_ps(dmx, yd);
        }
        for (int c = 0; c < 4; c++) {
            __m512i isum[4];
            for (int t = 0; t < RN; t++) isum[t] = _mm512_setzero_si512();
            for (int h = 0; h < 2; h++) {
                const int j = 2 * c + h;
                __m512i s32[4];
                for (int t = 0; t < RN; t++) s32[t] = _mm512_setzero_si512();
                for (int g = 0; g < 8; g++) {
                    const __m512i wq = _mm512_loadu_si512((const void *)(p + Q4K16_Q + (j * 8 + g) * 64));
                    for (int t = 0; t < RN; t++) {
                        int32_t y4;
                        memcpy(&y4, y[t] + Q8K_QS + 32 * j + 4 * g, 4);
                        s32[t] = _mm512_dpbusd_epi32(s32[t], wq, _mm512_set1_epi32(y4));
                    }
                }
                const __m512i scv = _mm512_loadu_si512((const void *)(p + Q4K16_SC + j * 64));
                for (int t = 0; t < RN; t++) isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(s32[t], scv));
            }
            const __m512i mnv = _mm512_loadu_si512((const void *)(p + Q4K16_MN + c * 64));
            for (int t = 0; t < RN; t++) {
                const __m512i msum = _mm512_madd_epi16(mnv, _mm512_set1_epi32(spair[t][c]));
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), d[t], acc[t]);
                accm[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(msum), dmin[t], accm[t]);
            }
        }
    }
    for (int t = 0; t < RN; t++) _mm512_storeu_ps(out + (size_t)t * os, _mm512_sub_ps(acc[t], accm[t]));
}

/* The Q4_K gemm tiles with AVX-512: groups of 16 rows through gemm16_q4_k, the rest through the AVX2
 * tiles (8-row groups, then single rows). Same bits everywhere. */
/* ---- Q5_K prefill with AVX-512: tile_q5_k with two activation rows per 512-bit vector -------------
 * tile_q5_k's integers and float operations, with activation rows 2p and 2p + 1 side by side in the
 * two 256-bit halves of one vector (an odd last row paired with itself, its copy's results dropped):
 * each weight pair of groups (q5_k_pair_unpack, 256-bit) is broadcast to both halves once and meets
 * both rows in one maddubs, and the scale's madd and the add into the int32 lanes are one VNNI dpwssd
 * (the same exact sums: no int16 step saturates, |lanes| < 2^24). Each half's 8 lanes are AVX2's lanes
 * for its row, so the FMAs per lane and the final hsum are tile_q5_k's: the same bits. The activation
 * pairs' bytes are interleaved once per group of 8 rows (per super-block, pair p, group g: row 2p's 32
 * bytes of group g, then row 2p + 1's), one load per use. */
#define Q5K512_PAIRS (FS_TILE_RN8 / 2)
#define Q5K512_SB_BYTES (Q5K512_PAIRS * 8 * 64) /* one super-block of the interleaved activations */

static inline FS_AVX512_FN void q5_k_act_pairs(const uint8_t *a, size_t ab, int64_t nb, int rn, uint8_t *yp) {
    for (int64_t ib = 0; ib < nb; ib++)
        for (int p = 0; p < (rn + 1) / 2; p++) {
            const uint8_t *y0 = a + (size_t)(2 * p) * ab + (size_t)ib * B_Q8_K + Q8K_QS;
            const uint8_t *y1 = a + (size_t)(2 * p + 1 < rn ? 2 * p + 1 : 2 * p) * ab + (size_t)ib * B_Q8_K + Q8K_QS;
            uint8_t *d = yp + (size_t)ib * Q5K512_SB_BYTES + (size_t)p * 8 * 64;
            for (int g = 0; g < 8; g++)
                _mm512_storeu_si512((void *)(d + 64 * g),
                                    _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(y0 + 32 * g))),
                                                       _mm256_loadu_si256((const __m256i *)(y1 + 32 * g)), 1));
        }
}

FS_VD_INLINE FS_AVX512_FN void tile_q5_k_avx512(const uint8_t *x, const uint8_t *yp, int64_t nb, float *out, int64_t os,
                                                const kq_act8 *ka, const int RN) {
    const int RP = (RN + 1) / 2;
    __m512 acc[Q5K512_PAIRS];
    for (int p = 0; p < RP; p++) acc[p] = _mm512_setzero_ps();
    __m256 summs = _mm256_setzero_ps(); /* lanes in kq_act8.yd's order */
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q5_K, yp += Q5K512_SB_BYTES) {
        const kq_act8 *k = &ka[ib];
        const float dx = h2f(x);
        const __m256i scb = q5_k_scales_and_mins(x, k, &summs);
        __m512i sumi[Q5K512_PAIRS];
        for (int p = 0; p < RP; p++) sumi[p] = _mm512_setzero_si512();
        __m256i hb = _mm256_loadu_si256((const __m256i *)(x + 16)), sci = _mm256_set1_epi16(0x0100);
        FS_NO_UNROLL
        for (int c = 0; c < 4; c++) {
            __m256i q5l, q5h, scl, sch;
            q5_k_pair_unpack(x, c, scb, &hb, &sci, &q5l, &q5h, &scl, &sch);
            const __m512i zl = _mm512_broadcast_i64x4(q5l), zh = _mm512_broadcast_i64x4(q5h);
            const __m512i sl = _mm512_broadcast_i64x4(scl), sh = _mm512_broadcast_i64x4(sch);
            for (int p = 0; p < RP; p++) {
                const uint8_t *yb = yp + (size_t)p * 8 * 64 + (size_t)(2 * c) * 64;
                sumi[p] = _mm512_dpwssd_epi32(sumi[p], _mm512_maddubs_epi16(zl, _mm512_loadu_si512((const void *)yb)), sl);
                sumi[p] = _mm512_dpwssd_epi32(sumi[p], _mm512_maddubs_epi16(zh, _mm512_loadu_si512((const void *)(yb + 64))), sh);
            }
        }
        /* y.d * fp16(x.d) for all rows in one product; pair p's rows 2p and 2p + 1 sit in lanes p and p + 4 */
        const __m512 d = _mm512_castps256_ps512(_mm256_mul_ps(k->yd, _mm256_set1_ps(dx)));
        for (int p = 0; p < RP; p++) {
            const __m512i idx = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi32(p)), _mm256_set1_epi32(p + 4), 1);
            acc[p] = _mm512_fmadd_ps(_mm512_permutexvar_ps(idx, d), _mm512_cvtepi32_ps(sumi[p]), acc[p]);
        }
    }
    float sm[8];
    _mm256_storeu_ps(sm, summs);
    for (int j = 0; j < RN; j++) {
        const __m512 v = acc[j >> 1];
        const float r = hsum_f32x8(j % 2 == 0 ? _mm512_castps512_ps256(v) : _mm512_extractf32x8_ps(v, 1));
        out[(size_t)j * os] = r + sm[(j >> 1) + 4 * (j & 1)];
    }
}

/* fs_tiles_q5_k_avx2's results (its bits) with tile_q5_k_avx512; rows longer than Q5K_TILE_MAX_NB
 * super-blocks, or no memory for the interleaved activations, go to fs_tiles_q5_k_avx2. */
FS_AVX512_FN void fs_tiles_q5_k_avx512(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a, size_t ab,
                                       int64_t n_act, int64_t n, float *out, int64_t os) {
    const int64_t nb = n / QK_K;
    uint8_t *yp = nb <= Q5K_TILE_MAX_NB ? (uint8_t *)malloc((size_t)nb * Q5K512_SB_BYTES) : NULL;
    if (yp == NULL) {
        fs_tiles_q5_k_avx2(w, rb, n_rows, a, ab, n_act, n, out, os);
        return;
    }
    kq_act8 ka[Q5K_TILE_MAX_NB];
    for (int64_t j = 0; j < n_act; j += FS_TILE_RN8) {
        const int rn = n_act - j < FS_TILE_RN8 ? (int)(n_act - j) : FS_TILE_RN8;
        const uint8_t *aj = a + (size_t)j * ab;
        for (int64_t ib = 0; ib < nb; ib++) kq_act8_fill(&ka[ib], aj + (size_t)ib * B_Q8_K, ab, rn);
        q5_k_act_pairs(aj, ab, nb, rn, yp);
        for (int64_t i = 0; i < n_rows; i++) {
            float *o = out + j * os + i;
            FS_SWITCH_RN8(rn, tile_q5_k_avx512, w + (size_t)i * rb, yp, nb, o, os, ka)
        }
    }
    free(yp);
}

FS_AVX512_FN void fs_gemm_tiles_q4_k_avx512(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a, size_t ab,
                                            int64_t n_act, int64_t n, float *out, int64_t os) {
    q4_k_gemm_groups(w, rb, n_rows, a, ab, n_act, n, out, os, 16, Q4K16_BLOCK, q4_k_interleave16, gemm16_q4_k,
                     fs_gemm_tiles_q4_k_avx2);
}

#endif /* FS_HAVE_AVX512_CODE */

/* ==== the low-bit K-quants: Q2_K and Q3_K ==================================================
 *
 * Block layouts (bytes):
 *   Q2_K, 84:  scales[16] (low nibble: 4-bit scale, high nibble: 4-bit min) | qs[64] | f16 d | f16 dmin
 *   Q3_K, 110: hmask[32] | qs[64] | scales[12] (sixteen 6-bit scales, packed) | f16 d
 * Element order (both): element e = 128h + 32k + l (h = 0..1, k = 0..3, l = 0..31) has the 2-bit
 * field (qs[32h + l] >> 2k) & 3 and belongs to sub-block s = e / 16 (16 elements per scale).
 * Q3_K adds a third bit: q = field - 4 unless bit 4h + k of hmask[l] is set (q in -4 .. 3).
 */


#define Q2K_QS 16
#define Q2K_D 80
#define Q2K_DMIN 82
#define Q3K_QS 32
#define Q3K_SCALES 96
#define Q3K_D 108

/* The sixteen 6-bit Q3_K scales (0 .. 63, before the -32 offset) as bytes, unpacked with the 32-bit
 * aux / kmask shuffle of dequantize_row_q3_K: scale j has low four bits s[j] & 15 (j < 8) or
 * s[j - 8] >> 4 (j >= 8), and high two bits (s[8 + j % 4] >> 2 (j / 4)) & 3. */
static inline void q3_k_scales6(const uint8_t *s, uint8_t out[16]) {
    const uint32_t kmask1 = 0x03030303u, kmask2 = 0x0f0f0f0fu;
    uint32_t a[3], o[4];
    memcpy(a, s, 12);
    o[0] = (a[0] & kmask2) | (((a[2] >> 0) & kmask1) << 4);
    o[1] = (a[1] & kmask2) | (((a[2] >> 2) & kmask1) << 4);
    o[2] = ((a[0] >> 4) & kmask2) | (((a[2] >> 4) & kmask1) << 4);
    o[3] = ((a[1] >> 4) & kmask2) | (((a[2] >> 6) & kmask1) << 4);
    memcpy(out, o, 16);
}

/* The 2-bit fields of a block as one byte per element: a[128h + 32k + l] = (qs[32h + l] >> 2k) & 3. */
FS_VD_INLINE void q2_fields(const uint8_t *qs, int8_t a[QK_K]) {
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) a[128 * h + 32 * k + l] = (int8_t)((qs[32 * h + l] >> (2 * k)) & 3);
}

/* Q3_K values of a block, -4 .. 3: the 2-bit field minus 4 where the hmask bit is clear. */
FS_VD_INLINE void q3_values(const uint8_t *x, int8_t a[QK_K]) {
    const uint8_t *hm = x;
    q2_fields(x + Q3K_QS, a);
    for (int b = 0; b < 8; b++) /* b = 4h + k: elements 32b .. 32b + 32 */
        for (int l = 0; l < 32; l++) a[32 * b + l] = (int8_t)(a[32 * b + l] - (((hm[l] >> b) & 1) ? 0 : 4));
}

/* ---- dequantization (gguf.quants.dequantize) -------------------------------------------------- */

/* Q2_K (dequantize_row_q2_K; gguf-py Q2_K.dequantize_blocks): per sub-block s of 16 elements,
 * dl = d * (float)(scales[s] & 15), ml = dmin * (float)(scales[s] >> 4) (each rounded to float32),
 * y = dl * (float)q - ml with q the 2-bit field (0 .. 3). */
FS_DISPATCH void fs_dequant_q2_k(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *b = src + ib * B_Q2_K;
        const float d = dq_f16(b + Q2K_D), dmin = dq_f16(b + Q2K_DMIN);
        float *y = dst + ib * QK_K;
        for (int s = 0; s < 16; s++) {
            const float dl = d * (float)(b[s] & 0x0F), ml = dmin * (float)(b[s] >> 4);
            const uint8_t *q = b + Q2K_QS + 32 * (s / 8) + 16 * (s & 1);
            const int shift = 2 * ((s % 8) / 2);
            for (int l = 0; l < 16; l++) y[16 * s + l] = dl * (float)((q[l] >> shift) & 3) - ml;
        }
    }
}

/* Q3_K (dequantize_row_q3_K; gguf-py Q3_K.dequantize_blocks): per sub-block s of 16 elements,
 * dl = d * (float)(scale6[s] - 32) (rounded to float32), y = dl * (float)q with q in -4 .. 3. */
FS_DISPATCH void fs_dequant_q3_k(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *b = src + ib * B_Q3_K;
        const float d = dq_f16(b + Q3K_D);
        uint8_t sc[16];
        q3_k_scales6(b + Q3K_SCALES, sc);
        float *y = dst + ib * QK_K;
        for (int s = 0; s < 16; s++) {
            const float dl = d * (float)((int)sc[s] - 32);
            const int h = s / 8, k = (s % 8) / 2, off = 16 * (s & 1);
            const uint8_t *q = b + Q3K_QS + 32 * h + off, *hm = b + off;
            for (int l = 0; l < 16; l++) {
                const int v = ((q[l] >> (2 * k)) & 3) - (((hm[l] >> (4 * h + k)) & 1) ? 0 : 4);
                y[16 * s + l] = dl * (float)v;
            }
        }
    }
}

/* ---- portable dot products: ggml's *_generic functions ------------------------------------------ */

/* ggml_vec_dot_q2_K_q8_K_generic. Per super-block, in exact integers:
 *   isum = sum_s (scales[s] & 15) * sum_{e in s} q[e] * q8[e],  summs = sum_s bsums[s] * (scales[s] >> 4);
 * then in float: dall = y.d * fp16(x.d), dmin = y.d * fp16(x.dmin),
 *   sumf += dall * (float)isum - dmin * (float)summs   (no lane split, no FMA). */
FS_VD_INLINE float dot_q2_k_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    float sumf = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q2_K, y += B_Q8_K) {
        const int8_t *q8 = (const int8_t *)(y + Q8K_QS);
        int16_t bsums[16];
        memcpy(bsums, y + Q8K_BSUMS, sizeof bsums);
        int summs = 0;
        for (int s = 0; s < 16; s++) summs += bsums[s] * (x[s] >> 4);
        int8_t a[QK_K];
        q2_fields(x + Q2K_QS, a);
        int isum = 0;
        for (int s = 0; s < 16; s++) {
            int isuml = 0;
            for (int l = 0; l < 16; l++) isuml += q8[16 * s + l] * a[16 * s + l];
            isum += (x[s] & 0x0F) * isuml;
        }
        const float yd = rd_f32(y);
        const float dall = yd * rd_f16(x + Q2K_D);
        const float dmin = yd * rd_f16(x + Q2K_DMIN);
        sumf += dall * (float)isum - dmin * (float)summs;
    }
    return sumf;
}

/* ggml_vec_dot_q3_K_q8_K_generic: eight int32 lanes per super-block, lane l receiving
 * (scale6[e / 16] - 32) * q8[e] * q[e] for the elements e with e % 8 == l; then
 * sums[l] += (fp16(x.d) * y.d) * (float)lane[l], and the sums are added to sumf = 0 in lane order
 * after the last super-block. */
FS_VD_INLINE float dot_q3_k_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    float sums[8] = {0};
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q3_K, y += B_Q8_K) {
        const int8_t *q8 = (const int8_t *)(y + Q8K_QS);
        int8_t a[QK_K];
        q3_values(x, a);
        uint8_t sc[16];
        q3_k_scales6(x + Q3K_SCALES, sc);
        int32_t aux32[8] = {0};
        for (int s = 0; s < 16; s++) {
            const int32_t scale = (int32_t)sc[s] - 32;
            const int8_t *qa = a + 16 * s, *qy = q8 + 16 * s;
            for (int l = 0; l < 8; l++) aux32[l] += scale * (qy[l] * qa[l] + qy[l + 8] * qa[l + 8]);
        }
        const float d = rd_f16(x + Q3K_D) * rd_f32(y);
        for (int l = 0; l < 8; l++) sums[l] += d * (float)aux32[l];
    }
    float sumf = 0.0f;
    for (int l = 0; l < 8; l++) sumf += sums[l];
    return sumf;
}

FS_ROWS(fs_rows_q2_k_c, dot_q2_k_c, )
FS_ROWS(fs_rows_q3_k_c, dot_q3_k_c, )

/* ---- AVX2 dot products: ggml's __AVX2__ code ----------------------------------------------------- */
#if FS_HAVE_AVX2_CODE

/* Both AVX2 functions work on one half (128 elements) of a super-block at a time: chunk k of the
 * half (elements 128h + 32k .. + 32) is multiplied with the activation by maddubs (int16 pairs),
 * then by madd with its scales (get_scale_shuffle_q3k(k) on the half's 8 int16 scales: scale
 * 8h + 2k in the low 128-bit lane, 8h + 2k + 1 in the high one), and the four chunks are added as
 * (p0 + p1) + (p2 + p3) into 8 int32 lanes: lane t holds the elements with (e % 32) / 4 == t.
 * The integers are exact (no int16 saturation is possible), so only the float steps below carry
 * the order: one _mm256_fmadd_ps per super-block (Q2_K: first the mins one), hsum_float_8 at the end.
 * The per-row dots are the tile kernels with one activation row (the same instructions). */

/* The int16 scales of half h of a block (from all 16 as int16) in both 128-bit lanes, and the
 * shuffles of get_scale_shuffle_q3k(0 .. 3) applied to them. */
FS_VD_INLINE FS_AVX2_FN void kq16_half_scales(__m256i all16, int h, __m256i sc[4]) {
    const __m256i half = h ? _mm256_permute2x128_si256(all16, all16, 0x11) : _mm256_permute2x128_si256(all16, all16, 0x00);
    for (int k = 0; k < 4; k++) {
        const __m128i lo = _mm_set1_epi16((short)(((4 * k + 1) << 8) | (4 * k)));
        const __m128i hi = _mm_set1_epi16((short)(((4 * k + 3) << 8) | (4 * k + 2)));
        sc[k] = _mm256_shuffle_epi8(half, _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1));
    }
}

/* The four 2-bit fields of 32 qs bytes: q[k] = (bits >> 2k) & 3 (chunks 0 .. 3 of a half). */
FS_VD_INLINE FS_AVX2_FN void q2_half_fields(const uint8_t *qs, __m256i q[4]) {
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m256i bits = _mm256_loadu_si256((const __m256i *)qs);
    q[0] = _mm256_and_si256(bits, m3);
    q[1] = _mm256_and_si256(_mm256_srli_epi16(bits, 2), m3);
    q[2] = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m3);
    q[3] = _mm256_and_si256(_mm256_srli_epi16(bits, 6), m3);
}

/* Q2_K half times activation qs yh (128 values): sum_k madd(sc[k], maddubs(q[k], y_k)). */
FS_VD_INLINE FS_AVX2_FN __m256i q2_half_lanes(const __m256i q[4], const __m256i sc[4], const int8_t *yh) {
    __m256i p[4];
    for (int k = 0; k < 4; k++)
        p[k] = _mm256_madd_epi16(sc[k], _mm256_maddubs_epi16(q[k], _mm256_loadu_si256((const __m256i *)(yh + 32 * k))));
    return _mm256_add_epi32(_mm256_add_epi32(p[0], p[1]), _mm256_add_epi32(p[2], p[3]));
}

/* Q3_K half: the low two bits ql[k] and the "minus 4" part qh[k] (4 where the hmask bit is clear,
 * else 0) enter two maddubs whose int16 difference is the product with q = ql - qh. */
FS_VD_INLINE FS_AVX2_FN __m256i q3_half_lanes(const __m256i ql[4], const __m256i qh[4], const __m256i sc[4],
                                                const int8_t *yh) {
    __m256i p[4];
    for (int k = 0; k < 4; k++) {
        const __m256i y = _mm256_loadu_si256((const __m256i *)(yh + 32 * k));
        p[k] = _mm256_madd_epi16(sc[k], _mm256_sub_epi16(_mm256_maddubs_epi16(ql[k], y), _mm256_maddubs_epi16(qh[k], y)));
    }
    return _mm256_add_epi32(_mm256_add_epi32(p[0], p[1]), _mm256_add_epi32(p[2], p[3]));
}

/* Q2_K (ggml_vec_dot_q2_K_q8_K, AVX2): one weight row x RN <= 4 activation rows, each block unpacked
 * once. Per super-block and activation row:
 *   prod = madd(mins as int16, bsums)          (8 lanes: mn[2t] * bsums[2t] + mn[2t+1] * bsums[2t+1])
 *   acc  = fma(-y.d * fp16(x.dmin), (float)prod, acc)
 *   acc  = fma(y.d * fp16(x.d), (float)lanes, acc)
 * result hsum_float_8(acc). */
/* Bytes ahead that the Q2_K / Q3_K row dots (their tiles with one activation row) prefetch their row.
 * Sapphire Rapids, 1B Q3_K_M ffn_gate (Q3_K) from memory, 1 thread: none 4.4-4.6 GB/s, 2 KB 7.4-7.7. */
#define KQ_LOW_ROWS_PREFETCH 2048
FS_VD_INLINE FS_AVX2_FN void tile_q2_k(const uint8_t *x, const uint8_t *a, size_t ab, int64_t nb, float *out,
                                       int64_t os, const int RN) {
    const __m128i m4 = _mm_set1_epi8(0x0F);
    __m256 acc[4];
    for (int j = 0; j < RN; j++) acc[j] = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q2_K) {
        if (RN == 1) FS_ROW_PREFETCH(x, B_Q2_K, KQ_LOW_ROWS_PREFETCH); /* the row dot (decode) */
        const float dx = h2f(x + Q2K_D), mx = h2f(x + Q2K_DMIN);
        const __m128i ms = _mm_loadu_si128((const __m128i *)x);
        const __m256i scales16 = _mm256_cvtepi8_epi16(_mm_and_si128(ms, m4));
        const __m256i mins16 = _mm256_cvtepi8_epi16(_mm_and_si128(_mm_srli_epi16(ms, 4), m4));
        __m256i sumi[4];
        for (int j = 0; j < RN; j++) {
            const uint8_t *y = a + (size_t)j * ab + (size_t)ib * B_Q8_K;
            const __m256i prod = _mm256_madd_epi16(mins16, _mm256_loadu_si256((const __m256i *)(y + Q8K_BSUMS)));
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(-rd_f32(y) * mx), _mm256_cvtepi32_ps(prod), acc[j]);
            sumi[j] = _mm256_setzero_si256();
        }
        for (int h = 0; h < 2; h++) {
            __m256i sc[4], q[4];
            kq16_half_scales(scales16, h, sc);
            q2_half_fields(x + Q2K_QS + 32 * h, q);
            for (int j = 0; j < RN; j++) {
                const int8_t *yh = (const int8_t *)(a + (size_t)j * ab + (size_t)ib * B_Q8_K + Q8K_QS) + 128 * h;
                sumi[j] = _mm256_add_epi32(sumi[j], q2_half_lanes(q, sc, yh));
            }
        }
        for (int j = 0; j < RN; j++) {
            const float d = rd_f32(a + (size_t)j * ab + (size_t)ib * B_Q8_K) * dx;
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi[j]), acc[j]);
        }
    }
    for (int j = 0; j < RN; j++) out[(size_t)j * os] = hsum_f32x8(acc[j]);
}

/* The sixteen Q3_K scales minus 32 as int8 (q3_k_scales6 in registers, as ggml's _mm_set_epi32 of
 * the four aux words: going through a byte array would stall on store forwarding). */
FS_VD_INLINE FS_AVX2_FN __m128i q3_k_scales_m128(const uint8_t *s) {
    const uint32_t kmask1 = 0x03030303u, kmask2 = 0x0f0f0f0fu;
    const uint32_t a0 = rd_u32(s), a1 = rd_u32(s + 4), a2 = rd_u32(s + 8);
    const __m128i v = _mm_set_epi32((int)(((a1 >> 4) & kmask2) | (((a2 >> 6) & kmask1) << 4)),
                                    (int)(((a0 >> 4) & kmask2) | (((a2 >> 4) & kmask1) << 4)),
                                    (int)((a1 & kmask2) | (((a2 >> 2) & kmask1) << 4)),
                                    (int)((a0 & kmask2) | (((a2 >> 0) & kmask1) << 4)));
    return _mm_sub_epi8(v, _mm_set1_epi8(32));
}

/* Q3_K (ggml_vec_dot_q3_K_q8_K, AVX2): one weight row x RN <= 4 activation rows. Scales: the
 * sixteen 6-bit values minus 32 (int8 -> int16); per super-block acc = fma(y.d * fp16(x.d),
 * (float)lanes, acc); result hsum_float_8(acc). ggml forms the "minus 4" bytes as
 * ((~hmask & (1 << b)) >> b) << 2; here ((~hmask) >> (b - 2)) & 4 (or << (2 - b)), the same bytes. */
FS_VD_INLINE FS_AVX2_FN void tile_q3_k(const uint8_t *x, const uint8_t *a, size_t ab, int64_t nb, float *out,
                                       int64_t os, const int RN) {
    const __m256i m4 = _mm256_set1_epi8(4);
    __m256 acc[4];
    for (int j = 0; j < RN; j++) acc[j] = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q3_K) {
        if (RN == 1) FS_ROW_PREFETCH(x, B_Q3_K, KQ_LOW_ROWS_PREFETCH); /* the row dot (decode) */
        const float dx = h2f(x + Q3K_D);
        const __m256i scales16 = _mm256_cvtepi8_epi16(q3_k_scales_m128(x + Q3K_SCALES));
        const __m256i nh = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)x), _mm256_set1_epi8(-1));
        __m256i sumi[4];
        for (int j = 0; j < RN; j++) sumi[j] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i sc[4], ql[4], qh[4];
            kq16_half_scales(scales16, h, sc);
            q2_half_fields(x + Q3K_QS + 32 * h, ql);
            if (h == 0) {
                qh[0] = _mm256_and_si256(_mm256_slli_epi16(nh, 2), m4);
                qh[1] = _mm256_and_si256(_mm256_slli_epi16(nh, 1), m4);
                qh[2] = _mm256_and_si256(nh, m4);
                qh[3] = _mm256_and_si256(_mm256_srli_epi16(nh, 1), m4);
            } else {
                qh[0] = _mm256_and_si256(_mm256_srli_epi16(nh, 2), m4);
                qh[1] = _mm256_and_si256(_mm256_srli_epi16(nh, 3), m4);
                qh[2] = _mm256_and_si256(_mm256_srli_epi16(nh, 4), m4);
                qh[3] = _mm256_and_si256(_mm256_srli_epi16(nh, 5), m4);
            }
            for (int j = 0; j < RN; j++) {
                const int8_t *yh = (const int8_t *)(a + (size_t)j * ab + (size_t)ib * B_Q8_K + Q8K_QS) + 128 * h;
                sumi[j] = _mm256_add_epi32(sumi[j], q3_half_lanes(ql, qh, sc, yh));
            }
        }
        for (int j = 0; j < RN; j++) {
            const float d = rd_f32(a + (size_t)j * ab + (size_t)ib * B_Q8_K) * dx;
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi[j]), acc[j]);
        }
    }
    for (int j = 0; j < RN; j++) out[(size_t)j * os] = hsum_f32x8(acc[j]);
}

FS_VD_INLINE FS_AVX2_FN float dot_q2_k_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    float r;
    tile_q2_k(x, y, 0, n / QK_K, &r, 0, 1);
    return r;
}

FS_VD_INLINE FS_AVX2_FN float dot_q3_k_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    float r;
    tile_q3_k(x, y, 0, n / QK_K, &r, 0, 1);
    return r;
}

FS_ROWS(fs_rows_q2_k_avx2, dot_q2_k_avx2, FS_AVX2_FN)
FS_ROWS(fs_rows_q3_k_avx2, dot_q3_k_avx2, FS_AVX2_FN)
FS_TILES_1X4(fs_tiles_q2_k_avx2, tile_q2_k, QK_K)
FS_TILES_1X4(fs_tiles_q3_k_avx2, tile_q3_k, QK_K)

#endif /* FS_HAVE_AVX2_CODE */

/* ---- arm64 NEON + dot-product products: ggml's __ARM_NEON code ------------------------------------
 * ggml/src/ggml-cpu/arch/arm/quants.c, ggml_vec_dot_q4_K_q8_K and ggml_vec_dot_q6_K_q8_K (the
 * __ARM_NEON branch without SVE, nrc == 1; read at ggml-org/llama.cpp 0549d660). Both sum each
 * super-block exactly in int32 (SDOT per 16 bytes, one scale per sub-block) and take only two or three
 * float operations per super-block, in one running sum:
 *   Q4_K: d = y.d * fp16(x.d); dmin = y.d * fp16(x.dmin); M = sum_j mn[j] * (bsums[2j] + bsums[2j+1]);
 *         sumf -= dmin * (float)M; sumf += d * (float)(sum_j sc[j] * dot(sub-block j))
 *   Q6_K: sum += (fp16(x.d) * y.d) * (float)(I - 32 * M), I = sum_j scale[j] * dot(unsigned 6-bit
 *         values of group j, q8), M = sum_j scale[j] * bsums[j] (16 groups of 16)
 * The portable code (ggml's *_generic) accumulates 8 float lanes per super-block instead, so the two
 * agree to within float summation error, not bit for bit (tests/arm64/neon_check.c). The repacked
 * Q4_K products (gemv / gemm, llama.cpp's x86 arithmetic, see above) take the portable
 * q4_k_repack_block on SDOT sub-block dots: the same bits as fs_gemv_q4_k_c / fs_gemm_q4_k_c.
 * Not measured here: speed on real arm64 hardware (this machine only runs them under qemu-user). */
#if FS_HAVE_NEON_CODE

/* q4 * q8 summed over each of the 8 sub-blocks of one Q4_K super-block (exact; the integers of
 * q4_k_subblock_dots). */
static inline FS_NEON_FN void neon_q4_k_subblock_dots(const uint8_t *x, const int8_t *q8, int32_t dots[8]) {
    const uint8_t *q4 = x + 16;
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    for (int c = 0; c < 4; c++, q4 += 32, q8 += 64) {
        const uint8x16_t b0 = vld1q_u8(q4), b1 = vld1q_u8(q4 + 16);
        int32x4_t lo = vdotq_s32(vdupq_n_s32(0), vreinterpretq_s8_u8(vandq_u8(b0, m4)), vld1q_s8(q8));
        lo = vdotq_s32(lo, vreinterpretq_s8_u8(vandq_u8(b1, m4)), vld1q_s8(q8 + 16));
        int32x4_t hi = vdotq_s32(vdupq_n_s32(0), vreinterpretq_s8_u8(vshrq_n_u8(b0, 4)), vld1q_s8(q8 + 32));
        hi = vdotq_s32(hi, vreinterpretq_s8_u8(vshrq_n_u8(b1, 4)), vld1q_s8(q8 + 48));
        dots[2 * c] = vaddvq_s32(lo);
        dots[2 * c + 1] = vaddvq_s32(hi);
    }
}

/* ggml_vec_dot_q4_K_q8_K (NEON). */
FS_VD_INLINE FS_NEON_FN float dot_q4_k_neon(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    float sumf = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q4_K, y += B_Q8_K) {
        const float yd = rd_f32(y);
        const float d = yd * neon_h2f(x);
        const float dmin = yd * neon_h2f(x + 2);
        uint8_t sc[8], mn[8];
        scale_min_k4(x + 4, sc, mn);
        int16_t bsums[16];
        memcpy(bsums, y + Q8K_BSUMS, sizeof bsums);
        int32_t mins = 0;
        for (int j = 0; j < 8; j++) mins += mn[j] * (bsums[2 * j] + bsums[2 * j + 1]);
        sumf -= dmin * (float)mins;
        int32_t dots[8];
        neon_q4_k_subblock_dots(x, (const int8_t *)(y + Q8K_QS), dots);
        int32_t sumi1 = 0, sumi2 = 0;
        for (int c = 0; c < 4; c++) {
            sumi1 += dots[2 * c] * sc[2 * c];
            sumi2 += dots[2 * c + 1] * sc[2 * c + 1];
        }
        sumf += d * (float)(sumi1 + sumi2);
    }
    return sumf;
}

/* The repacked Q4_K products with SDOT sub-block dots (the portable ones' bits). */
FS_VD_INLINE FS_NEON_FN float dot_q4_k_repack_neon(const uint8_t *x, const uint8_t *y, int64_t n, int per_chunk) {
    const int64_t nb = n / QK_K;
    float acc = 0.0f, accm = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q4_K, y += B_Q8_K) {
        int32_t dots[8];
        neon_q4_k_subblock_dots(x, (const int8_t *)(y + Q8K_QS), dots);
        q4_k_repack_block(x, y, dots, per_chunk, &acc, &accm);
    }
    return acc - accm;
}

FS_VD_INLINE FS_NEON_FN float dot_q4_k_gemv_neon(const uint8_t *x, const uint8_t *y, int64_t n) {
    return dot_q4_k_repack_neon(x, y, n, 0);
}

FS_VD_INLINE FS_NEON_FN float dot_q4_k_gemm_neon(const uint8_t *x, const uint8_t *y, int64_t n) {
    return dot_q4_k_repack_neon(x, y, n, 1);
}

/* ggml_vec_dot_q6_K_q8_K (NEON): per half (128 elements), the unsigned 6-bit values
 * (ql nibble | 2 bits of qh << 4) of 8 groups of 16 elements, each SDOT-ed with its 16 activation
 * quants and scaled by its int8 scale; the -32 offset comes in once per super-block through the
 * activation's bsums. */
FS_VD_INLINE FS_NEON_FN float dot_q6_k_neon(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    const uint8x16_t m4 = vdupq_n_u8(0x0F), m3 = vdupq_n_u8(0x03);
    float sum = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q6_K, y += B_Q8_K) {
        const int8_t *scale = (const int8_t *)(x + 192);
        int16_t bsums[16];
        memcpy(bsums, y + Q8K_BSUMS, sizeof bsums);
        int32_t mins = 0;
        for (int j = 0; j < 16; j++) mins += bsums[j] * scale[j];
        const int8_t *q8 = (const int8_t *)(y + Q8K_QS);
        int32_t isum = 0;
        for (int h = 0; h < 2; h++, q8 += 128, scale += 8) {
            const uint8_t *ql = x + 64 * h, *qh = x + 128 + 32 * h;
            const uint8x16_t h0 = vld1q_u8(qh), h1 = vld1q_u8(qh + 16);
            const uint8x16_t l0 = vld1q_u8(ql), l1 = vld1q_u8(ql + 16), l2 = vld1q_u8(ql + 32), l3 = vld1q_u8(ql + 48);
            uint8x16_t v[8];
            v[0] = vorrq_u8(vandq_u8(l0, m4), vshlq_n_u8(vandq_u8(h0, m3), 4));
            v[1] = vorrq_u8(vandq_u8(l1, m4), vshlq_n_u8(vandq_u8(h1, m3), 4));
            v[2] = vorrq_u8(vandq_u8(l2, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h0, 2), m3), 4));
            v[3] = vorrq_u8(vandq_u8(l3, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h1, 2), m3), 4));
            v[4] = vorrq_u8(vshrq_n_u8(l0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h0, 4), m3), 4));
            v[5] = vorrq_u8(vshrq_n_u8(l1, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h1, 4), m3), 4));
            v[6] = vorrq_u8(vshrq_n_u8(l2, 4), vshlq_n_u8(vshrq_n_u8(h0, 6), 4));
            v[7] = vorrq_u8(vshrq_n_u8(l3, 4), vshlq_n_u8(vshrq_n_u8(h1, 6), 4));
            for (int g = 0; g < 8; g++)
                isum += vaddvq_s32(vdotq_s32(vdupq_n_s32(0), vreinterpretq_s8_u8(v[g]), vld1q_s8(q8 + 16 * g))) *
                        scale[g];
        }
        sum += neon_h2f(x + 208) * rd_f32(y) * (float)(isum - 32 * mins);
    }
    return sum;
}

FS_ROWS(fs_rows_q4_k_neon, dot_q4_k_neon, FS_NEON_FN)
FS_ROWS(fs_gemv_q4_k_neon, dot_q4_k_gemv_neon, FS_NEON_FN)
FS_ROWS(fs_gemm_q4_k_neon, dot_q4_k_gemm_neon, FS_NEON_FN)
FS_ROWS(fs_rows_q6_k_neon, dot_q6_k_neon, FS_NEON_FN)

#endif /* FS_HAVE_NEON_CODE */
