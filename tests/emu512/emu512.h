/* Plain-C stand-ins for the AVX-512 intrinsics of cython_kernels/fs_iq4.c, so that its AVX-512 code
 * can be compiled and run on a CPU without AVX-512 (tests/test_avx512_emulated.py). Force-included
 * (gcc -include) before the kernel file, with FS_AVX512_FN set to the AVX2 target: the kernel's
 * AVX2 intrinsics stay real, every _mm512_* name used there is renamed to a function below that does
 * what Intel's Intrinsics Guide says of it, lane by lane (integer lanes wrap as the instructions do;
 * float lanes round once per operation, fmaf for the fused one). Add a stand-in here before using a
 * new AVX-512 intrinsic in that file; an unknown one fails to compile (the types differ).
 *
 * This checks the AVX-512 code's logic (data layout, loop bounds, masks, integer identities), not the
 * compiler's AVX-512 code generation: tests/test_cpu_variants.py checks that on AVX-512 hardware. */
#ifndef FS_EMU512_H
#define FS_EMU512_H
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct { int32_t i[16]; } emu_m512i;
typedef struct { float f[16]; } emu_m512;
#define __m512i emu_m512i
#define __m512 emu_m512

static inline emu_m512i emu_setzero_si512(void) { emu_m512i r; memset(&r, 0, sizeof r); return r; }
static inline emu_m512 emu_setzero_ps(void) { emu_m512 r; memset(&r, 0, sizeof r); return r; }
static inline emu_m512i emu_set1_epi32(int a) { emu_m512i r; for (int l = 0; l < 16; l++) r.i[l] = a; return r; }
static inline emu_m512 emu_set1_ps(float a) { emu_m512 r; for (int l = 0; l < 16; l++) r.f[l] = a; return r; }
static inline emu_m512i emu_loadu_si512(const void *p) { emu_m512i r; memcpy(&r, p, sizeof r); return r; }
static inline emu_m512 emu_loadu_ps(const float *p) { emu_m512 r; memcpy(&r, p, sizeof r); return r; }

static inline emu_m512i emu_add_epi32(emu_m512i a, emu_m512i b) {
    for (int l = 0; l < 16; l++) a.i[l] = (int32_t)((uint32_t)a.i[l] + (uint32_t)b.i[l]);
    return a;
}
static inline emu_m512i emu_mullo_epi32(emu_m512i a, emu_m512i b) { /* low 32 bits of the product */
    for (int l = 0; l < 16; l++) a.i[l] = (int32_t)(uint32_t)((int64_t)a.i[l] * (int64_t)b.i[l]);
    return a;
}
/* vpdpbusd: per lane, src + the 4 products of a's unsigned bytes with b's signed bytes (wrapping). */
static inline emu_m512i emu_dpbusd_epi32(emu_m512i src, emu_m512i a, emu_m512i b) {
    for (int l = 0; l < 16; l++) {
        uint8_t ua[4];
        int8_t sb[4];
        memcpy(ua, &a.i[l], 4);
        memcpy(sb, &b.i[l], 4);
        int32_t s = 0;
        for (int k = 0; k < 4; k++) s += (int32_t)ua[k] * (int32_t)sb[k];
        src.i[l] = (int32_t)((uint32_t)src.i[l] + (uint32_t)s);
    }
    return src;
}
static inline emu_m512 emu_cvtepi32_ps(emu_m512i a) { /* round to nearest even, as MXCSR's default */
    emu_m512 r;
    for (int l = 0; l < 16; l++) r.f[l] = (float)a.i[l];
    return r;
}
static inline emu_m512 emu_mul_ps(emu_m512 a, emu_m512 b) {
    for (int l = 0; l < 16; l++) a.f[l] = a.f[l] * b.f[l];
    return a;
}
static inline emu_m512 emu_fmadd_ps(emu_m512 a, emu_m512 b, emu_m512 c) {
    for (int l = 0; l < 16; l++) c.f[l] = fmaf(a.f[l], b.f[l], c.f[l]);
    return c;
}
static inline void emu_mask_storeu_ps(float *p, __mmask16 m, emu_m512 a) {
    for (int l = 0; l < 16; l++)
        if ((m >> l) & 1) p[l] = a.f[l];
}

#define _mm512_setzero_si512 emu_setzero_si512
#define _mm512_setzero_ps emu_setzero_ps
#define _mm512_set1_epi32 emu_set1_epi32
#define _mm512_set1_ps emu_set1_ps
#define _mm512_loadu_si512 emu_loadu_si512
#define _mm512_loadu_ps emu_loadu_ps
#define _mm512_add_epi32 emu_add_epi32
#define _mm512_mullo_epi32 emu_mullo_epi32
#define _mm512_dpbusd_epi32 emu_dpbusd_epi32
#define _mm512_cvtepi32_ps emu_cvtepi32_ps
#define _mm512_mul_ps emu_mul_ps
#define _mm512_fmadd_ps emu_fmadd_ps
#define _mm512_mask_storeu_ps emu_mask_storeu_ps
#endif
