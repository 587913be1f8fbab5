/* What every family file of the quantization kernels shares (internal to cython_kernels/).
 *
 * A "family file" keeps all the kernels of a group of GGML types that share a block structure:
 * fs_float.c (F32, F16, BF16), fs_q32.c (32-element blocks: Q4_0 ... Q8_0), fs_kquants.c
 * (256-element K-quants and the Q8_K activation format), fs_iq4.c (IQ4_NL, IQ4_XS: non-linear 4-bit),
 * fs_iqgrid.c (the IQ1/IQ2/IQ3 lattice grids), fs_ternary.c (TQ1_0, TQ2_0), fs_mxfp4.c (MXFP4: E2M1
 * values, E8M0 block scales). For each type it defines
 * the functions that type's row of the traits table (fs_traits.c) points to, with the signatures
 * below; nothing else in Fireside switches on a weight type.
 *
 * Numerics contract (see fs_vecdot.h): dequantization is bit-identical to gguf-py's
 * gguf.quants.dequantize; portable dot products follow ggml's *_generic code operation for
 * operation; AVX2 ones ggml's __AVX2__ code (ggml/src/ggml-cpu/arch/x86/quants.c). So every family
 * file is compiled without FMA contraction (the pragma below repeats setup.py's -ffp-contract=off).
 */
#ifndef FS_KERNEL_H
#define FS_KERNEL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fs_common.h"
#include "fs_half.h"
#include "fs_quants.h" /* the GGML type ids (enum fs_ggml_type) */

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#elif defined(_MSC_VER)
#pragma fp_contract(off)
#endif

#if FS_HAVE_AVX2_CODE
#include <immintrin.h>
#endif
#if FS_HAVE_NEON_CODE
#include <arm_neon.h>
#endif

/* ---- the kernel signatures the traits table holds ----------------------------------------- */

/* Decode nb blocks at src into dst[0 .. nb * block_elems) (float32). */
typedef void (*fs_dequant_fn)(const uint8_t *src, float *dst, int64_t nb);

/* Quantize nb activation blocks x[0 .. nb * block_elems) into y (an activation format). */
typedef void (*fs_quant_act_fn)(const float *x, uint8_t *y, int64_t nb);

/* out[r] = dot(weight row r at w + r * row_bytes, activation row act) for r < n_rows; n elements. */
typedef void (*fs_rows_fn)(const uint8_t *w, size_t row_bytes, int64_t n_rows, const uint8_t *act, int64_t n,
                           float *out);

/* out[t * os + r] = dot(weight row r, activation row t at a + t * ab), r < n_rows, t < n_act, with
 * the bits of the matching fs_rows_fn (register tiles: each block unpacked once for several rows). */
typedef void (*fs_tiles_fn)(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a, size_t ab, int64_t n_act,
                            int64_t n, float *out, int64_t os);

/* ---- block sizes (ggml-common.h) ------------------------------------------------------------ */

#define QK 32    /* elements per block: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, IQ4_NL, MXFP4 */
#define QK_K 256 /* elements per super-block: K-quants, IQ types, TQ types, Q8_K */

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

/* The per-row dot functions and their helpers are forced inline into the row loops (GCC otherwise
 * leaves some large functions as calls, which blocks constant propagation and, inside a target
 * clone, the use of the clone's instruction set). */
#if defined(__GNUC__) || defined(__clang__)
#define FS_VD_INLINE static inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define FS_VD_INLINE static __forceinline
#else
#define FS_VD_INLINE static inline
#endif

/* Keep the next loop a loop: GCC otherwise peels a short constant-count loop and schedules every copy's
 * unpacking ahead of the products, which spills registers the products need. */
#if defined(__clang__)
#define FS_NO_UNROLL _Pragma("nounroll")
#elif defined(__GNUC__)
#define FS_NO_UNROLL _Pragma("GCC unroll 1")
#else
#define FS_NO_UNROLL
#endif

/* A row loop over a per-row dot function: out[r] = dot(w + r * row_bytes, act, n). The portable
 * ones are built for the baseline instruction set (a CPU with AVX2 runs the AVX2 code instead). */
#define FS_ROWS(name, dot, attrs)                                                                   \
    attrs void name(const uint8_t *w, size_t row_bytes, int64_t n_rows, const uint8_t *act,        \
                    int64_t n, float *out) {                                                        \
        for (int64_t r = 0; r < n_rows; r++) out[r] = dot(w + (size_t)r * row_bytes, act, n);      \
    }

/* In a row dot's loop over blocks of `bytes` bytes at x: prefetch the row's bytes `ahead` bytes on (one
 * prefetch per 64-byte line of the block; prefetches never fault, so past the matrix's end is harmless).
 * Decode reads every weight row once, front to back; on the measured CPUs the hardware prefetcher alone
 * left the row dots at a third or less of their speed from cache (see each use). ahead 0: none. */
#define FS_ROW_PREFETCH(x, bytes, ahead)                                                            \
    do {                                                                                            \
        if ((ahead) > 0)                                                                            \
            for (int pf_ = 0; pf_ < (bytes); pf_ += 64)                                             \
                _mm_prefetch((const char *)(x) + (ahead) + pf_, _MM_HINT_T0);                       \
    } while (0)

/* ---- scalar helpers ------------------------------------------------------------------------- */

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

/* An E8M0 scale byte as MXFP4 uses it, GGML_E8M0_TO_FP32_HALF (ggml-impl.h ggml_e8m0_to_fp32_half):
 * 2^(e - 128) as the float32 with bits (e - 1) << 23 for e >= 2 and 0x00200000 << e (the subnormals
 * 2^-128, 2^-127) for e < 2. Exact for every byte; no NaN (e = 255 is 2^127). */
static inline float e8m0_half(uint8_t e) {
    return f32_from_bits(e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23);
}

/* A byte as a two's-complement int8 value, without relying on the implementation-defined
 * conversion of out-of-range values to int8_t. */
static inline int as_i8(uint8_t x) { return (int)x - ((int)(x & 0x80u) << 1); }

/* binary16 -> binary32 for the dequantizers, branch-free so that their loops vectorize:
 *   normal:    rebias the exponent (15 -> 127) with one integer add; exact;
 *   inf / NaN: exponent all ones, mantissa (the NaN payload) copied unchanged, not quieted (as
 *              numpy's float16 -> float32 cast, which gguf.quants.dequantize uses);
 *   subnormal: value = mant * 2^-24, computed as float(0.5 with mant in the low mantissa bits)
 *              - 0.5, which is exact (Sterbenz) and gives a normal float32; mant = 0 gives +0.
 * The sign is OR-ed back at the end (so -0 stays -0). */
static inline float dq_half_to_float(uint16_t h) {
    const uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
    const uint32_t em = (uint32_t)h & 0x7fffu;
    const uint32_t normal = (em << 13) + ((uint32_t)(127 - 15) << 23);
    const uint32_t infnan = (em << 13) | 0x7f800000u;
    const uint32_t subnormal = f32_to_bits(f32_from_bits(0x3f000000u | em) - 0.5f);
    const uint32_t is_sub = 0u - (uint32_t)(em < 0x0400u); /* all ones or all zeros */
    const uint32_t is_inf = 0u - (uint32_t)(em >= 0x7c00u);
    const uint32_t bits = (subnormal & is_sub) | (~is_sub & ((infnan & is_inf) | (normal & ~is_inf)));
    return f32_from_bits(sign | bits);
}

static inline float dq_f16(const uint8_t *p) { return dq_half_to_float(rd_u16(p)); }

/* Round to nearest, ties to even, for |fval| <= 4194303 (ggml-quants.c nearest_int): adding
 * 1.5 * 2^23 leaves the rounded integer in the low mantissa bits. */
static inline int nearest_int(float fval) {
    const float val = fval + 12582912.f;
    const uint32_t i = f32_to_bits(val);
    return (int)(i & 0x007FFFFFu) - 0x00400000;
}

/* The integer dot product of 32 int8 values (exact, so any evaluation order; the plain loop is what
 * compilers vectorize best). */
FS_VD_INLINE int block_dot_i8(const int8_t *a, const int8_t *b) {
    int sumi = 0;
    for (int j = 0; j < QK; j++) sumi += a[j] * b[j];
    return sumi;
}

/* ---- AVX2 helpers (ggml-cpu/arch/x86/quants.c) ---------------------------------------------- */
#if FS_HAVE_AVX2_CODE
#include "fs_avx2.h"

static inline FS_AVX2_FN float h2f(const uint8_t *p) { return _cvtsh_ss(rd_u16(p)); }

/* bytes_from_nibbles_32: 16 bytes -> 32 bytes, low nibbles in bytes 0..15, high in 16..31. Three
 * instructions: the 16 bytes in both 128-bit halves (one broadcast load), the upper half's 64-bit
 * lanes shifted right by 4, every byte masked to 4 bits (ggml's load, shift, insert and mask take four). */
static inline FS_AVX2_FN __m256i nibbles_32(const uint8_t *p) {
    const __m256i both = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
    return _mm256_and_si256(_mm256_srlv_epi64(both, _mm256_set_epi64x(4, 4, 0, 0)), _mm256_set1_epi8(0x0F));
}

/* The 4-bit lookup-table types (IQ4_NL, IQ4_XS, MXFP4; ggml-cpu/arch/x86/quants.c and repack.cpp):
 * lut16_table(values): the 16 int8 levels in both 128-bit halves (values128 / signextendlut);
 * lut16_levels_32: the 32 levels of one 16-byte nibble group, low nibbles in bytes 0..15 and high in
 * 16..31 (MM256_SET_M128I(shuffle(values128, hi), shuffle(values128, lo)));
 * lut16_lanes: mul_add_epi8 then madd with ones, the 32 products as 8 int32 lanes, lane k = elements
 * 4k .. 4k + 3; ax = |levels| (_mm256_sign_epi8(v, v), hoisted by callers), v = the levels. */
static inline FS_AVX2_FN __m256i lut16_table(const int8_t values[16]) {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)values));
}

static inline FS_AVX2_FN __m256i lut16_levels_32(__m256i table, const uint8_t *qs) {
    return _mm256_shuffle_epi8(table, nibbles_32(qs));
}

static inline FS_AVX2_FN __m256i lut16_lanes(__m256i ax, __m256i v, __m256i qy) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(qy, v)), _mm256_set1_epi16(1));
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

/* sum_i16_pairs_float: pairs of int16 summed into int32, as float. */
static inline FS_AVX2_FN __m256 i16_pairs_float(__m256i x) {
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_set1_epi16(1), x));
}

/* mul_sum_us8_pairs_float: unsigned x times signed y, summed in groups of four bytes, as float. */
static inline FS_AVX2_FN __m256 us8_quads(__m256i ux, __m256i sy) {
    return i16_pairs_float(_mm256_maddubs_epi16(ux, sy));
}

/* mul_sum_i8_pairs_float: signed x times signed y via |x| and sign(y, x). */
static inline FS_AVX2_FN __m256 i8_quads(__m256i x, __m256i y) {
    return us8_quads(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

/* mul_add_epi8 (ggml): int16 lanes of signed x times signed y, pairs added (maddubs on |x|). */
static inline FS_AVX2_FN __m256i mul_add_epi8(__m256i x, __m256i y) {
    return _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

static inline FS_AVX2_FN int32_t hsum_i32x4(__m128i v) {
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0x4E));
    v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0xB1));
    return _mm_cvtsi128_si32(v);
}

static inline FS_AVX2_FN int32_t hsum_i32x8(__m256i v) {
    return hsum_i32x4(_mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)));
}

/* Lanes 0..3: the sums of the 8 int32 lanes of a, b, c, d (exact). */
static inline FS_AVX2_FN __m128i hsum_i32x8x4(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m128i a4 = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    const __m128i b4 = _mm_add_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1));
    const __m128i c4 = _mm_add_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
    const __m128i d4 = _mm_add_epi32(_mm256_castsi256_si128(d), _mm256_extracti128_si256(d, 1));
    return _mm_hadd_epi32(_mm_hadd_epi32(a4, b4), _mm_hadd_epi32(c4, d4));
}

/* Lanes 0..7: the sums of the 8 int32 lanes of v[0], ..., v[7] (exact). */
static inline FS_AVX2_FN __m256i hsum_i32x8x8(const __m256i *v) {
    const __m256i h0 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    const __m256i h1 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    /* h0: 128-bit lane 0 the partial sums of v[0..4) over their low halves, lane 1 over their high ones */
    return _mm256_add_epi32(_mm256_permute2x128_si256(h0, h1, 0x20), _mm256_permute2x128_si256(h0, h1, 0x31));
}

/* [fp16 at p0, p1, p2, p3] as floats. */
static inline FS_AVX2_FN __m128 h2f_x4(const uint8_t *p0, const uint8_t *p1, const uint8_t *p2, const uint8_t *p3) {
    return _mm_cvtph_ps(
        _mm_setr_epi16((short)rd_u16(p0), (short)rd_u16(p1), (short)rd_u16(p2), (short)rd_u16(p3), 0, 0, 0, 0));
}

/* A register-tiled product over a tile kernel that takes one weight row x RN <= 4 activation rows
 * (RN a constant at each call, so the tile lives in registers): defines the fs_tiles_fn `name`. */
#define FS_TILES_1X4(name, kernel, QKB) FS_TILES_1X4_ATTR(name, kernel, QKB, FS_AVX2_FN)
#define FS_TILES_1X4_ATTR(name, kernel, QKB, attrs)                                                        \
    attrs void name(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a, size_t ab,          \
                         int64_t n_act, int64_t n, float *out, int64_t os) {                                \
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
/* Activation rows per call of an 8-row tile kernel (FS_TILES_1X8, the AVX-512 IQ4_XS tiles). */
#define FS_TILE_RN8 8
/* kernel(args..., RN) with RN = rn (1 .. FS_TILE_RN8) a constant, so each count gets its own inlined
 * copy of the kernel with its loops over RN unrolled. */
#define FS_SWITCH_RN8(rn, kernel, ...)                \
    switch (rn) {                                     \
    case 8: kernel(__VA_ARGS__, 8); break;            \
    case 7: kernel(__VA_ARGS__, 7); break;            \
    case 6: kernel(__VA_ARGS__, 6); break;            \
    case 5: kernel(__VA_ARGS__, 5); break;            \
    case 4: kernel(__VA_ARGS__, 4); break;            \
    case 3: kernel(__VA_ARGS__, 3); break;            \
    case 2: kernel(__VA_ARGS__, 2); break;            \
    default: kernel(__VA_ARGS__, 1); break;           \
    }
/* FS_TILES_1X4 with up to FS_TILE_RN8 activation rows per call of `kernel` (for tiles whose unpacking
 * per weight row costs more than the products of 4 rows). */
#define FS_TILES_1X8(name, kernel, QKB)                                                                    \
    FS_AVX2_FN void name(const uint8_t *w, size_t rb, int64_t n_rows, const uint8_t *a, size_t ab,         \
                         int64_t n_act, int64_t n, float *out, int64_t os) {                                \
        const int64_t nb = n / (QKB);                                                                       \
        for (int64_t j = 0; j < n_act; j += FS_TILE_RN8) {                                                  \
            const int rn = n_act - j < FS_TILE_RN8 ? (int)(n_act - j) : FS_TILE_RN8;                        \
            for (int64_t i = 0; i < n_rows; i++) {                                                          \
                const uint8_t *wi = w + (size_t)i * rb, *aj = a + (size_t)j * ab;                           \
                float *o = out + j * os + i;                                                                \
                FS_SWITCH_RN8(rn, kernel, wi, aj, ab, nb, o, os)                                            \
            }                                                                                               \
        }                                                                                                   \
    }
/* llama.cpp's x86 repacked product of the 32-element types it repacks (Q4_0, IQ4_NL, MXFP4:
 * gemv_q4_b32_8x8_q8_0_lut_avx and its gemm, arch/x86/repack.cpp), per output element:
 * acc = fma((float)sumi_b, fp16(x_b.d) * fp16(y_b.d), acc) over the blocks b in order (x_b.d: the
 * block's first two bytes; y: Q8_0 blocks), out = acc; with e8m0 set (MXFP4, gemv_b32_rows_scaled)
 * the block's scale is its first byte instead, as e8m0_half(x_b.e). `block_lanes` gives the integer
 * products of one weight block with the 32 activation quants qy as 8 int32 lanes (their sum is the
 * exact block dot); it is a constant at each call, so it is inlined.
 * Rows go in groups of 4, one per lane of the float vector (the lanes are independent, so the
 * grouping changes no bit), but each row is read front to back on its own, a chunk of blocks at a
 * time, into exact sums, before the FMAs of the 4 rows run: 4 rows read block by block in step ran
 * at 2.5x the time per block on 1536-element rows (4.8 against 1.8 ns, one thread). */
#define FS_GEMV_CHUNK 64
/* e8m0_half of the four E8M0 bytes in the int32 lanes of e (0 .. 255 each). */
static inline FS_AVX2_FN __m128 e8m0_half_x4(__m128i e) {
    const __m128i sub = _mm_sllv_epi32(_mm_set1_epi32(0x00200000), e);
    const __m128i normal = _mm_slli_epi32(_mm_sub_epi32(e, _mm_set1_epi32(1)), 23);
    return _mm_castsi128_ps(_mm_blendv_epi8(normal, sub, _mm_cmplt_epi32(e, _mm_set1_epi32(2))));
}

FS_VD_INLINE FS_AVX2_FN void gemv_b32_rows_scaled(const uint8_t *w, size_t row_bytes, int64_t n_rows,
                                                  const uint8_t *act, int64_t n, float *out, int64_t xbytes,
                                                  __m256i (*block_lanes)(const uint8_t *x, __m256i qy),
                                                  const int e8m0) {
    const int64_t nb = n / QK;
    int64_t r = 0;
    for (; r < n_rows; r += 4) {
        const int rows = n_rows - r < 4 ? (int)(n_rows - r) : 4;
        const uint8_t *x[4];
        for (int k = 0; k < 4; k++) x[k] = w + (size_t)(r + (k < rows ? k : 0)) * row_bytes;
        __m128 acc = _mm_setzero_ps();
        for (int64_t c0 = 0; c0 < nb; c0 += FS_GEMV_CHUNK) {
            const int64_t cn = nb - c0 < FS_GEMV_CHUNK ? nb - c0 : FS_GEMV_CHUNK;
            int32_t sumi[4][FS_GEMV_CHUNK];
            uint16_t dh[4][FS_GEMV_CHUNK];
            for (int k = 0; k < rows; k++) {
                const uint8_t *xb = x[k] + (size_t)c0 * (size_t)xbytes;
                const uint8_t *yb = act + (size_t)c0 * B_Q8_0;
#define FS_GEMV_LANES(j) block_lanes(xb + (size_t)(j) * (size_t)xbytes, \
                                     _mm256_loadu_si256((const __m256i *)(yb + (size_t)(j) * B_Q8_0 + 2)))
                int64_t j = 0;
                for (; j + 4 <= cn; j += 4) /* four blocks reduced at once */
                    _mm_storeu_si128((__m128i *)(void *)&sumi[k][j],
                                     hsum_i32x8x4(FS_GEMV_LANES(j), FS_GEMV_LANES(j + 1), FS_GEMV_LANES(j + 2),
                                                  FS_GEMV_LANES(j + 3)));
                for (; j < cn; j++) sumi[k][j] = hsum_i32x8(FS_GEMV_LANES(j));
#undef FS_GEMV_LANES
                for (j = 0; j < cn; j++) {
                    const uint8_t *xj = xb + (size_t)j * (size_t)xbytes;
                    dh[k][j] = e8m0 ? xj[0] : rd_u16(xj);
                }
            }
            for (int k = rows; k < 4; k++)
                for (int64_t j = 0; j < cn; j++) sumi[k][j] = 0, dh[k][j] = 0;
            for (int64_t j = 0; j < cn; j++) {
                const __m128i s = _mm_setr_epi32(sumi[0][j], sumi[1][j], sumi[2][j], sumi[3][j]);
                const __m128 dx = e8m0 ? e8m0_half_x4(_mm_setr_epi32(dh[0][j], dh[1][j], dh[2][j], dh[3][j]))
                                       : _mm_cvtph_ps(_mm_setr_epi16((short)dh[0][j], (short)dh[1][j], (short)dh[2][j],
                                                                     (short)dh[3][j], 0, 0, 0, 0));
                const __m128 d = _mm_mul_ps(dx, _mm_set1_ps(h2f(act + (size_t)(c0 + j) * B_Q8_0)));
                acc = _mm_fmadd_ps(_mm_cvtepi32_ps(s), d, acc);
            }
        }
        float o[4];
        _mm_storeu_ps(o, acc);
        for (int k = 0; k < rows; k++) out[r + k] = o[k];
    }
}

/* The f16-scaled types (Q4_0, IQ4_NL). */
FS_VD_INLINE FS_AVX2_FN void gemv_b32_rows(const uint8_t *w, size_t row_bytes, int64_t n_rows, const uint8_t *act,
                                           int64_t n, float *out, int64_t xbytes,
                                           __m256i (*block_lanes)(const uint8_t *x, __m256i qy)) {
    gemv_b32_rows_scaled(w, row_bytes, n_rows, act, n, out, xbytes, block_lanes, 0);
}
#endif /* FS_HAVE_AVX2_CODE */

/* ---- arm64 NEON helpers (ggml-cpu/arch/arm/quants.c) ----------------------------------------- */
#if FS_HAVE_NEON_CODE
/* An f16 field as a float: one FCVT; exact, the value of fp16_to_fp32. */
static inline float neon_h2f(const uint8_t *p) {
    __fp16 h;
    memcpy(&h, p, sizeof h);
    return (float)h;
}

/* The 32 weight values of one block of a 32-element type against its 32 activation quants: SDOT into
 * 4 int32 lanes, lane k = the products of bytes 4k .. 4k+3 of both 16-byte halves (the lanes of ggml's
 * ggml_vdotq_s32(ggml_vdotq_s32(0, x_lo, y_lo), x_hi, y_hi) and of its vaddq_s32 of two SDOTs alike:
 * the sums are exact integers). lo: elements 0..15, hi: 16..31. */
static inline FS_NEON_FN int32x4_t neon_block_lanes(int8x16_t lo, int8x16_t hi, const uint8_t *qy) {
    const int32x4_t p = vdotq_s32(vdupq_n_s32(0), lo, vld1q_s8((const int8_t *)qy));
    return vdotq_s32(p, hi, vld1q_s8((const int8_t *)qy + 16));
}

/* The low and high nibbles of 16 bytes: elements 0..15 and 16..31 of a 32-element block. */
static inline int8x16_t neon_lo_nibbles(uint8x16_t v) { return vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F))); }
static inline int8x16_t neon_hi_nibbles(uint8x16_t v) { return vreinterpretq_s8_u8(vshrq_n_u8(v, 4)); }

/* 0x10 in byte j where bit j (lo: j < 16, hi: bits 16..31 for bytes 0..15) of the little-endian
 * 32-bit qh at p is set, else 0: the fifth bit of Q5_0 / Q5_1 (ggml builds the same bytes with its
 * table_b2b_0 lookup). */
static inline void neon_fifth_bits(const uint8_t *p, uint8x16_t *lo, uint8x16_t *hi) {
    static const uint8_t bit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t mask = vld1q_u8(bit);
    const uint8x16_t b01 = vcombine_u8(vdup_n_u8(p[0]), vdup_n_u8(p[1]));
    const uint8x16_t b23 = vcombine_u8(vdup_n_u8(p[2]), vdup_n_u8(p[3]));
    *lo = vandq_u8(vtstq_u8(b01, mask), vdupq_n_u8(0x10));
    *hi = vandq_u8(vtstq_u8(b23, mask), vdupq_n_u8(0x10));
}

/* ggml writes its per-lane float accumulation as vmlaq_n_f32(acc, v, s). GCC 12's arm_neon.h expands
 * that intrinsic to an unfused FMUL + FADD (checked here: aarch64-linux-gnu-gcc 12.2, with and
 * without -ffp-contract=fast); clang's arm_neon.h writes it as acc + v * s, which clang may contract
 * into one FMLA under its default -ffp-contract=on (the "vmla is not fused" discussion of
 * ARM-software/acle#419; not checked here: no clang on this machine). So llama.cpp's bits on arm64
 * depend on the compiler that built it. Fireside takes the fused form, written out (vfmaq_n_f32):
 * llama.cpp's macOS, iOS, Android (NDK) and Windows arm64 builds use clang, and the result must not
 * depend on this build's own contraction flags (contraction is off above). */
static inline FS_NEON_FN float32x4_t neon_mla_n(float32x4_t acc, int32x4_t lanes, float s) {
    return vfmaq_n_f32(acc, vcvtq_f32_s32(lanes), s);
}
#endif /* FS_HAVE_NEON_CODE */

#endif /* FS_KERNEL_H */
