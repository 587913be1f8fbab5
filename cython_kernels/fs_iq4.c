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
 *                                       ggml_vec_dot_iq4_xs_q8_K (its integer lanes; see IQ4XS_BITS)
 *   ggml/src/ggml-cpu/repack.cpp        ggml_repack_get_optimal_repack_type (iq4_nl_8x8_q8_0 when
 *                                       AVX2 and ne[1] % 8 == 0), make_block_iq4_nlx8
 *   ggml/src/ggml-cpu/arch/x86/repack.cpp  ggml_gemv_iq4_nl_8x8_q8_0 / ggml_gemm_iq4_nl_8x8_q8_0 ->
 *                                       gemv_q4_b32_8x8_q8_0_lut_avx / gemm_q4_b32_8x8_q8_0_lut_avx
 *
 * IQ4XS_BITS: the SIMD IQ4_XS product (AVX2 rows and tiles, AVX-512 tiles) does not follow ggml's
 * AVX2 float order (an 8-lane float accumulator, hsum at the end) but sums each super-block's integer
 * products exactly into one int32 first, then acc = fma(fp16(x.d) * y.d, (float)isum, acc) per
 * super-block. With one int32 per weight row, the AVX-512 prefill can keep one row per zmm lane and
 * need one vpmulld per 8 vpdpbusd (as llama.cpp's own AVX-512 VNNI IQ4_XS prefill does); ggml's lane
 * order would need one per vpdpbusd. Every variant gives the same bits (tests/test_cpu_variants.py);
 * the results differ from ggml's AVX2 rows by float rounding only.
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

/* ls - 32 of the 8 sub-blocks of one IQ4_XS super-block (iq4_xs_scale, 8 at once). */
static inline FS_AVX2_FN void iq4_xs_scales8(const uint8_t *x, int32_t ls[QK_K / QK]) {
    const __m256i sl = _mm256_set1_epi32((int)rd_u32(x + 4)), sh = _mm256_set1_epi32((int)rd_u16(x + 2));
    const __m256i lo = _mm256_and_si256(_mm256_srlv_epi32(sl, _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)),
                                        _mm256_set1_epi32(15));
    const __m256i hi = _mm256_and_si256(_mm256_srlv_epi32(sh, _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14)),
                                        _mm256_set1_epi32(3));
    _mm256_storeu_si256((__m256i *)(void *)ls,
                        _mm256_sub_epi32(_mm256_or_si256(lo, _mm256_slli_epi32(hi, 4)), _mm256_set1_epi32(32)));
}

/* The 8 int32 lanes of one IQ4_XS super-block times y: sum over sub-blocks s of (ls_s - 32) *
 * (lanes of sub-block s) (ggml: madd(p16, set1_epi16(ls)), even / odd sub-blocks in sumi1 / sumi2,
 * added at the end; exact, so in any order). */
static inline FS_AVX2_FN __m256i iq4_xs_block_lanes(__m256i table, const uint8_t *x, const int8_t *q8) {
    int32_t ls[QK_K / QK];
    iq4_xs_scales8(x, ls);
    __m256i sumi = _mm256_setzero_si256();
    for (int s = 0; s < QK_K / QK; s++) {
        const __m256i v = lut16_levels_32(table, x + 8 + 16 * s);
        const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(v, v),
                                                 _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(q8 + QK * s)), v));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p16, _mm256_set1_epi16((short)ls[s])));
    }
    return sumi;
}

/* The IQ4_XS product with AVX2 (not ggml's float order: see IQ4XS_BITS): per super-block the exact
 * isum = hsum of the 8 int32 lanes (|isum| <= 8 * 32 * 32 * 127 * 127 < 2^31), then
 * acc = fmaf(fp16(x.d) * y.d, (float)isum, acc); out = acc. */
/* Bytes ahead that the IQ4_XS row dot prefetches its row (FS_ROW_PREFETCH). Sapphire Rapids, 1B IQ4_XS
 * ffn_gate from memory, 1 thread: none 3.8-3.9 GB/s, 1 KB 6.9-7.3, 2 KB 7.5-7.9, 4 KB 7.5. */
#define IQ4XS_ROWS_PREFETCH 2048
static inline FS_AVX2_FN float dot_iq4_xs_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    const __m256i table = lut16_table(kvalues_iq4nl);
    float acc = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_IQ4_XS, y += B_Q8_K) {
        FS_ROW_PREFETCH(x, B_IQ4_XS, IQ4XS_ROWS_PREFETCH);
        const int32_t isum = hsum_i32x8(iq4_xs_block_lanes(table, x, (const int8_t *)(y + Q8K_QS)));
        acc = fmaf(h2f(x) * rd_f32(y), (float)isum, acc);
    }
    return acc;
}

/* out[r] = ggml_vec_dot_iq4_nl_q8_0 (AVX2 branch) of weight row r and act. */
FS_ROWS(fs_rows_iq4_nl_avx2, dot_iq4_nl_avx2, FS_AVX2_FN)

/* out[r] = dot_iq4_xs_avx2 of weight row r and act (IQ4XS_BITS). */
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

/* IQ4_XS: one weight row x RN <= FS_TILE_RN8 activation rows; each sub-block is unpacked (levels,
 * |levels|, scale) once for all RN rows (8 int32 accumulators, the levels, their magnitudes and the
 * scale stay in the 16 ymm registers, a few spilled). The int32 sums are exact, and the float operations per
 * pair (row, activation) are those of dot_iq4_xs_avx2. */
FS_VD_INLINE FS_AVX2_FN void tile_iq4_xs(const uint8_t *x, const uint8_t *a, size_t ab, int64_t nb, float *out,
                                         int64_t os, const int RN) {
    const __m256i table = lut16_table(kvalues_iq4nl);
    float acc[FS_TILE_RN8];
    for (int j = 0; j < RN; j++) acc[j] = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_IQ4_XS) {
        const uint8_t *y = a + (size_t)ib * B_Q8_K;
        __m256i sumi[FS_TILE_RN8];
        for (int j = 0; j < RN; j++) sumi[j] = _mm256_setzero_si256();
        int32_t ls8[QK_K / QK];
        iq4_xs_scales8(x, ls8);
        for (int s = 0; s < QK_K / QK; s++) {
            const __m256i v = lut16_levels_32(table, x + 8 + 16 * s), ax = _mm256_sign_epi8(v, v);
            const __m256i ls = _mm256_set1_epi16((short)ls8[s]);
            for (int j = 0; j < RN; j++) {
                const __m256i q = _mm256_loadu_si256((const __m256i *)(y + (size_t)j * ab + Q8K_QS + QK * s));
                sumi[j] = _mm256_add_epi32(sumi[j], _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(q, v)), ls));
            }
        }
        int32_t isum[FS_TILE_RN8];
        int j = 0;
        for (; j + 4 <= RN; j += 4)
            _mm_storeu_si128((__m128i *)(void *)(isum + j), hsum_i32x8x4(sumi[j], sumi[j + 1], sumi[j + 2], sumi[j + 3]));
        for (; j < RN; j++) isum[j] = hsum_i32x8(sumi[j]);
        const float dx = h2f(x);
        for (j = 0; j < RN; j++) acc[j] = fmaf(dx * rd_f32(y + (size_t)j * ab), (float)isum[j], acc[j]);
    }
    for (int j = 0; j < RN; j++) out[(size_t)j * os] = acc[j];
}

/* out[t * os + r] = fs_rows_iq4_nl_avx2's dot of weight row r (w + r * rb) and activation row t
 * (a + t * ab), register-tiled. */
FS_TILES_1X4(fs_tiles_iq4_nl_avx2, tile_iq4_nl, QK)

/* out[t * os + r] = fs_rows_iq4_xs_avx2's dot of weight row r and activation row t, register-tiled:
 * FS_TILE_RN8 activation rows at a time (the last group fewer), every weight row against each. */
FS_TILES_1X8(fs_tiles_iq4_xs_avx2, tile_iq4_xs, QK_K)

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
 * AVX2 tiles, which unpack each sub-block per group of 8 activation rows). */
#define IQ4XS_UNPACK_MIN_ACTS 8
#define IQ4XS_ROWS 16 /* weight rows unpacked together: one int32 lane of a zmm each */
/* One unpacked super-block of IQ4XS_ROWS rows (iq4_xs_unpack): q[k][r] = the 4 bytes level + 128 of
 * elements 4k .. 4k + 3 of row r (k = 0 .. 63), then int32 ls[s][r] = ls - 32 of sub-block s, then
 * float d[r] = fp16(x.d); rows past the last are zeros. 4672 bytes, a multiple of 64. */
#define IQ4XS_Q_BYTES (QK_K * IQ4XS_ROWS)
#define IQ4XS_UBLK (IQ4XS_Q_BYTES + (QK_K / QK) * IQ4XS_ROWS * 4 + IQ4XS_ROWS * 4)

/* Rows 0 .. rm - 1 (rm <= IQ4XS_ROWS, rb bytes apart) of nb super-blocks each, unpacked into u
 * (nb * IQ4XS_UBLK bytes, the layout above). */
static FS_AVX512_FN void iq4_xs_unpack(const uint8_t *w, size_t rb, int rm, int64_t nb, uint8_t *u) {
    const __m256i table = lut16_table(kvalues_iq4nl), bias = _mm256_set1_epi8((char)0x80);
    if (rm < IQ4XS_ROWS) memset(u, 0, (size_t)nb * IQ4XS_UBLK);
    for (int r = 0; r < rm; r++) {
        const uint8_t *x = w + (size_t)r * rb;
        for (int64_t ib = 0; ib < nb; ib++, x += B_IQ4_XS) {
            uint8_t *blk = u + (size_t)ib * IQ4XS_UBLK;
            uint32_t *q = (uint32_t *)(void *)blk;
            int32_t *ls = (int32_t *)(void *)(blk + IQ4XS_Q_BYTES), ls8[QK_K / QK];
            iq4_xs_scales8(x, ls8);
            for (int s = 0; s < QK_K / QK; s++) {
                uint32_t v[8];
                _mm256_storeu_si256((__m256i *)(void *)v,
                                    _mm256_xor_si256(lut16_levels_32(table, x + 8 + 16 * s), bias));
                for (int i = 0; i < 8; i++) q[(8 * s + i) * IQ4XS_ROWS + r] = v[i];
                ls[s * IQ4XS_ROWS + r] = ls8[s];
            }
            ((float *)(void *)(ls + (QK_K / QK) * IQ4XS_ROWS))[r] = h2f(x);
        }
    }
}

/* The unpacked rows u (iq4_xs_unpack) x RN <= FS_TILE_RN8 activation rows a (8 accumulators, 8 sums
 * and 8 partial sums in the 32 zmm registers) (Q8_K, ab bytes apart): out[t * os + r]
 * for the rows r in the mask m = dot_iq4_xs_avx2 of row r and activation row t, the same bits. Lane r
 * of a zmm is row r. Per super-block and sub-block s, lane r starts at -128 * (the sub-block's
 * activation sum, from the Q8_K bsums) and takes 8 vpdpbusd of its bytes level + 128 with 4
 * activation bytes each: the exact sum(level * y) of the sub-block; times ls - 32 (vpmulld) and summed
 * over the sub-blocks, the exact isum of dot_iq4_xs_avx2; then acc = fma(fp16(x.d) * y.d,
 * (float)isum, acc) per lane, the same float steps. */
FS_VD_INLINE FS_AVX512_FN void iq4_xs_tile(const uint8_t *u, int64_t nb, const uint8_t *a, size_t ab, float *out,
                                           int64_t os, __mmask16 m, const int RN) {
    __m512 acc[FS_TILE_RN8];
    for (int t = 0; t < RN; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *blk = u + (size_t)ib * IQ4XS_UBLK;
        const int32_t *ls = (const int32_t *)(const void *)(blk + IQ4XS_Q_BYTES);
        const __m512 dx = _mm512_loadu_ps((const float *)(const void *)(ls + (QK_K / QK) * IQ4XS_ROWS));
        int32_t base[FS_TILE_RN8][8];
        __m512i sumi[FS_TILE_RN8];
        for (int t = 0; t < RN; t++) {
            const uint8_t *y = a + (size_t)t * ab + (size_t)ib * B_Q8_K;
            _mm256_storeu_si256((__m256i *)(void *)base[t],
                                _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(y + Q8K_BSUMS)),
                                                  _mm256_set1_epi16(-128)));
            sumi[t] = _mm512_setzero_si512();
        }
        for (int s = 0; s < QK_K / QK; s++) {
            __m512i dp[FS_TILE_RN8];
            for (int t = 0; t < RN; t++) dp[t] = _mm512_set1_epi32(base[t][s]);
            for (int k = 0; k < 8; k++) {
                const __m512i wv = _mm512_loadu_si512((const void *)(blk + (size_t)(8 * s + k) * 64));
                for (int t = 0; t < RN; t++) {
                    const uint8_t *y = a + (size_t)t * ab + (size_t)ib * B_Q8_K + Q8K_QS + QK * s + 4 * k;
                    dp[t] = _mm512_dpbusd_epi32(dp[t], wv, _mm512_set1_epi32((int)rd_u32(y)));
                }
            }
            const __m512i lv = _mm512_loadu_si512((const void *)(ls + s * IQ4XS_ROWS));
            for (int t = 0; t < RN; t++) sumi[t] = _mm512_add_epi32(sumi[t], _mm512_mullo_epi32(dp[t], lv));
        }
        for (int t = 0; t < RN; t++) {
            const __m512 d = _mm512_mul_ps(dx, _mm512_set1_ps(rd_f32(a + (size_t)t * ab + (size_t)ib * B_Q8_K)));
            acc[t] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sumi[t]), acc[t]);
        }
    }
    for (int t = 0; t < RN; t++) _mm512_mask_storeu_ps(out + (size_t)t * os, m, acc[t]);
}

/* out[t * os + r] = fs_rows_iq4_xs_avx2's dot of weight row r and activation row t (the same bits).
 * From IQ4XS_UNPACK_MIN_ACTS activation rows on, IQ4XS_ROWS weight rows at a time are unpacked into a
 * scratch buffer (nb * 4672 bytes: L2) and taken against FS_TILE_RN8 activation rows at a time
 * (iq4_xs_tile): the lookup and scales are done once per weight row, and one vpmulld serves 8
 * vpdpbusd. (llama.cpp's prefill for IQ4_XS on such CPUs also multiplies unpacked bytes with vpdpbusd
 * and vpmulld, seen with perf.) */
FS_AVX512_FN void fs_tiles_iq4_xs_avx512(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a, size_t ab,
                                         int64_t n_act, int64_t n, float *out, int64_t os) {
    const int64_t nb = n / QK_K;
    uint8_t *raw = n_act >= IQ4XS_UNPACK_MIN_ACTS ? malloc((size_t)nb * IQ4XS_UBLK + 64) : NULL;
    if (raw == NULL) { /* few activation rows (or no memory for the scratch) */
        fs_tiles_iq4_xs_avx2(w, rb, n_rows, a, ab, n_act, n, out, os);
        return;
    }
    uint8_t *u = raw + (64 - (uintptr_t)raw % 64) % 64;
    for (int64_t r = 0; r < n_rows; r += IQ4XS_ROWS) {
        const int rm = n_rows - r < IQ4XS_ROWS ? (int)(n_rows - r) : IQ4XS_ROWS;
        const __mmask16 m = (__mmask16)((1u << rm) - 1);
        iq4_xs_unpack(w + (size_t)r * rb, rb, rm, nb, u);
        for (int64_t j = 0; j < n_act; j += FS_TILE_RN8) {
            const uint8_t *aj = a + (size_t)j * ab;
            float *o = out + j * os + r;
            FS_SWITCH_RN8(n_act - j < FS_TILE_RN8 ? (int)(n_act - j) : FS_TILE_RN8, iq4_xs_tile, u, nb, aj, ab, o, os, m)
        }
    }
    free(raw);
}
#endif /* FS_HAVE_AVX512_CODE */
