/* The non-linear 4-bit types IQ4_NL and IQ4_XS: every 4-bit index selects one of 16 int8 levels
 * (kvalues_iq4nl), scaled by a per-block (IQ4_NL) or per-sub-block (IQ4_XS) factor.
 *
 * Layouts (ggml-common.h, little-endian):
 *   block_iq4_nl  18 bytes, 32 elements: f16 d | qs[16]
 *                 element j (j < 16) = d * kv[qs[j] & 15], element 16 + j = d * kv[qs[j] >> 4]
 *   block_iq4_xs  136 bytes, 256 elements: f16 d | u16 scales_h | scales_l[4] | qs[128]
 *                 sub-block s (32 elements, qs[16 s .. 16 s + 16) as in IQ4_NL) has the 6-bit scale
 *                 ls = ((scales_l[s / 2] >> 4 (s % 2)) & 15) | (((scales_h >> 2 s) & 3) << 4),
 *                 element = (d * (ls - 32)) * kv[nibble]
 * Activations (ggml-cpu.c type_traits_cpu vec_dot_type): IQ4_NL with Q8_0 (34 bytes: f16 d |
 * int8 qs[32]), IQ4_XS with Q8_K (292 bytes: f32 d | int8 qs[256] | int16 bsums[16], bsums unused).
 *
 * Sources (llama.cpp, read for the algorithms; an independent implementation):
 *   ggml/src/ggml-quants.c              dequantize_row_iq4_nl, dequantize_row_iq4_xs
 *   gguf-py gguf/quants.py              IQ4_NL, IQ4_XS .dequantize_blocks (the float order here)
 *   ggml/src/ggml-cpu/quants.c          ggml_vec_dot_iq4_nl_q8_0_generic, ggml_vec_dot_iq4_xs_q8_K_generic
 *   ggml/src/ggml-cpu/arch/x86/quants.c the __AVX2__ branches of ggml_vec_dot_iq4_nl_q8_0 and
 *                                       ggml_vec_dot_iq4_xs_q8_K
 *   ggml/src/ggml-cpu/repack.cpp        ggml_repack_get_optimal_repack_type (iq4_nl_8x8_q8_0 when
 *                                       AVX2 and ne[1] % 8 == 0), make_block_iq4_nlx8
 *   ggml/src/ggml-cpu/arch/x86/repack.cpp  ggml_gemv_iq4_nl_8x8_q8_0 / ggml_gemm_iq4_nl_8x8_q8_0 ->
 *                                       gemv_q4_b32_8x8_q8_0_lut_avx / gemm_q4_b32_8x8_q8_0_lut_avx
 *
 * Integer parts are exact (|kv| <= 127 and the Q8 activations within [-127, 127], so the maddubs
 * pairs never saturate); the float operations follow the sources one for one (see each function).
 * As in the other family files, scalar a * b + c in the sources is two roundings here (the C
 * semantics without FMA contraction; a GCC build of ggml with -mfma and its default
 * -ffp-contract=fast fuses some of them, e.g. the odd-block tail of the IQ4_NL AVX2 dot).
 */
#include "fs_families.h"

#define B_IQ4_NL 18  /* f16 d | qs[16] */
#define B_IQ4_XS 136 /* f16 d | u16 scales_h | scales_l[4] | qs[128] */

/* kvalues_iq4nl (ggml-common.h): the 16 levels. */
static const int8_t kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* The 32 levels of one 16-byte group of nibbles: out[j] = kv[qs[j] & 15], out[16 + j] = kv[qs[j] >> 4]. */
static inline void iq4_levels(const uint8_t *qs, int8_t out[QK]) {
    for (int j = 0; j < 16; j++) {
        out[j] = kvalues_iq4nl[qs[j] & 0x0F];
        out[j + 16] = kvalues_iq4nl[qs[j] >> 4];
    }
}

/* The 6-bit scale of IQ4_XS sub-block s, minus 32 (in [-32, 31]). */
static inline int iq4_xs_scale(const uint8_t *x, int s) {
    const int lo = (x[4 + s / 2] >> (4 * (s % 2))) & 0x0F;
    const int hi = (rd_u16(x + 2) >> (2 * s)) & 3;
    return (lo | (hi << 4)) - 32;
}

/* ---- dequantization (gguf-py IQ4_NL / IQ4_XS .dequantize_blocks) ---------------------------- */

/* nb IQ4_NL blocks: y = d * (float)kv[nibble] (float32, one rounding). */
void fs_dequant_iq4_nl(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += B_IQ4_NL, dst += QK) {
        const float d = dq_f16(src);
        for (int j = 0; j < 16; j++) {
            dst[j] = d * (float)kvalues_iq4nl[src[2 + j] & 0x0F];
            dst[j + 16] = d * (float)kvalues_iq4nl[src[2 + j] >> 4];
        }
    }
}

/* nb IQ4_XS super-blocks: dl = d * (float)(ls - 32), y = dl * (float)kv[nibble]. */
void fs_dequant_iq4_xs(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += B_IQ4_XS) {
        const float d = dq_f16(src);
        for (int s = 0; s < QK_K / QK; s++, dst += QK) {
            const float dl = d * (float)iq4_xs_scale(src, s);
            const uint8_t *qs = src + 8 + 16 * s;
            for (int j = 0; j < 16; j++) {
                dst[j] = dl * (float)kvalues_iq4nl[qs[j] & 0x0F];
                dst[j + 16] = dl * (float)kvalues_iq4nl[qs[j] >> 4];
            }
        }
    }
}

/* ---- portable dot products (ggml-cpu/quants.c *_generic) ------------------------------------ */

/* sum_j kv[x nibble j] * q8[j] over the 32 elements of one nibble group (exact). */
FS_VD_INLINE int iq4_group_sumi(const uint8_t *qs, const int8_t *q8) {
    int8_t v[QK];
    iq4_levels(qs, v);
    return block_dot_i8(v, q8);
}

/* ggml_vec_dot_iq4_nl_q8_0_generic: sumf += (fp16(y.d) * fp16(x.d)) * (float)sumi, block by block. */
FS_VD_INLINE float dot_iq4_nl_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK;
    float sumf = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_IQ4_NL, y += B_Q8_0) {
        const float d = rd_f16(y) * rd_f16(x);
        sumf += d * (float)iq4_group_sumi(x + 2, (const int8_t *)(y + 2));
    }
    return sumf;
}

/* ggml_vec_dot_iq4_xs_q8_K_generic: per super-block d4d8 = fp16(x.d) * y.d; per sub-block s
 * sumf += (d4d8 * (float)(ls_s - 32)) * (float)sumi_s, one accumulator, sub-blocks in order. */
FS_VD_INLINE float dot_iq4_xs_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    float sumf = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_IQ4_XS, y += B_Q8_K) {
        const float d4d8 = rd_f16(x) * rd_f32(y);
        const int8_t *q8 = (const int8_t *)(y + Q8K_QS);
        for (int s = 0; s < QK_K / QK; s++) {
            const float dl = d4d8 * (float)iq4_xs_scale(x, s);
            sumf += dl * (float)iq4_group_sumi(x + 8 + 16 * s, q8 + QK * s);
        }
    }
    return sumf;
}

/* The repacked product (gemv_q4_b32_8x8_q8_0_lut_avx, gemm_q4_b32_8x8_q8_0_lut_avx; see
 * fs_gemv_iq4_nl_c): acc = fma((float)sumi, fp16(x.d) * fp16(y.d), acc) block by block. */
FS_VD_INLINE float dot_iq4_nl_gemv_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK;
    float acc = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_IQ4_NL, y += B_Q8_0)
        acc = fmaf((float)iq4_group_sumi(x + 2, (const int8_t *)(y + 2)), rd_f16(x) * rd_f16(y), acc);
    return acc;
}

/* out[r] = ggml_vec_dot_iq4_nl_q8_0_generic(weight row r, act): IQ4_NL rows x Q8_0 activations. */
FS_ROWS(fs_rows_iq4_nl_c, dot_iq4_nl_c, )

/* out[r] = ggml_vec_dot_iq4_xs_q8_K_generic(weight row r, act): IQ4_XS rows x Q8_K activations. */
FS_ROWS(fs_rows_iq4_xs_c, dot_iq4_xs_c, )

/* llama.cpp's x86 repacked IQ4_NL product (what it runs on AVX2 machines for IQ4_NL tensors with a
 * row count multiple of 8: repack.cpp iq4_nl_8x8_q8_0, then ggml_gemv_iq4_nl_8x8_q8_0 /
 * ggml_gemm_iq4_nl_8x8_q8_0 -> gemv_q4_b32_8x8_q8_0_lut_avx / gemm_q4_b32_8x8_q8_0_lut_avx). Each
 * output is one SIMD lane of those kernels: acc = fma((float)sumi_b, fp16(x.d) * fp16(y.d), acc)
 * over the blocks b in order, out = acc (no horizontal float sum; gemm and gemv alike). fmaf is
 * correctly rounded as _mm256_fmadd_ps is, so this gives the bits of fs_gemv_iq4_nl_avx2. */
FS_ROWS(fs_gemv_iq4_nl_c, dot_iq4_nl_gemv_c, )

/* ---- AVX2 (ggml-cpu/arch/x86/quants.c, arch/x86/repack.cpp) --------------------------------- */
#if FS_HAVE_AVX2_CODE

/* ggml_vec_dot_iq4_nl_q8_0 (AVX2): blocks in pairs, accum1 / accum2 = fma(fp16(y.d) * fp16(x.d),
 * (float)lanes, accum) for the even / odd block of each pair; sumf = hsum_float_8(accum1 + accum2);
 * an odd last block is added as in the generic code, sumf += d * (float)sumi. */
static inline FS_AVX2_FN float dot_iq4_nl_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK;
    const __m256i table = lut16_table(kvalues_iq4nl);
    __m256 acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps();
    int64_t ib = 0;
    for (; ib + 1 < nb; ib += 2, x += 2 * B_IQ4_NL, y += 2 * B_Q8_0) {
        const __m256i v1 = lut16_levels_32(table, x + 2), v2 = lut16_levels_32(table, x + B_IQ4_NL + 2);
        const __m256i p1 = lut16_lanes(_mm256_sign_epi8(v1, v1), v1, _mm256_loadu_si256((const __m256i *)(y + 2)));
        const __m256i p2 = lut16_lanes(_mm256_sign_epi8(v2, v2), v2, _mm256_loadu_si256((const __m256i *)(y + B_Q8_0 + 2)));
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(y) * h2f(x)), _mm256_cvtepi32_ps(p1), acc1);
        acc2 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(y + B_Q8_0) * h2f(x + B_IQ4_NL)), _mm256_cvtepi32_ps(p2), acc2);
    }
    float sumf = hsum_f32x8(_mm256_add_ps(acc1, acc2));
    if (ib < nb) {
        const __m256i v = lut16_levels_32(table, x + 2);
        const int32_t sumi = hsum_i32x8(lut16_lanes(_mm256_sign_epi8(v, v), v, _mm256_loadu_si256((const __m256i *)(y + 2))));
        sumf += (h2f(y) * h2f(x)) * (float)sumi;
    }
    return sumf;
}

/* The 8 int32 lanes of one IQ4_XS super-block times y: sum over sub-blocks s of (ls_s - 32) *
 * (lanes of sub-block s) (ggml: madd(p16, set1_epi16(ls)), even / odd sub-blocks in sumi1 / sumi2,
 * added at the end; exact, so in any order). */
static inline FS_AVX2_FN __m256i iq4_xs_block_lanes(__m256i table, const uint8_t *x, const int8_t *q8) {
    __m256i sumi = _mm256_setzero_si256();
    for (int s = 0; s < QK_K / QK; s++) {
        const __m256i v = lut16_levels_32(table, x + 8 + 16 * s);
        const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(v, v),
                                                 _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(q8 + QK * s)), v));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p16, _mm256_set1_epi16((short)iq4_xs_scale(x, s))));
    }
    return sumi;
}

/* ggml_vec_dot_iq4_xs_q8_K (AVX2): per super-block accum = fma(fp16(x.d) * y.d, (float)lanes,
 * accum); result hsum_float_8(accum). */
static inline FS_AVX2_FN float dot_iq4_xs_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    const __m256i table = lut16_table(kvalues_iq4nl);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++, x += B_IQ4_XS, y += B_Q8_K) {
        const __m256i sumi = iq4_xs_block_lanes(table, x, (const int8_t *)(y + Q8K_QS));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(x) * rd_f32(y)), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_f32x8(acc);
}

/* out[r] = ggml_vec_dot_iq4_nl_q8_0 (AVX2 branch) of weight row r and act. */
FS_ROWS(fs_rows_iq4_nl_avx2, dot_iq4_nl_avx2, FS_AVX2_FN)

/* out[r] = ggml_vec_dot_iq4_xs_q8_K (AVX2 branch) of weight row r and act. */
FS_ROWS(fs_rows_iq4_xs_avx2, dot_iq4_xs_avx2, FS_AVX2_FN)

/* IQ4_NL: one weight row x RN <= 4 activation rows; each pair of weight blocks is unpacked once
 * for all RN rows. Per pair (row, activation) the operations of dot_iq4_nl_avx2. */
FS_VD_INLINE FS_AVX2_FN void tile_iq4_nl(const uint8_t *x, const uint8_t *a, size_t ab, int64_t nb, float *out,
                                         int64_t os, const int RN) {
    const __m256i table = lut16_table(kvalues_iq4nl);
    __m256 acc1[4], acc2[4];
    for (int j = 0; j < RN; j++) acc1[j] = acc2[j] = _mm256_setzero_ps();
    int64_t ib = 0;
    for (; ib + 1 < nb; ib += 2) {
        const uint8_t *x1 = x + (size_t)ib * B_IQ4_NL, *x2 = x1 + B_IQ4_NL;
        const __m256i v1 = lut16_levels_32(table, x1 + 2), v2 = lut16_levels_32(table, x2 + 2);
        const __m256i ax1 = _mm256_sign_epi8(v1, v1), ax2 = _mm256_sign_epi8(v2, v2);
        const float dx1 = h2f(x1), dx2 = h2f(x2);
        for (int j = 0; j < RN; j++) {
            const uint8_t *y1 = a + (size_t)j * ab + (size_t)ib * B_Q8_0, *y2 = y1 + B_Q8_0;
            const __m256i p1 = lut16_lanes(ax1, v1, _mm256_loadu_si256((const __m256i *)(y1 + 2)));
            const __m256i p2 = lut16_lanes(ax2, v2, _mm256_loadu_si256((const __m256i *)(y2 + 2)));
            acc1[j] = _mm256_fmadd_ps(_mm256_set1_ps(h2f(y1) * dx1), _mm256_cvtepi32_ps(p1), acc1[j]);
            acc2[j] = _mm256_fmadd_ps(_mm256_set1_ps(h2f(y2) * dx2), _mm256_cvtepi32_ps(p2), acc2[j]);
        }
    }
    float sumf[4];
    for (int j = 0; j < RN; j++) sumf[j] = hsum_f32x8(_mm256_add_ps(acc1[j], acc2[j]));
    if (ib < nb) {
        const uint8_t *x1 = x + (size_t)ib * B_IQ4_NL;
        const __m256i v = lut16_levels_32(table, x1 + 2), ax = _mm256_sign_epi8(v, v);
        const float dx = h2f(x1);
        for (int j = 0; j < RN; j++) {
            const uint8_t *y1 = a + (size_t)j * ab + (size_t)ib * B_Q8_0;
            const int32_t sumi = hsum_i32x8(lut16_lanes(ax, v, _mm256_loadu_si256((const __m256i *)(y1 + 2))));
            sumf[j] += (h2f(y1) * dx) * (float)sumi;
        }
    }
    for (int j = 0; j < RN; j++) out[(size_t)j * os] = sumf[j];
}

/* IQ4_XS: one weight row x RN <= 4 activation rows; each pair of sub-blocks is unpacked (levels,
 * |levels|, scales) once for all RN rows. The int32 lanes are exact, and the float operations per
 * pair (row, activation) are those of dot_iq4_xs_avx2. */
FS_VD_INLINE FS_AVX2_FN void tile_iq4_xs(const uint8_t *x, const uint8_t *a, size_t ab, int64_t nb, float *out,
                                         int64_t os, const int RN) {
    const __m256i table = lut16_table(kvalues_iq4nl);
    __m256 acc[4];
    for (int j = 0; j < RN; j++) acc[j] = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++, x += B_IQ4_XS) {
        __m256i sumi[4];
        for (int j = 0; j < RN; j++) sumi[j] = _mm256_setzero_si256();
        for (int s = 0; s < QK_K / QK; s += 2) {
            const __m256i v1 = lut16_levels_32(table, x + 8 + 16 * s), v2 = lut16_levels_32(table, x + 24 + 16 * s);
            const __m256i ax1 = _mm256_sign_epi8(v1, v1), ax2 = _mm256_sign_epi8(v2, v2);
            const __m256i ls1 = _mm256_set1_epi16((short)iq4_xs_scale(x, s));
            const __m256i ls2 = _mm256_set1_epi16((short)iq4_xs_scale(x, s + 1));
            for (int j = 0; j < RN; j++) {
                const int8_t *q8 = (const int8_t *)(a + (size_t)j * ab + (size_t)ib * B_Q8_K + Q8K_QS) + QK * s;
                const __m256i y1 = _mm256_loadu_si256((const __m256i *)q8);
                const __m256i y2 = _mm256_loadu_si256((const __m256i *)(q8 + QK));
                const __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(ax1, _mm256_sign_epi8(y1, v1)), ls1);
                const __m256i p2 = _mm256_madd_epi16(_mm256_maddubs_epi16(ax2, _mm256_sign_epi8(y2, v2)), ls2);
                sumi[j] = _mm256_add_epi32(sumi[j], _mm256_add_epi32(p1, p2));
            }
        }
        const float dx = h2f(x);
        for (int j = 0; j < RN; j++) {
            const float d = dx * rd_f32(a + (size_t)j * ab + (size_t)ib * B_Q8_K);
            acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi[j]), acc[j]);
        }
    }
    for (int j = 0; j < RN; j++) out[(size_t)j * os] = hsum_f32x8(acc[j]);
}

/* out[t * os + r] = fs_rows_iq4_nl_avx2's dot of weight row r (w + r * rb) and activation row t
 * (a + t * ab), register-tiled. */
FS_TILES_1X4(fs_tiles_iq4_nl_avx2, tile_iq4_nl, QK)

/* out[t * os + r] = fs_rows_iq4_xs_avx2's dot of weight row r and activation row t, register-tiled. */
FS_TILES_1X4(fs_tiles_iq4_xs_avx2, tile_iq4_xs, QK_K)

/* One IQ4_NL block of one row times qy: the exact sumi as 8 int32 lanes. */
static inline FS_AVX2_FN __m256i iq4_nl_block_lanes(__m256i table, const uint8_t *x, __m256i qy) {
    const __m256i v = lut16_levels_32(table, x + 2);
    return lut16_lanes(_mm256_sign_epi8(v, v), v, qy);
}

/* The repacked IQ4_NL product with AVX2 (see fs_gemv_iq4_nl_c for the formula): fs_kernel.h's
 * gemv_b32_rows over the integer products of one block as 8 int32 lanes. */
static inline FS_AVX2_FN __m256i iq4_nl_gemv_lanes(const uint8_t *x, __m256i qy) {
    return iq4_nl_block_lanes(lut16_table(kvalues_iq4nl), x, qy);
}

FS_AVX2_FN void fs_gemv_iq4_nl_avx2(const uint8_t *w, size_t row_bytes, int64_t n_rows, const uint8_t *act, int64_t n,
                                    float *out) {
    gemv_b32_rows(w, row_bytes, n_rows, act, n, out, B_IQ4_NL, iq4_nl_gemv_lanes);
}

#endif /* FS_HAVE_AVX2_CODE */

#if FS_HAVE_AVX512_CODE
/* Activation rows from which the AVX-512 IQ4_XS product unpacks its weight rows first (fewer: the
 * AVX2 tiles, which unpack each sub-block per group of 4 activation rows). */
#define IQ4XS_UNPACK_MIN_ACTS 8
#define IQ4XS_RM 8 /* weight rows per register tile (8 x 2 activation rows, 8 accumulators) */

/* One unpacked IQ4_XS row (iq4_xs_unpack_row): per super-block 256 bytes of level + 128, then 8 int32
 * sub-block scales (ls - 32), then the float d. */
#define IQ4XS_UNPACKED_BYTES(nb) ((size_t)(nb) * (QK_K + 8 * 4 + 4))

static inline FS_AVX512_FN void iq4_xs_unpack_row(const uint8_t *x, int64_t nb, uint8_t *u) {
    const __m256i table = lut16_table(kvalues_iq4nl), bias = _mm256_set1_epi8((char)0x80);
    int32_t *ls = (int32_t *)(void *)(u + (size_t)nb * QK_K);
    float *d = (float *)(void *)(ls + nb * 8);
    for (int64_t ib = 0; ib < nb; ib++, x += B_IQ4_XS) {
        d[ib] = h2f(x);
        for (int s = 0; s < QK_K / QK; s++) {
            const __m256i v = lut16_levels_32(table, x + 8 + 16 * s);
            _mm256_storeu_si256((__m256i *)(void *)(u + (size_t)ib * QK_K + QK * s), _mm256_xor_si256(v, bias));
            ls[ib * 8 + s] = iq4_xs_scale(x, s);
        }
    }
}

/* RM unpacked weight rows (u, IQ4XS_UNPACKED_BYTES(nb) apart) x the activation rows y0, y1 (Q8_K; the
 * same row twice for an odd last one): out0[i], out1[i] = dot_iq4_xs_avx2 of row i with y0, y1. The two
 * activation rows share each zmm (lanes 0..7: y0, 8..15: y1). Per sub-block, lane l is
 * dpbusd(base, level + 128, y) with base = -128 * (the lane's 4 activation bytes' sum), shared by the
 * rows: sum(level * y) over elements 4l .. 4l + 3, exactly the lane of dot_iq4_xs_avx2's maddubs + madd
 * (no saturation there: |level * y| pairs stay under 2^15); times the sub-block's scale (vpmulld) and
 * summed over the sub-blocks, then acc = fma(fp16(d) * y.d, (float)lane, acc) per super-block and
 * out = hsum_f32x8(acc), the float steps of dot_iq4_xs_avx2. */
FS_VD_INLINE FS_AVX512_FN void iq4_xs_unpacked_tile(const uint8_t *u, int64_t nb, const uint8_t *y0, const uint8_t *y1,
                                                    float *out0, float *out1, const int RM) {
    const size_t ub = IQ4XS_UNPACKED_BYTES(nb);
    __m512 acc[IQ4XS_RM];
    for (int i = 0; i < RM; i++) acc[i] = _mm512_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++, y0 += B_Q8_K, y1 += B_Q8_K) {
        __m512i qy[QK_K / QK], base[QK_K / QK];
        for (int s = 0; s < QK_K / QK; s++) {
            qy[s] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(y0 + Q8K_QS + QK * s))),
                                       _mm256_loadu_si256((const __m256i *)(y1 + Q8K_QS + QK * s)), 1);
            base[s] = _mm512_sub_epi32(_mm512_setzero_si512(),
                                       _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8((char)0x80), qy[s]));
        }
        const __m512 dy = _mm512_insertf32x8(_mm512_set1_ps(rd_f32(y0)), _mm256_set1_ps(rd_f32(y1)), 1);
        for (int i = 0; i < RM; i++) {
            const uint8_t *q = u + (size_t)i * ub + (size_t)ib * QK_K;
            const int32_t *ls = (const int32_t *)(const void *)(u + (size_t)i * ub + (size_t)nb * QK_K) + ib * 8;
            const float d = ((const float *)(const void *)(u + (size_t)i * ub + (size_t)nb * (QK_K + 8 * 4)))[ib];
            __m512i sumi = _mm512_setzero_si512();
            for (int s = 0; s < QK_K / QK; s++) {
                const __m512i w8 = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(q + QK * s)));
                const __m512i lanes = _mm512_dpbusd_epi32(base[s], w8, qy[s]);
                sumi = _mm512_add_epi32(sumi, _mm512_mullo_epi32(lanes, _mm512_set1_epi32(ls[s])));
            }
            acc[i] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(d), dy), _mm512_cvtepi32_ps(sumi), acc[i]);
        }
    }
    for (int i = 0; i < RM; i++) {
        out0[i] = hsum_f32x8(_mm512_castps512_ps256(acc[i]));
        out1[i] = hsum_f32x8(_mm512_extractf32x8_ps(acc[i], 1));
    }
}

/* out[t * os + r] = fs_rows_iq4_xs_avx2's dot of weight row r and activation row t (the same bits).
 * From IQ4XS_UNPACK_MIN_ACTS activation rows on, the rows are unpacked once into a scratch buffer and
 * every pair of activation rows is taken against IQ4XS_RM of them at a time (iq4_xs_unpacked_tile):
 * the unpacking (lookup, scales) no longer repeats per 4 activation rows. (llama.cpp's prefill for
 * IQ4_XS on such CPUs also multiplies unpacked bytes with vpdpbusd and vpmulld, seen with perf.) */
FS_AVX512_FN void fs_tiles_iq4_xs_avx512(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a, size_t ab,
                                         int64_t n_act, int64_t n, float *out, int64_t os) {
    const int64_t nb = n / QK_K;
    uint8_t *u = n_act >= IQ4XS_UNPACK_MIN_ACTS ? malloc(IQ4XS_UNPACKED_BYTES(nb) * (size_t)n_rows + 1) : NULL;
    if (u == NULL) { /* few activation rows (or no memory for the scratch) */
        fs_tiles_iq4_xs_avx2(w, rb, n_rows, a, ab, n_act, n, out, os);
        return;
    }
    const size_t ub = IQ4XS_UNPACKED_BYTES(nb);
    for (int64_t r = 0; r < n_rows; r++) iq4_xs_unpack_row(w + (size_t)r * rb, nb, u + (size_t)r * ub);
    for (int64_t j = 0; j < n_act; j += 2) {
        const int64_t j1 = j + 1 < n_act ? j + 1 : j;
        const uint8_t *y0 = a + (size_t)j * ab, *y1 = a + (size_t)j1 * ab;
        float o0[IQ4XS_RM], o1[IQ4XS_RM];
        for (int64_t r = 0; r < n_rows; r += IQ4XS_RM) {
            const int rm = n_rows - r < IQ4XS_RM ? (int)(n_rows - r) : IQ4XS_RM;
            const uint8_t *ur = u + (size_t)r * ub;
            if (rm == IQ4XS_RM) iq4_xs_unpacked_tile(ur, nb, y0, y1, o0, o1, IQ4XS_RM);
            else
                for (int i = 0; i < rm; i++) iq4_xs_unpacked_tile(ur + (size_t)i * ub, nb, y0, y1, o0 + i, o1 + i, 1);
            for (int i = 0; i < rm; i++) {
                out[j * os + r + i] = o0[i];
                out[j1 * os + r + i] = o1[i];
            }
        }
    }
    free(u);
}
#endif /* FS_HAVE_AVX512_CODE */
