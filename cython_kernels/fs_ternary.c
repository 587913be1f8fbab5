/* The ternary types TQ1_0 and TQ2_0 (256-element blocks, weights in {-1, 0, 1} times one f16 scale;
 * activation format Q8_K). Fireside's family file; see fs_kernel.h and fs_traits.c.
 *
 * Sources (llama.cpp, read for the algorithms; this is an independent implementation):
 *   ggml/src/ggml-common.h               block_tq1_0, block_tq2_0, block_q8_K
 *   ggml/src/ggml-quants.c               dequantize_row_tq1_0, dequantize_row_tq2_0
 *   ggml/src/ggml-cpu/quants.c           ggml_vec_dot_tq1_0_q8_K_generic, ggml_vec_dot_tq2_0_q8_K_generic
 *   ggml/src/ggml-cpu/arch/x86/quants.c  the __AVX2__ branches of ggml_vec_dot_tq1_0_q8_K / _tq2_0_q8_K
 *   gguf-py gguf/quants.py               TQ1_0 / TQ2_0 dequantize_blocks (the bit-exact reference)
 *
 * Layouts:
 *   TQ1_0, 54 bytes: qs[48] | qh[4] | f16 d. Base-3 packing: a byte b holding trits t0..t4 (t0 the
 *     most significant) stores ceil(256 * sum(t_k 3^(4-k)) / 243); trit k is recovered as
 *     ((uint8_t)(b * 3^k) * 3) >> 8, which is 0, 1 or 2 for every byte value (also b >= 243), so
 *     all 256 byte values decode (ggml and gguf-py agree: it is integer arithmetic mod 256).
 *     Element order (ggml and gguf-py): 32k + m = trit k of qs[m] (k < 5, m < 32);
 *     160 + 16k + m = trit k of qs[32 + m] (k < 5, m < 16); 240 + 4k + j = trit k of qh[j] (k < 4,
 *     j < 4; qh holds 4 trits per byte). Value = d * (trit - 1).
 *   TQ2_0, 66 bytes: qs[64] | f16 d. Element 128h + 32l + m = ((qs[32h + m] >> 2l) & 3) - 1
 *     (h < 2, l < 4, m < 32), times d. The 2-bit code 3 (never written by the quantizer) gives 2.
 *
 * Dot products with Q8_K (f32 d | int8 qs[256] | int16 bsums[16]):
 *   portable (the *_generic code): per block the exact integer sum of (value - 1) * q8, then
 *     sumf += (float)sum * (fp16(x.d) * y.d), block after block.
 *   AVX2: unsigned codes 0..2 (0..3 for TQ2_0) times q8 with maddubs into 16 int16 lanes, minus the
 *     bsums (which removes the "- 1"), pairs of lanes added to 8 int32 lanes; then per block
 *     acc = (float)lanes * (y.d * fp16(x.d)) + acc (a multiply and an add, no FMA), and the result
 *     is hsum_float_8(acc). Int32 lane j of a block is sum over c < 8, i < 4 of
 *     code[32c + 4j + i] * q8[32c + 4j + i] - (bsums[2j] + bsums[2j + 1]); its float rounding is
 *     ggml's because the lanes hold the same integers (int16 adds wrap, and every final int16
 *     lane, at most 16 products of a code <= 3 with |q8| <= 128 minus one bsum, fits in int16).
 *   Both follow the source as written. GCC's default -ffp-contract=fast fuses each "* d + sum" of
 *   these two functions into one FMA, and llama.cpp release builds have such FMAs (e.g. the
 *   libggml-cpu.so of llama_cpp_python 0.3.36); tests/quant_reference/ternary.py (fused=True)
 *   gives those bits.
 */
#include "fs_families.h"

#define B_TQ1_0 54 /* qs[48] | qh[4] | f16 d */
#define B_TQ2_0 66 /* qs[64] | f16 d */
#define TQ1_QH 48
#define TQ1_D 52
#define TQ2_D 64

/* ---- unpacking (shared by the dequantizers and the portable dot products) -------------------- */

/* Trit of a byte already multiplied by its power of three (mod 256): ((uint16_t)q * 3) >> 8. */
static inline int tq1_trit(unsigned q) { return (int)(((q & 0xFFu) * 3u) >> 8); }

/* The 256 values (trit - 1, in {-1, 0, 1}) of one TQ1_0 block, in element order. */
FS_VD_INLINE void tq1_0_values(const uint8_t *x, int8_t v[QK_K]) {
    static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
    for (int k = 0; k < 5; k++)
        for (int m = 0; m < 32; m++) v[32 * k + m] = (int8_t)(tq1_trit(x[m] * pow3[k]) - 1);
    for (int k = 0; k < 5; k++)
        for (int m = 0; m < 16; m++) v[160 + 16 * k + m] = (int8_t)(tq1_trit(x[32 + m] * pow3[k]) - 1);
    for (int k = 0; k < 4; k++)
        for (int j = 0; j < 4; j++) v[240 + 4 * k + j] = (int8_t)(tq1_trit(x[TQ1_QH + j] * pow3[k]) - 1);
}

/* The 256 values ((code) - 1, in {-1, 0, 1, 2}) of one TQ2_0 block, in element order. */
FS_VD_INLINE void tq2_0_values(const uint8_t *x, int8_t v[QK_K]) {
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 4; l++)
            for (int m = 0; m < 32; m++) v[128 * h + 32 * l + m] = (int8_t)(((x[32 * h + m] >> (2 * l)) & 3) - 1);
}

/* ---- dequantization (gguf.quants.dequantize) -------------------------------------------------- */

/* y = d * (float)value, d = f16 of the block (gguf-py: d * qs.astype(float32); ggml's
 * dequantize_row_tq1_0 / _tq2_0 compute the same single product). */
FS_VD_INLINE void tq_scale(const int8_t v[QK_K], float d, float *y) {
    for (int k = 0; k < QK_K; k++) y[k] = d * (float)v[k];
}

/* TQ1_0 (54 bytes: qs[48] | qh[4] | f16 d), following dequantize_row_tq1_0 / gguf-py TQ1_0. */
FS_DISPATCH void fs_dequant_tq1_0(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *b = src + ib * B_TQ1_0;
        int8_t v[QK_K];
        tq1_0_values(b, v);
        tq_scale(v, dq_f16(b + TQ1_D), dst + ib * QK_K);
    }
}

/* TQ2_0 (66 bytes: qs[64] | f16 d), following dequantize_row_tq2_0 / gguf-py TQ2_0. */
FS_DISPATCH void fs_dequant_tq2_0(const uint8_t *src, float *dst, int64_t nb) {
    for (int64_t ib = 0; ib < nb; ib++) {
        const uint8_t *b = src + ib * B_TQ2_0;
        int8_t v[QK_K];
        tq2_0_values(b, v);
        tq_scale(v, dq_f16(b + TQ2_D), dst + ib * QK_K);
    }
}

/* ---- portable dot products: ggml's *_generic code ---------------------------------------------- */

FS_VD_INLINE int dot_i8_256(const int8_t *a, const int8_t *b) {
    int s = 0;
    for (int k = 0; k < QK_K; k++) s += a[k] * b[k];
    return s;
}

/* ggml_vec_dot_tq1_0_q8_K_generic: sumf += (float)sum * (fp16(x.d) * y.d). */
FS_VD_INLINE float dot_tq1_0_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    float sumf = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_TQ1_0, y += B_Q8_K) {
        int8_t v[QK_K];
        tq1_0_values(x, v);
        const int sum = dot_i8_256(v, (const int8_t *)(y + Q8K_QS));
        sumf += (float)sum * (rd_f16(x + TQ1_D) * rd_f32(y));
    }
    return sumf;
}

/* ggml_vec_dot_tq2_0_q8_K_generic: d = y.d * fp16(x.d); sumf += (float)sumi * d. */
FS_VD_INLINE float dot_tq2_0_c(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    float sumf = 0.0f;
    for (int64_t ib = 0; ib < nb; ib++, x += B_TQ2_0, y += B_Q8_K) {
        int8_t v[QK_K];
        tq2_0_values(x, v);
        const int sumi = dot_i8_256(v, (const int8_t *)(y + Q8K_QS));
        const float d = rd_f32(y) * rd_f16(x + TQ2_D);
        sumf += (float)sumi * d;
    }
    return sumf;
}

FS_ROWS(fs_rows_tq1_0_c, dot_tq1_0_c, )
FS_ROWS(fs_rows_tq2_0_c, dot_tq2_0_c, )

/* ---- AVX2 dot products: ggml's __AVX2__ code --------------------------------------------------- */
#if FS_HAVE_AVX2_CODE

/* Bytes times 3 and times 9 (mod 256) without byte multiplies: x + x + x; (x << 3) + x with the
 * bits shifted across byte boundaries masked off (as ggml). */
static inline FS_AVX2_FN __m256i mul3_epu8(__m256i x) { return _mm256_add_epi8(x, _mm256_add_epi8(x, x)); }

static inline FS_AVX2_FN __m256i mul9_epu8(__m256i x) {
    return _mm256_add_epi8(_mm256_and_si256(_mm256_slli_epi16(x, 3), _mm256_set1_epi8(-8)), x);
}

/* ((q * 3) >> 8) per byte, as ggml: q' = q -sat 1, then avg(q', avg(q', 0)) = ~3q'/4, top two bits.
 * (Equal to the scalar formula for all 256 byte values.) */
static inline FS_AVX2_FN __m256i tq1_trits(__m256i q) {
    q = _mm256_subs_epu8(q, _mm256_set1_epi8(1));
    q = _mm256_avg_epu8(q, _mm256_avg_epu8(q, _mm256_setzero_si256()));
    return _mm256_and_si256(_mm256_srli_epi16(q, 6), _mm256_set1_epi8(3));
}

/* 8 int32 lanes of one block: int16 lane sums s minus bsums, pairs added (madd by 1). */
static inline FS_AVX2_FN __m256 tq_lanes(__m256i s, const uint8_t *y) {
    const __m256i ysum = _mm256_loadu_si256((const __m256i *)(y + Q8K_BSUMS));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_sub_epi16(s, ysum), _mm256_set1_epi16(1)));
}

/* Codes (0..2) of x times 32 q8 bytes at p, as 16 int16 lanes. */
static inline FS_AVX2_FN __m256i tq_mul(__m256i codes, const int8_t *p) {
    return _mm256_maddubs_epi16(codes, _mm256_loadu_si256((const __m256i *)p));
}

/* ggml_vec_dot_tq1_0_q8_K (AVX2). Elements 0..159: the 32 bytes qs[0..32) times 1, 3, 9, 27, 81.
 * Elements 160..255 as three 32-byte vectors [qs[32..48) * 1 | * 3], [* 9 | * 27], [* 81 | qh
 * trits], the qh part being qh[j] * 3^k in byte 4k + j. ggml builds these from 128-bit halves and a
 * 16-bit multiply for qh; here the same bytes come from one vector X = [qs[32..48) | qh x 4]
 * multiplied by 3, 9, 27, 81 and recombined (blends and 128-bit permutes), so every maddubs sees
 * exactly ggml's operands. */
static inline FS_AVX2_FN float dot_tq1_0_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++, x += B_TQ1_0, y += B_Q8_K) {
        const int8_t *q8 = (const int8_t *)(y + Q8K_QS);
        const __m256i a1 = _mm256_loadu_si256((const __m256i *)x);
        const __m256i a3 = mul3_epu8(a1), a9 = mul9_epu8(a1);
        __m256i s0 = _mm256_add_epi16(tq_mul(tq1_trits(a1), q8), tq_mul(tq1_trits(a3), q8 + 32));
        __m256i s1 = _mm256_add_epi16(tq_mul(tq1_trits(a9), q8 + 64), tq_mul(tq1_trits(mul9_epu8(a3)), q8 + 96));
        __m256i s2 = tq_mul(tq1_trits(mul9_epu8(a9)), q8 + 128);

        const __m256i b1 = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(x + 32))),
                                                   _mm_set1_epi32((int)rd_u32(x + TQ1_QH)), 1);
        const __m256i b3 = mul3_epu8(b1), b9 = mul9_epu8(b1);
        const __m256i b27 = mul9_epu8(b3), b81 = mul9_epu8(b9);
        const __m256i x01 = _mm256_permute2x128_si256(b1, b3, 0x20);  /* [qs*1 | qs*3] */
        const __m256i x23 = _mm256_permute2x128_si256(b9, b27, 0x20); /* [qs*9 | qs*27] */
        const __m256i h = _mm256_blend_epi32(_mm256_blend_epi32(b1, b3, 0x20), _mm256_blend_epi32(b9, b27, 0x80), 0xC0);
        const __m256i x45 = _mm256_blend_epi32(h, b81, 0x0F);         /* [qs*81 | qh*1, *3, *9, *27] */
        s0 = _mm256_add_epi16(s0, tq_mul(tq1_trits(x01), q8 + 160));
        s1 = _mm256_add_epi16(s1, tq_mul(tq1_trits(x23), q8 + 192));
        s2 = _mm256_add_epi16(s2, tq_mul(tq1_trits(x45), q8 + 224));

        const __m256 d = _mm256_set1_ps(rd_f32(y) * h2f(x + TQ1_D));
        const __m256 lanes = tq_lanes(_mm256_add_epi16(s0, _mm256_add_epi16(s1, s2)), y);
        acc = _mm256_add_ps(_mm256_mul_ps(lanes, d), acc);
    }
    return hsum_f32x8(acc);
}

/* 32 bytes of TQ2_0 qs (128 elements) times q8[0 .. 128): the four 2-bit fields l = 0..3 times
 * q8[32l ..], maddubs, as 16 int16 lanes. */
static inline FS_AVX2_FN __m256i tq2_0_half(const uint8_t *qs, const int8_t *q8) {
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m256i q = _mm256_loadu_si256((const __m256i *)qs);
    const __m256i p0 = tq_mul(_mm256_and_si256(q, m3), q8);
    const __m256i p1 = tq_mul(_mm256_and_si256(_mm256_srli_epi16(q, 2), m3), q8 + 32);
    const __m256i p2 = tq_mul(_mm256_and_si256(_mm256_srli_epi16(q, 4), m3), q8 + 64);
    const __m256i p3 = tq_mul(_mm256_and_si256(_mm256_srli_epi16(q, 6), m3), q8 + 96);
    return _mm256_add_epi16(_mm256_add_epi16(p0, p1), _mm256_add_epi16(p2, p3));
}

/* ggml_vec_dot_tq2_0_q8_K (AVX2): both halves of qs (elements 0..127 and 128..255) through
 * tq2_0_half; ggml adds the same int16 products in another order, which is exact. */
static inline FS_AVX2_FN float dot_tq2_0_avx2(const uint8_t *x, const uint8_t *y, int64_t n) {
    const int64_t nb = n / QK_K;
    __m256 acc = _mm256_setzero_ps();
    for (int64_t ib = 0; ib < nb; ib++, x += B_TQ2_0, y += B_Q8_K) {
        const int8_t *q8 = (const int8_t *)(y + Q8K_QS);
        const __m256i s = _mm256_add_epi16(tq2_0_half(x, q8), tq2_0_half(x + 32, q8 + 128));
        const __m256 d = _mm256_set1_ps(rd_f32(y) * h2f(x + TQ2_D));
        acc = _mm256_add_ps(_mm256_mul_ps(tq_lanes(s, y), d), acc);
    }
    return hsum_f32x8(acc);
}

FS_ROWS(fs_rows_tq1_0_avx2, dot_tq1_0_avx2, FS_AVX2_FN)
FS_ROWS(fs_rows_tq2_0_avx2, dot_tq2_0_avx2, FS_AVX2_FN)

#endif /* FS_HAVE_AVX2_CODE */
