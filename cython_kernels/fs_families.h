/* The kernels each family file defines, one group per GGML type (internal to cython_kernels/).
 * The traits table (fs_traits.c) points at these; signatures are fs_kernel.h's fs_dequant_fn,
 * fs_quant_act_fn, fs_rows_fn and fs_tiles_fn. For a type x:
 *   fs_dequant_x       nb blocks -> floats, bit-identical to gguf.quants.dequantize
 *   fs_rows_x_c        ggml_vec_dot_x_* (the *_generic code), one weight row after another
 *   fs_rows_x_avx2     the same with ggml's __AVX2__ arithmetic (FS_HAVE_AVX2_CODE only)
 *   fs_tiles_x_avx2    register-tiled prefill with fs_rows_x_avx2's bits (where a type has one)
 *   fs_*_x_avx512      the AVX-512 variant of one of these, with the AVX2 one's bits (where a type has
 *                      one; FS_HAVE_AVX512_CODE only)
 *   fs_rows_x_neon     ggml_vec_dot_x_* with ggml's arm64 __ARM_NEON + dot-product arithmetic
 *                      (ggml-cpu/arch/arm/quants.c; FS_HAVE_NEON_CODE only; Q4_0, Q4_1, Q5_0, Q5_1,
 *                      Q8_0, Q4_K, Q6_K)
 *   fs_gemv_x_* / fs_gemm_x_* / fs_gemm_tiles_x_avx2: llama.cpp's x86 repacked products (Q4_0,
 *                      Q4_K, IQ4_NL, MXFP4), whose float arithmetic differs from ggml_vec_dot's (a _neon
 *                      one computes the portable one's bits with SDOT for the exact integer sums)
 */
#ifndef FS_FAMILIES_H
#define FS_FAMILIES_H

#include "fs_kernel.h"

#if FS_HAVE_AVX2_CODE
#define FS_FAMILY_AVX2(decl) decl
#else
#define FS_FAMILY_AVX2(decl)
#endif
#if FS_HAVE_AVX512_CODE
#define FS_FAMILY_AVX512(decl) decl
#else
#define FS_FAMILY_AVX512(decl)
#endif
#if FS_HAVE_NEON_CODE
#define FS_FAMILY_NEON(decl) decl
#else
#define FS_FAMILY_NEON(decl)
#endif

/* fs_rows_x_neon / fs_gemv_x_neon / fs_gemm_x_neon: the arm64 NEON + dot-product variant
 * (FS_HAVE_NEON_CODE only). */
#define FS_DECLARE_NEON_ROWS(name)                                                                           \
    FS_FAMILY_NEON(void name(const uint8_t *w, size_t row_bytes, int64_t n_rows, const uint8_t *act, int64_t n, \
                             float *out);)

#define FS_DECLARE_TYPE(x)                                                                                     \
    void fs_dequant_##x(const uint8_t *src, float *dst, int64_t nb);                                           \
    void fs_rows_##x##_c(const uint8_t *w, size_t row_bytes, int64_t n_rows, const uint8_t *act, int64_t n,    \
                         float *out);                                                                          \
    FS_FAMILY_AVX2(void fs_rows_##x##_avx2(const uint8_t *w, size_t row_bytes, int64_t n_rows, const uint8_t *act, \
                                           int64_t n, float *out);)

#define FS_DECLARE_TILES(x)                                                                                   \
    FS_FAMILY_AVX2(void fs_tiles_##x##_avx2(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a,     \
                                            size_t ab, int64_t n_act, int64_t n, float *out, int64_t os);)                                                                                 \
    FS_FAMILY_AVX512(void fs_tiles_##x##_avx512(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a, \
                                                size_t ab, int64_t n_act, int64_t n, float *out, int64_t os);)

#define FS_DECLARE_GEMV(x)                                                                                     \
    void fs_gemv_##x##_c(const uint8_t *w, size_t row_bytes, int64_t n_rows, const uint8_t *act, int64_t n,    \
                         float *out);                                                                          \
    FS_FAMILY_AVX2(void fs_gemv_##x##_avx2(const uint8_t *w, size_t row_bytes, int64_t n_rows, const uint8_t *act, \
                                           int64_t n, float *out);)

/* fs_float.c: F32, F16, BF16 (n elements per "block" of one). */
FS_DECLARE_TYPE(f32)
FS_DECLARE_TYPE(f16)
FS_DECLARE_TYPE(bf16)
void fs_quant_act_f32(const float *x, uint8_t *y, int64_t n);
void fs_quant_act_f16(const float *x, uint8_t *y, int64_t n);
void fs_quant_act_bf16(const float *x, uint8_t *y, int64_t n);

/* fs_q32.c: 32-element blocks and the Q8_0 / Q8_1 activation formats. */
FS_DECLARE_TYPE(q4_0) FS_DECLARE_TILES(q4_0) FS_DECLARE_GEMV(q4_0)
FS_FAMILY_AVX2(void fs_gemm_tiles_q4_0_avx2(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a, size_t ab,
                                            int64_t n_act, int64_t n, float *out, int64_t os);)
FS_FAMILY_AVX512(void fs_gemm_tiles_q4_0_avx512(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a,
                                                size_t ab, int64_t n_act, int64_t n, float *out, int64_t os);)
FS_DECLARE_TYPE(q4_1) FS_DECLARE_TILES(q4_1)
FS_DECLARE_TYPE(q5_0) FS_DECLARE_TILES(q5_0)
FS_DECLARE_TYPE(q5_1) FS_DECLARE_TILES(q5_1)
FS_DECLARE_TYPE(q8_0) FS_DECLARE_TILES(q8_0)
FS_FAMILY_AVX512(void fs_rows_q8_0_avx512(const uint8_t *w, size_t row_bytes, int64_t n_rows, const uint8_t *act,
                                          int64_t n, float *out);)
FS_DECLARE_NEON_ROWS(fs_rows_q4_0_neon)
FS_DECLARE_NEON_ROWS(fs_gemv_q4_0_neon)
FS_DECLARE_NEON_ROWS(fs_rows_q4_1_neon)
FS_DECLARE_NEON_ROWS(fs_rows_q5_0_neon)
FS_DECLARE_NEON_ROWS(fs_rows_q5_1_neon)
FS_DECLARE_NEON_ROWS(fs_rows_q8_0_neon)
void fs_quant_act_q8_0(const float *x, uint8_t *y, int64_t nb);
void fs_quant_act_q8_1(const float *x, uint8_t *y, int64_t nb);

/* fs_kquants.c: 256-element K-quants and the Q8_K activation format. */
FS_DECLARE_TYPE(q2_k) FS_DECLARE_TILES(q2_k)
FS_DECLARE_TYPE(q3_k) FS_DECLARE_TILES(q3_k)
FS_DECLARE_TYPE(q4_k) FS_DECLARE_GEMV(q4_k)
FS_DECLARE_TYPE(q5_k) FS_DECLARE_TILES(q5_k)
FS_DECLARE_TYPE(q6_k) FS_DECLARE_TILES(q6_k)
FS_FAMILY_AVX512(void fs_rows_q6_k_avx512(const uint8_t *w, size_t row_bytes, int64_t n_rows, const uint8_t *act,
                                          int64_t n, float *out);)
FS_FAMILY_AVX512(void fs_gemm_tiles_q4_k_avx512(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a,
                                                size_t ab, int64_t n_act, int64_t n, float *out, int64_t os);)
void fs_gemm_q4_k_c(const uint8_t *w, size_t row_bytes, int64_t n_rows, const uint8_t *act, int64_t n, float *out);
FS_FAMILY_AVX2(void fs_gemm_q4_k_avx2(const uint8_t *w, size_t row_bytes, int64_t n_rows, const uint8_t *act,
                                      int64_t n, float *out);)
FS_FAMILY_AVX2(void fs_gemm_tiles_q4_k_avx2(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a, size_t ab,
                                            int64_t n_act, int64_t n, float *out, int64_t os);)
FS_FAMILY_AVX2(void fs_gemv_tiles_q4_k_avx2(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a, size_t ab,
                                            int64_t n_act, int64_t n, float *out, int64_t os);)
FS_DECLARE_NEON_ROWS(fs_rows_q4_k_neon)
FS_DECLARE_NEON_ROWS(fs_gemv_q4_k_neon)
FS_DECLARE_NEON_ROWS(fs_gemm_q4_k_neon)
FS_DECLARE_NEON_ROWS(fs_rows_q6_k_neon)
void fs_quant_act_q8_k(const float *x, uint8_t *y, int64_t nb);

/* fs_iq4.c: non-linear 4-bit (the kvalues_iq4nl table). */
FS_DECLARE_TYPE(iq4_nl) FS_DECLARE_TILES(iq4_nl) FS_DECLARE_GEMV(iq4_nl)
FS_DECLARE_TYPE(iq4_xs) FS_DECLARE_TILES(iq4_xs)

/* fs_iq2.c, fs_iq3.c, fs_iq1.c: lattice grids (fs_iq_grids.h). */
FS_DECLARE_TYPE(iq2_xxs)
FS_DECLARE_TYPE(iq2_xs)
FS_DECLARE_TYPE(iq2_s)
FS_DECLARE_TYPE(iq3_xxs)
FS_DECLARE_TYPE(iq3_s)
FS_DECLARE_TYPE(iq1_s)
FS_DECLARE_TYPE(iq1_m)

/* fs_ternary.c: TQ1_0, TQ2_0. */
FS_DECLARE_TYPE(tq1_0)
FS_DECLARE_TYPE(tq2_0)

/* fs_mxfp4.c: MXFP4 (the kvalues_mxfp4 E2M1 table, E8M0 block scales). */
FS_DECLARE_TYPE(mxfp4) FS_DECLARE_TILES(mxfp4) FS_DECLARE_GEMV(mxfp4)
FS_FAMILY_AVX2(void fs_gemm_tiles_mxfp4_avx2(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a, size_t ab,
                                             int64_t n_act, int64_t n, float *out, int64_t os);)

#endif /* FS_FAMILIES_H */
