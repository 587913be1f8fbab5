/* Plain-C stand-ins for the AVX-512 intrinsics of the kernels' matmul families (cython_kernels/
 * fs_q32.c, fs_kquants.c, fs_iq4.c), so that their AVX-512 code can be compiled and run on a CPU
 * without AVX-512 (tests/test_avx512_emulated.py). Force-included (gcc -include) before a kernel file,
 * with FS_AVX512_FN set to the AVX2 target: the kernels' AVX2 intrinsics stay real, and every
 * _mm512_* name they use is renamed to a function below that does, lane by lane, what Intel's
 * Intrinsics Guide says of the instruction (integer lanes wrap or saturate as it does; float lanes
 * round once per operation, fmaf for the fused one; cvtepi32_ps rounds to nearest even, MXCSR's
 * default). Both 512-bit types are one union here, so casts between them are free. A kernel using an
 * intrinsic missing here fails to compile in that test (the types differ): add its stand-in first.
 *
 * This checks the AVX-512 code's logic (data layouts, shuffles, masks, loop bounds, integer
 * identities), not the compiler's AVX-512 code: tests/test_cpu_variants.py runs that on AVX-512
 * hardware. fs_ops.c's attention tile is not covered (it is reached only through the dispatch). */
#ifndef FS_EMU512_H
#define FS_EMU512_H
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef union {
    int8_t b[64];
    uint8_t ub[64];
    int16_t h[32];
    uint16_t uh[32];
    int32_t i[16];
    uint32_t ui[16];
    int64_t q[8];
    uint64_t uq[8];
    float f[16];
} emu_v512;
#define __m512i emu_v512
#define __m512 emu_v512

/* The stand-ins are built for AVX2 (what the kernels' own AVX2 code needs; they take and return its
 * 256- and 128-bit types). */
#define EMU_FN static inline __attribute__((target("avx2,fma,f16c")))
#define EMU_LANES(n) for (int l = 0; l < (n); l++)
EMU_FN emu_v512 emu_zero(void) { emu_v512 r; memset(&r, 0, sizeof r); return r; }
EMU_FN emu_v512 emu_set1_epi8(char a) { emu_v512 r; EMU_LANES(64) r.b[l] = (int8_t)a; return r; }
EMU_FN emu_v512 emu_set1_epi16(short a) { emu_v512 r; EMU_LANES(32) r.h[l] = a; return r; }
EMU_FN emu_v512 emu_set1_epi32(int a) { emu_v512 r; EMU_LANES(16) r.i[l] = a; return r; }
EMU_FN emu_v512 emu_set1_ps(float a) { emu_v512 r; EMU_LANES(16) r.f[l] = a; return r; }
/* _mm512_set_epi64 / _set_epi16 list the highest element first; _setr_epi32 the lowest first. */
EMU_FN emu_v512 emu_set_epi64(long long e7, long long e6, long long e5, long long e4, long long e3,
                                     long long e2, long long e1, long long e0) {
    const long long e[8] = {e0, e1, e2, e3, e4, e5, e6, e7};
    emu_v512 r;
    EMU_LANES(8) r.q[l] = e[l];
    return r;
}
EMU_FN emu_v512 emu_set_epi16(short e31, short e30, short e29, short e28, short e27, short e26, short e25,
                                     short e24, short e23, short e22, short e21, short e20, short e19, short e18,
                                     short e17, short e16, short e15, short e14, short e13, short e12, short e11,
                                     short e10, short e9, short e8, short e7, short e6, short e5, short e4, short e3,
                                     short e2, short e1, short e0) {
    const short e[32] = {e0,  e1,  e2,  e3,  e4,  e5,  e6,  e7,  e8,  e9,  e10, e11, e12, e13, e14, e15,
                         e16, e17, e18, e19, e20, e21, e22, e23, e24, e25, e26, e27, e28, e29, e30, e31};
    emu_v512 r;
    EMU_LANES(32) r.h[l] = e[l];
    return r;
}
EMU_FN emu_v512 emu_setr_epi32(int e0, int e1, int e2, int e3, int e4, int e5, int e6, int e7, int e8, int e9,
                                      int e10, int e11, int e12, int e13, int e14, int e15) {
    const int e[16] = {e0, e1, e2, e3, e4, e5, e6, e7, e8, e9, e10, e11, e12, e13, e14, e15};
    emu_v512 r;
    EMU_LANES(16) r.i[l] = e[l];
    return r;
}
EMU_FN emu_v512 emu_loadu(const void *p) { emu_v512 r; memcpy(&r, p, sizeof r); return r; }
EMU_FN emu_v512 emu_maskz_loadu_ps(__mmask16 m, const void *p) {
    emu_v512 r = emu_zero();
    EMU_LANES(16) if ((m >> l) & 1) memcpy(&r.f[l], (const char *)p + 4 * l, 4);
    return r;
}
EMU_FN void emu_storeu_ps(void *p, emu_v512 a) { memcpy(p, &a, sizeof a); }
EMU_FN void emu_mask_storeu_ps(void *p, __mmask16 m, emu_v512 a) {
    EMU_LANES(16) if ((m >> l) & 1) memcpy((char *)p + 4 * l, &a.f[l], 4);
}

/* ---- integer arithmetic and logic (wrapping unless the instruction saturates) ---- */
EMU_FN emu_v512 emu_add_epi16(emu_v512 a, emu_v512 b) { EMU_LANES(32) a.uh[l] = (uint16_t)(a.uh[l] + b.uh[l]); return a; }
EMU_FN emu_v512 emu_sub_epi16(emu_v512 a, emu_v512 b) { EMU_LANES(32) a.uh[l] = (uint16_t)(a.uh[l] - b.uh[l]); return a; }
EMU_FN emu_v512 emu_add_epi32(emu_v512 a, emu_v512 b) { EMU_LANES(16) a.ui[l] += b.ui[l]; return a; }
EMU_FN emu_v512 emu_sub_epi32(emu_v512 a, emu_v512 b) { EMU_LANES(16) a.ui[l] -= b.ui[l]; return a; }
EMU_FN emu_v512 emu_mullo_epi32(emu_v512 a, emu_v512 b) { EMU_LANES(16) a.ui[l] *= b.ui[l]; return a; }
EMU_FN emu_v512 emu_and(emu_v512 a, emu_v512 b) { EMU_LANES(8) a.uq[l] &= b.uq[l]; return a; }
EMU_FN emu_v512 emu_or(emu_v512 a, emu_v512 b) { EMU_LANES(8) a.uq[l] |= b.uq[l]; return a; }
EMU_FN emu_v512 emu_xor(emu_v512 a, emu_v512 b) { EMU_LANES(8) a.uq[l] ^= b.uq[l]; return a; }
EMU_FN emu_v512 emu_srli_epi16(emu_v512 a, unsigned c) { EMU_LANES(32) a.uh[l] = c > 15 ? 0 : (uint16_t)(a.uh[l] >> c); return a; }
EMU_FN emu_v512 emu_srlv_epi16(emu_v512 a, emu_v512 c) {
    EMU_LANES(32) a.uh[l] = c.uh[l] > 15 ? 0 : (uint16_t)(a.uh[l] >> c.uh[l]);
    return a;
}
EMU_FN emu_v512 emu_sllv_epi16(emu_v512 a, emu_v512 c) {
    EMU_LANES(32) a.uh[l] = c.uh[l] > 15 ? 0 : (uint16_t)(a.uh[l] << c.uh[l]);
    return a;
}
EMU_FN emu_v512 emu_srlv_epi64(emu_v512 a, emu_v512 c) {
    EMU_LANES(8) a.uq[l] = c.uq[l] > 63 ? 0 : a.uq[l] >> c.uq[l];
    return a;
}
/* vpmaddubsw: unsigned bytes of a times signed bytes of b, adjacent pairs summed, saturated to int16. */
EMU_FN emu_v512 emu_maddubs_epi16(emu_v512 a, emu_v512 b) {
    emu_v512 r;
    EMU_LANES(32) {
        const int s = (int)a.ub[2 * l] * b.b[2 * l] + (int)a.ub[2 * l + 1] * b.b[2 * l + 1];
        r.h[l] = (int16_t)(s > 32767 ? 32767 : s < -32768 ? -32768 : s);
    }
    return r;
}
EMU_FN int32_t emu_pair16(emu_v512 a, emu_v512 b, int l) { /* the int32 pair sum of vpmaddwd */
    return (int32_t)((uint32_t)((int32_t)a.h[2 * l] * b.h[2 * l]) + (uint32_t)((int32_t)a.h[2 * l + 1] * b.h[2 * l + 1]));
}
EMU_FN emu_v512 emu_madd_epi16(emu_v512 a, emu_v512 b) { emu_v512 r; EMU_LANES(16) r.i[l] = emu_pair16(a, b, l); return r; }
EMU_FN emu_v512 emu_dpwssd_epi32(emu_v512 s, emu_v512 a, emu_v512 b) { EMU_LANES(16) s.ui[l] += (uint32_t)emu_pair16(a, b, l); return s; }
/* vpdpbusd: unsigned bytes of a times signed bytes of b, 4 per lane, added to s (wrapping). */
EMU_FN emu_v512 emu_dpbusd_epi32(emu_v512 s, emu_v512 a, emu_v512 b) {
    EMU_LANES(16) {
        int32_t t = 0;
        for (int k = 0; k < 4; k++) t += (int32_t)a.ub[4 * l + k] * b.b[4 * l + k];
        s.ui[l] += (uint32_t)t;
    }
    return s;
}
/* The 256-bit VNNI form (AVX512VL), on the lower half of the 512-bit stand-in. */
EMU_FN __m256i emu256_dpbusd_epi32(__m256i s, __m256i a, __m256i b) {
    emu_v512 vs, va, vb;
    memset(&vs, 0, sizeof vs); memset(&va, 0, sizeof va); memset(&vb, 0, sizeof vb);
    memcpy(&vs, &s, 32); memcpy(&va, &a, 32); memcpy(&vb, &b, 32);
    vs = emu_dpbusd_epi32(vs, va, vb);
    __m256i r;
    memcpy(&r, &vs, 32);
    return r;
}

/* ---- float ---- */
EMU_FN emu_v512 emu_add_ps(emu_v512 a, emu_v512 b) { EMU_LANES(16) a.f[l] = a.f[l] + b.f[l]; return a; }
EMU_FN emu_v512 emu_sub_ps(emu_v512 a, emu_v512 b) { EMU_LANES(16) a.f[l] = a.f[l] - b.f[l]; return a; }
EMU_FN emu_v512 emu_mul_ps(emu_v512 a, emu_v512 b) { EMU_LANES(16) a.f[l] = a.f[l] * b.f[l]; return a; }
EMU_FN emu_v512 emu_fmadd_ps(emu_v512 a, emu_v512 b, emu_v512 c) { EMU_LANES(16) c.f[l] = fmaf(a.f[l], b.f[l], c.f[l]); return c; }
EMU_FN emu_v512 emu_cvtepi32_ps(emu_v512 a) { emu_v512 r; EMU_LANES(16) r.f[l] = (float)a.i[l]; return r; }

/* ---- shuffles and permutes ---- */
/* vpshufd: within each 128-bit lane, dword k = dword (imm >> 2k) & 3 of that lane. */
EMU_FN emu_v512 emu_shuffle_epi32(emu_v512 a, int imm) {
    emu_v512 r;
    EMU_LANES(16) r.i[l] = a.i[(l & ~3) + ((imm >> (2 * (l & 3))) & 3)];
    return r;
}
/* vshufps: within each 128-bit lane, floats 0, 1 from a and 2, 3 from b, chosen by 2-bit fields. */
EMU_FN emu_v512 emu_shuffle_ps(emu_v512 a, emu_v512 b, int imm) {
    emu_v512 r;
    EMU_LANES(16) r.f[l] = ((l & 3) < 2 ? a : b).f[(l & ~3) + ((imm >> (2 * (l & 3))) & 3)];
    return r;
}
/* vshufi64x2 / vshuff32x4: 128-bit lanes 0, 1 of the result from a, 2, 3 from b, by 2-bit fields. */
EMU_FN emu_v512 emu_shuffle_x128(emu_v512 a, emu_v512 b, int imm) {
    emu_v512 r;
    for (int k = 0; k < 4; k++) memcpy(&r.b[16 * k], &(k < 2 ? a : b).b[16 * ((imm >> (2 * k)) & 3)], 16);
    return r;
}
EMU_FN emu_v512 emu_permutexvar_epi16(emu_v512 idx, emu_v512 a) { emu_v512 r; EMU_LANES(32) r.h[l] = a.h[idx.uh[l] & 31]; return r; }
EMU_FN emu_v512 emu_permutexvar_epi32(emu_v512 idx, emu_v512 a) { emu_v512 r; EMU_LANES(16) r.i[l] = a.i[idx.ui[l] & 15]; return r; }
#define emu_permutexvar_ps emu_permutexvar_epi32

/* ---- between widths (the upper part of a widening cast is zero here; the instructions leave it
 * undefined, so no kernel may read it) ---- */
EMU_FN emu_v512 emu_from_bytes(const void *p, size_t n) { emu_v512 r = emu_zero(); memcpy(&r, p, n); return r; }
EMU_FN emu_v512 emu_castsi256_si512(__m256i a) { return emu_from_bytes(&a, 32); }
EMU_FN __m256i emu_castsi512_si256(emu_v512 a) { __m256i r; memcpy(&r, &a, 32); return r; }
EMU_FN __m128i emu_castsi512_si128(emu_v512 a) { __m128i r; memcpy(&r, &a, 16); return r; }
EMU_FN __m256 emu_castps512_ps256(emu_v512 a) { __m256 r; memcpy(&r, &a, 32); return r; }
EMU_FN emu_v512 emu_castps128_ps512(__m128 a) { return emu_from_bytes(&a, 16); }
EMU_FN emu_v512 emu_castps256_ps512(__m256 a) { return emu_from_bytes(&a, 32); }
EMU_FN __m256i emu_extracti64x4_epi64(emu_v512 a, int k) { __m256i r; memcpy(&r, &a.b[32 * (k & 1)], 32); return r; }
EMU_FN __m256 emu_extractf32x8_ps(emu_v512 a, int k) { __m256 r; memcpy(&r, &a.b[32 * (k & 1)], 32); return r; }
EMU_FN emu_v512 emu_inserti64x4(emu_v512 a, __m256i b, int k) { memcpy(&a.b[32 * (k & 1)], &b, 32); return a; }
EMU_FN emu_v512 emu_insertf32x8(emu_v512 a, __m256 b, int k) { memcpy(&a.b[32 * (k & 1)], &b, 32); return a; }
EMU_FN emu_v512 emu_broadcast_i32x4(__m128i a) { emu_v512 r; for (int k = 0; k < 4; k++) memcpy(&r.b[16 * k], &a, 16); return r; }
EMU_FN emu_v512 emu_broadcast_i64x4(__m256i a) { emu_v512 r; for (int k = 0; k < 2; k++) memcpy(&r.b[32 * k], &a, 32); return r; }
EMU_FN emu_v512 emu_broadcast_f32x8(__m256 a) { emu_v512 r; for (int k = 0; k < 2; k++) memcpy(&r.b[32 * k], &a, 32); return r; }
EMU_FN emu_v512 emu_broadcastss_ps(__m128 a) { return emu_set1_ps(_mm_cvtss_f32(a)); }

#undef _mm512_setzero_si512
#define _mm512_setzero_si512 emu_zero
#undef _mm512_setzero_ps
#define _mm512_setzero_ps emu_zero
#undef _mm512_set1_epi8
#define _mm512_set1_epi8 emu_set1_epi8
#undef _mm512_set1_epi16
#define _mm512_set1_epi16 emu_set1_epi16
#undef _mm512_set1_epi32
#define _mm512_set1_epi32 emu_set1_epi32
#undef _mm512_set1_ps
#define _mm512_set1_ps emu_set1_ps
#undef _mm512_set_epi64
#define _mm512_set_epi64 emu_set_epi64
#undef _mm512_set_epi16
#define _mm512_set_epi16 emu_set_epi16
#undef _mm512_setr_epi32
#define _mm512_setr_epi32 emu_setr_epi32
#undef _mm512_loadu_si512
#define _mm512_loadu_si512 emu_loadu
#undef _mm512_loadu_ps
#define _mm512_loadu_ps emu_loadu
#undef _mm512_maskz_loadu_ps
#define _mm512_maskz_loadu_ps emu_maskz_loadu_ps
#undef _mm512_storeu_ps
#define _mm512_storeu_ps emu_storeu_ps
#undef _mm512_storeu_si512
#define _mm512_storeu_si512 emu_storeu_ps
#undef _mm512_mask_storeu_ps
#define _mm512_mask_storeu_ps emu_mask_storeu_ps
#undef _mm512_add_epi16
#define _mm512_add_epi16 emu_add_epi16
#undef _mm512_sub_epi16
#define _mm512_sub_epi16 emu_sub_epi16
#undef _mm512_add_epi32
#define _mm512_add_epi32 emu_add_epi32
#undef _mm512_sub_epi32
#define _mm512_sub_epi32 emu_sub_epi32
#undef _mm512_mullo_epi32
#define _mm512_mullo_epi32 emu_mullo_epi32
#undef _mm512_and_si512
#define _mm512_and_si512 emu_and
#undef _mm512_or_si512
#define _mm512_or_si512 emu_or
#undef _mm512_xor_si512
#define _mm512_xor_si512 emu_xor
#undef _mm512_srli_epi16
#define _mm512_srli_epi16 emu_srli_epi16
#undef _mm512_srlv_epi16
#define _mm512_srlv_epi16 emu_srlv_epi16
#undef _mm512_sllv_epi16
#define _mm512_sllv_epi16 emu_sllv_epi16
#undef _mm512_srlv_epi64
#define _mm512_srlv_epi64 emu_srlv_epi64
#undef _mm512_maddubs_epi16
#define _mm512_maddubs_epi16 emu_maddubs_epi16
#undef _mm512_madd_epi16
#define _mm512_madd_epi16 emu_madd_epi16
#undef _mm512_dpwssd_epi32
#define _mm512_dpwssd_epi32 emu_dpwssd_epi32
#undef _mm512_dpbusd_epi32
#define _mm512_dpbusd_epi32 emu_dpbusd_epi32
#undef _mm256_dpbusd_epi32
#define _mm256_dpbusd_epi32 emu256_dpbusd_epi32
#undef _mm512_add_ps
#define _mm512_add_ps emu_add_ps
#undef _mm512_sub_ps
#define _mm512_sub_ps emu_sub_ps
#undef _mm512_mul_ps
#define _mm512_mul_ps emu_mul_ps
#undef _mm512_fmadd_ps
#define _mm512_fmadd_ps emu_fmadd_ps
#undef _mm512_cvtepi32_ps
#define _mm512_cvtepi32_ps emu_cvtepi32_ps
#undef _mm512_shuffle_epi32
#define _mm512_shuffle_epi32(a, imm) emu_shuffle_epi32((a), (int)(imm))
#undef _mm512_shuffle_ps
#define _mm512_shuffle_ps emu_shuffle_ps
#undef _mm512_shuffle_i64x2
#define _mm512_shuffle_i64x2 emu_shuffle_x128
#undef _mm512_shuffle_f32x4
#define _mm512_shuffle_f32x4 emu_shuffle_x128
#undef _mm512_permutexvar_epi16
#define _mm512_permutexvar_epi16 emu_permutexvar_epi16
#undef _mm512_permutexvar_epi32
#define _mm512_permutexvar_epi32 emu_permutexvar_epi32
#undef _mm512_permutexvar_ps
#define _mm512_permutexvar_ps emu_permutexvar_ps
#undef _mm512_castsi256_si512
#define _mm512_castsi256_si512 emu_castsi256_si512
#undef _mm512_castsi512_si256
#define _mm512_castsi512_si256 emu_castsi512_si256
#undef _mm512_castsi512_si128
#define _mm512_castsi512_si128 emu_castsi512_si128
#undef _mm512_castps512_ps256
#define _mm512_castps512_ps256 emu_castps512_ps256
#undef _mm512_castps128_ps512
#define _mm512_castps128_ps512 emu_castps128_ps512
#undef _mm512_castps256_ps512
#define _mm512_castps256_ps512 emu_castps256_ps512
#undef _mm512_extracti64x4_epi64
#define _mm512_extracti64x4_epi64 emu_extracti64x4_epi64
#undef _mm512_extractf32x8_ps
#define _mm512_extractf32x8_ps emu_extractf32x8_ps
#undef _mm512_inserti64x4
#define _mm512_inserti64x4 emu_inserti64x4
#undef _mm512_insertf32x8
#define _mm512_insertf32x8 emu_insertf32x8
#undef _mm512_broadcast_i32x4
#define _mm512_broadcast_i32x4 emu_broadcast_i32x4
#undef _mm512_broadcast_i64x4
#define _mm512_broadcast_i64x4 emu_broadcast_i64x4
#undef _mm512_broadcast_f32x8
#define _mm512_broadcast_f32x8 emu_broadcast_f32x8
#undef _mm512_broadcastss_ps
#define _mm512_broadcastss_ps emu_broadcastss_ps
#endif
