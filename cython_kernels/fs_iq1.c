/* The 1-bit lattice types IQ1_S and IQ1_M (256-element super-blocks, activation format Q8_K): every
 * group of 8 elements is one entry of iq1s_grid (2048 entries of int8 -1 / 0 / 1, element 0 in the
 * low byte), shifted by +-IQ1S_DELTA (0.125; IQ1M_DELTA is the same value) and scaled by an odd
 * 3-bit sub-block scale ls = 2 a + 1 times the super-block scale d.
 *
 * Layouts (ggml-common.h, little-endian):
 *   block_iq1_s  50 bytes: f16 d | qs[32] | u16 qh[8]
 *                sub-block s (elements 32 s .. 32 s + 32), group l < 4 (elements 32 s + 8 l ..):
 *                index = qs[4 s + l] | ((qh[s] >> 3 l) & 7) << 8; a = (qh[s] >> 12) & 7;
 *                delta = bit 15 of qh[s] ? -0.125 : 0.125 (one for the sub-block)
 *                element = (d * (float)(2 a + 1)) * ((float)grid[index][j] + delta)
 *   block_iq1_m  56 bytes: qs[32] | qh[16] | u16 sc[4]
 *                group g = 4 s + l: nibble h = qh[2 s + l / 2] >> 4 (l % 2) (low nibble for even l):
 *                index = qs[g] | (h & 7) << 8, delta = h & 8 ? -0.125 : 0.125 (one per group);
 *                a = (sc[s / 2] >> (6 (s % 2) + 3 (l / 2))) & 7 (one per 16 elements);
 *                d = the f16 with bits (sc[0] >> 12) | (sc[1] >> 12) << 4 | (sc[2] >> 12) << 8 |
 *                (sc[3] >> 12) << 12 (the top nibbles of the scales)
 *                element = (d * (float)(2 a + 1)) * ((float)grid[index][j] + delta)
 * Q8_K: f32 d | int8 qs[256] | int16 bsums[16] (IQ1_S uses the bsums for the delta term).
 *
 * Dot products (integer parts exact; dd = fp16 d * y.d):
 *   portable (ggml_vec_dot_iq1_s_q8_K_generic, ggml_vec_dot_iq1_m_q8_K_generic): per super-block
 *     sumi = sum ls * sum(grid * q8), sumi1 = sum ls * sign(delta) * sum(q8) (IQ1_S: per sub-block
 *     from bsums; IQ1_M: per group), sumf += dd * ((float)sumi + 0.125f * (float)sumi1).
 *   AVX2 (the __AVX2__ branches of ggml_vec_dot_iq1_s_q8_K / ggml_vec_dot_iq1_m_q8_K): grid times q8
 *     with mul_add_epi8, then madd with ls into 8 int32 lanes (lane k: elements 4 k .. 4 k + 3 of
 *     each sub-block, summed over the sub-blocks); acc = fma(dd, (float)lanes, acc).
 *     IQ1_S: the delta term stays a scalar float, acc1 += dd * (float)sumi1 (a multiply and an
 *       add, as C without FMA contraction; the exact integer sumi1 comes from one madd of the bsums
 *       with the signed scales here, ggml's scalar loop there); result hsum_float_8(acc) + 0.125f * acc1.
 *     IQ1_M: the delta term in lanes too (maddubs(1, sign(q8, +-1)), madd with ls), acc2 =
 *       fma(dd, (float)lanes2, acc2); result hsum_float_8(acc) + 0.125f * hsum_float_8(acc2).
 *   The AVX2 negation of q8 = -128 wraps to -128 (the generic code gives +128); Q8_K activations
 *   never hold -128 in practice (quantize_row_q8_K), so the two paths differ only in float order.
 *
 * Sources (llama.cpp, read for the algorithms; an independent implementation):
 *   ggml/src/ggml-common.h               block_iq1_s, block_iq1_m, iq1m_scale_t, iq1s_grid, IQ1S_DELTA
 *   ggml/src/ggml-quants.c               dequantize_row_iq1_s, dequantize_row_iq1_m
 *   gguf-py gguf/quants.py               IQ1_S / IQ1_M .dequantize_blocks (the float order here)
 *   ggml/src/ggml-cpu/quants.c           ggml_vec_dot_iq1_s_q8_K_generic, ggml_vec_dot_iq1_m_q8_K_generic
 *   ggml/src/ggml-cpu/arch/x86/quants.c  ggml_vec_dot_iq1_s_q8_K, ggml_vec_dot_iq1_m_q8_K (__AVX2__)
 * Tests: tests/quant_reference/iq1.py (the numpy references, bit for bit).
 */
#include "fs_families.h"
#include "fs_iq_grids.h"

#define B_IQ1_S 50 /* f16 d | qs[32] | u16 qh[8] */
#define B_IQ1_M 56 /* qs[32] | qh[16] | u16 scales[4] */
#define IQ1S_QH 34
#define IQ1M_QH 32
#define IQ1M_SC 48
#define IQ1_DELTA 0.125f /* IQ1S_DELTA == IQ1M_DELTA */

/* ---- unpacking (shared by the dequantizers and the dot products) ----------------------------- */

/* Element j (j < 8) of grid entry g: -1, 0 or 1. */
static inline int iq1_elem(uint64_t g, int j) { return as_i8((uint8_t)(g >> (8 * j))); }

/* IQ1_S sub-block s: the 16-bit qh word, its grid index for group l, and its scale code a. */
static inline unsigned iq1_s_qh(const uint8_t *x, int s) { return rd_u16(x + IQ1S_QH + 2 * s); }
static inline unsigned iq1_s_index(const uint8_t *x, int s, int l) {
    return x[2 + 4 * s + l] | (((iq1_s_qh(x, s) >> (3 * l)) & 7u) << 8);
}
static inline int iq1_s_scale(const uint8_t *x, int s) { return (int)((iq1_s_qh(x, s) >> 12) & 7u); }

/* IQ1_M group g (g < 32): its qh nibble (index bits 8 .. 10 and the delta sign in bit 3), index,
 * and the scale code of its 16-element half sub-block. */
static inline unsigned iq1_m_nib(const uint8_t *x, int g) { return (x[IQ1M_QH + g / 2] >> (4 * (g % 2))) & 0x0Fu; }
static inline unsigned iq1_m_index(const uint8_t *x, int g) { return x[g] | ((iq1_m_nib(x, g) & 7u) << 8); }
static inline int iq1_m_scale(const uint8_t *x, int g) {
    const int s = g / 4, h = (g % 4) / 2;
    return (rd_u16(x + IQ1M_SC + 2 * (s / 2)) >> (6 * (s % 2) + 3 * h)) & 7;
}

/* IQ1_M's f16 super-block scale, assembled from the top nibbles of the four scale words. */
static inline uint16_t iq1_m_d_bits(const uint8_t *x) {
    const uint8_t *sc = x + IQ1M_SC;
    return (uint16_t)((rd_u16(sc) >> 12) | ((rd_u16(sc + 2) >> 8) & 0x00F0) | ((rd_u16(sc + 4) >> 4) & 0x0F00) |
                      (rd_u16(sc + 6) & 0xF000));
}

/* bsums[2 s] + bsums[2 s + 1] of Q8_K block y: the sum of q8 over sub-block s (int16 read without
 * relying on the implementation-defined uint16 -> int16 conversion). */
static inline int q8k_bsum32(const uint8_t *y, int s) {
    const int a = rd_u16(y + Q8K_BSUMS + 4 * s), b = rd_u16(y + Q8K_BSUMS + 4 * s + 2);
    return (a - ((a & 0x8000) << 1)) + (b - ((b & 0x8000) << 1));
}

/* The 8 values of grid entry idx into v (int8 -1 / 0 / 1). */
static inline void iq1_group(unsigned idx, int8_t *v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(v, &iq1s_grid[idx], 8); /* the entry's bytes are its elements in order */
#else
    const uint64_t g = iq1s_grid[idx];
    for (int j = 0; j < 8; j++) v[j] = (int8_t)iq1_elem(g, j);
#endif
}

/* ---- dequantization (gguf-py IQ1_S / IQ1_M .dequantize_blocks) ------------------------------- */

/* nb IQ1_S blocks: dl = d * (float)(2 a + 1), y = dl * ((float)grid + delta). */
void fs_dequant_iq1_s(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += B_IQ1_S) {
        const float d = dq_f16(src);
        for (int s = 0; s < QK_K / QK; s++) {
            const float dl = d * (float)(2 * iq1_s_scale(src, s) + 1);
            const float delta = iq1_s_qh(src, s) & 0x8000u ? -IQ1_DELTA : IQ1_DELTA;
            for (int l = 0; l < 4; l++, dst += 8) {
                const uint64_t g = iq1s_grid[iq1_s_index(src, s, l)];
                for (int j = 0; j < 8; j++) dst[j] = dl * ((float)iq1_elem(g, j) + delta);
            }
        }
    }
}

/* nb IQ1_M blocks: dl = d * (float)(2 a + 1) per 16 elements, y = dl * ((float)grid + delta). */
void fs_dequant_iq1_m(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += B_IQ1_M) {
        const float d = dq_half_to_float(iq1_m_d_bits(src));
        for (int g = 0; g < QK_K / 8; g++, dst += 8) {
            const float dl = d * (float)(2 * iq1_m_scale(src, g) + 1);
            const float delta = iq1_m_nib(src, g) & 8u ? -IQ1_DELTA : IQ1_DELTA;
            const uint64_t e = iq1s_grid[iq1_m_index(src, g)];
            for (int j = 0; j < 8; j++) dst[j] = dl * ((float)iq1_elem(e, j) + delta);
        }
    }
}

/* ---- portable dot products (ggml-cpu/quants.c *_generic) ------------------------------------ */

/* ggml_vec_dot_iq1_s_q8_K_generic: per sub-block lsum = sum(grid * q8) (exact), sumi += ls * lsum,
 * sumi1 += ls * (+-1) * (bsums[2 s] + bsums[2 s + 1]); then
 * sumf += (fp16(x.d) * y.d) * ((float)sumi + 0.125f * (float)sumi1) block after block. */
FS_VD_INLINE float dot_iq1_s_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; i++, x += B_IQ1_S, y += B_Q8_K) {
        const int8_t *q8 = (const int8_t *)(y + Q8K_QS);
        int sumi = 0, sumi1 = 0;
        for (int s = 0; s < QK_K / QK; s++) {
            int8_t v[QK];
            for (int l = 0; l < 4; l++) iq1_group(iq1_s_index(x, s, l), v + 8 * l);
            const int ls = 2 * iq1_s_scale(x, s) + 1;
            const int bs = q8k_bsum32(y, s);
            sumi += ls * block_dot_i8(v, q8 + QK * s);
            sumi1 += ls * bs * (1 - 2 * (int)(iq1_s_qh(x, s) >> 15)); /* delta sign, branch-free */
        }
        sumf += rd_f16(x) * rd_f32(y) * ((float)sumi + IQ1_DELTA * (float)sumi1);
    }
    return sumf;
}

/* sum_j a[j] * b[j] over 16 int8 values (exact). */
FS_VD_INLINE int dot16_i8(const int8_t *a, const int8_t *b) {
    int sumi = 0;
    for (int j = 0; j < 16; j++) sumi += a[j] * b[j];
    return sumi;
}

/* ggml_vec_dot_iq1_m_q8_K_generic: sumi1 = sum over groups ls * sum(grid * q8), sumi2 = sum over
 * groups ls * (+-1) * sum(q8) (exact; summed here per 16 elements, which share ls);
 * sumf += (fp16(d) * y.d) * ((float)sumi1 + 0.125f * (float)sumi2). */
FS_VD_INLINE float dot_iq1_m_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; i++, x += B_IQ1_M, y += B_Q8_K) {
        const int8_t *q8 = (const int8_t *)(y + Q8K_QS);
        int sumi1 = 0, sumi2 = 0;
        for (int g = 0; g < QK_K / 8; g += 2, q8 += 16) { /* g, g + 1: one half sub-block of 16 */
            int8_t v[16], sg[16];
            iq1_group(iq1_m_index(x, g), v);
            iq1_group(iq1_m_index(x, g + 1), v + 8);
            const int s0 = 1 - 2 * (int)((iq1_m_nib(x, g) >> 3) & 1u), s1 = 1 - 2 * (int)((iq1_m_nib(x, g + 1) >> 3) & 1u);
            for (int j = 0; j < 8; j++) {
                sg[j] = (int8_t)s0;
                sg[j + 8] = (int8_t)s1;
            }
            const int ls = 2 * iq1_m_scale(x, g) + 1;
            sumi1 += ls * dot16_i8(v, q8);
            sumi2 += ls * dot16_i8(sg, q8);
        }
        sumf += fp16_to_fp32(iq1_m_d_bits(x)) * rd_f32(y) * ((float)sumi1 + IQ1_DELTA * (float)sumi2);
    }
    return sumf;
}

/* out[r] = ggml_vec_dot_iq1_s_q8_K_generic(weight row r, act): IQ1_S rows x Q8_K activations. */
FS_ROWS(fs_rows_iq1_s_c, dot_iq1_s_c, )

/* out[r] = ggml_vec_dot_iq1_m_q8_K_generic(weight row r, act): IQ1_M rows x Q8_K activations. */
FS_ROWS(fs_rows_iq1_m_c, dot_iq1_m_c, )

/* ---- AVX2 (ggml-cpu/arch/x86/quants.c) ------------------------------------------------------ */
#if FS_HAVE_AVX2_CODE

/* Four grid entries as one vector (entry k in bytes 8 k .. 8 k + 7), as ggml's _mm256_set_epi64x. */
static inline FS_AVX2_FN __m256i iq1_grid4(unsigned i0, unsigned i1, unsigned i2, unsigned i3) {
    return _mm256_set_epi64x((long long)iq1s_grid[i3], (long long)iq1s_grid[i2], (long long)iq1s_grid[i1],
                             (long long)iq1s_grid[i0]);
}

/* IQ1_S sub-block with qs (its 4 index bytes) and h (its qh word) times qy: the 8 int32 lanes
 * madd(mul_add_epi8(grid, qy), ls). */
static inline FS_AVX2_FN __m256i iq1_s_sub(const uint8_t *qs, unsigned h, __m256i qy) {
    const __m256i g = iq1_grid4(qs[0] | ((h << 8) & 0x700u), qs[1] | ((h << 5) & 0x700u), qs[2] | ((h << 2) & 0x700u),
                                qs[3] | ((h >> 1) & 0x700u));
    return _mm256_madd_epi16(mul_add_epi8(g, qy), _mm256_set1_epi16((short)(2 * ((h >> 12) & 7u) + 1)));
}

/* sumi1 of one IQ1_S block: sum_s (bsums[2 s] + bsums[2 s + 1]) * (+-1) * ls_s (exact; ggml sums
 * it with scalar code, here one madd of the bsums with the signed scales). */
static inline FS_AVX2_FN int iq1_s_delta_sum(const uint8_t *x, const uint8_t *y) {
    const __m128i h = _mm_loadu_si128((const __m128i *)(x + IQ1S_QH));
    const __m128i ls = _mm_add_epi16(_mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(h, 12), _mm_set1_epi16(7)), 1), _mm_set1_epi16(1));
    const __m128i m = _mm_srai_epi16(h, 15);
    const __m128i sls = _mm_sub_epi16(_mm_xor_si128(ls, m), m);
    const __m256i sls2 = _mm256_set_m128i(_mm_unpackhi_epi16(sls, sls), _mm_unpacklo_epi16(sls, sls));
    return hsum_i32x8(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(y + Q8K_BSUMS)), sls2));
}

/* ggml_vec_dot_iq1_s_q8_K (AVX2): per block lanes = sum_s madd(mul_add_epi8(grid, q8), ls_s),
 * sumi1 = sum_s (bsums[2 s] + bsums[2 s + 1]) * (+-1) * ls_s, dd = y.d * fp16(x.d),
 * acc = fma(dd, (float)lanes, acc), acc1 += dd * (float)sumi1 (two roundings); result
 * hsum_float_8(acc) + 0.125f * acc1. */
static inline FS_AVX2_FN float dot_iq1_s_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    __m256 acc = _mm256_setzero_ps();
    float acc1 = 0.0f;
    for (int64_t i = 0; i < nb; i++, x += B_IQ1_S, y += B_Q8_K) {
        const int8_t *q8 = (const int8_t *)(y + Q8K_QS);
        __m256i sumi = _mm256_setzero_si256();
        for (int s = 0; s < QK_K / QK; s += 2) {
            const __m256i p1 = iq1_s_sub(x + 2 + 4 * s, iq1_s_qh(x, s), _mm256_loadu_si256((const __m256i *)(q8 + QK * s)));
            const __m256i p2 = iq1_s_sub(x + 6 + 4 * s, iq1_s_qh(x, s + 1), _mm256_loadu_si256((const __m256i *)(q8 + QK * s + QK)));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p1, p2));
        }
        const int sumi1 = iq1_s_delta_sum(x, y);
        const float d = rd_f32(y) * h2f(x);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
        acc1 += d * (float)sumi1;
    }
    return hsum_f32x8(acc) + IQ1_DELTA * acc1;
}

/* IQ1_M sub-block with qs (4 index bytes) and qh (2 bytes) times qy, with ls the int16 scales
 * (2 a1 + 1 in lanes 0 .. 7 for the first 16 elements, 2 a2 + 1 in lanes 8 .. 15): adds
 * madd(mul_add_epi8(grid, qy), ls) to *s1 and madd(maddubs(1, qy with the delta signs), ls) to *s2.
 * The delta signs are applied as (qy ^ m) - m, m = 0xFF where bit 3 / 7 of the group's qh byte is
 * set: the same bytes as ggml's _mm256_sign_epi8(qy, +-1) (-(-128) wraps to -128 in both). */
static inline FS_AVX2_FN void iq1_m_sub(const uint8_t *qs, const uint8_t *qh, __m256i ls, __m256i qy, __m256i *s1,
                                        __m256i *s2) {
    const unsigned h0 = qh[0], h1 = qh[1];
    const __m256i g = iq1_grid4(qs[0] | ((h0 << 8) & 0x700u), qs[1] | ((h0 << 4) & 0x700u), qs[2] | ((h1 << 8) & 0x700u),
                                qs[3] | ((h1 << 4) & 0x700u));
    /* byte 0 (h0) to bytes 0 .. 15, byte 1 (h1) to 16 .. 31; bit 3 for the even group of 8, 7 for the odd */
    const __m256i rep = _mm256_set_epi64x(0x0101010101010101LL, 0x0101010101010101LL, 0, 0);
    const __m256i bit = _mm256_set_epi64x((long long)0x8080808080808080ULL, 0x0808080808080808LL,
                                          (long long)0x8080808080808080ULL, 0x0808080808080808LL);
    const __m256i hb = _mm256_shuffle_epi8(_mm256_set1_epi16((short)(h0 | (h1 << 8))), rep);
    const __m256i m = _mm256_cmpeq_epi8(_mm256_and_si256(hb, bit), bit);
    const __m256i qd = _mm256_sub_epi8(_mm256_xor_si256(qy, m), m);
    *s1 = _mm256_add_epi32(*s1, _mm256_madd_epi16(mul_add_epi8(g, qy), ls));
    *s2 = _mm256_add_epi32(*s2, _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(1), qd), ls));
}

/* ggml_vec_dot_iq1_m_q8_K (AVX2): per block the 16 scales 2 a + 1 as int16 in one vector (ggml:
 * the 64-bit scale word shifted by 0 / 6 / 3 / 9, so its low half holds the first-half scales of
 * sub-blocks 0, 2, 4, 6, 1, 3, 5, 7 and its high half the second-half ones; one pshufb per
 * sub-block spreads its pair), lanes1 / lanes2 from iq1_m_sub; dd = y.d * fp16(d), acc1 / acc2 =
 * fma(dd, (float)lanes1 / 2, acc1 / 2); result hsum_float_8(acc1) + 0.125f * hsum_float_8(acc2). */
static inline FS_AVX2_FN float dot_iq1_m_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    __m256 acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++, x += B_IQ1_M, y += B_Q8_K) {
        const int8_t *q8 = (const int8_t *)(y + Q8K_QS);
        uint64_t sc64;
        memcpy(&sc64, x + IQ1M_SC, sizeof sc64);
        __m256i scales = _mm256_srlv_epi64(_mm256_set1_epi64x((long long)sc64), _mm256_set_epi64x(9, 3, 6, 0));
        scales = _mm256_add_epi16(_mm256_slli_epi16(_mm256_and_si256(scales, _mm256_set1_epi16(7)), 1), _mm256_set1_epi16(1));
        __m256i idx1 = _mm256_set1_epi16(0x0100), idx2 = _mm256_set1_epi16(0x0908);
        __m256i sumi1 = _mm256_setzero_si256(), sumi2 = _mm256_setzero_si256();
        for (int s = 0; s < QK_K / QK; s += 2) {
            iq1_m_sub(x + 4 * s, x + IQ1M_QH + 2 * s, _mm256_shuffle_epi8(scales, idx1),
                      _mm256_loadu_si256((const __m256i *)(q8 + QK * s)), &sumi1, &sumi2);
            iq1_m_sub(x + 4 * s + 4, x + IQ1M_QH + 2 * s + 2, _mm256_shuffle_epi8(scales, idx2),
                      _mm256_loadu_si256((const __m256i *)(q8 + QK * s + QK)), &sumi1, &sumi2);
            idx1 = _mm256_add_epi8(idx1, _mm256_set1_epi8(2));
            idx2 = _mm256_add_epi8(idx2, _mm256_set1_epi8(2));
        }
        const __m256 d = _mm256_set1_ps(rd_f32(y) * _cvtsh_ss(iq1_m_d_bits(x)));
        acc1 = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi1), acc1);
        acc2 = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi2), acc2);
    }
    return hsum_f32x8(acc1) + IQ1_DELTA * hsum_f32x8(acc2);
}

/* out[r] = ggml_vec_dot_iq1_s_q8_K (AVX2 branch) of weight row r and act. */
FS_ROWS(fs_rows_iq1_s_avx2, dot_iq1_s_avx2, FS_AVX2_FN)

/* out[r] = ggml_vec_dot_iq1_m_q8_K (AVX2 branch) of weight row r and act. */
FS_ROWS(fs_rows_iq1_m_avx2, dot_iq1_m_avx2, FS_AVX2_FN)

#endif /* FS_HAVE_AVX2_CODE */
