/* Dequantization of GGML tensor rows to float32. See fs_quants.h for the API and guarantees.
 *
 * Sources for the block layouts and the arithmetic:
 *   - llama.cpp, ggml/src/ggml-common.h (block_q4_0 ... block_q6_K structs) and
 *     ggml/src/ggml-quants.c (dequantize_row_q4_0 ... dequantize_row_q6_K, get_scale_min_k4);
 *   - gguf-py, gguf/quants.py (the numpy reference, gguf.quants.dequantize).
 * This is an independent implementation. For each type the comment above the function gives the
 * float32 expression the reference evaluates; the code evaluates exactly the same operations in
 * the same order (with -ffp-contract=off there is no fused multiply-add), so the output is
 * bit-identical to gguf.quants.dequantize, which tests/test_dequant.py checks.
 *
 * Why exactness is robust here: an f16 scale has at most 11 significant bits, the 6-bit K-quant
 * scales/mins, the int8 Q6_K scales and the quants at most 8, and every product formed by these
 * formulas (d * sc, (d * sc) * q, dmin * m, d * q) needs at most 24 bits, so it is exact in
 * float32 (f16 subnormals become normal floats; no product can underflow or overflow). The only
 * rounding is the final add/subtract of Q4_1, Q5_1, Q4_K and Q5_K; the product order, and even a
 * fused multiply-add, cannot change a result. FMA contraction is still switched off below so that
 * this never silently depends on that argument.
 *
 * The per-type loops are plain C written so that compilers auto-vectorize the inner loops;
 * FS_DISPATCH (fs_common.h) makes GCC emit an AVX2 clone of each one next to the baseline.
 */
#include "fs_quants.h"

#include <string.h>

#include "fs_common.h"

/* Bit-exactness needs every multiply and add rounded separately: forbid FMA contraction here even
 * if the build forgets -ffp-contract=off (GCC in gnu mode contracts by default, and would do so in
 * the AVX2+FMA clone; clang contracts within an expression by default). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#elif defined(_MSC_VER)
#pragma fp_contract(off)
#endif

#define QK 32   /* elements per block of Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 */
#define QK_K 256 /* elements per super-block of the K-quants */

/* ---- scalar helpers ---------------------------------------------------------------------- */

static inline uint16_t rd_u16(const uint8_t *p) { return (uint16_t)(p[0] | ((unsigned)p[1] << 8)); }

static inline uint32_t rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline float f32_from_bits(uint32_t w) {
    float f;
    memcpy(&f, &w, sizeof f);
    return f;
}

static inline uint32_t f32_to_bits(float f) {
    uint32_t w;
    memcpy(&w, &f, sizeof w);
    return w;
}

/* binary16 -> binary32, branch-free so that loops over it vectorize.
 *   normal:    rebias the exponent (15 -> 127) with one integer add; exact;
 *   inf / NaN: exponent all ones, mantissa (the NaN payload) copied unchanged, not quieted;
 *   subnormal: value = mant * 2^-24, computed as float(0.5 with mant in the low mantissa bits)
 *              - 0.5, which is exact (Sterbenz) and gives a normal float32; mant = 0 gives +0.
 * The sign is OR-ed back at the end (so -0 stays -0). */
static inline float half_to_float(uint16_t h) {
    const uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
    const uint32_t em = (uint32_t)h & 0x7fffu;
    const uint32_t normal = (em << 13) + ((uint32_t)(127 - 15) << 23);
    const uint32_t infnan = (em << 13) | 0x7f800000u;
    const uint32_t subnormal = f32_to_bits(f32_from_bits(0x3f000000u | em) - 0.5f);
    /* Select with masks rather than ?:, so that the compiler keeps the float subtraction
     * unconditional and the loops over this function vectorize. */
    const uint32_t is_sub = 0u - (uint32_t)(em < 0x0400u); /* all ones or all zeros */
    const uint32_t is_inf = 0u - (uint32_t)(em >= 0x7c00u);
    const uint32_t bits = (subnormal & is_sub) | (~is_sub & ((infnan & is_inf) | (normal & ~is_inf)));
    return f32_from_bits(sign | bits);
}

static inline float rd_f16(const uint8_t *p) { return half_to_float(rd_u16(p)); }

/* A byte as a two's-complement int8 value, without relying on the implementation-defined
 * conversion of out-of-range values to int8_t. */
static inline int as_i8(uint8_t x) { return (int)x - ((int)(x & 0x80u) << 1); }

/* ---- F32, F16, BF16 ---------------------------------------------------------------------- */

/* F32: a copy (little-endian host assumed, see fs_quants.h). */
static void dequant_f32(const uint8_t *src, float *dst, int64_t n) { memcpy(dst, src, (size_t)n * sizeof(float)); }

/* F16: reference data.view(float16).astype(float32): an exact conversion. */
static FS_DISPATCH void dequant_f16(const uint8_t *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = half_to_float(rd_u16(src + 2 * i));
}

/* BF16: reference (int16 -> int32) << 16 viewed as float32: the 16 bits become the top half of
 * the float32 bit pattern; no float operation, NaN payloads kept. */
static FS_DISPATCH void dequant_bf16(const uint8_t *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = f32_from_bits((uint32_t)rd_u16(src + 2 * i) << 16);
}

/* ---- 32-element blocks ------------------------------------------------------------------- */

/* The loops below first unpack a block's 4-bit values into a 32-byte array, then convert all 32
 * at once: a 32-iteration loop vectorizes well, where one of 16 iterations writing y[j] and
 * y[j + 16] does not. */

/* kBit[j] = 1 << j: testing bit j of the Q5 high-bit mask against a table entry instead of
 * shifting by j keeps the loop vectorizable without per-lane variable shifts (absent in SSE2). */
static const uint32_t kBit[32] = {
    1u << 0,  1u << 1,  1u << 2,  1u << 3,  1u << 4,  1u << 5,  1u << 6,  1u << 7,
    1u << 8,  1u << 9,  1u << 10, 1u << 11, 1u << 12, 1u << 13, 1u << 14, 1u << 15,
    1u << 16, 1u << 17, 1u << 18, 1u << 19, 1u << 20, 1u << 21, 1u << 22, 1u << 23,
    1u << 24, 1u << 25, 1u << 26, 1u << 27, 1u << 28, 1u << 29, 1u << 30, 1u << 31,
};

/* q[j] = low nibble of qs[j], q[j + 16] = high nibble of qs[j] (j < 16): the nibble order of
 * every 32-element type (ggml-quants.c: x[i*qk + j] uses qs[j] & 0x0F, x[i*qk + j + qk/2] uses
 * qs[j] >> 4). */
static inline void unpack_nibbles(const uint8_t *qs, uint8_t q[QK]) {
    for (int j = 0; j < QK / 2; j++) {
        q[j] = (uint8_t)(qs[j] & 0x0F);
        q[j + QK / 2] = (uint8_t)(qs[j] >> 4);
    }
}

/* Q4_0, 18 bytes: f16 d | 16 bytes qs. Element j < 16 is the low nibble of qs[j], element
 * j + 16 the high nibble. Reference: d * (float)(q - 8). */
static FS_DISPATCH void dequant_q4_0(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *b = src + ib * 18;
        const float d = rd_f16(b);
        float *y = dst + ib * QK;
        uint8_t q[QK];
        unpack_nibbles(b + 2, q);
        for (int j = 0; j < QK; j++) y[j] = d * (float)((int)q[j] - 8);
    }
}

/* Q4_1, 20 bytes: f16 d | f16 m | 16 bytes qs (nibbles as Q4_0). Reference: (d * (float)q) + m. */
static FS_DISPATCH void dequant_q4_1(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *b = src + ib * 20;
        const float d = rd_f16(b);
        const float m = rd_f16(b + 2);
        float *y = dst + ib * QK;
        uint8_t q[QK];
        unpack_nibbles(b + 4, q);
        for (int j = 0; j < QK; j++) y[j] = d * (float)q[j] + m;
    }
}

/* Q5_0, 22 bytes: f16 d | u32 qh (little-endian) | 16 bytes qs. Element j's fifth bit is bit j
 * of qh; its low four bits are the nibbles as in Q4_0. Reference: d * (float)(q - 16). */
static FS_DISPATCH void dequant_q5_0(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *b = src + ib * 22;
        const float d = rd_f16(b);
        const uint32_t qh = rd_u32(b + 2);
        float *y = dst + ib * QK;
        uint8_t q[QK];
        unpack_nibbles(b + 6, q);
        for (int j = 0; j < QK; j++) y[j] = d * (float)((int)(q[j] | ((qh & kBit[j]) ? 16 : 0)) - 16);
    }
}

/* Q5_1, 24 bytes: f16 d | f16 m | u32 qh | 16 bytes qs (bits as Q5_0).
 * Reference: (d * (float)q) + m. */
static FS_DISPATCH void dequant_q5_1(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *b = src + ib * 24;
        const float d = rd_f16(b);
        const float m = rd_f16(b + 2);
        const uint32_t qh = rd_u32(b + 4);
        float *y = dst + ib * QK;
        uint8_t q[QK];
        unpack_nibbles(b + 8, q);
        for (int j = 0; j < QK; j++) y[j] = d * (float)(q[j] | ((qh & kBit[j]) ? 16 : 0)) + m;
    }
}

/* Q8_0, 34 bytes: f16 d | 32 x int8. Reference: (float)q * d. */
static FS_DISPATCH void dequant_q8_0(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *b = src + ib * 34;
        const float d = rd_f16(b);
        const uint8_t *qs = b + 2;
        float *y = dst + ib * QK;
        for (int j = 0; j < QK; j++) y[j] = (float)as_i8(qs[j]) * d;
    }
}

/* ---- K-quants (256-element super-blocks) ------------------------------------------------- */

/* The 12 packed bytes of 6-bit scales and mins shared by Q4_K and Q5_K (ggml-quants.c,
 * get_scale_min_k4): for sub-block j < 4, sc = s[j] & 63, m = s[j+4] & 63; for j >= 4,
 * sc = (s[j+4] & 15) | ((s[j-4] >> 6) << 4), m = (s[j+4] >> 4) | ((s[j] >> 6) << 4). */
static inline void scale_min_k4(const uint8_t *s, uint8_t sc[8], uint8_t mn[8]) {
    for (int j = 0; j < 4; j++) {
        sc[j] = (uint8_t)(s[j] & 63);
        mn[j] = (uint8_t)(s[j + 4] & 63);
        sc[j + 4] = (uint8_t)((s[j + 8] & 15) | ((s[j] >> 6) << 4));
        mn[j + 4] = (uint8_t)((s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4));
    }
}

/* Q4_K, 144 bytes: f16 d | f16 dmin | 12 bytes scales | 128 bytes qs. Eight sub-blocks of 32;
 * sub-block 2c takes the low nibbles of qs[32c .. 32c+32), sub-block 2c+1 the high nibbles.
 * Reference: ds = d * (float)sc; dm = dmin * (float)m (both rounded to float32 first);
 * y = ds * (float)q - dm. */
static FS_DISPATCH void dequant_q4_k(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *b = src + ib * 144;
        const float d = rd_f16(b);
        const float dmin = rd_f16(b + 2);
        uint8_t sc[8], mn[8];
        scale_min_k4(b + 4, sc, mn);
        const uint8_t *qs = b + 16;
        float *y = dst + ib * QK_K;
        for (int c = 0; c < 4; c++) {
            const float d1 = d * (float)sc[2 * c], m1 = dmin * (float)mn[2 * c];
            const float d2 = d * (float)sc[2 * c + 1], m2 = dmin * (float)mn[2 * c + 1];
            const uint8_t *q = qs + 32 * c;
            float *yc = y + 64 * c;
            for (int l = 0; l < 32; l++) {
                yc[l] = d1 * (float)(q[l] & 0x0F) - m1;
                yc[l + 32] = d2 * (float)(q[l] >> 4) - m2;
            }
        }
    }
}

/* Q5_K, 176 bytes: f16 d | f16 dmin | 12 bytes scales | 32 bytes qh | 128 bytes qs. Low nibbles
 * as Q4_K; the fifth bit of element l of sub-block s is bit s of qh[l].
 * Reference: y = (d * (float)sc) * (float)q - (dmin * (float)m), as Q4_K. */
static FS_DISPATCH void dequant_q5_k(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *b = src + ib * 176;
        const float d = rd_f16(b);
        const float dmin = rd_f16(b + 2);
        uint8_t sc[8], mn[8];
        scale_min_k4(b + 4, sc, mn);
        const uint8_t *qh = b + 16;
        const uint8_t *qs = b + 48;
        float *y = dst + ib * QK_K;
        for (int c = 0; c < 4; c++) {
            const float d1 = d * (float)sc[2 * c], m1 = dmin * (float)mn[2 * c];
            const float d2 = d * (float)sc[2 * c + 1], m2 = dmin * (float)mn[2 * c + 1];
            const uint8_t *q = qs + 32 * c;
            const int s1 = 2 * c, s2 = 2 * c + 1;
            float *yc = y + 64 * c;
            for (int l = 0; l < 32; l++) {
                yc[l] = d1 * (float)((q[l] & 0x0F) | (((qh[l] >> s1) & 1) << 4)) - m1;
                yc[l + 32] = d2 * (float)((q[l] >> 4) | (((qh[l] >> s2) & 1) << 4)) - m2;
            }
        }
    }
}

/* Q6_K, 210 bytes: 128 bytes ql | 64 bytes qh | 16 x int8 scales | f16 d. Two halves of 128
 * elements; in half h, element 32k + l (k = 0..3, l = 0..31) has low four bits from
 * ql[64h + l + 32(k & 1)] (low nibble for k < 2, high nibble for k >= 2) and high two bits from
 * (qh[32h + l] >> 2k) & 3; q = that 6-bit value - 32; scale index = element / 16.
 * Reference: ds = d * (float)scale (rounded to float32 first); y = ds * (float)q. */
static FS_DISPATCH void dequant_q6_k(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *b = src + ib * 210;
        const float d = rd_f16(b + 208);
        float ds[16];
        for (int i = 0; i < 16; i++) ds[i] = d * (float)as_i8(b[192 + i]);
        float *y = dst + ib * QK_K;
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = b + 64 * h;
            const uint8_t *qh = b + 128 + 32 * h;
            const float *dh = ds + 8 * h;
            float *yh = y + 128 * h;
            for (int is = 0; is < 2; is++) {
                for (int l = 16 * is; l < 16 * is + 16; l++) {
                    const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    yh[l] = dh[is] * (float)q1;
                    yh[l + 32] = dh[is + 2] * (float)q2;
                    yh[l + 64] = dh[is + 4] * (float)q3;
                    yh[l + 96] = dh[is + 6] * (float)q4;
                }
            }
        }
    }
}

/* ---- public API -------------------------------------------------------------------------- */

int fs_type_supported(int type) { return fs_block_elems(type) != 0; }

int64_t fs_block_elems(int type) {
    switch (type) {
    case FS_F32:
    case FS_F16:
    case FS_BF16:
        return 1;
    case FS_Q4_0:
    case FS_Q4_1:
    case FS_Q5_0:
    case FS_Q5_1:
    case FS_Q8_0:
        return QK;
    case FS_Q4_K:
    case FS_Q5_K:
    case FS_Q6_K:
        return QK_K;
    default:
        return 0;
    }
}

int64_t fs_block_bytes(int type) {
    switch (type) {
    case FS_F32: return 4;
    case FS_F16: return 2;
    case FS_BF16: return 2;
    case FS_Q4_0: return 18;
    case FS_Q4_1: return 20;
    case FS_Q5_0: return 22;
    case FS_Q5_1: return 24;
    case FS_Q8_0: return 34;
    case FS_Q4_K: return 144;
    case FS_Q5_K: return 176;
    case FS_Q6_K: return 210;
    default: return 0;
    }
}

size_t fs_row_bytes(int type, int64_t n) {
    const int64_t be = fs_block_elems(type);
    if (be == 0 || n < 0 || n % be != 0) return 0;
    return (size_t)(n / be) * (size_t)fs_block_bytes(type);
}

int fs_dequantize_row(int type, const void *src, float *dst, int64_t n) {
    const int64_t be = fs_block_elems(type);
    if (be == 0 || n < 0 || n % be != 0) return -1;
    const uint8_t *s = (const uint8_t *)src;
    const int64_t nb = n / be;
    switch (type) {
    case FS_F32: dequant_f32(s, dst, n); break;
    case FS_F16: dequant_f16(s, dst, n); break;
    case FS_BF16: dequant_bf16(s, dst, n); break;
    case FS_Q4_0: dequant_q4_0(s, dst, nb); break;
    case FS_Q4_1: dequant_q4_1(s, dst, nb); break;
    case FS_Q5_0: dequant_q5_0(s, dst, nb); break;
    case FS_Q5_1: dequant_q5_1(s, dst, nb); break;
    case FS_Q8_0: dequant_q8_0(s, dst, nb); break;
    case FS_Q4_K: dequant_q4_k(s, dst, nb); break;
    case FS_Q5_K: dequant_q5_k(s, dst, nb); break;
    case FS_Q6_K: dequant_q6_k(s, dst, nb); break;
    default: return -1;
    }
    return 0;
}

float fs_fp16_to_fp32(uint16_t h) { return half_to_float(h); }
