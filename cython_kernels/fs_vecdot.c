/* Activation quantization and quantized dot products, as llama.cpp's CPU backend does them.
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
 * Layout of this file: scalar helpers; the activation quantizers (one implementation for every
 * CPU, so the quantized bytes never depend on the machine); the portable dot products (ggml's
 * generic code, float operations in the same order); the portable repacked Q4_0 / Q4_K products
 * (llama.cpp's x86 repack kernels, see there); the AVX2 dot products (ggml's AVX2 code: same
 * integer lanes, same FMAs, same horizontal sums) and repacked products; dispatch and the public
 * functions.
 *
 * Q4_0 and Q4_K: fs_vec_dot_rows gives the bits of llama.cpp's x86 AVX2 repacked gemv (what
 * llama.cpp runs for those tensors when their row count is a multiple of 8) in both
 * implementations; fs_vec_dot_rows_gemm the bits of its gemm (tokens in groups of 4);
 * fs_vec_dot_rows_norepack those of ggml_vec_dot as for the other types. Checked bit for bit
 * against ggml built from source (AVX2, mul_mat with the weight in the CPU repack buffer).
 */
#include "fs_vecdot.h"
#include "fs_half.h"
#include "fs_avx2.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The float results must not depend on the compiler fusing a*b+c into one FMA: the portable code
 * mirrors ggml's scalar code (separate roundings), the AVX2 code uses _mm256_fmadd_ps exactly where
 * ggml's AVX2 code does and separate mul/add elsewhere (GCC would otherwise contract
 * _mm256_add_ps(_mm256_mul_ps(..)) inside an FMA-enabled function). Setup.py passes
 * -ffp-contract=off; this repeats it for builds that forget. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#elif defined(_MSC_VER)
#pragma fp_contract(off)
#endif

/* The AVX2 code needs GCC or clang (target attribute, __builtin_cpu_supports, <cpuid.h>); clang in
 * MSVC mode (clang-cl) is left out because its <immintrin.h> hides AVX unless built with -mavx. */
#if FS_HAVE_AVX2_CODE
#define FS_VD_AVX2 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define FS_VD_AVX2 0
#endif

/* The per-row dot functions and their helpers are forced inline into the row loops (GCC otherwise
 * leaves some of these large functions as calls, which blocks constant propagation and, for a
 * function called from a target_clones / target clone, the use of the clone's instruction set). */
#if defined(__GNUC__) || defined(__clang__)
#define FS_VD_INLINE static inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define FS_VD_INLINE static __forceinline
#else
#define FS_VD_INLINE static inline
#endif

#define QK 32    /* elements per block: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1 */
#define QK_K 256 /* elements per super-block: Q4_K, Q5_K, Q6_K, Q8_K */

/* Block sizes in bytes (ggml-common.h). */
#define B_Q4_0 18  /* f16 d | qs[16] */
#define B_Q4_1 20  /* f16 d | f16 m | qs[16] */
#define B_Q5_0 22  /* f16 d | qh[4] | qs[16] */
#define B_Q5_1 24  /* f16 d | f16 m | qh[4] | qs[16] */
#define B_Q8_0 34  /* f16 d | int8 qs[32] */
#define B_Q8_1 36  /* f16 d | f16 s | int8 qs[32] */
#define B_Q4_K 144 /* f16 d | f16 dmin | scales[12] | qs[128] */
#define B_Q5_K 176 /* f16 d | f16 dmin | scales[12] | qh[32] | qs[128] */
#define B_Q6_K 210 /* ql[128] | qh[64] | int8 scales[16] | f16 d */
#define B_Q8_K 292 /* f32 d | int8 qs[256] | int16 bsums[16] */
#define Q8K_QS 4   /* offset of qs in a Q8_K block */
#define Q8K_BSUMS 260

/* ---- scalar helpers ---------------------------------------------------------------------- */

static inline uint16_t rd_u16(const uint8_t *p) { return (uint16_t)(p[0] | ((unsigned)p[1] << 8)); }

static inline uint32_t rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline void wr_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xFF);
    p[1] = (uint8_t)(v >> 8);
}

static inline float rd_f32(const uint8_t *p) { /* native (little-endian) float at any alignment */
    float f;
    memcpy(&f, p, sizeof f);
    return f;
}

static inline float rd_f16(const uint8_t *p) { return fp16_to_fp32(rd_u16(p)); }

/* binary32 -> bfloat16, round to nearest even; NaN keeps its top bits and is made quiet.
 * ggml's ggml_compute_fp32_to_bf16 (GGML_FP32_TO_BF16). */
static inline uint16_t fp32_to_bf16(float f) {
    const uint32_t u = f32_to_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 64u);
    return (uint16_t)((u + (0x7FFFu + ((u >> 16) & 1u))) >> 16);
}

static inline float bf16_to_fp32(uint16_t h) { return f32_from_bits((uint32_t)h << 16); }

/* Round to nearest, ties to even, for |fval| <= 4194303 (ggml-quants.c nearest_int): adding
 * 1.5 * 2^23 leaves the rounded integer in the low mantissa bits. */
static inline int nearest_int(float fval) {
    const float val = fval + 12582912.f;
    const uint32_t i = f32_to_bits(val);
    return (int)(i & 0x007FFFFFu) - 0x00400000;
}

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

/* ---- activation quantization (ggml-quants.c, *_ref) --------------------------------------- */

/* Q8_0 activations as llama.cpp's x86 quantize_row_q8_0 (ggml-cpu/arch/x86/quants.c) computes
 * them: amax = max |x|; d = amax / 127; id = amax ? 127 / amax : 0; qs = round-half-even(x * id)
 * (_mm256_round_ps). This differs from quantize_row_q8_0_ref (id = 1/d, roundf) in rare last-bit
 * cases; following the SIMD version keeps our greedy decoding on llama.cpp's path on x86. The
 * same bytes are produced on every CPU. The block stores fp16(d). */
static FS_DISPATCH void quant_q8_0(const float *x, uint8_t *y, int64_t nb) {
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
static FS_DISPATCH void quant_q8_1(const float *x, uint8_t *y, int64_t nb) {
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

/* quantize_row_q8_K_ref: max = the element of largest |x| (the first one on ties);
 * iscale = -127 / max; qs = min(127, nearest_int(iscale * x)); d = 1 / iscale (float32, not f16);
 * bsums[j] = sum of qs[16j .. 16j+16). An all-zero block gets d = 0 and qs = 0; ggml leaves its
 * bsums unwritten there, this writes zeros (the dot products multiply them by d = 0). */
static FS_DISPATCH void quant_q8_k(const float *x, uint8_t *y, int64_t nb) {
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

/* ---- portable dot products: ggml's *_generic functions ------------------------------------ */
/* Each dot_* takes one weight row, the quantized activation row and the number of elements. The
 * integer block sums are exact whatever the evaluation order; the float expressions are written
 * exactly as in ggml (C evaluates a * b * c as (a * b) * c). */

/* The integer dot product of one 32-element block (exact, so any evaluation order). The 4- and
 * 5-bit types first unpack their quants to int8 (as ggml's K-quant generic code does): the plain
 * int8 loop is what compilers vectorize best. */
FS_VD_INLINE int block_dot_i8(const int8_t *a, const int8_t *b) {
    int sumi = 0;
    for (int j = 0; j < QK; j++) sumi += a[j] * b[j];
    return sumi;
}

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

/* The repacked Q4_K product of one row; per_chunk = 0: gemv, 1: gemm (see above). */
FS_VD_INLINE float dot_q4_k_repack_c(const uint8_t *x, const uint8_t *y, int64_t n, int per_chunk) {
    const int64_t nb = n / QK_K;
    float acc = 0.0f, accm = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q4_K, y += B_Q8_K) {
        const float yd = rd_f32(y);
        const float d = rd_f16(x) * yd;        /* _mm256_mul_ps(col_scale_f32, row_scale_f32) */
        const float dmin = rd_f16(x + 2) * yd; /* _mm256_mul_ps(col_dmin_f32, row_scale_f32) */
        uint8_t sc[8], mn[8];
        scale_min_k4(x + 4, sc, mn);
        int16_t bsums[16];
        memcpy(bsums, y + Q8K_BSUMS, sizeof bsums);
        int32_t dots[8];
        q4_k_subblock_dots(x, (const int8_t *)(y + Q8K_QS), dots);
        int32_t isum[4], msum[4];
        for (int c = 0; c < 4; c++) {
            isum[c] = sc[2 * c] * dots[2 * c] + sc[2 * c + 1] * dots[2 * c + 1];
            msum[c] = mn[2 * c] * (bsums[4 * c] + bsums[4 * c + 1]) + mn[2 * c + 1] * (bsums[4 * c + 2] + bsums[4 * c + 3]);
        }
        if (per_chunk) {
            for (int c = 0; c < 4; c++) {
                acc = fmaf((float)isum[c], d, acc);
                accm = fmaf((float)msum[c], dmin, accm);
            }
        } else {
            acc = fmaf((float)(isum[0] + isum[1] + isum[2] + isum[3]), d, acc);
            accm = fmaf((float)(msum[0] + msum[1] + msum[2] + msum[3]), dmin, accm);
        }
    }
    return acc - accm;
}

FS_VD_INLINE float dot_q4_k_gemv_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    return dot_q4_k_repack_c(x, y, n, 0);
}

FS_VD_INLINE float dot_q4_k_gemm_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    return dot_q4_k_repack_c(x, y, n, 1);
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

/* ggml_vec_dot_f32 / _f16 / _bf16 without SIMD: each product rounded to float, summed in double
 * (ggml_float), the total rounded to float. */
FS_VD_INLINE float dot_f32_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    double sumf = 0.0;
    for (int64_t i = 0; i < n; i++) sumf += (double)(rd_f32(x + 4 * i) * rd_f32(y + 4 * i));
    return (float)sumf;
}

FS_VD_INLINE float dot_f16_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    double sumf = 0.0;
    for (int64_t i = 0; i < n; i++) sumf += (double)(rd_f16(x + 2 * i) * rd_f16(y + 2 * i));
    return (float)sumf;
}

FS_VD_INLINE float dot_bf16_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    double sumf = 0.0;
    for (int64_t i = 0; i < n; i++) sumf += (double)(bf16_to_fp32(rd_u16(x + 2 * i)) * bf16_to_fp32(rd_u16(y + 2 * i)));
    return (float)sumf;
}

/* Row loops: out[r] = dot(w + r * row_bytes, act). The portable ones are built for the baseline
 * instruction set only, without FS_DISPATCH clones: a CPU with AVX2 runs the AVX2 code below, so a
 * clone would only serve FIRESIDE_CPU=portable (and GCC's arch=haswell clone dispatches on the CPU
 * model, not its features: it is picked on Haswell-family Intel CPUs only). */
#define FS_ROWS(name, dot, attrs)                                                                   \
    static attrs void name(const uint8_t *w, size_t row_bytes, int64_t n_rows, const uint8_t *act, \
                           int64_t n, float *out) {                                                 \
        for (int64_t r = 0; r < n_rows; r++) out[r] = dot(w + (size_t)r * row_bytes, act, n);      \
    }

FS_ROWS(rows_f32_c, dot_f32_c, )
FS_ROWS(rows_f16_c, dot_f16_c, )
FS_ROWS(rows_bf16_c, dot_bf16_c, )
FS_ROWS(rows_q4_0_c, dot_q4_0_c, )
FS_ROWS(rows_q4_1_c, dot_q4_1_c, )
FS_ROWS(rows_q5_0_c, dot_q5_0_c, )
FS_ROWS(rows_q5_1_c, dot_q5_1_c, )
FS_ROWS(rows_q8_0_c, dot_q8_0_c, )
FS_ROWS(rows_q4_k_c, dot_q4_k_c, )
FS_ROWS(rows_q4_0_gemv_c, dot_q4_0_gemv_c, )
FS_ROWS(rows_q4_k_gemv_c, dot_q4_k_gemv_c, )
FS_ROWS(rows_q4_k_gemm_c, dot_q4_k_gemm_c, )
FS_ROWS(rows_q5_k_c, dot_q5_k_c, )
FS_ROWS(rows_q6_k_c, dot_q6_k_c, )

/* ---- AVX2 dot products: ggml's __AVX2__ code (arch/x86/quants.c, vec.cpp) ------------------ */
#if FS_VD_AVX2

/* GGML_F32x8_REDUCE with GGML_F32_ARR = 4: s0 += s2, s1 += s3, s0 += s1; then (lo + hi) and two
 * horizontal adds. */
static inline FS_AVX2_FN float reduce_f32x8x4(__m256 s0, __m256 s1, __m256 s2, __m256 s3) {
    s0 = _mm256_add_ps(s0, s2);
    s1 = _mm256_add_ps(s1, s3);
    s0 = _mm256_add_ps(s0, s1);
    const __m128 t0 = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
    const __m128 t1 = _mm_hadd_ps(t0, t0);
    return _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
}

static inline FS_AVX2_FN float h2f(const uint8_t *p) { return _cvtsh_ss(rd_u16(p)); }

/* bytes_from_nibbles_32: 16 bytes -> 32 bytes, low nibbles in bytes 0..15, high in 16..31. */
static inline FS_AVX2_FN __m256i nibbles_32(const uint8_t *p) {
    const __m128i tmp = _mm_loadu_si128((const __m128i *)p);
    const __m256i both = _mm256_insertf128_si256(_mm256_castsi128_si256(tmp), _mm_srli_epi16(tmp, 4), 1);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

/* bytes_from_bits_32: bit j of the little-endian 32-bit word -> byte j = 0xFF or 0x00. */
static inline FS_AVX2_FN __m256i bits_32(const uint8_t *p) {
    int32_t x32;
    memcpy(&x32, p, sizeof x32);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL, 0x0101010101010101LL, 0);
    __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(x32), shuf);
    bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7FBFDFEFF7FBFDFELL));
    return _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
}

/* mul_sum_us8_pairs_float: unsigned x times signed y, summed in groups of four bytes, as float. */
static inline FS_AVX2_FN __m256 us8_quads(__m256i ux, __m256i sy) {
    const __m256i p16 = _mm256_maddubs_epi16(ux, sy);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_set1_epi16(1), p16));
}

/* mul_sum_i8_pairs_float: signed x times signed y via |x| and sign(y, x). */
static inline FS_AVX2_FN __m256 i8_quads(__m256i x, __m256i y) {
    return us8_quads(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

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
static inline FS_AVX2_FN float dot_q8_0_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q8_0, y += B_Q8_0) {
        const __m256 d = _mm256_set1_ps(h2f(x) * h2f(y));
        const __m256i qx = _mm256_loadu_si256((const __m256i *)(x + 2));
        const __m256i qy = _mm256_loadu_si256((const __m256i *)(y + 2));
        acc = _mm256_fmadd_ps(d, i8_quads(qx, qy), acc);
    }
    return hsum_f32x8(acc);
}

/* Mins term of Q4_K / Q5_K: madd(mins as int16, hadd_epi16(bsums[0..8), bsums[8..16))), i.e. four
 * int32 lanes min[2i] * (b[4i] + b[4i+1]) + min[2i+1] * (b[4i+2] + b[4i+3]). */
static inline FS_AVX2_FN __m128i kq_min_prod(const uint8_t *mn, const uint8_t *yblock) {
    const __m256i q8sums = _mm256_loadu_si256((const __m256i *)(yblock + Q8K_BSUMS));
    const __m128i q8s = _mm_hadd_epi16(_mm256_castsi256_si128(q8sums), _mm256_extracti128_si256(q8sums, 1));
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

static inline FS_AVX2_FN int32_t hsum_i32x4(__m128i v) {
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0x4E));
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0xB1));
    return _mm_cvtsi128_si32(v);
}

static inline FS_AVX2_FN int32_t hsum_i32x8(__m256i v) {
    return hsum_i32x4(_mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)));
}

/* a * b + c with one rounding (one lane of _mm256_fmadd_ps). */
static inline FS_AVX2_FN float fma_f32(float a, float b, float c) {
    return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(b), _mm_set_ss(c)));
}

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

/* ggml_gemv_q4_K_8x8_q8_K (x86): acc = fma(I, d * y.d, acc), accm = fma(M, dmin * y.d, accm) per
 * super-block; out = acc - accm. Both FMAs are taken at once in lanes 0 and 1 of one vector: the
 * exact int32 sums are reduced to [I, M, I, M] (hadd of the 4 lanes of the scaled products with
 * the 4 lanes of the min products, then hadd again). */
static inline FS_AVX2_FN float dot_q4_k_gemv_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    __m128 acc = _mm_setzero_ps(); /* lane 0: acc, lane 1: accm */
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q4_K, y += B_Q8_K) {
        const __m128 dd = q4_k_d_dmin(x, rd_f32(y));
        uint8_t sc[8], mn[8];
        scale_min_k4(x + 4, sc, mn);
        const __m128i mprod = kq_min_prod(mn, y);
        const uint8_t *q4 = x + 16;
        const int8_t *q8 = (const int8_t *)(y + Q8K_QS);
        __m256i sumi = q4_k_chunk_lanes(q4, q8, sc, 0);
        sumi = _mm256_add_epi32(sumi, q4_k_chunk_lanes(q4, q8, sc, 1));
        sumi = _mm256_add_epi32(sumi, q4_k_chunk_lanes(q4, q8, sc, 2));
        sumi = _mm256_add_epi32(sumi, q4_k_chunk_lanes(q4, q8, sc, 3));
        const __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sumi), _mm256_extracti128_si256(sumi, 1));
        __m128i im = _mm_hadd_epi32(s4, mprod);
        im = _mm_hadd_epi32(im, im);
        acc = _mm_fmadd_ps(_mm_cvtepi32_ps(im), dd, acc);
    }
    return _mm_cvtss_f32(_mm_sub_ss(acc, _mm_movehdup_ps(acc)));
}

/* Lanes 0..3: the sums of the 8 int32 lanes of a, b, c, d (exact). */
static inline FS_AVX2_FN __m128i hsum_i32x8x4(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m128i a4 = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    const __m128i b4 = _mm_add_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
    const __m128i c4 = _mm_add_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
    const __m128i d4 = _mm_add_epi32(_mm256_castsi256_si128(d), _mm256_extracti128_si256(d, 1));
    return _mm_hadd_epi32(_mm_hadd_epi32(a4, b4), _mm_hadd_epi32(c4, d4));
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

/* gemv_q4_b32_8x8_q8_0_lut_avx / gemm_q4_b32_8x8_q8_0_lut_avx for Q4_0 (x86):
 * acc = fma(sumi, dx * dy, acc) per block of 32. */
static inline FS_AVX2_FN float dot_q4_0_gemv_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK;
    float acc = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q4_0, y += B_Q8_0) {
        const float d = h2f(x) * h2f(y);
        const __m256i qx = _mm256_sub_epi8(nibbles_32(x + 2), _mm256_set1_epi8(8));
        const __m256i qy = _mm256_loadu_si256((const __m256i *)(y + 2));
        const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(qx, qx), _mm256_sign_epi8(qy, qx));
        const int32_t sumi = hsum_i32x8(_mm256_madd_epi16(_mm256_set1_epi16(1), p16));
        acc = fma_f32((float)sumi, d, acc);
    }
    return acc;
}

/* ggml_vec_dot_q5_K_q8_K (AVX2): as Q4_K with the fifth bits added (bit 2c / 2c + 1 of qh[l] shifted
 * to bit 4); the mins term is one integer per super-block: summs += dmin * sum. Result
 * hsum(acc) + summs. */
static inline FS_AVX2_FN float dot_q5_k_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc = _mm256_setzero_ps();
    float summs = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q5_K, y += B_Q8_K) {
        const float yd = rd_f32(y);
        const float d = yd * h2f(x);
        const float dmin = -yd * h2f(x + 2);
        uint8_t sc[8], mn[8];
        scale_min_k4(x + 4, sc, mn);
        const __m128i prod = kq_min_prod(mn, y);
        const int32_t msum = _mm_extract_epi32(prod, 0) + _mm_extract_epi32(prod, 1) +
                             _mm_extract_epi32(prod, 2) + _mm_extract_epi32(prod, 3);
        summs += dmin * (float)msum;
        const __m256i hbits = _mm256_loadu_si256((const __m256i *)(x + 16));
        const uint8_t *q5 = x + 48;
        const int8_t *q8 = (const int8_t *)(y + Q8K_QS);
        __m256i hmask = _mm256_set1_epi8(1);
        __m256i sumi = _mm256_setzero_si256();
        int bit = 0;
        for (int c = 0; c < 4; c++) {
            const __m256i scale_0 = _mm256_set1_epi16(sc[2 * c]);
            const __m256i scale_1 = _mm256_set1_epi16(sc[2 * c + 1]);
            const __m256i q5bits = _mm256_loadu_si256((const __m256i *)(q5 + 32 * c));
            const __m256i q5l_0 = _mm256_and_si256(q5bits, m4);
            const __m256i q5h_0 =
                _mm256_slli_epi16(_mm256_srl_epi16(_mm256_and_si256(hbits, hmask), _mm_cvtsi32_si128(bit)), 4);
            bit++;
            hmask = _mm256_slli_epi16(hmask, 1);
            const __m256i q5l_1 = _mm256_and_si256(_mm256_srli_epi16(q5bits, 4), m4);
            const __m256i q5h_1 =
                _mm256_slli_epi16(_mm256_srl_epi16(_mm256_and_si256(hbits, hmask), _mm_cvtsi32_si128(bit)), 4);
            bit++;
            hmask = _mm256_slli_epi16(hmask, 1);
            const __m256i q5_0 = _mm256_add_epi8(q5l_0, q5h_0);
            const __m256i q5_1 = _mm256_add_epi8(q5l_1, q5h_1);
            const __m256i q8_0 = _mm256_loadu_si256((const __m256i *)(q8 + 64 * c));
            const __m256i q8_1 = _mm256_loadu_si256((const __m256i *)(q8 + 64 * c + 32));
            const __m256i p16_0 = _mm256_madd_epi16(scale_0, _mm256_maddubs_epi16(q5_0, q8_0));
            const __m256i p16_1 = _mm256_madd_epi16(scale_1, _mm256_maddubs_epi16(q5_1, q8_1));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p16_0, p16_1));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_f32x8(acc) + summs;
}

/* ggml_vec_dot_q6_K_q8_K (AVX2): 6-bit values q in [0, 64) times y through maddubs, minus
 * maddubs(32, y) (the -32 offset), scaled per 16 elements by the int8 scales with madd;
 * acc = fma(y.d * fp16(x.d), lanes, acc). */
static inline FS_AVX2_FN float dot_q6_k_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i m2 = _mm256_set1_epi8(3);
    const __m256i m32s = _mm256_set1_epi8(32);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q6_K, y += B_Q8_K) {
        const float d = rd_f32(y) * h2f(x + 208);
        const __m128i scales = _mm_loadu_si128((const __m128i *)(x + 192));
        const uint8_t *ql = x;
        const uint8_t *qh = x + 128;
        const int8_t *q8 = (const int8_t *)(y + Q8K_QS);
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i sc16[4];
            for (int k = 0; k < 4; k++) {
                /* get_scale_shuffle(4h + k): bytes 0..7 pick scale 2i, bytes 8..15 scale 2i + 1. */
                const long long i2 = 2 * (4 * h + k);
                const __m128i shuf = _mm_set_epi64x(0x0101010101010101LL * (i2 + 1), 0x0101010101010101LL * i2);
                sc16[k] = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, shuf));
            }
            const __m256i q4bits1 = _mm256_loadu_si256((const __m256i *)(ql + 64 * h));
            const __m256i q4bits2 = _mm256_loadu_si256((const __m256i *)(ql + 64 * h + 32));
            const __m256i q4bitsH = _mm256_loadu_si256((const __m256i *)(qh + 32 * h));
            const __m256i q4h_0 = _mm256_slli_epi16(_mm256_and_si256(q4bitsH, m2), 4);
            const __m256i q4h_1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(q4bitsH, 2), m2), 4);
            const __m256i q4h_2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(q4bitsH, 4), m2), 4);
            const __m256i q4h_3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(q4bitsH, 6), m2), 4);
            const __m256i q4_0 = _mm256_or_si256(_mm256_and_si256(q4bits1, m4), q4h_0);
            const __m256i q4_1 = _mm256_or_si256(_mm256_and_si256(q4bits2, m4), q4h_1);
            const __m256i q4_2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits1, 4), m4), q4h_2);
            const __m256i q4_3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits2, 4), m4), q4h_3);
            const int8_t *yh = q8 + 128 * h;
            const __m256i q8_0 = _mm256_loadu_si256((const __m256i *)(yh + 0));
            const __m256i q8_1 = _mm256_loadu_si256((const __m256i *)(yh + 32));
            const __m256i q8_2 = _mm256_loadu_si256((const __m256i *)(yh + 64));
            const __m256i q8_3 = _mm256_loadu_si256((const __m256i *)(yh + 96));
            __m256i p16_0 = _mm256_sub_epi16(_mm256_maddubs_epi16(q4_0, q8_0), _mm256_maddubs_epi16(m32s, q8_0));
            __m256i p16_1 = _mm256_sub_epi16(_mm256_maddubs_epi16(q4_1, q8_1), _mm256_maddubs_epi16(m32s, q8_1));
            __m256i p16_2 = _mm256_sub_epi16(_mm256_maddubs_epi16(q4_2, q8_2), _mm256_maddubs_epi16(m32s, q8_2));
            __m256i p16_3 = _mm256_sub_epi16(_mm256_maddubs_epi16(q4_3, q8_3), _mm256_maddubs_epi16(m32s, q8_3));
            p16_0 = _mm256_madd_epi16(sc16[0], p16_0);
            p16_1 = _mm256_madd_epi16(sc16[1], p16_1);
            p16_2 = _mm256_madd_epi16(sc16[2], p16_2);
            p16_3 = _mm256_madd_epi16(sc16[3], p16_3);
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p16_0, p16_1));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p16_2, p16_3));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum_f32x8(acc);
}

/* ggml_vec_dot_f32 (AVX + FMA): four 8-lane FMA accumulators over 32 elements at a time,
 * GGML_F32x8_REDUCE, then the leftover elements added one by one in float. */
static inline FS_AVX2_FN float dot_f32_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t np = n & ~(int64_t)31;
    const float *xf = (const float *)(const void *)x; /* only read through unaligned loads */
    const float *yf = (const float *)(const void *)y;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int64_t i = 0; i < np; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(xf + i), _mm256_loadu_ps(yf + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(xf + i + 8), _mm256_loadu_ps(yf + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(xf + i + 16), _mm256_loadu_ps(yf + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(xf + i + 24), _mm256_loadu_ps(yf + i + 24), s3);
    }
    float sumf = reduce_f32x8x4(s0, s1, s2, s3);
    for (int64_t i = np; i < n; i++) sumf += rd_f32(x + 4 * i) * rd_f32(y + 4 * i);
    return sumf;
}

/* ggml_vec_dot_f16 (AVX + F16C + FMA): as F32 on converted halves; the reduced sum and the leftover
 * products are accumulated in double. */
static inline FS_AVX2_FN float dot_f16_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t np = n & ~(int64_t)31;
#define FS_LDH(p, i) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((p) + 2 * (i))))
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    for (int64_t i = 0; i < np; i += 32) {
        s0 = _mm256_fmadd_ps(FS_LDH(x, i), FS_LDH(y, i), s0);
        s1 = _mm256_fmadd_ps(FS_LDH(x, i + 8), FS_LDH(y, i + 8), s1);
        s2 = _mm256_fmadd_ps(FS_LDH(x, i + 16), FS_LDH(y, i + 16), s2);
        s3 = _mm256_fmadd_ps(FS_LDH(x, i + 24), FS_LDH(y, i + 24), s3);
    }
#undef FS_LDH
    double sumf = (double)reduce_f32x8x4(s0, s1, s2, s3);
    for (int64_t i = np; i < n; i++) sumf += (double)(h2f(x + 2 * i) * h2f(y + 2 * i));
    return (float)sumf;
}

/* ggml_vec_dot_bf16 (AVX2 branch): four 8-lane accumulators c += x * y (separate multiply and add,
 * no FMA) over 32 elements at a time; c1 = (c1 + c3) + (c2 + c4); hsum; leftovers in double. */
static inline FS_AVX2_FN float dot_bf16_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
#define FS_LDB(p, i) \
    _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((p) + 2 * (i)))), 16))
    int64_t i = 0;
    double sumf = 0.0;
    __m256 c1 = _mm256_setzero_ps(), c2 = c1, c3 = c1, c4 = c1;
    for (; i + 32 <= n; i += 32) {
        c1 = _mm256_add_ps(_mm256_mul_ps(FS_LDB(x, i), FS_LDB(y, i)), c1);
        c2 = _mm256_add_ps(_mm256_mul_ps(FS_LDB(x, i + 8), FS_LDB(y, i + 8)), c2);
        c3 = _mm256_add_ps(_mm256_mul_ps(FS_LDB(x, i + 16), FS_LDB(y, i + 16)), c3);
        c4 = _mm256_add_ps(_mm256_mul_ps(FS_LDB(x, i + 24), FS_LDB(y, i + 24)), c4);
    }
#undef FS_LDB
    c1 = _mm256_add_ps(_mm256_add_ps(c1, c3), _mm256_add_ps(c2, c4));
    __m128 g = _mm_add_ps(_mm256_extractf128_ps(c1, 1), _mm256_castps256_ps128(c1));
    g = _mm_add_ps(g, _mm_movehl_ps(g, g));
    g = _mm_add_ss(g, _mm_movehdup_ps(g));
    sumf += (double)_mm_cvtss_f32(g);
    for (; i < n; i++) sumf += (double)(bf16_to_fp32(rd_u16(x + 2 * i)) * bf16_to_fp32(rd_u16(y + 2 * i)));
    return (float)sumf;
}

FS_ROWS(rows_f32_avx2, dot_f32_avx2, FS_AVX2_FN)
FS_ROWS(rows_f16_avx2, dot_f16_avx2, FS_AVX2_FN)
FS_ROWS(rows_bf16_avx2, dot_bf16_avx2, FS_AVX2_FN)
FS_ROWS(rows_q4_0_avx2, dot_q4_0_avx2, FS_AVX2_FN)
FS_ROWS(rows_q4_1_avx2, dot_q4_1_avx2, FS_AVX2_FN)
FS_ROWS(rows_q5_0_avx2, dot_q5_0_avx2, FS_AVX2_FN)
FS_ROWS(rows_q5_1_avx2, dot_q5_1_avx2, FS_AVX2_FN)
FS_ROWS(rows_q8_0_avx2, dot_q8_0_avx2, FS_AVX2_FN)
FS_ROWS(rows_q4_k_avx2, dot_q4_k_avx2, FS_AVX2_FN)
FS_ROWS(rows_q5_k_avx2, dot_q5_k_avx2, FS_AVX2_FN)
FS_ROWS(rows_q6_k_avx2, dot_q6_k_avx2, FS_AVX2_FN)

/* Row loops of the repacked products: 4 rows at a time, one row per lane of the float vectors
 * (as llama.cpp's kernels hold 8 columns per register; each lane does the operations of the
 * single-row functions above, so the grouping does not change any bit), the activation loaded
 * once for the 4 rows; leftover rows one at a time. */

/* [fp16 at p0, p1, p2, p3] as floats. */
static inline FS_AVX2_FN __m128 h2f_x4(const uint8_t *p0, const uint8_t *p1, const uint8_t *p2, const uint8_t *p3) {
    return _mm_cvtph_ps(_mm_setr_epi16((short)rd_u16(p0), (short)rd_u16(p1), (short)rd_u16(p2), (short)rd_u16(p3), 0, 0, 0, 0));
}

/* The 32 products (q - 8) * y of one Q4_0 block as 8 int32 lanes. */
static inline FS_AVX2_FN __m256i q4_0_block_lanes(const uint8_t *x, __m256i qy) {
    const __m256i qx = _mm256_sub_epi8(nibbles_32(x + 2), _mm256_set1_epi8(8));
    const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(qx, qx), _mm256_sign_epi8(qy, qx));
    return _mm256_madd_epi16(_mm256_set1_epi16(1), p16);
}

static FS_AVX2_FN void rows_q4_0_gemv_avx2(const uint8_t *w, size_t row_bytes, int64_t n_rows, const uint8_t *act,
                                           int64_t n, float *out) {
    const int64_t nb = n / QK;
    int64_t r = 0;
    for (; r + 4 <= n_rows; r += 4) {
        const uint8_t *x0 = w + (size_t)r * row_bytes, *x1 = x0 + row_bytes, *x2 = x1 + row_bytes, *x3 = x2 + row_bytes;
        const uint8_t *y = act;
        __m128 acc = _mm_setzero_ps();
        for (int64_t ib = 0; ib < nb; ib++, x0 += B_Q4_0, x1 += B_Q4_0, x2 += B_Q4_0, x3 += B_Q4_0, y += B_Q8_0) {
            const __m256i qy = _mm256_loadu_si256((const __m256i *)(y + 2));
            const __m128i sumi = hsum_i32x8x4(q4_0_block_lanes(x0, qy), q4_0_block_lanes(x1, qy),
                                              q4_0_block_lanes(x2, qy), q4_0_block_lanes(x3, qy));
            const __m128 d = _mm_mul_ps(h2f_x4(x0, x1, x2, x3), _mm_set1_ps(h2f(y)));
            acc = _mm_fmadd_ps(_mm_cvtepi32_ps(sumi), d, acc);
        }
        _mm_storeu_ps(out + r, acc);
    }
    for (; r < n_rows; r++) out[r] = dot_q4_0_gemv_avx2(w + (size_t)r * row_bytes, act, n);
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

/* Q4_K, 4 rows: per super-block (gemv) or per 64 elements (gemm),
 * acc = fma(I, fp16(x.d) * y.d, acc), accm = fma(M, fp16(x.dmin) * y.d, accm); out = acc - accm. */
static inline FS_AVX2_FN void rows_q4_k_repack_avx2(const uint8_t *w, size_t row_bytes, int64_t n_rows,
                                                    const uint8_t *act, int64_t n, float *out, int per_chunk) {
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
            if (per_chunk) {
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
            } else {
                const __m256i s0 = _mm256_add_epi32(_mm256_add_epi32(k0[0], k0[1]), _mm256_add_epi32(k0[2], k0[3]));
                const __m256i s1 = _mm256_add_epi32(_mm256_add_epi32(k1[0], k1[1]), _mm256_add_epi32(k1[2], k1[3]));
                const __m256i s2 = _mm256_add_epi32(_mm256_add_epi32(k2[0], k2[1]), _mm256_add_epi32(k2[2], k2[3]));
                const __m256i s3 = _mm256_add_epi32(_mm256_add_epi32(k3[0], k3[1]), _mm256_add_epi32(k3[2], k3[3]));
                const __m128i msum = _mm_hadd_epi32(_mm_hadd_epi32(m0, m1), _mm_hadd_epi32(m2, m3));
                acc = _mm_fmadd_ps(_mm_cvtepi32_ps(hsum_i32x8x4(s0, s1, s2, s3)), d, acc);
                accm = _mm_fmadd_ps(_mm_cvtepi32_ps(msum), dmin, accm);
            }
        }
        _mm_storeu_ps(out + r, _mm_sub_ps(acc, accm));
    }
    for (; r < n_rows; r++) {
        const uint8_t *x = w + (size_t)r * row_bytes;
        out[r] = per_chunk ? dot_q4_k_gemm_avx2(x, act, n) : dot_q4_k_gemv_avx2(x, act, n);
    }
}

static FS_AVX2_FN void rows_q4_k_gemv_avx2(const uint8_t *w, size_t row_bytes, int64_t n_rows, const uint8_t *act,
                                           int64_t n, float *out) {
    rows_q4_k_repack_avx2(w, row_bytes, n_rows, act, n, out, 0);
}

static FS_AVX2_FN void rows_q4_k_gemm_avx2(const uint8_t *w, size_t row_bytes, int64_t n_rows, const uint8_t *act,
                                           int64_t n, float *out) {
    rows_q4_k_repack_avx2(w, row_bytes, n_rows, act, n, out, 1);
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

FS_VD_INLINE int block32_bytes(int type) {
    switch (type) {
    case FS_Q4_0: return B_Q4_0;
    case FS_Q5_0: return B_Q5_0;
    case FS_Q8_0: return B_Q8_0;
    case FS_Q4_1: return B_Q4_1;
    default: return B_Q5_1;
    }
}

/* out[j * os + i] = dot(weight row i, activation row j), i < RM, j < RN, for the 32-element block
 * types. RM and RN are compile-time constants at every call site, so the tile lives in registers. */
FS_VD_INLINE FS_AVX2_FN void tile32(int type, const uint8_t *w, size_t rb, const uint8_t *a, size_t ab, int64_t nb,
                                    float *out, int64_t os, const int RM, const int RN) {
    const int q81 = type == FS_Q4_1 || type == FS_Q5_1; /* activations in Q8_1 (d, s, qs) */
    const int xbs = block32_bytes(type), ybs = q81 ? B_Q8_1 : B_Q8_0, yq = q81 ? 4 : 2;
    __m256 acc[4][4];
    float summs[4][4];
    for (int i = 0; i < RM; i++)
        for (int j = 0; j < RN; j++) {
            acc[i][j] = _mm256_setzero_ps();
            summs[i][j] = 0.0f;
        }
    for (int64_t ib = 0; ib < nb; ib++) {
        __m256i qy[4];
        float dy[4], sy[4];
        for (int j = 0; j < RN; j++) {
            const uint8_t *y = a + (size_t)j * ab + (size_t)ib * ybs;
            qy[j] = _mm256_loadu_si256((const __m256i *)(y + yq));
            dy[j] = h2f(y);
            if (q81) sy[j] = h2f(y + 2);
        }
        for (int i = 0; i < RM; i++) {
            const uint8_t *x = w + (size_t)i * rb + (size_t)ib * xbs;
            const __m256i qx = unpack_block32(type, x);
            const float dx = h2f(x);
            if (q81) {
                const float mx = h2f(x + 2);
                for (int j = 0; j < RN; j++) {
                    summs[i][j] += mx * sy[j];
                    acc[i][j] = _mm256_fmadd_ps(_mm256_set1_ps(dx * dy[j]), us8_quads(qx, qy[j]), acc[i][j]);
                }
            } else {
                const __m256i ax = _mm256_sign_epi8(qx, qx);
                for (int j = 0; j < RN; j++) {
                    const __m256 q = us8_quads(ax, _mm256_sign_epi8(qy[j], qx));
                    acc[i][j] = _mm256_fmadd_ps(_mm256_set1_ps(dx * dy[j]), q, acc[i][j]);
                }
            }
        }
    }
    for (int i = 0; i < RM; i++)
        for (int j = 0; j < RN; j++) out[(size_t)j * os + i] = q81 ? hsum_f32x8(acc[i][j]) + summs[i][j] : hsum_f32x8(acc[i][j]);
}

/* The 8 int32 lanes of one half (128 elements) of a Q6_K block times activation qs q8 (as
 * dot_q6_k_avx2 sums them), the weight bits already unpacked into q4[4] and scales into sc16[4]. */
FS_VD_INLINE FS_AVX2_FN __m256i q6_k_half_lanes(const __m256i q4[4], const __m256i sc16[4], const int8_t *yh) {
    const __m256i m32s = _mm256_set1_epi8(32);
    __m256i p[4];
    for (int k = 0; k < 4; k++) {
        const __m256i q8 = _mm256_loadu_si256((const __m256i *)(yh + 32 * k));
        p[k] = _mm256_madd_epi16(sc16[k], _mm256_sub_epi16(_mm256_maddubs_epi16(q4[k], q8), _mm256_maddubs_epi16(m32s, q8)));
    }
    return _mm256_add_epi32(_mm256_add_epi32(p[0], p[1]), _mm256_add_epi32(p[2], p[3]));
}

/* Q6_K: one weight row x RN activation rows; the row's 6-bit values and scales are unpacked once
 * per half block for all RN rows. Same operations per pair as dot_q6_k_avx2. */
FS_VD_INLINE FS_AVX2_FN void tile_q6_k(const uint8_t *x, const uint8_t *a, size_t ab, int64_t nb, float *out, int64_t os,
                                       const int RN) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
    __m256 acc[4];
    for (int j = 0; j < RN; j++) acc[j] = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q6_K) {
        const float dx = h2f(x + 208);
        const __m128i scales = _mm_loadu_si128((const __m128i *)(x + 192));
        __m256i sumi[4];
        for (int j = 0; j < RN; j++) sumi[j] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            __m256i sc16[4], q4[4];
            for (int k = 0; k < 4; k++) {
                const long long i2 = 2 * (4 * h + k);
                const __m128i shuf = _mm_set_epi64x(0x0101010101010101LL * (i2 + 1), 0x0101010101010101LL * i2);
                sc16[k] = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, shuf));
            }
            const __m256i b1 = _mm256_loadu_si256((const __m256i *)(x + 64 * h));
            const __m256i b2 = _mm256_loadu_si256((const __m256i *)(x + 64 * h + 32));
            const __m256i bh = _mm256_loadu_si256((const __m256i *)(x + 128 + 32 * h));
            q4[0] = _mm256_or_si256(_mm256_and_si256(b1, m4), _mm256_slli_epi16(_mm256_and_si256(bh, m2), 4));
            q4[1] = _mm256_or_si256(_mm256_and_si256(b2, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 2), m2), 4));
            q4[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b1, 4), m4),
                                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 4), m2), 4));
            q4[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b2, 4), m4),
                                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 6), m2), 4));
            for (int j = 0; j < RN; j++) {
                const int8_t *yh = (const int8_t *)(a + (size_t)j * ab + (size_t)ib * B_Q8_K + Q8K_QS) + 128 * h;
                sumi[j] = _mm256_add_epi32(sumi[j], q6_k_half_lanes(q4, sc16, yh));
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

/* One weight row x up to 4 activation rows at a time, for the super-block kernels (RN a constant
 * at each call, so the tile lives in registers). */
#define FS_TILES_1X4(name, kernel, QKB)                                                                    \
    static FS_AVX2_FN void name(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a, size_t ab,   \
                                int64_t n_act, int64_t n, float *out, int64_t os) {                         \
        const int64_t nb = n / (QKB);                                                                       \
        for (int64_t j = 0; j < n_act; j += 4) {                                                            \
            const int64_t rn = n_act - j < 4 ? n_act - j : 4;                                               \
            for (int64_t i = 0; i < n_rows; i++) {                                                          \
                const uint8_t *wi = w + (size_t)i * rb, *aj = a + (size_t)j * ab;                           \
                float *o = out + j * os + i;                                                                \
                if (rn == 4) kernel(wi, aj, ab, nb, o, os, 4);                                              \
                else if (rn == 3) kernel(wi, aj, ab, nb, o, os, 3);                                         \
                else if (rn == 2) kernel(wi, aj, ab, nb, o, os, 2);                                         \
                else kernel(wi, aj, ab, nb, o, os, 1);                                                      \
            }                                                                                               \
        }                                                                                                   \
    }
FS_TILES_1X4(tiles_q4_k_gemm_avx2, tile_q4_k_gemm, QK_K)

#define TILE_RM 4 /* weight rows per register tile (32-element block types) */
#define TILE_RN 4 /* activation rows per register tile */

static FS_AVX2_FN void tile32_all(int type, const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a, size_t ab,
                                  int64_t n_act, int64_t n, float *out, int64_t os) {
    const int64_t nb = n / QK;
    for (int64_t j = 0; j < n_act; j += TILE_RN) {
        const int64_t rn = n_act - j < TILE_RN ? n_act - j : TILE_RN;
        const uint8_t *aj = a + (size_t)j * ab;
        float *oj = out + j * os;
        int64_t i = 0;
        for (; i + TILE_RM <= n_rows; i += TILE_RM) {
            const uint8_t *wi = w + (size_t)i * rb;
            if (rn == 4) tile32(type, wi, rb, aj, ab, nb, oj + i, os, TILE_RM, 4);
            else if (rn == 3) tile32(type, wi, rb, aj, ab, nb, oj + i, os, TILE_RM, 3);
            else if (rn == 2) tile32(type, wi, rb, aj, ab, nb, oj + i, os, TILE_RM, 2);
            else tile32(type, wi, rb, aj, ab, nb, oj + i, os, TILE_RM, 1);
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

/* One function per type so that `type` is a constant inside each (the switch folds away). */
#define FS_TILE32_FN(name, TYPE)                                                                          \
    static FS_AVX2_FN void name(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a, size_t ab,  \
                                int64_t n_act, int64_t n, float *out, int64_t os) {                        \
        tile32_all(TYPE, w, rb, n_rows, a, ab, n_act, n, out, os);                                         \
    }
FS_TILE32_FN(tiles_q4_0_avx2, FS_Q4_0)
FS_TILE32_FN(tiles_q4_1_avx2, FS_Q4_1)
FS_TILE32_FN(tiles_q5_0_avx2, FS_Q5_0)
FS_TILE32_FN(tiles_q5_1_avx2, FS_Q5_1)
FS_TILE32_FN(tiles_q8_0_avx2, FS_Q8_0)

FS_TILES_1X4(tiles_q6_k_avx2, tile_q6_k, QK_K)

#endif /* FS_VD_AVX2 */

/* ---- dispatch ------------------------------------------------------------------------------ */

enum { IMPL_UNKNOWN = 0, IMPL_PORTABLE = 1, IMPL_AVX2 = 2 };

#if FS_VD_AVX2
/* The only mutable global: the implementation, chosen once. Threads racing on the first call all
 * compute the same value; the atomic load/store makes that race well defined. */
static int vd_impl_state = IMPL_UNKNOWN;

static int vd_cpu_has_f16c(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c & (1u << 29)) != 0; /* CPUID.1:ECX.F16C (clang's __builtin_cpu_supports lacks "f16c") */
}

static int vd_impl(void) {
    int s = __atomic_load_n(&vd_impl_state, __ATOMIC_ACQUIRE);
    if (s != IMPL_UNKNOWN) return s;
    s = IMPL_PORTABLE;
    const char *env = getenv("FIRESIDE_CPU");
    if (!(env != NULL && strcmp(env, "portable") == 0)) {
        __builtin_cpu_init();
        /* "avx2" also implies the OS saves the YMM registers (libgcc / compiler-rt check XCR0). */
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && vd_cpu_has_f16c()) s = IMPL_AVX2;
    }
    __atomic_store_n(&vd_impl_state, s, __ATOMIC_RELEASE);
    return s;
}
#else
static int vd_impl(void) { return IMPL_PORTABLE; }
#endif

const char *fs_vecdot_impl(void) { return vd_impl() == IMPL_AVX2 ? "avx2" : "portable"; }

int fs_use_avx2(void) { return vd_impl() == IMPL_AVX2; }

int fs_act_format(int wtype) {
    switch (wtype) {
    case FS_Q4_0:
    case FS_Q5_0:
    case FS_Q8_0: return FS_Q8_0;
    case FS_Q4_1:
    case FS_Q5_1: return 9; /* GGML_TYPE_Q8_1 */
    case FS_Q4_K:
    case FS_Q5_K:
    case FS_Q6_K: return 15; /* GGML_TYPE_Q8_K */
    case FS_F32:
    case FS_F16:
    case FS_BF16: return wtype;
    default: return -1;
    }
}

size_t fs_act_row_bytes(int wtype, int64_t n) {
    const int64_t be = fs_block_elems(wtype);
    if (be == 0 || n < 0 || n % be != 0) return 0;
    switch (wtype) {
    case FS_F32: return (size_t)n * 4;
    case FS_F16:
    case FS_BF16: return (size_t)n * 2;
    case FS_Q4_0:
    case FS_Q5_0:
    case FS_Q8_0: return (size_t)(n / QK) * B_Q8_0;
    case FS_Q4_1:
    case FS_Q5_1: return (size_t)(n / QK) * B_Q8_1;
    case FS_Q4_K:
    case FS_Q5_K:
    case FS_Q6_K: return (size_t)(n / QK_K) * B_Q8_K;
    default: return 0;
    }
}

void fs_quantize_act(int wtype, const float *x, void *dst, int64_t n) {
    if (fs_act_row_bytes(wtype, n) == 0) return;
    uint8_t *y = (uint8_t *)dst;
    switch (wtype) {
    case FS_F32: memcpy(y, x, (size_t)n * 4); break;
    case FS_F16:
        for (int64_t i = 0; i < n; i++) wr_u16(y + 2 * i, fp32_to_fp16(x[i]));
        break;
    case FS_BF16:
        for (int64_t i = 0; i < n; i++) wr_u16(y + 2 * i, fp32_to_bf16(x[i]));
        break;
    case FS_Q4_0:
    case FS_Q5_0:
    case FS_Q8_0: quant_q8_0(x, y, n / QK); break;
    case FS_Q4_1:
    case FS_Q5_1: quant_q8_1(x, y, n / QK); break;
    case FS_Q4_K:
    case FS_Q5_K:
    case FS_Q6_K: quant_q8_k(x, y, n / QK_K); break;
    default: break;
    }
}

/* Which product a call reproduces (for the types llama.cpp repacks on x86: Q4_0, Q4_K). */
enum { MODE_GEMV = 0, MODE_GEMM = 1, MODE_NOREPACK = 2 };

typedef void (*fs_rows_fn)(const uint8_t *, size_t, int64_t, const uint8_t *, int64_t, float *);

static void vd_rows(int mode, int wtype, const uint8_t *w, size_t row_bytes, int64_t n_rows, const void *act,
                    int64_t n, float *out) {
    if (fs_act_row_bytes(wtype, n) == 0 || n_rows <= 0) return;
    const uint8_t *a = (const uint8_t *)act;
    fs_rows_fn f = NULL;
#if FS_VD_AVX2
    if (vd_impl() == IMPL_AVX2) {
        switch (wtype) {
        case FS_F32: f = rows_f32_avx2; break;
        case FS_F16: f = rows_f16_avx2; break;
        case FS_BF16: f = rows_bf16_avx2; break;
        case FS_Q4_0: f = mode == MODE_NOREPACK ? rows_q4_0_avx2 : rows_q4_0_gemv_avx2; break;
        case FS_Q4_1: f = rows_q4_1_avx2; break;
        case FS_Q5_0: f = rows_q5_0_avx2; break;
        case FS_Q5_1: f = rows_q5_1_avx2; break;
        case FS_Q8_0: f = rows_q8_0_avx2; break;
        case FS_Q4_K:
            f = mode == MODE_NOREPACK ? rows_q4_k_avx2 : mode == MODE_GEMM ? rows_q4_k_gemm_avx2 : rows_q4_k_gemv_avx2;
            break;
        case FS_Q5_K: f = rows_q5_k_avx2; break;
        case FS_Q6_K: f = rows_q6_k_avx2; break;
        default: return;
        }
        f(w, row_bytes, n_rows, a, n, out);
        return;
    }
#endif
    switch (wtype) {
    case FS_F32: f = rows_f32_c; break;
    case FS_F16: f = rows_f16_c; break;
    case FS_BF16: f = rows_bf16_c; break;
    case FS_Q4_0: f = mode == MODE_NOREPACK ? rows_q4_0_c : rows_q4_0_gemv_c; break;
    case FS_Q4_1: f = rows_q4_1_c; break;
    case FS_Q5_0: f = rows_q5_0_c; break;
    case FS_Q5_1: f = rows_q5_1_c; break;
    case FS_Q8_0: f = rows_q8_0_c; break;
    case FS_Q4_K: f = mode == MODE_NOREPACK ? rows_q4_k_c : mode == MODE_GEMM ? rows_q4_k_gemm_c : rows_q4_k_gemv_c; break;
    case FS_Q5_K: f = rows_q5_k_c; break;
    case FS_Q6_K: f = rows_q6_k_c; break;
    default: return;
    }
    f(w, row_bytes, n_rows, a, n, out);
}

/* Q4_0 and Q4_K give the bits of llama.cpp's x86 repacked ggml_gemv_*_8x8 (one activation row
 * at a time), on every CPU; the other types those of ggml_vec_dot_* (AVX2 or generic). */
void fs_vec_dot_rows(int wtype, const uint8_t *w, size_t row_bytes, int64_t n_rows, const void *act, int64_t n,
                     float *out) {
    vd_rows(MODE_GEMV, wtype, w, row_bytes, n_rows, act, n, out);
}

/* Declared in fs_vecdot.h; same arguments and contract as fs_vec_dot_rows.
 *
 * fs_vec_dot_rows_gemm: the bits of llama.cpp's repacked ggml_gemm_*_8x8, which llama.cpp uses for
 * the activation rows (tokens) 0 .. n_tok - n_tok % 4 of a batch (groups of 4); the last
 * n_tok % 4 rows go through gemv (fs_vec_dot_rows). Only Q4_K differs from fs_vec_dot_rows (its
 * gemm takes the FMAs per 64 elements instead of per 256); for every other type the call is
 * fs_vec_dot_rows.
 *
 * fs_vec_dot_rows_norepack: ggml_vec_dot_* for every type, Q4_0 / Q4_K included (AVX2 or generic
 * code as fs_vec_dot_rows picks): what llama.cpp computes for a Q4_0 / Q4_K tensor it does not
 * repack (row count ne[1] not a multiple of 8, repacking disabled, or no AVX2). */
void fs_vec_dot_rows_gemm(int wtype, const uint8_t *w, size_t row_bytes, int64_t n_rows, const void *act, int64_t n,
                          float *out) {
    vd_rows(MODE_GEMM, wtype, w, row_bytes, n_rows, act, n, out);
}

void fs_vec_dot_rows_norepack(int wtype, const uint8_t *w, size_t row_bytes, int64_t n_rows, const void *act,
                              int64_t n, float *out) {
    vd_rows(MODE_NOREPACK, wtype, w, row_bytes, n_rows, act, n, out);
}

typedef void (*tiles_fn)(const uint8_t *, size_t, int64_t, const uint8_t *, size_t, int64_t, int64_t, float *, int64_t);

int fs_vec_dot_tiled(int wtype) {
#if FS_VD_AVX2
    if (vd_impl() == IMPL_AVX2)
        switch (wtype) {
        case FS_Q4_0: case FS_Q4_1: case FS_Q5_0: case FS_Q5_1: case FS_Q8_0: case FS_Q6_K: return 1;
        default: return 0;
        }
#endif
    (void)wtype;
    return 0;
}

void fs_vec_dot_tile_gemm(int wtype, const uint8_t *w, size_t row_bytes, int64_t n_rows, const void *act,
                          size_t act_bytes, int64_t n_act, int64_t n, float *out, int64_t out_stride) {
    const int64_t be = fs_block_elems(wtype);
    if (be == 0 || n <= 0 || n % be != 0) return;
    const uint8_t *a = (const uint8_t *)act;
#if FS_VD_AVX2
    if (wtype == FS_Q4_K && vd_impl() == IMPL_AVX2) {
        tiles_q4_k_gemm_avx2(w, row_bytes, n_rows, a, act_bytes, n_act, n, out, out_stride);
        return;
    }
#endif
    for (int64_t t = 0; t < n_act; t++)
        vd_rows(MODE_GEMM, wtype, w, row_bytes, n_rows, a + (size_t)t * act_bytes, n, out + t * out_stride);
}

void fs_vec_dot_tile(int wtype, const uint8_t *w, size_t row_bytes, int64_t n_rows, const void *act, size_t act_bytes,
                     int64_t n_act, int64_t n, float *out, int64_t out_stride) {
    const int64_t be = fs_block_elems(wtype);
    if (be == 0 || n <= 0 || n % be != 0) return;
    const uint8_t *a = (const uint8_t *)act;
#if FS_VD_AVX2
    tiles_fn f = NULL;
    /* For one activation row (decode) the rows are streamed one after the other: nothing to reuse
     * across tokens, and the sequential reads are faster (Q8_0: 13 against 7 GB/s on a 200 MB
     * matrix; SmolLM2 decode, Q4_1: 65-78 against 46-53 tokens/s, same machine, same minutes). */
    const int stream_rows = n_act == 1;
    if (vd_impl() == IMPL_AVX2 && !stream_rows)
        switch (wtype) {
        case FS_Q4_0: f = tiles_q4_0_avx2; break;
        case FS_Q4_1: f = tiles_q4_1_avx2; break;
        case FS_Q5_0: f = tiles_q5_0_avx2; break;
        case FS_Q5_1: f = tiles_q5_1_avx2; break;
        case FS_Q8_0: f = tiles_q8_0_avx2; break;
        case FS_Q6_K: f = tiles_q6_k_avx2; break;
        default: break;
        }
    if (f != NULL) {
        f(w, row_bytes, n_rows, a, act_bytes, n_act, n, out, out_stride);
        return;
    }
#endif
    for (int64_t t = 0; t < n_act; t++)
        vd_rows(MODE_NOREPACK, wtype, w, row_bytes, n_rows, a + (size_t)t * act_bytes, n, out + t * out_stride);
}
