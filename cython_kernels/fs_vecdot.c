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
 *   ggml/src/ggml-cpu/simd-mappings.h GGML_F32x8 / GGML_F32Cx8 (AVX: 4 accumulators of 8 lanes,
 *                                     GGML_F32x8_REDUCE), GGML_FP32_TO_FP16, GGML_FP32_TO_BF16
 *
 * Layout of this file: scalar helpers; the activation quantizers (one implementation for every
 * CPU, so the quantized bytes never depend on the machine); the portable dot products (ggml's
 * generic code, float operations in the same order); the AVX2 dot products (ggml's AVX2 code:
 * same integer lanes, same FMAs, same horizontal sums); dispatch and the public functions.
 */
#include "fs_vecdot.h"
#include "fs_half.h"

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
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(_MSC_VER) && !defined(FS_VECDOT_NO_AVX2)
#define FS_VD_AVX2 1
#include <cpuid.h>
#include <immintrin.h>
#define FS_AVX2_FN __attribute__((target("avx2,fma,f16c")))
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

/* The 12 packed bytes of 6-bit scales and mins of Q4_K / Q5_K (ggml-quants.c get_scale_min_k4,
 * and the utmp/kmask shuffle of the vec_dot code, which yields the same 16 bytes). */
static inline void scale_min_k4(const uint8_t *s, uint8_t sc[8], uint8_t mn[8]) {
    for (int j = 0; j < 4; j++) {
        sc[j] = (uint8_t)(s[j] & 63);
        mn[j] = (uint8_t)(s[j + 4] & 63);
        sc[j + 4] = (uint8_t)((s[j + 8] & 15) | ((s[j] >> 6) << 4));
        mn[j + 4] = (uint8_t)((s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4));
    }
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

/* ggml_vec_dot_q4_0_q8_0_generic: sumf += sumi * dx * dy. */
FS_VD_INLINE float dot_q4_0_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK;
    float sumf = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_Q4_0, y += B_Q8_0) {
        const uint8_t *qs = x + 2;
        int8_t a[QK];
        for (int j = 0; j < QK / 2; j++) {
            a[j] = (int8_t)((qs[j] & 0x0F) - 8);
            a[j + QK / 2] = (int8_t)((qs[j] >> 4) - 8);
        }
        const int sumi = block_dot_i8(a, (const int8_t *)(y + 2));
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
FS_ROWS(rows_q5_k_c, dot_q5_k_c, )
FS_ROWS(rows_q6_k_c, dot_q6_k_c, )

/* ---- AVX2 dot products: ggml's __AVX2__ code (arch/x86/quants.c, vec.cpp) ------------------ */
#if FS_VD_AVX2

/* hsum_float_8: (hi + lo), then (0 + 2, 1 + 3), then lane 0 + lane 1. */
static inline FS_AVX2_FN float hsum_f32x8(__m256 x) {
    __m128 r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

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

void fs_vec_dot_rows(int wtype, const uint8_t *w, size_t row_bytes, int64_t n_rows, const void *act, int64_t n,
                     float *out) {
    if (fs_act_row_bytes(wtype, n) == 0 || n_rows <= 0) return;
    const uint8_t *a = (const uint8_t *)act;
#if FS_VD_AVX2
    if (vd_impl() == IMPL_AVX2) {
        switch (wtype) {
        case FS_F32: rows_f32_avx2(w, row_bytes, n_rows, a, n, out); return;
        case FS_F16: rows_f16_avx2(w, row_bytes, n_rows, a, n, out); return;
        case FS_BF16: rows_bf16_avx2(w, row_bytes, n_rows, a, n, out); return;
        case FS_Q4_0: rows_q4_0_avx2(w, row_bytes, n_rows, a, n, out); return;
        case FS_Q4_1: rows_q4_1_avx2(w, row_bytes, n_rows, a, n, out); return;
        case FS_Q5_0: rows_q5_0_avx2(w, row_bytes, n_rows, a, n, out); return;
        case FS_Q5_1: rows_q5_1_avx2(w, row_bytes, n_rows, a, n, out); return;
        case FS_Q8_0: rows_q8_0_avx2(w, row_bytes, n_rows, a, n, out); return;
        case FS_Q4_K: rows_q4_k_avx2(w, row_bytes, n_rows, a, n, out); return;
        case FS_Q5_K: rows_q5_k_avx2(w, row_bytes, n_rows, a, n, out); return;
        case FS_Q6_K: rows_q6_k_avx2(w, row_bytes, n_rows, a, n, out); return;
        default: return;
        }
    }
#endif
    switch (wtype) {
    case FS_F32: rows_f32_c(w, row_bytes, n_rows, a, n, out); return;
    case FS_F16: rows_f16_c(w, row_bytes, n_rows, a, n, out); return;
    case FS_BF16: rows_bf16_c(w, row_bytes, n_rows, a, n, out); return;
    case FS_Q4_0: rows_q4_0_c(w, row_bytes, n_rows, a, n, out); return;
    case FS_Q4_1: rows_q4_1_c(w, row_bytes, n_rows, a, n, out); return;
    case FS_Q5_0: rows_q5_0_c(w, row_bytes, n_rows, a, n, out); return;
    case FS_Q5_1: rows_q5_1_c(w, row_bytes, n_rows, a, n, out); return;
    case FS_Q8_0: rows_q8_0_c(w, row_bytes, n_rows, a, n, out); return;
    case FS_Q4_K: rows_q4_k_c(w, row_bytes, n_rows, a, n, out); return;
    case FS_Q5_K: rows_q5_k_c(w, row_bytes, n_rows, a, n, out); return;
    case FS_Q6_K: rows_q6_k_c(w, row_bytes, n_rows, a, n, out); return;
    default: return;
    }
}
