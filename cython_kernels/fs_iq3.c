/* The 3-bit lattice types IQ3_XXS and IQ3_S (256-element super-blocks, activation format Q8_K):
 * every group of 4 elements is one entry of a grid of 4 unsigned magnitudes (iq3xxs_grid: 256
 * entries, values 4 .. 62; iq3s_grid: 512 entries, odd values 1 .. 15), with one sign bit per
 * element and one 4-bit scale per 32 elements (IQ3_XXS) or per 32 elements in pairs (IQ3_S).
 *
 * Layouts (ggml-common.h, little-endian):
 *   block_iq3_xxs  98 bytes: f16 d | qs[64] (grid indices) | u32 aux[8] (scales and signs)
 *                  sub-block s (elements 32 s .. 32 s + 32) uses qs[8 s .. 8 s + 8), one index per
 *                  4 elements, and aux[s]: bits 7 l .. 7 l + 6 (l < 4) index ksigns_iq2xs, whose
 *                  byte gives the signs of elements 32 s + 8 l + j (bit j, j < 8; bit 7 is the parity
 *                  of the 7 stored bits), bits 28 .. 31 the scale a.
 *                  element = ((d * (0.5 + a)) * 0.5) * grid[qs][j % 4] * sign   (dequantization)
 *   block_iq3_s    110 bytes: f16 d | qs[64] | qh[8] | signs[32] | scales[4]
 *                  index k of sub-block s (elements 32 s + 4 k .. + 4) = qs[8 s + k] | bit k of
 *                  qh[s] << 8; the sign of element e is bit e % 8 of signs[e / 8]; the scale of
 *                  sub-block s is a = (scales[s / 2] >> 4 (s % 2)) & 15.
 *                  element = (d * (1 + 2 a)) * grid[index][e % 4] * sign
 * Q8_K: f32 d | int8 qs[256] | int16 bsums[16] (bsums unused here).
 *
 * Dot products (the integer parts are exact; the sign bits flip q8, ls = 2 a + 1):
 *   portable (ggml_vec_dot_iq3_xxs_q8_K_generic, ggml_vec_dot_iq3_s_q8_K_generic): per super-block
 *     bsum = sum_s ls_s * sum_e (grid_e * sign_e * q8_e), sumf += (fp16(x.d) * y.d) * (float)bsum;
 *     result 0.25f * sumf (IQ3_XXS) or sumf (IQ3_S).
 *   AVX2 (the __AVX2__ branches of ggml_vec_dot_iq3_xxs_q8_K / ggml_vec_dot_iq3_s_q8_K): the grid
 *     bytes (unsigned) times the sign-flipped q8 with maddubs, then madd with ls into 8 int32 lanes
 *     (lane k: the elements 4 k .. 4 k + 3 of every sub-block, summed over the sub-blocks); per
 *     super-block acc = fma(fp16(x.d) * y.d, (float)lanes, acc); result 0.25f * hsum_float_8(acc)
 *     (IQ3_XXS) or hsum_float_8(acc) (IQ3_S). The maddubs pairs stay within +-2 * 62 * 128, so
 *     never saturate. The AVX2 sign flip of q8 = -128 wraps to -128 (the generic code gives +128);
 *     Q8_K activations never hold -128 (quantize_row_q8_K clamps to [-127, 127] in practice), so
 *     the two paths differ only in the float accumulation.
 *
 * Sources (llama.cpp, read for the algorithms; an independent implementation):
 *   ggml/src/ggml-common.h               block_iq3_xxs, block_iq3_s, the grids, ksigns_iq2xs
 *   ggml/src/ggml-quants.c               dequantize_row_iq3_xxs, dequantize_row_iq3_s
 *   gguf-py gguf/quants.py               IQ3_XXS / IQ3_S .dequantize_blocks (the float order here)
 *   ggml/src/ggml-cpu/quants.c           ggml_vec_dot_iq3_xxs_q8_K_generic, ggml_vec_dot_iq3_s_q8_K_generic
 *   ggml/src/ggml-cpu/arch/x86/quants.c  ggml_vec_dot_iq3_xxs_q8_K, ggml_vec_dot_iq3_s_q8_K (__AVX2__),
 *                                        keven_signs_q2xs (derived below, not copied)
 * Tests: tests/quant_reference/iq3.py (the numpy references, bit for bit).
 */
#include "fs_families.h"
#include "fs_iq_grids.h"

#define B_IQ3_XXS 98 /* f16 d | qs[64] | u32 scales_and_signs[8] */
#define B_IQ3_S 110  /* f16 d | qs[64] | qh[8] | signs[32] | scales[4] */
#define IQ3XXS_AUX 66
#define IQ3S_QH 66
#define IQ3S_SIGNS 74
#define IQ3S_SCALES 106

/* ---- unpacking (shared by the dequantizers and the portable dot products) -------------------- */

/* Byte j (j < 4) of a grid entry: element j of its group of 4 (element 0 in the low byte). */
static inline int grid_byte(uint32_t g, int j) { return (int)((g >> (8 * j)) & 0xFFu); }

/* The 4 bytes of grid entry g into b[0 .. 4), element order. */
static inline void grid_bytes(uint32_t g, uint8_t *b) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(b, &g, 4);
#else
    for (int j = 0; j < 4; j++) b[j] = (uint8_t)grid_byte(g, j);
#endif
}

/* v[e] = gb[e], negated where bit e of signs is set (branch-free), for the 32 values of a sub-block. */
static inline void apply_signs(const uint8_t gb[QK], uint32_t signs, int8_t v[QK]) {
    for (int e = 0; e < QK; e++) {
        const int sg = (int)((signs >> e) & 1u);
        v[e] = (int8_t)((gb[e] ^ -sg) + sg);
    }
}

/* The sign word (bit e: element 32 s + e negative) of IQ3_XXS sub-block s: four ksigns_iq2xs bytes. */
static inline uint32_t iq3_xxs_signs(const uint8_t *x, int s) {
    const uint32_t aux = rd_u32(x + IQ3XXS_AUX + 4 * s);
    return (uint32_t)ksigns_iq2xs[aux & 127] | ((uint32_t)ksigns_iq2xs[(aux >> 7) & 127] << 8) |
           ((uint32_t)ksigns_iq2xs[(aux >> 14) & 127] << 16) | ((uint32_t)ksigns_iq2xs[(aux >> 21) & 127] << 24);
}

/* The 32 signed values (grid * sign, |v| <= 62) of IQ3_XXS sub-block s of block x. */
FS_VD_INLINE void iq3_xxs_values(const uint8_t *x, int s, int8_t v[QK]) {
    uint8_t gb[QK];
    for (int k = 0; k < 8; k++) grid_bytes(iq3xxs_grid[x[2 + 8 * s + k]], gb + 4 * k);
    apply_signs(gb, iq3_xxs_signs(x, s), v);
}

/* The scale code a (0 .. 15) of IQ3_XXS sub-block s. */
static inline int iq3_xxs_scale(const uint8_t *x, int s) { return (int)(rd_u32(x + IQ3XXS_AUX + 4 * s) >> 28); }

/* Grid index k (k < 8) of IQ3_S sub-block s: 8 low bits in qs, the ninth in qh[s]. */
static inline unsigned iq3_s_index(const uint8_t *x, int s, int k) {
    return x[2 + 8 * s + k] | ((((unsigned)x[IQ3S_QH + s] >> k) & 1u) << 8);
}

/* The 32 signed values (grid * sign, |v| <= 15) of IQ3_S sub-block s of block x. */
FS_VD_INLINE void iq3_s_values(const uint8_t *x, int s, int8_t v[QK]) {
    uint8_t gb[QK];
    for (int k = 0; k < 8; k++) grid_bytes(iq3s_grid[iq3_s_index(x, s, k)], gb + 4 * k);
    apply_signs(gb, rd_u32(x + IQ3S_SIGNS + 4 * s), v);
}

/* The scale code a (0 .. 15) of IQ3_S sub-block s. */
static inline int iq3_s_scale(const uint8_t *x, int s) { return (x[IQ3S_SCALES + s / 2] >> (4 * (s % 2))) & 0x0F; }

/* ---- dequantization (gguf-py IQ3_XXS / IQ3_S .dequantize_blocks) ----------------------------- */

/* nb IQ3_XXS blocks: db = (d * (0.5f + (float)a)) * 0.5f, y = (db * (float)grid) * (+-1.0f). */
void fs_dequant_iq3_xxs(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += B_IQ3_XXS) {
        const float d = dq_f16(src);
        for (int s = 0; s < QK_K / QK; s++, dst += QK) {
            const float db = d * (0.5f + (float)iq3_xxs_scale(src, s)) * 0.5f;
            const uint32_t aux = rd_u32(src + IQ3XXS_AUX + 4 * s);
            for (int e = 0; e < QK; e++) {
                const unsigned signs = ksigns_iq2xs[(aux >> (7 * (e / 8))) & 127];
                const float g = (float)grid_byte(iq3xxs_grid[src[2 + 8 * s + e / 4]], e % 4);
                dst[e] = db * g * ((signs >> (e % 8)) & 1 ? -1.0f : 1.0f);
            }
        }
    }
}

/* nb IQ3_S blocks: db = d * (float)(1 + 2 a), y = (db * (float)grid) * (+-1.0f). */
void fs_dequant_iq3_s(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += B_IQ3_S) {
        const float d = dq_f16(src);
        for (int s = 0; s < QK_K / QK; s++, dst += QK) {
            const float db = d * (float)(1 + 2 * iq3_s_scale(src, s));
            const uint8_t *signs = src + IQ3S_SIGNS + 4 * s;
            for (int e = 0; e < QK; e++) {
                const float g = (float)grid_byte(iq3s_grid[iq3_s_index(src, s, e / 4)], e % 4);
                dst[e] = db * g * ((signs[e / 8] >> (e % 8)) & 1 ? -1.0f : 1.0f);
            }
        }
    }
}

/* ---- portable dot products (ggml-cpu/quants.c *_generic) ------------------------------------ */

/* ggml_vec_dot_iq3_xxs_q8_K_generic: bsum = sum_s (2 a_s + 1) * sumi_s (exact);
 * sumf += (fp16(x.d) * y.d) * (float)bsum block after block; result 0.25f * sumf. */
FS_VD_INLINE float dot_iq3_xxs_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; i++, x += B_IQ3_XXS, y += B_Q8_K) {
        const float d = rd_f16(x) * rd_f32(y);
        const int8_t *q8 = (const int8_t *)(y + Q8K_QS);
        int32_t bsum = 0;
        for (int s = 0; s < QK_K / QK; s++) {
            int8_t v[QK];
            iq3_xxs_values(x, s, v);
            bsum += block_dot_i8(v, q8 + QK * s) * (2 * iq3_xxs_scale(x, s) + 1);
        }
        sumf += d * (float)bsum;
    }
    return 0.25f * sumf;
}

/* ggml_vec_dot_iq3_s_q8_K_generic: as IQ3_XXS without the final 0.25f. */
FS_VD_INLINE float dot_iq3_s_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; i++, x += B_IQ3_S, y += B_Q8_K) {
        const float d = rd_f16(x) * rd_f32(y);
        const int8_t *q8 = (const int8_t *)(y + Q8K_QS);
        int32_t bsum = 0;
        for (int s = 0; s < QK_K / QK; s++) {
            int8_t v[QK];
            iq3_s_values(x, s, v);
            bsum += block_dot_i8(v, q8 + QK * s) * (2 * iq3_s_scale(x, s) + 1);
        }
        sumf += d * (float)bsum;
    }
    return sumf;
}

/* out[r] = ggml_vec_dot_iq3_xxs_q8_K_generic(weight row r, act): IQ3_XXS rows x Q8_K activations. */
FS_ROWS(fs_rows_iq3_xxs_c, dot_iq3_xxs_c, )

/* out[r] = ggml_vec_dot_iq3_s_q8_K_generic(weight row r, act): IQ3_S rows x Q8_K activations. */
FS_ROWS(fs_rows_iq3_s_c, dot_iq3_s_c, )

/* ---- AVX2 (ggml-cpu/arch/x86/quants.c) ------------------------------------------------------ */
#if FS_HAVE_AVX2_CODE

/* keven_signs_q2xs (ggml, x86 quants.c) as 128 uint64: entry i holds the 8 signs of the 7-bit
 * sign index i as int8 +1 (0x01) / -1 (0xFF), byte j for element j; the eighth sign is the parity
 * of i. That is, byte j is -1 exactly when bit j of ksigns_iq2xs[i] is set (ksigns_iq2xs[i] =
 * i | parity(i) << 7). Built here at compile time from i; tests compare it with ggml's table. */
#define KS_PAR(i) ((((i) >> 0) ^ ((i) >> 1) ^ ((i) >> 2) ^ ((i) >> 3) ^ ((i) >> 4) ^ ((i) >> 5) ^ ((i) >> 6)) & 1)
#define KS_B(i, j) ((uint64_t)((((i) >> (j)) & 1) ? 0xFF : 0x01) << (8 * (j)))
#define KS_E(i)                                                                                    \
    (KS_B(i, 0) | KS_B(i, 1) | KS_B(i, 2) | KS_B(i, 3) | KS_B(i, 4) | KS_B(i, 5) | KS_B(i, 6) |   \
     ((uint64_t)(KS_PAR(i) ? 0xFF : 0x01) << 56))
#define KS_4(i) KS_E(i), KS_E((i) + 1), KS_E((i) + 2), KS_E((i) + 3)
#define KS_16(i) KS_4(i), KS_4((i) + 4), KS_4((i) + 8), KS_4((i) + 12)
static const uint64_t keven_signs64[128] = {KS_16(0),  KS_16(16), KS_16(32), KS_16(48),
                                            KS_16(64), KS_16(80), KS_16(96), KS_16(112)};

/* The 8 int32 lanes of one sub-block: madd(maddubs(grid bytes, sign-flipped q8), ls); lane k holds
 * ls * sum of the products of elements 4 k .. 4 k + 3. */
static inline FS_AVX2_FN __m256i iq3_lanes(__m256i grid, __m256i q8s, int ls) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(grid, q8s), _mm256_set1_epi16((short)ls));
}

/* IQ3_XXS sub-block s of x times q8 (its 32 activations): grid entries via _mm256_set_epi32,
 * signs from keven_signs64 via _mm256_sign_epi8, as ggml. */
static inline FS_AVX2_FN __m256i iq3_xxs_sub(const uint8_t *x, int s, const int8_t *q8) {
    const uint8_t *q3 = x + 2 + 8 * s;
    const uint32_t aux = rd_u32(x + IQ3XXS_AUX + 4 * s);
    const __m256i grid = _mm256_set_epi32((int)iq3xxs_grid[q3[7]], (int)iq3xxs_grid[q3[6]], (int)iq3xxs_grid[q3[5]],
                                          (int)iq3xxs_grid[q3[4]], (int)iq3xxs_grid[q3[3]], (int)iq3xxs_grid[q3[2]],
                                          (int)iq3xxs_grid[q3[1]], (int)iq3xxs_grid[q3[0]]);
    const __m256i sg = _mm256_set_epi64x((long long)keven_signs64[(aux >> 21) & 127], (long long)keven_signs64[(aux >> 14) & 127],
                                         (long long)keven_signs64[(aux >> 7) & 127], (long long)keven_signs64[aux & 127]);
    const __m256i q8s = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)q8), sg);
    return iq3_lanes(grid, q8s, 2 * (int)(aux >> 28) + 1);
}

/* IQ3_S sub-block s of x times q8: 9-bit grid indices, signs expanded from 4 bytes (bit e % 8 of
 * byte e / 8 -> byte e all ones) and applied as (q8 ^ m) - m, as ggml. */
static inline FS_AVX2_FN __m256i iq3_s_sub(const uint8_t *x, int s, const int8_t *q8) {
    const __m256i grid = _mm256_set_epi32(
        (int)iq3s_grid[iq3_s_index(x, s, 7)], (int)iq3s_grid[iq3_s_index(x, s, 6)], (int)iq3s_grid[iq3_s_index(x, s, 5)],
        (int)iq3s_grid[iq3_s_index(x, s, 4)], (int)iq3s_grid[iq3_s_index(x, s, 3)], (int)iq3s_grid[iq3_s_index(x, s, 2)],
        (int)iq3s_grid[iq3_s_index(x, s, 1)], (int)iq3s_grid[iq3_s_index(x, s, 0)]);
    const __m256i rep = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL, 0x0101010101010101LL, 0);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    const __m256i b = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)rd_u32(x + IQ3S_SIGNS + 4 * s)), rep), bit);
    const __m256i m = _mm256_cmpeq_epi8(b, bit);
    const __m256i q8s = _mm256_sub_epi8(_mm256_xor_si256(m, _mm256_loadu_si256((const __m256i *)q8)), m);
    return iq3_lanes(grid, q8s, 2 * iq3_s_scale(x, s) + 1);
}

/* ggml_vec_dot_iq3_xxs_q8_K (AVX2): per block acc = fma(fp16(x.d) * y.d, (float)lanes, acc);
 * result 0.25f * hsum_float_8(acc). */
static inline FS_AVX2_FN float dot_iq3_xxs_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++, x += B_IQ3_XXS, y += B_Q8_K) {
        const int8_t *q8 = (const int8_t *)(y + Q8K_QS);
        __m256i sumi = _mm256_setzero_si256();
        for (int s = 0; s < QK_K / QK; s++) sumi = _mm256_add_epi32(sumi, iq3_xxs_sub(x, s, q8 + QK * s));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x) * rd_f32(y)), _mm256_cvtepi32_ps(sumi), acc);
    }
    return 0.25f * hsum_f32x8(acc);
}

/* ggml_vec_dot_iq3_s_q8_K (AVX2): as IQ3_XXS without the final 0.25f. */
static inline FS_AVX2_FN float dot_iq3_s_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++, x += B_IQ3_S, y += B_Q8_K) {
        const int8_t *q8 = (const int8_t *)(y + Q8K_QS);
        __m256i sumi = _mm256_setzero_si256();
        for (int s = 0; s < QK_K / QK; s++) sumi = _mm256_add_epi32(sumi, iq3_s_sub(x, s, q8 + QK * s));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x) * rd_f32(y)), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_f32x8(acc);
}

/* out[r] = ggml_vec_dot_iq3_xxs_q8_K (AVX2 branch) of weight row r and act. */
FS_ROWS(fs_rows_iq3_xxs_avx2, dot_iq3_xxs_avx2, FS_AVX2_FN)

/* out[r] = ggml_vec_dot_iq3_s_q8_K (AVX2 branch) of weight row r and act. */
FS_ROWS(fs_rows_iq3_s_avx2, dot_iq3_s_avx2, FS_AVX2_FN)

#endif /* FS_HAVE_AVX2_CODE */
