/* MXFP4, the OCP microscaling 4-bit float type (gpt-oss's expert weights): 32 E2M1 values sharing one
 * power-of-two scale. Fireside's family file; see fs_kernel.h and fs_traits.c. The shape is IQ4_NL's
 * (fs_iq4.c): a 16-level lookup table indexed by nibbles, one scale per 32-element block, dotted with
 * Q8_0 activations; only the scale differs (an E8M0 byte instead of an f16).
 *
 * Layout (ggml-common.h block_mxfp4, little-endian), 17 bytes, 32 elements: uint8 e | qs[16]
 *   element j (j < 16) = d * kv[qs[j] & 15], element 16 + j = d * kv[qs[j] >> 4]
 *   kv = kvalues_mxfp4 (ggml-common.h): the E2M1 values doubled, {0, 1, 2, 3, 4, 6, 8, 12} and their
 *        negatives (index 8 is a second zero, +0 as an integer), so that they are int8;
 *   d  = GGML_E8M0_TO_FP32_HALF(e) (ggml-impl.h ggml_e8m0_to_fp32_half): the E8M0 scale 2^(e - 127)
 *        halved to undo the doubling, i.e. the float32 with bits (e - 1) << 23 for e >= 2 (the normal
 *        2^(e - 128)) and 0x00200000 << e for e < 2 (the subnormals 2^-128, 2^-127). Every e is a
 *        number: e = 255 is 2^127, not the OCP spec's NaN, as in ggml; so d * kv overflows to inf
 *        for |kv| >= 8 at e = 253, >= 4 at e = 254 and >= 2 at e = 255, in gguf-py's reference and
 *        here alike.
 * Activations (ggml-cpu.c type_traits_cpu vec_dot_type): Q8_0 (34 bytes: f16 d | int8 qs[32]).
 *
 * Sources (llama.cpp, read for the algorithms; an independent implementation):
 *   ggml/src/ggml-common.h              block_mxfp4, QK_MXFP4, kvalues_mxfp4
 *   ggml/src/ggml-impl.h                ggml_e8m0_to_fp32_half (GGML_E8M0_TO_FP32_HALF)
 *   ggml/src/ggml-quants.c              dequantize_row_mxfp4
 *   gguf-py gguf/quants.py              MXFP4.dequantize_blocks (the float order here)
 *   ggml/src/ggml-cpu/quants.c          ggml_vec_dot_mxfp4_q8_0_generic
 *   ggml/src/ggml-cpu/arch/x86/quants.c the __AVX2__ branch of ggml_vec_dot_mxfp4_q8_0
 *   ggml/src/ggml-cpu/repack.cpp        ggml_repack_get_optimal_repack_type (mxfp4_8x8_q8_0 when AVX2
 *                                       and ne[1] % 8 == 0), make_block_mxfp4x8
 *   ggml/src/ggml-cpu/arch/x86/repack.cpp  ggml_gemv_mxfp4_8x8_q8_0 / ggml_gemm_mxfp4_8x8_q8_0 ->
 *                                       gemv_q4_b32_8x8_q8_0_lut_avx / gemm_q4_b32_8x8_q8_0_lut_avx
 *                                       (block_mxfp4x8: col_scale = GGML_CPU_E8M0_TO_FP32_HALF(e))
 *   (read at ggml-org/ggml d99724f2, = llama.cpp's ggml/src)
 *
 * Integer parts are exact (|kv| <= 12 and the Q8 activations within [-127, 127]); the float operations
 * follow the sources one for one (see each function). As in the other family files, scalar a * b + c in
 * the sources is two roundings here (the C semantics without FMA contraction; a GCC build of ggml with
 * -mfma and its default -ffp-contract=fast may fuse the odd-block tail of the AVX2 dot into an FMA).
 */
#include "fs_families.h"

#define B_MXFP4 17 /* uint8 e | qs[16] */

/* kvalues_mxfp4 (ggml-common.h): the doubled E2M1 levels. */
static const int8_t kvalues_mxfp4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

/* ---- dequantization (gguf-py MXFP4.dequantize_blocks) ---------------------------------------- */

/* nb MXFP4 blocks: y = d * (float)kv[nibble] (float32, one rounding; exact but for overflow, d being a
 * power of two). */
void fs_dequant_mxfp4(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, src += B_MXFP4, dst += QK) {
        const float d = e8m0_half(src[0]);
        for (int j = 0; j < 16; j++) {
            dst[j] = d * (float)kvalues_mxfp4[src[1 + j] & 0x0F];
            dst[j + 16] = d * (float)kvalues_mxfp4[src[1 + j] >> 4];
        }
    }
}

/* ---- portable dot products (ggml-cpu/quants.c *_generic) ------------------------------------ */

/* sum_j kv[x nibble j] * q8[j] over the 32 elements of one block's nibbles (exact). */
FS_VD_INLINE int mxfp4_group_sumi(const uint8_t *qs, const int8_t *q8) {
    int8_t v[QK];
    for (int j = 0; j < 16; j++) {
        v[j] = kvalues_mxfp4[qs[j] & 0x0F];
        v[j + 16] = kvalues_mxfp4[qs[j] >> 4];
    }
    return block_dot_i8(v, q8);
}

/* ggml_vec_dot_mxfp4_q8_0_generic: d = fp16(y.d) * e8m0_half(x.e); sumf += d * (float)sumi, block by
 * block. */
FS_VD_INLINE float dot_mxfp4_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK;
    float sumf = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_MXFP4, y += B_Q8_0) {
        const float d = rd_f16(y) * e8m0_half(x[0]);
        sumf += d * (float)mxfp4_group_sumi(x + 1, (const int8_t *)(y + 2));
    }
    return sumf;
}

/* The repacked product (gemv_q4_b32_8x8_q8_0_lut_avx and its gemm with block_mxfp4x8; see
 * fs_gemv_mxfp4_c): acc = fma((float)sumi, e8m0_half(x.e) * fp16(y.d), acc) block by block. */
FS_VD_INLINE float dot_mxfp4_gemv_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK;
    float acc = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_MXFP4, y += B_Q8_0)
        acc = fmaf((float)mxfp4_group_sumi(x + 1, (const int8_t *)(y + 2)), e8m0_half(x[0]) * rd_f16(y), acc);
    return acc;
}

/* out[r] = ggml_vec_dot_mxfp4_q8_0_generic(weight row r, act): MXFP4 rows x Q8_0 activations. */
FS_ROWS(fs_rows_mxfp4_c, dot_mxfp4_c, )

/* llama.cpp's x86 repacked MXFP4 product (what it runs on AVX2 machines for MXFP4 tensors with a row
 * count multiple of 8, gpt-oss's experts among them: repack.cpp mxfp4_8x8_q8_0, then
 * ggml_gemv_mxfp4_8x8_q8_0 / ggml_gemm_mxfp4_8x8_q8_0 -> gemv_q4_b32_8x8_q8_0_lut_avx /
 * gemm_q4_b32_8x8_q8_0_lut_avx, the templates IQ4_NL and Q4_0 use). Each output is one SIMD lane of
 * those kernels: acc = fma((float)sumi_b, e8m0_half(x_b.e) * fp16(y_b.d), acc) over the blocks b in
 * order (col_scale * row_scale: the product of two floats, commutative), out = acc (no horizontal float
 * sum; gemm and gemv alike). fmaf is correctly rounded as _mm256_fmadd_ps is, so this gives the bits of
 * fs_gemv_mxfp4_avx2. */
FS_ROWS(fs_gemv_mxfp4_c, dot_mxfp4_gemv_c, )

/* ---- AVX2 (ggml-cpu/arch/x86/quants.c, arch/x86/repack.cpp) --------------------------------- */
#if FS_HAVE_AVX2_CODE

/* One block x (e | qs) times the 32 activation quants qy: the exact products as 8 int32 lanes. */
static inline FS_AVX2_FN __m256i mxfp4_block_lanes(__m256i table, const uint8_t *x, __m256i qy) {
    const __m256i v = lut16_levels_32(table, x + 1);
    return lut16_lanes(_mm256_sign_epi8(v, v), v, qy);
}

/* ggml_vec_dot_mxfp4_q8_0 (AVX2): blocks in pairs, accum1 / accum2 = fma(fp16(y.d) * e8m0_half(x.e),
 * (float)lanes, accum) for the even / odd block of each pair; sumf = hsum_float_8(accum1 + accum2); an
 * odd last block is added as in the generic code, sumf += d * (float)sumi. */
static inline FS_AVX2_FN float dot_mxfp4_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK;
    const __m256i table = lut16_table(kvalues_mxfp4);
    __m256 acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps();
    int64_t ib = 0;
    for (; ib + 1 < nb; ib += 2, x += 2 * B_MXFP4, y += 2 * B_Q8_0) {
        const __m256i p1 = mxfp4_block_lanes(table, x, _mm256_loadu_si256((const __m256i *)(y + 2)));
        const __m256i p2 = mxfp4_block_lanes(table, x + B_MXFP4, _mm256_loadu_si256((const __m256i *)(y + B_Q8_0 + 2)));
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(y) * e8m0_half(x[0])), _mm256_cvtepi32_ps(p1), acc1);
        acc2 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(y + B_Q8_0) * e8m0_half(x[B_MXFP4])), _mm256_cvtepi32_ps(p2), acc2);
    }
    float sumf = hsum_f32x8(_mm256_add_ps(acc1, acc2));
    if (ib < nb) {
        const int32_t sumi = hsum_i32x8(mxfp4_block_lanes(table, x, _mm256_loadu_si256((const __m256i *)(y + 2))));
        sumf += (h2f(y) * e8m0_half(x[0])) * (float)sumi;
    }
    return sumf;
}

/* out[r] = ggml_vec_dot_mxfp4_q8_0 (AVX2 branch) of weight row r and act. */
FS_ROWS(fs_rows_mxfp4_avx2, dot_mxfp4_avx2, FS_AVX2_FN)

/* One weight row x RN <= 4 activation rows; each pair of weight blocks is unpacked (levels, |levels|,
 * scales) once for all RN rows. Per pair (row, activation) the operations of dot_mxfp4_avx2. */
FS_VD_INLINE FS_AVX2_FN void tile_mxfp4(const uint8_t *x, const uint8_t *a, size_t ab, int64_t nb, float *out,
                                        int64_t os, const int RN) {
    const __m256i table = lut16_table(kvalues_mxfp4);
    __m256 acc1[4], acc2[4];
    for (int j = 0; j < RN; j++) acc1[j] = acc2[j] = _mm256_setzero_ps();
    int64_t ib = 0;
    for (; ib + 1 < nb; ib += 2) {
        const uint8_t *x1 = x + (size_t)ib * B_MXFP4, *x2 = x1 + B_MXFP4;
        const __m256i v1 = lut16_levels_32(table, x1 + 1), v2 = lut16_levels_32(table, x2 + 1);
        const __m256i ax1 = _mm256_sign_epi8(v1, v1), ax2 = _mm256_sign_epi8(v2, v2);
        const float dx1 = e8m0_half(x1[0]), dx2 = e8m0_half(x2[0]);
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
        const uint8_t *x1 = x + (size_t)ib * B_MXFP4;
        const __m256i v = lut16_levels_32(table, x1 + 1), ax = _mm256_sign_epi8(v, v);
        const float dx = e8m0_half(x1[0]);
        for (int j = 0; j < RN; j++) {
            const uint8_t *y1 = a + (size_t)j * ab + (size_t)ib * B_Q8_0;
            const int32_t sumi = hsum_i32x8(lut16_lanes(ax, v, _mm256_loadu_si256((const __m256i *)(y1 + 2))));
            sumf[j] += (h2f(y1) * dx) * (float)sumi;
        }
    }
    for (int j = 0; j < RN; j++) out[(size_t)j * os] = sumf[j];
}

/* out[t * os + r] = fs_rows_mxfp4_avx2's dot of weight row r (w + r * rb) and activation row t
 * (a + t * ab), register-tiled. */
FS_TILES_1X4(fs_tiles_mxfp4_avx2, tile_mxfp4, QK)

/* The repacked MXFP4 product with AVX2 (see fs_gemv_mxfp4_c for the formula): fs_kernel.h's
 * gemv_b32_rows_scaled with E8M0 scales, over the integer products of one block as 8 int32 lanes. */
static inline FS_AVX2_FN __m256i mxfp4_gemv_lanes(const uint8_t *x, __m256i qy) {
    return mxfp4_block_lanes(lut16_table(kvalues_mxfp4), x, qy);
}

FS_AVX2_FN void fs_gemv_mxfp4_avx2(const uint8_t *w, size_t row_bytes, int64_t n_rows, const uint8_t *act, int64_t n,
                                   float *out) {
    gemv_b32_rows_scaled(w, row_bytes, n_rows, act, n, out, B_MXFP4, mxfp4_gemv_lanes, 1);
}

/* The repacked product for several activation rows at once (prefill: llama.cpp's gemm over groups of 4
 * tokens, whose bits are the gemv's): 4 weight rows x RN <= 4 activation rows per tile. Per block each
 * weight row is unpacked once for the RN activation rows, the 4 rows' exact block sums are reduced together
 * (hsum_i32x8x4), and acc = fma((float)sumi, e8m0_half(x.e) * fp16(y.d), acc) runs with one weight row per
 * lane: per (row, activation) pair the operations of fs_gemv_mxfp4_avx2. `rows` < 4 at the last tile: the
 * missing lanes repeat row 0 and are not stored. */
FS_VD_INLINE FS_AVX2_FN void gemm_tile_mxfp4(const uint8_t *const x[4], int rows, const uint8_t *a, size_t ab,
                                             int64_t nb, float *out, int64_t os, const int RN) {
    const __m256i table = lut16_table(kvalues_mxfp4);
    __m128 acc[4];
    for (int j = 0; j < RN; j++) acc[j] = _mm_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++) {
        const size_t xo = (size_t)ib * B_MXFP4;
        __m256i v[4], ax[4];
        for (int k = 0; k < 4; k++) {
            v[k] = lut16_levels_32(table, x[k] + xo + 1);
            ax[k] = _mm256_sign_epi8(v[k], v[k]);
        }
        const __m128 dx = e8m0_half_x4(_mm_setr_epi32(x[0][xo], x[1][xo], x[2][xo], x[3][xo]));
        for (int j = 0; j < RN; j++) {
            const uint8_t *y = a + (size_t)j * ab + (size_t)ib * B_Q8_0;
            const __m256i qy = _mm256_loadu_si256((const __m256i *)(y + 2));
            const __m128i s = hsum_i32x8x4(lut16_lanes(ax[0], v[0], qy), lut16_lanes(ax[1], v[1], qy),
                                           lut16_lanes(ax[2], v[2], qy), lut16_lanes(ax[3], v[3], qy));
            acc[j] = _mm_fmadd_ps(_mm_cvtepi32_ps(s), _mm_mul_ps(dx, _mm_set1_ps(h2f(y))), acc[j]);
        }
    }
    for (int j = 0; j < RN; j++) {
        float o[4];
        _mm_storeu_ps(o, acc[j]);
        for (int k = 0; k < rows; k++) out[(size_t)j * os + k] = o[k];
    }
}

/* out[t * os + r] = fs_gemv_mxfp4_avx2's result for weight row r (w + r * rb) and activation row t
 * (a + t * ab), register-tiled: what the repacked matmul runs for its groups of 4 tokens. */
FS_AVX2_FN void fs_gemm_tiles_mxfp4_avx2(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a, size_t ab,
                                         int64_t n_act, int64_t n, float *out, int64_t os) {
    const int64_t nb = n / QK;
    for (int64_t j = 0; j < n_act; j += 4) {
        const int64_t rn = n_act - j < 4 ? n_act - j : 4;
        const uint8_t *aj = a + (size_t)j * ab;
        for (int64_t r = 0; r < n_rows; r += 4) {
            const int rows = n_rows - r < 4 ? (int)(n_rows - r) : 4;
            const uint8_t *x[4];
            for (int k = 0; k < 4; k++) x[k] = w + (size_t)(r + (k < rows ? k : 0)) * rb;
            float *o = out + j * os + r;
            if (rn == 4) gemm_tile_mxfp4(x, rows, aj, ab, nb, o, os, 4);
            else if (rn == 3) gemm_tile_mxfp4(x, rows, aj, ab, nb, o, os, 3);
            else if (rn == 2) gemm_tile_mxfp4(x, rows, aj, ab, nb, o, os, 2);
            else gemm_tile_mxfp4(x, rows, aj, ab, nb, o, os, 1);
        }
    }
}

#endif /* FS_HAVE_AVX2_CODE */
