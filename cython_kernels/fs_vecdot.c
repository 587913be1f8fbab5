/* Activation quantization and quantized dot products, as llama.cpp's CPU backend does them: dispatch.
 * See fs_vecdot.h for the API, the formats and the guarantees.
 *
 * Sources (llama.cpp, read for the algorithms; this is an independent implementation):
 *   ggml/src/ggml-common.h            block_q4_0 ... block_q6_K, block_q8_0, block_q8_1, block_q8_K
 *   ggml/src/ggml-quants.c            quantize_row_q8_0_ref, quantize_row_q8_1_ref,
 *                                     quantize_row_q8_K_ref, nearest_int
 *   ggml/src/ggml-cpu/quants.c        ggml_vec_dot_{q4_0,q5_0,q8_0}_q8_0_generic,
 *                                     ggml_vec_dot_{q4_1,q5_1}_q8_1_generic,
 *                                     ggml_vec_dot_{q4_K,q5_K,q6_K}_q8_K_generic
 *   ggml/src/ggml-cpu/arch/x86/quants.c  the __AVX2__ branches of the same functions, and the
 *                                     helpers bytes_from_nibbles_32, bytes_from_bits_32,
 *                                     mul_sum_i8_pairs_float, mul_sum_us8_pairs_float, hsum_float_8
 *   ggml/src/ggml-cpu/vec.cpp         ggml_vec_dot_f32, ggml_vec_dot_f16, ggml_vec_dot_bf16
 *   ggml/src/ggml-cpu/repack.cpp      ggml_repack_get_optimal_repack_type, tensor_traits::
 *                                     forward_mul_mat, the *_generic gemv / gemm / quantize_mat
 *   ggml/src/ggml-cpu/arch/x86/repack.cpp  ggml_gemv_q4_K_8x8_q8_K, ggml_gemm_q4_K_8x8_q8_K,
 *                                     gemv_q4_b32_8x8_q8_0_lut_avx, gemm_q4_b32_8x8_q8_0_lut_avx,
 *                                     ggml_quantize_mat_q8_K_4x8, ggml_quantize_mat_q8_0_4x8
 *                                     (read at ggml-org/ggml d99724f2, = llama.cpp's ggml/src)
 *   ggml/src/ggml-cpu/simd-mappings.h GGML_F32x8 / GGML_F32Cx8 (AVX: 4 accumulators of 8 lanes,
 *                                     GGML_F32x8_REDUCE), GGML_FP32_TO_FP16, GGML_FP32_TO_BF16
 *
 * This file is the dispatch only: the kernels of each type are in its family file (fs_kernel.h
 * lists them) and reached through the type's row of the traits table (fs_traits.c). The activation
 * quantizers have one implementation for every CPU, so the quantized bytes never depend on the
 * machine; the dot products have a portable one (ggml's generic code, float operations in the
 * same order) and an AVX2 one (ggml's AVX2 code: same integer lanes, same FMAs, same horizontal
 * sums), plus, for the types llama.cpp repacks on x86, the repacked products.
 *
 * Q4_0 and Q4_K: fs_vec_dot_rows gives the bits of llama.cpp's x86 AVX2 repacked gemv (what
 * llama.cpp runs for those tensors when their row count is a multiple of 8) in both
 * implementations; fs_vec_dot_rows_gemm the bits of its gemm (tokens in groups of 4);
 * fs_vec_dot_rows_norepack those of ggml_vec_dot as for the other types. Checked bit for bit
 * against ggml built from source (AVX2, mul_mat with the weight in the CPU repack buffer).
 */
#include "fs_vecdot.h"

#include "fs_traits.h"

/* ---- llama.cpp's x86 repacked matrix products (ggml-cpu/repack.cpp) -------------------------
 * On x86 with AVX2, llama.cpp keeps Q4_0, Q4_K, IQ4_NL and MXFP4 weight tensors whose row count ne[1]
 * is a multiple of 8 in an interleaved layout (repack.cpp, ggml_repack_get_optimal_repack_type:
 * q4_0_8x8_q8_0, q4_K_8x8_q8_K, iq4_nl_8x8_q8_0, mxfp4_8x8_q8_0) and multiplies them in
 * tensor_traits::forward_mul_mat, not with ggml_vec_dot_*: activation rows 0 .. ne11 - ne11 % 4 are
 * quantized 4 at a time (ggml_quantize_mat_q8_K_4x8 / ggml_quantize_mat_q8_0_4x8) and multiplied in
 * groups of 4 by ggml_gemm_*_8x8; the last ne11 % 4 rows are quantized by the type's from_float and
 * multiplied one at a time by ggml_gemv_*_8x8. The interleaved layout only moves bytes; what
 * matters is the float arithmetic per output element, which the x86 code (arch/x86/repack.cpp)
 * does as follows (I, M: exact int32 sums; fma: one rounding; d products in float):
 *
 *   Q4_K, gemv (ggml_gemv_q4_K_8x8_q8_K, AVX2): per super-block
 *     I = sum_j sc[j] * sum_{k in sub-block j} q4[k] * q8[k]          (j = 0..7, 32 elements each)
 *     M = sum_j mn[j] * (bsums[2j] + bsums[2j+1])
 *     acc  = fma((float)I, fp16(x.d)    * y.d, acc)
 *     accm = fma((float)M, fp16(x.dmin) * y.d, accm)
 *   out = acc - accm                       (no horizontal sum: one output per SIMD lane)
 *
 *   Q4_K, gemm (ggml_gemm_q4_K_8x8_q8_K, AVX2 and AVX512 paths alike): the same, but the two FMAs
 *   are taken once per 64 elements (c = 0..3 within each super-block, in order), so gemm and gemv
 *   round differently (4 FMAs per super-block instead of 1).
 *
 *   Q4_0, IQ4_NL and MXFP4 (gemv_q4_b32_8x8_q8_0_lut_avx and gemm_q4_b32_8x8_q8_0_lut_avx, one
 *   lookup table per type): per block of 32, acc = fma((float)I, fp16(x.d) * fp16(y.d), acc)
 *   (MXFP4: e8m0_half(x.e) in place of fp16(x.d)); out = acc. gemm == gemv.
 *
 * Activations: ggml_quantize_mat_q8_0_4x8 (AVX2) computes the same bytes as x86 quantize_row_q8_0.
 * ggml_quantize_mat_q8_K_4x8 (AVX2) equals quantize_row_q8_K_ref except for the sign of the scale:
 * it takes iscale = -127 / amax when +amax occurs in the super-block and +127 / amax otherwise,
 * while the reference takes the sign of the first element of largest magnitude. They differ only
 * when both +amax and -amax occur with -amax first, and then d, every qs and every bsum are exactly
 * negated, which leaves every product in the formulas above, and so every output, unchanged (up to
 * the sign of an exact zero). So the activation bytes of fs_quantize_act serve gemm and gemv alike.
 *
 * The portable versions use C's fmaf (correctly rounded, as _mm256_fmadd_ps is), so they give the
 * same bits as the AVX2 ones. */

const char *fs_vecdot_impl(void) { return fs_impl_name(fs_impl()); }

int fs_use_avx2(void) { return fs_impl() == FS_IMPL_AVX2 || fs_impl() == FS_IMPL_AVX512; }

int fs_act_format(int wtype) {
    const fs_type_traits *t = fs_traits(wtype);
    return t ? t->act_type : -1;
}

/* The traits of wtype and of its activation format when n is a valid row length, else NULL. */
static const fs_type_traits *valid(int wtype, int64_t n, const fs_act_traits **act) {
    const fs_type_traits *t = fs_traits(wtype);
    if (t == NULL || n < 0 || n % t->block_elems != 0) return NULL;
    const fs_act_traits *a = fs_act_traits_of(t->act_type);
    if (a == NULL || n % a->block_elems != 0) return NULL;
    if (act) *act = a;
    return t;
}

size_t fs_act_row_bytes(int wtype, int64_t n) {
    const fs_act_traits *a;
    if (valid(wtype, n, &a) == NULL) return 0;
    return (size_t)(n / a->block_elems) * (size_t)a->block_bytes;
}

void fs_quantize_act(int wtype, const float *x, void *dst, int64_t n) {
    const fs_act_traits *a;
    if (valid(wtype, n, &a) == NULL) return;
    a->quantize(x, (uint8_t *)dst, n / a->block_elems);
}

/* The index of the entry to use in a traits array of kernels per implementation: impl's, or the next
 * one down its chain that the type has (AVX-512 -> AVX2 -> portable,
 * NEON -> portable: fs_impl_fallback). has: bit i set when entry i is not NULL. */
static int pick_from(int impl, unsigned has) {
    while (impl > FS_IMPL_PORTABLE && !(has >> impl & 1u)) impl = fs_impl_fallback(impl);
    return impl;
}

/* Bit i set when f[i] (a traits array of kernels per implementation) is not NULL. */
_Static_assert(FS_IMPL_COUNT == 4, "HAS lists every implementation");
#define HAS(f) ((unsigned)((f)[0] != NULL) | (unsigned)((f)[1] != NULL) << 1 | (unsigned)((f)[2] != NULL) << 2 | \
                (unsigned)((f)[3] != NULL) << 3)
/* The kernel to run from f[FS_IMPL_COUNT] (rows or tiles alike); NULL if the type has none. */
#define PICK(f) ((f)[pick_from(fs_impl(), HAS(f))])
/* PICK for the one-activation-row kernels: fs_rows_impl()'s entry or the next one down its chain. */
#define PICK_ROWS(f) ((f)[pick_from(fs_rows_impl(), HAS(f))])

/* Which product a call reproduces (for the types llama.cpp repacks on x86). */
enum { MODE_GEMV = 0, MODE_GEMM = 1, MODE_NOREPACK = 2 };

static fs_rows_fn rows_for(const fs_type_traits *t, int mode) {
    if (t->repack_rows == 0 || mode == MODE_NOREPACK) return PICK_ROWS(t->rows);
    if (mode == MODE_GEMM && t->gemm[FS_IMPL_PORTABLE] != NULL) return PICK_ROWS(t->gemm);
    return PICK_ROWS(t->gemv);
}

static void vd_rows(int mode, int wtype, const uint8_t *w, size_t row_bytes, int64_t n_rows, const void *act,
                    int64_t n, float *out) {
    const fs_type_traits *t = valid(wtype, n, NULL);
    if (t == NULL || n_rows <= 0) return;
    rows_for(t, mode)(w, row_bytes, n_rows, (const uint8_t *)act, n, out);
}

/* Types llama.cpp repacks give the bits of its x86 repacked ggml_gemv_*_8x8 (one activation row
 * at a time), on every CPU; the other types those of ggml_vec_dot_* (AVX2 or generic). */
void fs_vec_dot_rows(int wtype, const uint8_t *w, size_t row_bytes, int64_t n_rows, const void *act, int64_t n,
                     float *out) {
    vd_rows(MODE_GEMV, wtype, w, row_bytes, n_rows, act, n, out);
}

/* fs_vec_dot_rows_gemm: the bits of llama.cpp's repacked ggml_gemm_*_8x8 (tokens in groups of 4);
 * only Q4_K differs from fs_vec_dot_rows. fs_vec_dot_rows_norepack: ggml_vec_dot_* for every type,
 * what llama.cpp computes for a tensor it does not repack (ne[1] not a multiple of 8). */
void fs_vec_dot_rows_gemm(int wtype, const uint8_t *w, size_t row_bytes, int64_t n_rows, const void *act, int64_t n,
                          float *out) {
    vd_rows(MODE_GEMM, wtype, w, row_bytes, n_rows, act, n, out);
}

void fs_vec_dot_rows_norepack(int wtype, const uint8_t *w, size_t row_bytes, int64_t n_rows, const void *act,
                              int64_t n, float *out) {
    vd_rows(MODE_NOREPACK, wtype, w, row_bytes, n_rows, act, n, out);
}

int fs_vec_dot_tiled(int wtype) {
    const fs_type_traits *t = fs_traits(wtype);
    return t != NULL && PICK(t->tiles) != NULL;
}

int fs_vec_dot_repacked(int wtype, int64_t n_rows) {
    const fs_type_traits *t = fs_traits(wtype);
    return t != NULL && t->repack_rows > 0 && n_rows % t->repack_rows == 0;
}

static void tile_or_rows(int mode, fs_tiles_fn tiles, int wtype, const uint8_t *w, size_t row_bytes, int64_t n_rows,
                         const void *act, size_t act_bytes, int64_t n_act, int64_t n, float *out, int64_t out_stride) {
    const uint8_t *a = (const uint8_t *)act;
    if (tiles != NULL) {
        tiles(w, row_bytes, n_rows, a, act_bytes, n_act, n, out, out_stride);
        return;
    }
    for (int64_t t = 0; t < n_act; t++)
        vd_rows(mode, wtype, w, row_bytes, n_rows, a + (size_t)t * act_bytes, n, out + t * out_stride);
}

void fs_vec_dot_tile_gemm(int wtype, const uint8_t *w, size_t row_bytes, int64_t n_rows, const void *act,
                          size_t act_bytes, int64_t n_act, int64_t n, float *out, int64_t out_stride) {
    const fs_type_traits *t = valid(wtype, n, NULL);
    if (t == NULL || n <= 0) return;
    fs_tiles_fn tiles = t->repack_rows ? PICK(t->gemm_tiles) : NULL;
    tile_or_rows(MODE_GEMM, tiles, wtype, w, row_bytes, n_rows, act, act_bytes, n_act, n, out, out_stride);
}

void fs_vec_dot_tile_gemv(int wtype, const uint8_t *w, size_t row_bytes, int64_t n_rows, const void *act,
                          size_t act_bytes, int64_t n_act, int64_t n, float *out, int64_t out_stride) {
    const fs_type_traits *t = valid(wtype, n, NULL);
    if (t == NULL || n <= 0) return;
    fs_tiles_fn tiles = t->repack_rows && n_act > 1 ? PICK(t->gemv_tiles) : NULL;
    tile_or_rows(MODE_GEMV, tiles, wtype, w, row_bytes, n_rows, act, act_bytes, n_act, n, out, out_stride);
}

void fs_vec_dot_tile(int wtype, const uint8_t *w, size_t row_bytes, int64_t n_rows, const void *act, size_t act_bytes,
                     int64_t n_act, int64_t n, float *out, int64_t out_stride) {
    const fs_type_traits *t = valid(wtype, n, NULL);
    if (t == NULL || n <= 0) return;
    /* For one activation row (decode) the rows are streamed one after the other: nothing to reuse
     * across tokens, and the sequential reads are faster (Q8_0: 13 against 7 GB/s on a 200 MB
     * matrix; SmolLM2 decode, Q4_1: 65-78 against 46-53 tokens/s, same machine, same minutes). */
    fs_tiles_fn tiles = n_act == 1 ? NULL : PICK(t->tiles);
    tile_or_rows(MODE_NOREPACK, tiles, wtype, w, row_bytes, n_rows, act, act_bytes, n_act, n, out, out_stride);
}
