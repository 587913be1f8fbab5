/* The 2-bit lattice types IQ2_XXS, IQ2_XS, IQ2_S (256-element super-blocks, activation format Q8_K)
 * (Fireside's family file; see fs_kernel.h and fs_traits.c).
 *
 * Sources (llama.cpp, read for the algorithms; this is an independent implementation):
 *   ggml/src/ggml-common.h            block_iq2_xxs, block_iq2_xs, block_iq2_s, ksigns_iq2xs, the grids
 *   ggml/src/ggml-quants.c            dequantize_row_iq2_xxs / _iq2_xs / _iq2_s
 *   ggml/src/ggml-cpu/quants.c        ggml_vec_dot_iq2_{xxs,xs,s}_q8_K_generic
 *   ggml/src/ggml-cpu/arch/x86/quants.c  the __AVX2__ branches of ggml_vec_dot_iq2_{xxs,xs,s}_q8_K,
 *                                     keven_signs_q2xs, get_scale_shuffle_k4
 *   gguf-py gguf/quants.py            IQ2_XXS / IQ2_XS / IQ2_S: the dequantization reference
 *
 * All three types code a super-block as 8 sub-blocks of 32 elements, each as 4 groups of 8. A group
 * is one row of a lattice grid (8 bytes, each 8, 25 or 43, fs_iq_grids.h) and a sign byte (bit j set:
 * element j negative); each half sub-block (16 elements) has a 4-bit scale s, worth (2 s + 1) / 8
 * (IQ2_XXS: one scale per sub-block). Element value: d * (2 s + 1) / 8 * grid * sign, with d the f16
 * super-block scale. The types differ only in how grid rows, signs and scales are stored:
 *
 *   IQ2_XXS, 66 bytes: f16 d | uint16 qs[32]. Sub-block b: the little-endian words
 *     a0 = u32 at qs + 8b, a1 = u32 at qs + 8b + 4; group l: grid iq2xxs_grid[byte l of a0], signs
 *     ksigns_iq2xs[(a1 >> 7l) & 127]; scale a1 >> 28 (both halves).
 *   IQ2_XS, 74 bytes: f16 d | uint16 qs[32] | scales[8]. Group l of sub-block b: q = qs[4b + l],
 *     grid iq2xs_grid[q & 511], signs ksigns_iq2xs[q >> 9]; scales: scales[b] & 15 (elements 0-15),
 *     scales[b] >> 4 (16-31).
 *   IQ2_S, 82 bytes: f16 d | qs[32] | signs[32] | qh[8] | scales[8] (ggml: qs[64] holds grid bytes
 *     then sign bytes). Group l of sub-block b: grid iq2s_grid[qs[4b + l] | ((qh[b] >> 2l) & 3) << 8],
 *     signs signs[4b + l] (all 8 bits stored); scales as IQ2_XS.
 * ksigns_iq2xs[i] = i | parity(i) << 7: XXS / XS store 7 sign bits, the 8th makes the count even.
 *
 * Dot products with Q8_K (f32 d | int8 qs[256] | int16 bsums[16]; bsums are not used here), per
 * super-block D = fp16(x.d) * y.d and the exact integer sum
 *   B = sum over sub-block halves of (2 s + 1) * sum_e grid[e] * sign[e] * q8[e]:
 *   portable (ggml_vec_dot_iq2_*_q8_K_generic): sumf += D * (float)B; result 0.125f * sumf.
 *   AVX2 (ggml's __AVX2__ branch): the integer sum split over 8 int32 lanes, lane k holding elements
 *     4k .. 4k+3 of every sub-block (maddubs of grid bytes and signed q8, madd by the scale);
 *     acc = fma(D, (float)lanes, acc); result 0.125f * hsum_float_8(acc). The sign is applied to q8
 *     with _mm256_sign_epi8, which leaves q8 = -128 at -128 (quantize_row_q8_K never writes -128).
 */
#include "fs_families.h"

/* fs_iq_grids.h holds every lattice grid; the IQ1 / IQ3 ones are unused in this file. */
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-const-variable"
#pragma GCC diagnostic ignored "-Wunused-variable"
#endif
#include "fs_iq_grids.h"
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic pop
#endif

#ifndef B_IQ2_XXS
#define B_IQ2_XXS 66 /* f16 d | uint16 qs[32] */
#endif
#ifndef B_IQ2_XS
#define B_IQ2_XS 74 /* f16 d | uint16 qs[32] | scales[8] */
#endif
#ifndef B_IQ2_S
#define B_IQ2_S 82 /* f16 d | qs[32] | signs[32] | qh[8] | scales[8] */
#endif

enum iq2_kind { IQ2_XXS, IQ2_XS, IQ2_S };

static inline size_t iq2_block_bytes(enum iq2_kind t) {
    return t == IQ2_XXS ? B_IQ2_XXS : t == IQ2_XS ? B_IQ2_XS : B_IQ2_S;
}

/* ---- one sub-block, decoded (shared by the dequantizers and the portable dot products) --------- */

/* Sub-block b of a super-block: grid[l] = the grid row of group l (element 0 in the low byte);
 * byte l of signs = its sign byte (bit j set: element 8l + j negative); ls[h] = the 4-bit scale
 * of elements 16h .. 16h + 15. */
typedef struct {
    uint64_t grid[4];
    uint32_t signs;
    uint8_t ls[2];
} iq2_sub;

FS_VD_INLINE iq2_sub iq2_unpack(enum iq2_kind t, const uint8_t *x, int b) {
    iq2_sub s;
    if (t == IQ2_XXS) {
        const uint32_t a0 = rd_u32(x + 2 + 8 * b), a1 = rd_u32(x + 2 + 8 * b + 4);
        s.signs = 0;
        for (int l = 0; l < 4; l++) {
            s.grid[l] = iq2xxs_grid[(a0 >> (8 * l)) & 255];
            s.signs |= (uint32_t)ksigns_iq2xs[(a1 >> (7 * l)) & 127] << (8 * l);
        }
        s.ls[0] = s.ls[1] = (uint8_t)(a1 >> 28);
    } else if (t == IQ2_XS) {
        s.signs = 0;
        for (int l = 0; l < 4; l++) {
            const uint16_t q = rd_u16(x + 2 + 8 * b + 2 * l);
            s.grid[l] = iq2xs_grid[q & 511];
            s.signs |= (uint32_t)ksigns_iq2xs[q >> 9] << (8 * l);
        }
        s.ls[0] = (uint8_t)(x[66 + b] & 15);
        s.ls[1] = (uint8_t)(x[66 + b] >> 4);
    } else {
        const uint8_t qh = x[66 + b];
        for (int l = 0; l < 4; l++) s.grid[l] = iq2s_grid[x[2 + 4 * b + l] | (((qh >> (2 * l)) & 3) << 8)];
        s.signs = rd_u32(x + 34 + 4 * b);
        s.ls[0] = (uint8_t)(x[74 + b] & 15);
        s.ls[1] = (uint8_t)(x[74 + b] >> 4);
    }
    return s;
}

/* The 32 signed grid values of a sub-block: v[e] = grid byte e, negated where its sign bit is set
 * (|v| <= 43, so int8). Eight at a time in a uint64: m = 0xFF in the bytes to negate, then
 * (g ^ m) + (m & 1) per byte = 256 - g there (no carry between bytes, as 8 <= g <= 43). */
FS_VD_INLINE void iq2_values(const iq2_sub *s, int8_t v[32]) {
    for (int l = 0; l < 4; l++) {
        const uint64_t bit = 0x8040201008040201ull, ones = 0x0101010101010101ull;
        const uint64_t sel = (((s->signs >> (8 * l)) & 0xFF) * ones) & bit; /* byte j: bit j of the sign byte */
        const uint64_t m = (((sel + 0x7F7F7F7F7F7F7F7Full) | sel) >> 7 & ones) * 0xFF;
        const uint64_t w = (s->grid[l] ^ m) + (m & ones);
        for (int j = 0; j < 8; j++) v[8 * l + j] = (int8_t)as_i8((uint8_t)(w >> (8 * j)));
    }
}

/* ---- dequantization (gguf.quants.dequantize) -------------------------------------------------- */

/* dequantize_row_iq2_{xxs,xs,s} / gguf-py IQ2_*.dequantize_blocks, in their float32 order:
 * db = (d * (0.5f + (float)s)) * 0.25f; y = (db * (float)grid) * (sign ? -1.0f : 1.0f), computed
 * as db * (float)(sign ? -grid : grid): rounding is symmetric in sign, so the bits are the same
 * (grid > 0, so no zero changes sign either). */
FS_VD_INLINE void iq2_dequant(enum iq2_kind t, const uint8_t *src, float *dst, int64_t nb) {
    const size_t bs = iq2_block_bytes(t);
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *x = src + (size_t)ib * bs;
        const float d = dq_f16(x);
        for (int b = 0; b < 8; b++) {
            const iq2_sub s = iq2_unpack(t, x, b);
            const float db[2] = {d * (0.5f + (float)s.ls[0]) * 0.25f, d * (0.5f + (float)s.ls[1]) * 0.25f};
            int8_t v[32];
            iq2_values(&s, v);
            float *y = dst + ib * QK_K + 32 * b;
            for (int e = 0; e < 32; e++) y[e] = db[e >> 4] * (float)v[e];
        }
    }
}

/* IQ2_XXS, 66 bytes: f16 d | uint16 qs[32] (see the top of the file). */
FS_DISPATCH void fs_dequant_iq2_xxs(const uint8_t *src, float *dst, int64_t nb) { iq2_dequant(IQ2_XXS, src, dst, nb); }
/* IQ2_XS, 74 bytes: f16 d | uint16 qs[32] | scales[8]. */
FS_DISPATCH void fs_dequant_iq2_xs(const uint8_t *src, float *dst, int64_t nb) { iq2_dequant(IQ2_XS, src, dst, nb); }
/* IQ2_S, 82 bytes: f16 d | qs[32] | signs[32] | qh[8] | scales[8]. */
FS_DISPATCH void fs_dequant_iq2_s(const uint8_t *src, float *dst, int64_t nb) { iq2_dequant(IQ2_S, src, dst, nb); }

/* ---- portable dot products: ggml_vec_dot_iq2_*_q8_K_generic ----------------------------------- */

/* Per super-block: B = sum_b sum_h (2 ls[h] + 1) * sum_{e in half h} grid * sign * q8 (int32,
 * exact, so ggml's grouping of the sums does not matter); sumf += (fp16(x.d) * y.d) * (float)B;
 * result 0.125f * sumf. */
FS_VD_INLINE float dot_iq2_c(enum iq2_kind t, const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    const size_t bs = iq2_block_bytes(t);
    float sumf = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += bs, y += B_Q8_K) {
        const float d = rd_f16(x) * rd_f32(y);
        const int8_t *q8 = (const int8_t *)(y + Q8K_QS);
        int32_t bsum = 0;
        for (int b = 0; b < 8; b++, q8 += 32) {
            const iq2_sub s = iq2_unpack(t, x, b);
            int8_t v[32];
            iq2_values(&s, v);
            int32_t sumi0 = 0, sumi1 = 0;
            for (int e = 0; e < 16; e++) sumi0 += v[e] * q8[e];
            for (int e = 16; e < 32; e++) sumi1 += v[e] * q8[e];
            bsum += (2 * s.ls[0] + 1) * sumi0 + (2 * s.ls[1] + 1) * sumi1;
        }
        sumf += d * (float)bsum;
    }
    return 0.125f * sumf;
}

FS_VD_INLINE float dot_iq2_xxs_c(const uint8_t *x, const uint8_t *y, int64_t n) { return dot_iq2_c(IQ2_XXS, x, y, n); }
FS_VD_INLINE float dot_iq2_xs_c(const uint8_t *x, const uint8_t *y, int64_t n) { return dot_iq2_c(IQ2_XS, x, y, n); }
FS_VD_INLINE float dot_iq2_s_c(const uint8_t *x, const uint8_t *y, int64_t n) { return dot_iq2_c(IQ2_S, x, y, n); }

/* out[r] = dot(IQ2_* row r, Q8_K activation row), as ggml_vec_dot_iq2_*_q8_K_generic. */
FS_ROWS(fs_rows_iq2_xxs_c, dot_iq2_xxs_c, )
FS_ROWS(fs_rows_iq2_xs_c, dot_iq2_xs_c, )
FS_ROWS(fs_rows_iq2_s_c, dot_iq2_s_c, )

/* ---- AVX2 dot products: ggml's __AVX2__ code ----------------------------------------------------- */
#if FS_HAVE_AVX2_CODE

/* keven_signs_q2xs (ggml-cpu/arch/x86/quants.c) as 128 uint64: entry i holds the 8 int8 factors
 * (+1 = 0x01, -1 = 0xFF; element j in byte j) of the sign byte ksigns_iq2xs[i] = i | parity(i) << 7.
 * The compiler evaluates the rule below into the table; the verification script compared it with
 * ggml's spelled-out keven_signs_q2xs[1024] and with fs_iq_grids.h's ksigns_iq2xs. */
#define KS_PAR7(i) ((((i) >> 0) ^ ((i) >> 1) ^ ((i) >> 2) ^ ((i) >> 3) ^ ((i) >> 4) ^ ((i) >> 5) ^ ((i) >> 6)) & 1)
#define KS_BYTE(i) ((i) | (KS_PAR7(i) << 7))
#define KS_F(i, j) ((uint64_t)(((KS_BYTE(i) >> (j)) & 1) ? 0xFFu : 0x01u) << (8 * (j)))
#define KS_E(i) (KS_F(i, 0) | KS_F(i, 1) | KS_F(i, 2) | KS_F(i, 3) | KS_F(i, 4) | KS_F(i, 5) | KS_F(i, 6) | KS_F(i, 7))
#define KS_E4(i) KS_E(i), KS_E((i) + 1), KS_E((i) + 2), KS_E((i) + 3)
#define KS_E16(i) KS_E4(i), KS_E4((i) + 4), KS_E4((i) + 8), KS_E4((i) + 12)
static const uint64_t keven_signs64[128] = {KS_E16(0),  KS_E16(16), KS_E16(32), KS_E16(48),
                                            KS_E16(64), KS_E16(80), KS_E16(96), KS_E16(112)};
#undef KS_PAR7
#undef KS_BYTE
#undef KS_F
#undef KS_E
#undef KS_E4
#undef KS_E16

/* IQ2_XS / IQ2_S scales as in ggml's iq2_s AVX2 code: int16 lanes 0..7 = 2 (scales[b] & 15) + 1,
 * lanes 8..15 = 2 (scales[b] >> 4) + 1, for b = 0..7. */
static inline FS_AVX2_FN __m256i iq2_scales16(const uint8_t *sc) {
    uint64_t aux;
    memcpy(&aux, sc, sizeof aux);
    const __m128i nib = _mm_and_si128(_mm_set_epi64x((int64_t)(aux >> 4), (int64_t)aux), _mm_set1_epi8(0x0F));
    return _mm256_cvtepi8_epi16(_mm_add_epi8(_mm_slli_epi16(nib, 1), _mm_set1_epi8(1)));
}

/* The 32 sign bytes of IQ2_S sub-block (4 sign bytes in w) as int8 +1 / -1 (ggml: shuffle each
 * sign byte over its 8 elements, test bit j; ggml's iq2_s code then negates q8 as (q8 ^ m) - m,
 * which gives the same bytes as _mm256_sign_epi8 with m | 1, -128 included, as its iq2_xs code). */
static inline FS_AVX2_FN __m256i iq2_signs_from_bytes(uint32_t w) {
    const __m256i spread = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL, 0x0101010101010101LL, 0);
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL);
    const __m256i v = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int32_t)w), spread), bit);
    return _mm256_or_si256(_mm256_cmpeq_epi8(v, bit), _mm256_set1_epi8(1));
}

/* Sub-block b as ggml's AVX2 code forms it: the 32 grid bytes, the 32 signs (+1 / -1) and the
 * 16 int16 scales (2 s + 1) of its 16 element pairs. */
FS_VD_INLINE FS_AVX2_FN void iq2_sub_avx2(enum iq2_kind t, const uint8_t *x, int b, __m256i sc16, __m256i *grid,
                                          __m256i *sign, __m256i *scale) {
    if (t == IQ2_XXS) {
        const uint32_t a0 = rd_u32(x + 2 + 8 * b), a1 = rd_u32(x + 2 + 8 * b + 4);
        *grid = _mm256_set_epi64x((int64_t)iq2xxs_grid[a0 >> 24], (int64_t)iq2xxs_grid[(a0 >> 16) & 255],
                                  (int64_t)iq2xxs_grid[(a0 >> 8) & 255], (int64_t)iq2xxs_grid[a0 & 255]);
        *sign = _mm256_set_epi64x((int64_t)keven_signs64[(a1 >> 21) & 127], (int64_t)keven_signs64[(a1 >> 14) & 127],
                                  (int64_t)keven_signs64[(a1 >> 7) & 127], (int64_t)keven_signs64[a1 & 127]);
        *scale = _mm256_set1_epi16((short)(2 * (a1 >> 28) + 1));
        (void)sc16;
        return;
    }
    if (t == IQ2_XS) {
        const uint16_t q0 = rd_u16(x + 2 + 8 * b), q1 = rd_u16(x + 4 + 8 * b);
        const uint16_t q2 = rd_u16(x + 6 + 8 * b), q3 = rd_u16(x + 8 + 8 * b);
        *grid = _mm256_set_epi64x((int64_t)iq2xs_grid[q3 & 511], (int64_t)iq2xs_grid[q2 & 511],
                                  (int64_t)iq2xs_grid[q1 & 511], (int64_t)iq2xs_grid[q0 & 511]);
        *sign = _mm256_set_epi64x((int64_t)keven_signs64[q3 >> 9], (int64_t)keven_signs64[q2 >> 9],
                                  (int64_t)keven_signs64[q1 >> 9], (int64_t)keven_signs64[q0 >> 9]);
    } else {
        const uint8_t *qs = x + 2 + 4 * b;
        const unsigned qh = x[66 + b];
        *grid = _mm256_set_epi64x((int64_t)iq2s_grid[qs[3] | ((qh << 2) & 0x300)],
                                  (int64_t)iq2s_grid[qs[2] | ((qh << 4) & 0x300)],
                                  (int64_t)iq2s_grid[qs[1] | ((qh << 6) & 0x300)],
                                  (int64_t)iq2s_grid[qs[0] | ((qh << 8) & 0x300)]);
        *sign = iq2_signs_from_bytes(rd_u32(x + 34 + 4 * b));
    }
    /* get_scale_shuffle_k4(b): the low 128 bits take int16 lane b (low scale), the high 128 bits
     * int16 lane 8 + b (high scale) of sc16. */
    *scale = _mm256_shuffle_epi8(sc16, _mm256_set1_epi16((short)(((2 * b + 1) << 8) | (2 * b))));
}

/* ggml_vec_dot_iq2_{xxs,xs,s}_q8_K (AVX2): per sub-block, maddubs(grid, sign(q8, signs)) (int16
 * pairs), madd by the scales (int32 lane k: elements 4k .. 4k+3), summed over the super-block;
 * acc = fma(fp16(x.d) * y.d, (float)lanes, acc); result 0.125f * hsum_float_8(acc). */
FS_VD_INLINE FS_AVX2_FN float dot_iq2_avx2(enum iq2_kind t, const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    const size_t bs = iq2_block_bytes(t);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++, x += bs, y += B_Q8_K) {
        const float d = h2f(x) * rd_f32(y);
        const int8_t *q8 = (const int8_t *)(y + Q8K_QS);
        const __m256i sc16 = t == IQ2_XXS ? _mm256_setzero_si256() : iq2_scales16(x + (t == IQ2_XS ? 66 : 74));
        __m256i sumi = _mm256_setzero_si256();
        for (int b = 0; b < 8; b++) {
            __m256i grid, sign, scale;
            iq2_sub_avx2(t, x, b, sc16, &grid, &sign, &scale);
            const __m256i q8s = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(q8 + 32 * b)), sign);
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(grid, q8s), scale));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return 0.125f * hsum_f32x8(acc);
}

FS_VD_INLINE FS_AVX2_FN float dot_iq2_xxs_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    return dot_iq2_avx2(IQ2_XXS, x, y, n);
}
FS_VD_INLINE FS_AVX2_FN float dot_iq2_xs_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    return dot_iq2_avx2(IQ2_XS, x, y, n);
}
FS_VD_INLINE FS_AVX2_FN float dot_iq2_s_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    return dot_iq2_avx2(IQ2_S, x, y, n);
}

/* out[r] = dot(IQ2_* row r, Q8_K activation row), as ggml_vec_dot_iq2_*_q8_K's __AVX2__ branch. */
FS_ROWS(fs_rows_iq2_xxs_avx2, dot_iq2_xxs_avx2, FS_AVX2_FN)
FS_ROWS(fs_rows_iq2_xs_avx2, dot_iq2_xs_avx2, FS_AVX2_FN)
FS_ROWS(fs_rows_iq2_s_avx2, dot_iq2_s_avx2, FS_AVX2_FN)

#endif /* FS_HAVE_AVX2_CODE */
