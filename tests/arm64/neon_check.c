/* The arm64 NEON (+ dot-product) kernels against the portable ones and against float64, and the choice
 * of CPU variant, cross-compiled for aarch64 and run under qemu-user by tests/test_arm64.py.
 *
 *   neon_check EXPECTED       EXPECTED: the variant fs_vecdot_impl() must report ("neon" or "portable")
 *
 * Prints one line per kernel and "ok" at the end; exits 1 on any failure. What it checks:
 *
 * 1. The choice: fs_vecdot_impl() == EXPECTED (the test runs it with -cpu max and cortex-a76, which have
 *    the dot-product extension, and cortex-a53, which does not, and with FIRESIDE_CPU set); NEON falls
 *    back to portable, never to an x86 entry (on arm64 every x86 entry of the traits table is NULL);
 *    and the dispatched products (fs_vec_dot_rows, _gemm, _norepack, _tile) give bit for bit the
 *    kernel of the chosen variant, or the portable one for a type without a NEON kernel.
 * 2. Where the CPU has the extension (the NEON kernels would raise SIGILL elsewhere, which qemu
 *    enforces), for every NEON kernel on random blocks (random quants including -128, random f16
 *    scales, zero scales, activations quantized by fs_quantize_act with zero and outlier blocks,
 *    1 .. 64 blocks per row so that the odd last block of the two-block loops is covered, rows at
 *    unaligned strides):
 *    a. the row kernels (ggml_vec_dot_* arithmetic) equal bit for bit a scalar transcription, written
 *       here from ggml-cpu/arch/arm/quants.c, of ggml's NEON float operations (lanes of 4 exact int32
 *       sums, per-lane FMA into two accumulators, (l0 + l1) + (l2 + l3) reductions, the scalar tail);
 *       the repacked Q4_0 / Q4_K products (gemv, gemm) equal the portable kernels bit for bit (exact
 *       integer sums by SDOT, then the same float operations);
 *    b. |neon - portable| <= 2 (k + 1) u S and |kernel - exact| <= (k + 1) u S for the NEON and the
 *       portable kernel, where u = 2^-24, S = sum over the elements of |weight term| * |activation|
 *       (the weight's scale * quant and min terms taken separately), and exact = the float64 dot of
 *       the dequantized weights (fs_dequant_*, float32 as gguf-py) with the dequantized activations
 *       (for Q8_1 plus the difference between the stored f16 s and d * sum(qs), which the kernels use).
 *       The bound is the classic one for recursive float summation, |computed - exact| <= k u S /
 *       (1 - k u), where k = 2 nb + 12 (nb blocks per row) bounds the roundings that any partial sum
 *       goes through in either kernel (a scale product, a product with the int sum, one per step of
 *       its accumulator, the horizontal adds and the final adds), plus u S for the float32 rounding of
 *       the dequantized weights in `exact`. NEON and portable are not bit-identical because ggml's
 *       NEON code sums in 2 x 4 float lanes (32-element types) or in one running sum per row (K-quants)
 *       where its generic code keeps one running sum (32-element types) or 8 lanes (K-quants).
 *       The largest observed |difference| / (u S) is printed.
 *
 * What cannot be measured here: speed on real arm64 hardware (qemu-user's timings mean nothing).
 * NEON_CHECK_INJECT=1 adds one ulp to one NEON result, to show that the checks fail (the test runs it).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_families.h"
#include "fs_traits.h"
#include "fs_vecdot.h"

#if !defined(__aarch64__)
#error "neon_check is an arm64 test (tests/test_arm64.py cross-compiles it)"
#endif

#define U (1.0 / 16777216.0) /* 2^-24, the unit roundoff of float32 */
#define MAX_NB 64
#define MAX_N (MAX_NB * 32)
#define ROWS 5
#define PAD 3
#define ROW_MAX (MAX_NB * 36 + PAD)

static int failures;
static int inject;

static void fail(const char *what, const char *kernel, int nb, int trial, int row, double got, double want) {
    if (failures < 40)
        fprintf(stderr, "FAIL %s: %s nb=%d trial=%d row=%d got %.9g want %.9g\n", what, kernel, nb, trial, row, got,
                want);
    failures++;
}

/* ---- random numbers (xorshift64*) ------------------------------------------------------------ */

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint32_t rnd32(void) {
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (uint32_t)((rng * 0x2545F4914F6CDD1Dull) >> 32);
}

static double rnd_unit(void) { return (rnd32() + 0.5) / 4294967296.0; } /* (0, 1) */

static double rnd_normal(void) { return sqrt(-2.0 * log(rnd_unit())) * cos(6.283185307179586 * rnd_unit()); }

/* A random f16 scale: mostly |d| in [2^-14, 2^-4] with either sign, sometimes 0 or a subnormal. */
static uint16_t rnd_scale(void) {
    const uint32_t r = rnd32() % 64;
    if (r == 0) return 0;
    if (r == 1) return (uint16_t)(1 + rnd32() % 0x3FF); /* subnormal */
    const float v = (float)ldexp(1.0 + rnd_unit(), -4 - (int)(rnd32() % 11));
    return fp32_to_fp16(rnd32() & 1 ? -v : v);
}

static float h2f(const uint8_t *p) { return fp16_to_fp32((uint16_t)(p[0] | p[1] << 8)); }

static float f32_at(const uint8_t *p) {
    float f;
    memcpy(&f, p, sizeof f);
    return f;
}

/* ---- the types: layouts written out here from ggml-common.h (independently of the kernels) ---- */

typedef struct {
    const char *name;
    int type, act;       /* GGML type, activation format (FS_Q8_0, 9 = Q8_1, 15 = Q8_K) */
    int qk, bytes;       /* elements and bytes per block */
    int f16[2], n_f16;   /* offsets of the f16 scale fields */
} type_info;

enum { ACT_Q8_0 = 8, ACT_Q8_1 = 9, ACT_Q8_K = 15 };

static const type_info T_Q4_0 = {"Q4_0", FS_Q4_0, ACT_Q8_0, 32, 18, {0, 0}, 1};
static const type_info T_Q4_1 = {"Q4_1", FS_Q4_1, ACT_Q8_1, 32, 20, {0, 2}, 2};
static const type_info T_Q5_0 = {"Q5_0", FS_Q5_0, ACT_Q8_0, 32, 22, {0, 0}, 1};
static const type_info T_Q5_1 = {"Q5_1", FS_Q5_1, ACT_Q8_1, 32, 24, {0, 2}, 2};
static const type_info T_Q8_0 = {"Q8_0", FS_Q8_0, ACT_Q8_0, 32, 34, {0, 0}, 1};
static const type_info T_Q4_K = {"Q4_K", FS_Q4_K, ACT_Q8_K, 256, 144, {0, 2}, 2};
static const type_info T_Q6_K = {"Q6_K", FS_Q6_K, ACT_Q8_K, 256, 210, {208, 0}, 1};

static int act_bytes(int act) { return act == ACT_Q8_0 ? 34 : act == ACT_Q8_1 ? 36 : 292; }
static int act_qk(int act) { return act == ACT_Q8_K ? 256 : 32; }
static int act_qs(int act) { return act == ACT_Q8_0 ? 2 : 4; }

/* The integer quants of a 32-element block (signed for Q4_0 / Q5_0 / Q8_0, 0..15 or 0..31 for Q4_1 /
 * Q5_1) and its scale d and min m (0 where none). */
static void decode_b32(const type_info *t, const uint8_t *b, int q[32], float *d, float *m) {
    *d = h2f(b);
    *m = t->n_f16 == 2 ? h2f(b + 2) : 0.0f;
    if (t->type == FS_Q8_0) {
        for (int j = 0; j < 32; j++) q[j] = (int8_t)b[2 + j];
        return;
    }
    const int has_qh = t->type == FS_Q5_0 || t->type == FS_Q5_1;
    const uint8_t *qs = b + 2 * t->n_f16 + (has_qh ? 4 : 0);
    uint32_t qh = 0;
    if (has_qh) memcpy(&qh, b + 2 * t->n_f16, 4);
    for (int j = 0; j < 16; j++) {
        int lo = qs[j] & 15, hi = qs[j] >> 4;
        if (has_qh) {
            lo |= (int)((qh >> j) & 1) << 4;
            hi |= (int)((qh >> (j + 16)) & 1) << 4;
        }
        const int off = t->type == FS_Q4_0 ? 8 : t->type == FS_Q5_0 ? 16 : 0;
        q[j] = lo - off;
        q[j + 16] = hi - off;
    }
}

/* get_scale_min_k4 (ggml-quants.c), written the way the dequantizer states it. */
static void q4k_scale_min(const uint8_t *s, int j, int *sc, int *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        *mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* Q4_K: q[k] = 0..15, sub-block k / 32. */
static void decode_q4k(const uint8_t *b, int q[256], int sc[8], int mn[8]) {
    for (int j = 0; j < 8; j++) q4k_scale_min(b + 4, j, &sc[j], &mn[j]);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = b[16 + 32 * c + l] & 15;
            q[64 * c + 32 + l] = b[16 + 32 * c + l] >> 4;
        }
}

/* Q6_K: q[k] = 0..63 (the value is q - 32), int8 scale of group k / 16. */
static void decode_q6k(const uint8_t *b, int q[256], int sc[16]) {
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
            int *qq = q + 128 * h;
            qq[l] = (ql[l] & 15) | ((qh[l] & 3) << 4);
            qq[l + 32] = (ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4);
            qq[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
            qq[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
        }
    for (int j = 0; j < 16; j++) sc[j] = (int8_t)b[192 + j];
}

/* ---- scalar transcriptions of ggml's NEON float operations (ggml-cpu/arch/arm/quants.c) ---------- */

static float hsum4(const float v[4]) { return (v[0] + v[1]) + (v[2] + v[3]); } /* vaddvq_f32: FADDP, FADDP */

/* ggml_vec_dot_{q4_0,q5_0,q8_0}_q8_0 and {q4_1,q5_1}_q8_1, __ARM_NEON, nrc == 1. */
static float model_b32(const type_info *t, const uint8_t *x, const uint8_t *y, int nb) {
    const int q81 = t->act == ACT_Q8_1, yb = act_bytes(t->act), yq = act_qs(t->act);
    float acc[2][4] = {{0}}, summs[2] = {0.0f, 0.0f};
    int ib = 0;
    for (; ib + 1 < nb; ib += 2) {
        for (int k = 0; k < 2; k++) {
            const uint8_t *xb = x + (ib + k) * t->bytes, *ybk = y + (ib + k) * yb;
            int q[32];
            float d, m;
            decode_b32(t, xb, q, &d, &m);
            const float dd = d * h2f(ybk);
            for (int l = 0; l < 4; l++) {
                int lane = 0;
                for (int j = 4 * l; j < 4 * l + 4; j++)
                    lane += q[j] * (int8_t)ybk[yq + j] + q[j + 16] * (int8_t)ybk[yq + j + 16];
                acc[k][l] = fmaf((float)lane, dd, acc[k][l]); /* vmlaq_n_f32, fused (fs_kernel.h) */
            }
        }
        if (q81) {
            const float ms0 = h2f(x + ib * t->bytes + 2) * h2f(y + ib * yb + 2);
            const float ms1 = h2f(x + (ib + 1) * t->bytes + 2) * h2f(y + (ib + 1) * yb + 2);
            if (t->type == FS_Q4_1) summs[0] += ms0 + ms1;
            else {
                summs[0] += ms0;
                summs[1] += ms1;
            }
        }
    }
    float sumf = hsum4(acc[0]) + hsum4(acc[1]);
    if (q81) {
        sumf += summs[0];
        if (t->type == FS_Q5_1) sumf += summs[1];
    }
    if (ib < nb) { /* the generic code for the last block */
        const uint8_t *xb = x + ib * t->bytes, *ybk = y + ib * yb;
        int q[32];
        float d, m;
        decode_b32(t, xb, q, &d, &m);
        int sumi = 0;
        for (int j = 0; j < 32; j++) sumi += q[j] * (int8_t)ybk[yq + j];
        const float dy = h2f(ybk);
        if (t->type == FS_Q4_0) sumf += (float)sumi * d * dy;
        else if (t->type == FS_Q5_0) sumf += (d * dy) * (float)sumi;
        else if (t->type == FS_Q8_0) sumf += (float)sumi * (d * dy);
        else sumf += (d * dy) * (float)sumi + m * h2f(ybk + 2);
    }
    return sumf;
}

static int16_t bsum_at(const uint8_t *y, int j) {
    int16_t v;
    memcpy(&v, y + 260 + 2 * j, 2);
    return v;
}

/* ggml_vec_dot_q4_K_q8_K, __ARM_NEON without SVE. */
static float model_q4k(const uint8_t *x, const uint8_t *y, int nb) {
    float sumf = 0.0f;
    for (int i = 0; i < nb; i++, x += 144, y += 292) {
        int q[256], sc[8], mn[8];
        decode_q4k(x, q, sc, mn);
        const float yd = f32_at(y);
        const float d = yd * h2f(x), dmin = yd * h2f(x + 2);
        int mins = 0;
        for (int j = 0; j < 8; j++) mins += mn[j] * (bsum_at(y, 2 * j) + bsum_at(y, 2 * j + 1));
        sumf -= dmin * (float)mins;
        int isum = 0;
        for (int k = 0; k < 256; k++) isum += sc[k / 32] * q[k] * (int8_t)y[4 + k];
        sumf += d * (float)isum;
    }
    return sumf;
}

/* ggml_vec_dot_q6_K_q8_K, __ARM_NEON without SVE: sum += d_all * y.d * (isum - 32 * isum_mins). */
static float model_q6k(const uint8_t *x, const uint8_t *y, int nb) {
    float sum = 0.0f;
    for (int i = 0; i < nb; i++, x += 210, y += 292) {
        int q[256], sc[16];
        decode_q6k(x, q, sc);
        int isum = 0, mins = 0;
        for (int k = 0; k < 256; k++) isum += sc[k / 16] * q[k] * (int8_t)y[4 + k];
        for (int j = 0; j < 16; j++) mins += sc[j] * bsum_at(y, j);
        sum += h2f(x + 208) * f32_at(y) * (float)(isum - 32 * mins);
    }
    return sum;
}

static float model_row(const type_info *t, const uint8_t *x, const uint8_t *y, int nb) {
    if (t->type == FS_Q4_K) return model_q4k(x, y, nb);
    if (t->type == FS_Q6_K) return model_q6k(x, y, nb);
    return model_b32(t, x, y, nb);
}

/* ---- float64 references ---------------------------------------------------------------------- */

/* exact: the float64 dot of the dequantized weights (fs_dequant_*) and activations; S: the sum of
 * |weight term| * |activation| over the elements, the scale of the rounding error bound. */
static void reference(const type_info *t, const uint8_t *x, const uint8_t *y, int nb, double *exact, double *S) {
    const int n = nb * t->qk, yb = act_bytes(t->act), yqk = act_qk(t->act), yq = act_qs(t->act);
    float w[MAX_N];
    fs_traits(t->type)->dequant(x, w, nb);
    double a[MAX_N], e = 0.0, s = 0.0;
    for (int i = 0; i < n; i++) {
        const uint8_t *yb_i = y + (i / yqk) * yb;
        const double dy = t->act == ACT_Q8_K ? (double)f32_at(yb_i) : (double)h2f(yb_i);
        a[i] = dy * (int8_t)yb_i[yq + i % yqk];
        e += (double)w[i] * a[i];
    }
    for (int ib = 0; ib < nb; ib++) {
        const uint8_t *xb = x + ib * t->bytes;
        const double *ab = a + ib * t->qk;
        if (t->type == FS_Q4_K) {
            int q[256], sc[8], mn[8];
            decode_q4k(xb, q, sc, mn);
            for (int k = 0; k < 256; k++)
                s += (fabs((double)h2f(xb) * sc[k / 32] * q[k]) + fabs((double)h2f(xb + 2) * mn[k / 32])) * fabs(ab[k]);
        } else if (t->type == FS_Q6_K) {
            int q[256], sc[16];
            decode_q6k(xb, q, sc);
            for (int k = 0; k < 256; k++) s += fabs((double)h2f(xb + 208) * sc[k / 16] * (q[k] - 32)) * fabs(ab[k]);
        } else {
            int q[32];
            float d, m;
            decode_b32(t, xb, q, &d, &m);
            for (int j = 0; j < 32; j++) s += (fabs((double)d * q[j]) + fabs((double)m)) * fabs(ab[j]);
            if (t->act == ACT_Q8_1) {
                /* the kernels take m * s with the block's stored f16 s, not m * d * sum(qs) */
                const uint8_t *yb_b = y + ib * yb;
                int sum_q = 0;
                for (int j = 0; j < 32; j++) sum_q += (int8_t)yb_b[4 + j];
                const double s_stored = h2f(yb_b + 2);
                e += (double)m * (s_stored - (double)h2f(yb_b) * sum_q);
                s += fabs((double)m * s_stored);
            }
        }
    }
    *exact = e;
    *S = s;
}

/* ---- random rows ----------------------------------------------------------------------------- */

/* ROWS weight rows of nb blocks at stride rb, and one activation row quantized by fs_quantize_act. */
static void make_case(const type_info *t, int nb, size_t rb, uint8_t *w, uint8_t *act, int trial) {
    for (size_t i = 0; i < ROWS * rb; i++) w[i] = (uint8_t)rnd32();
    for (int r = 0; r < ROWS; r++)
        for (int ib = 0; ib < nb; ib++) {
            uint8_t *b = w + r * rb + (size_t)ib * t->bytes;
            for (int f = 0; f < t->n_f16; f++) {
                const uint16_t h = trial == 1 ? 0 : rnd_scale(); /* trial 1: all scales zero */
                b[t->f16[f]] = (uint8_t)h;
                b[t->f16[f] + 1] = (uint8_t)(h >> 8);
            }
        }
    const int n = nb * t->qk, yqk = act_qk(t->act);
    float x[MAX_N];
    const double big = trial % 3 == 2 ? 1000.0 : 1.0;
    for (int i = 0; i < n; i++) x[i] = (float)(big * rnd_normal());
    if (trial % 4 == 3) x[rnd32() % n] = (float)(50.0 * big); /* an outlier */
    if (trial % 5 == 4) memset(x + (rnd32() % (n / yqk)) * yqk, 0, sizeof(float) * yqk); /* a zero block */
    fs_quantize_act(t->type, x, act, n);
}

/* ---- the checks ------------------------------------------------------------------------------ */

typedef struct {
    const char *name;
    const type_info *t;
    fs_rows_fn neon, portable;
    int exact_vs_portable; /* repacked products: NEON == portable bit for bit */
} kernel_case;

static int same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

static void check_kernel(const kernel_case *kc) {
    const type_info *t = kc->t;
    static const int nbs32[] = {1, 2, 3, 7, 8, 33, 64}, nbsK[] = {1, 2, 3, 5, 8};
    const int *nbs = t->qk == 32 ? nbs32 : nbsK;
    const int n_nbs = t->qk == 32 ? (int)(sizeof nbs32 / sizeof nbs32[0]) : (int)(sizeof nbsK / sizeof nbsK[0]);
    double worst_np = 0.0, worst_ne = 0.0;
    int checked = 0;
    const int failures_before = failures;
    static uint8_t w[ROWS * ROW_MAX * 8], act[MAX_NB * 292];
    for (int c = 0; c < n_nbs; c++) {
        const int nb = nbs[c], n = nb * t->qk;
        const size_t rb = (size_t)nb * t->bytes + (c % 2 ? PAD : 0); /* odd cases: unaligned rows */
        const double k = 2.0 * nb + 12.0;
        for (int trial = 0; trial < 12; trial++) {
            make_case(t, nb, rb, w, act, trial);
            float neon[ROWS], port[ROWS];
            kc->neon(w, rb, ROWS, act, n, neon);
            kc->portable(w, rb, ROWS, act, n, port);
            if (inject && c == 2 && trial == 5) neon[3] = nextafterf(neon[3], INFINITY);
            for (int r = 0; r < ROWS; r++) {
                const uint8_t *x = w + r * rb;
                if (!isfinite(neon[r]) || !isfinite(port[r])) fail("not finite", kc->name, nb, trial, r, neon[r], port[r]);
                if (kc->exact_vs_portable) {
                    if (!same_bits(neon[r], port[r])) fail("neon != portable (bits)", kc->name, nb, trial, r, neon[r], port[r]);
                } else {
                    const float m = model_row(t, x, act, nb);
                    if (!same_bits(neon[r], m)) fail("neon != ggml NEON model (bits)", kc->name, nb, trial, r, neon[r], m);
                }
                double exact, S;
                reference(t, x, act, nb, &exact, &S);
                const double tol = (k + 1.0) * U * S;
                if (!(fabs((double)neon[r] - exact) <= tol)) fail("|neon - exact| > bound", kc->name, nb, trial, r, neon[r], exact);
                if (!(fabs((double)port[r] - exact) <= tol)) fail("|portable - exact| > bound", kc->name, nb, trial, r, port[r], exact);
                if (!(fabs((double)neon[r] - (double)port[r]) <= 2.0 * tol))
                    fail("|neon - portable| > bound", kc->name, nb, trial, r, neon[r], port[r]);
                if (S > 0) {
                    const double np = fabs((double)neon[r] - (double)port[r]) / (U * S);
                    const double ne = fabs((double)neon[r] - exact) / (U * S);
                    if (np > worst_np) worst_np = np;
                    if (ne > worst_ne) worst_ne = ne;
                }
                checked++;
            }
        }
    }
    printf("%-12s %4d rows: %s; max |neon - portable| = %.3g u S, max |neon - exact| = %.3g u S%s\n", kc->name,
           checked, kc->exact_vs_portable ? "bits == portable" : "bits == ggml NEON model", worst_np, worst_ne,
           failures > failures_before ? " FAILED" : "");
}

/* The dispatched products give the chosen variant's kernel bit for bit. */
typedef void (*dispatch_fn)(int, const uint8_t *, size_t, int64_t, const void *, int64_t, float *);

static void check_dispatch(const char *what, dispatch_fn f, const type_info *t, fs_rows_fn want_fn) {
    static uint8_t w[ROWS * ROW_MAX * 8], act[MAX_NB * 292];
    const int nb = t->qk == 32 ? 7 : 3, n = nb * t->qk;
    const size_t rb = (size_t)nb * t->bytes;
    for (int trial = 0; trial < 4; trial++) {
        make_case(t, nb, rb, w, act, trial + 2);
        float got[ROWS], want[ROWS];
        f(t->type, w, rb, ROWS, act, n, got);
        want_fn(w, rb, ROWS, act, n, want);
        for (int r = 0; r < ROWS; r++)
            if (!same_bits(got[r], want[r])) fail(what, t->name, nb, trial, r, got[r], want[r]);
    }
}

static void tile_as_rows(int wtype, const uint8_t *w, size_t rb, int64_t n_rows, const void *act, int64_t n,
                         float *out) {
    /* fs_vec_dot_tile with one activation row repeated 3 times: each output row must be the rows kernel's */
    const size_t ab = fs_act_row_bytes(wtype, n);
    static uint8_t acts[3 * MAX_NB * 292];
    for (int k = 0; k < 3; k++) memcpy(acts + k * ab, act, ab);
    float o[3 * ROWS];
    fs_vec_dot_tile(wtype, w, rb, n_rows, acts, ab, 3, n, o, ROWS);
    for (int k = 1; k < 3; k++)
        for (int r = 0; r < n_rows; r++)
            if (!same_bits(o[k * ROWS + r], o[r])) fail("tile rows differ", "tile", (int)(n / 32), k, r, o[k * ROWS + r], o[r]);
    memcpy(out, o, sizeof(float) * (size_t)n_rows);
}

static void tile_dispatch(int wtype, const uint8_t *w, size_t rb, int64_t n_rows, const void *act, int64_t n,
                          float *out) {
    tile_as_rows(wtype, w, rb, n_rows, act, n, out);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: neon_check neon|portable\n");
        return 2;
    }
    inject = getenv("NEON_CHECK_INJECT") != NULL;
    const int best = fs_impl_best(), impl = fs_impl();
    printf("best %s, chosen %s (FIRESIDE_CPU=%s)\n", fs_impl_name(best), fs_vecdot_impl(),
           getenv("FIRESIDE_CPU") ? getenv("FIRESIDE_CPU") : "");
    if (strcmp(fs_vecdot_impl(), argv[1]) != 0) {
        fprintf(stderr, "FAIL: chose %s, expected %s\n", fs_vecdot_impl(), argv[1]);
        failures++;
    }

    /* the chains: NEON -> portable; no x86 variant runs, and the table has no x86 entries */
    if (fs_impl_fallback(FS_IMPL_NEON) != FS_IMPL_PORTABLE || fs_impl_fallback(FS_IMPL_PORTABLE) != -1) {
        fprintf(stderr, "FAIL: NEON must fall back to portable\n");
        failures++;
    }
    if (fs_impl_runs(FS_IMPL_AVX2) || fs_impl_runs(FS_IMPL_AVX512) || !fs_impl_runs(FS_IMPL_PORTABLE) ||
        fs_impl_runs(FS_IMPL_NEON) != (best == FS_IMPL_NEON)) {
        fprintf(stderr, "FAIL: fs_impl_runs\n");
        failures++;
    }
    for (int i = 0; i < fs_traits_count(); i++) {
        const fs_type_traits *tt = fs_traits_at(i);
        for (int v = FS_IMPL_AVX2; v <= FS_IMPL_AVX512; v++)
            if (tt->rows[v] || tt->tiles[v] || tt->gemv[v] || tt->gemm[v] || tt->gemm_tiles[v]) {
                fprintf(stderr, "FAIL: %s has an x86 kernel on arm64\n", tt->name);
                failures++;
            }
        if (tt->rows[FS_IMPL_PORTABLE] == NULL) {
            fprintf(stderr, "FAIL: %s has no portable rows\n", tt->name);
            failures++;
        }
    }

    const int neon = impl == FS_IMPL_NEON;
#define PICKED(x) (neon ? fs_rows_##x##_neon : fs_rows_##x##_c)
    check_dispatch("fs_vec_dot_rows_norepack", fs_vec_dot_rows_norepack, &T_Q4_0, PICKED(q4_0));
    check_dispatch("fs_vec_dot_rows_norepack", fs_vec_dot_rows_norepack, &T_Q4_1, PICKED(q4_1));
    check_dispatch("fs_vec_dot_rows_norepack", fs_vec_dot_rows_norepack, &T_Q5_0, PICKED(q5_0));
    check_dispatch("fs_vec_dot_rows_norepack", fs_vec_dot_rows_norepack, &T_Q5_1, PICKED(q5_1));
    check_dispatch("fs_vec_dot_rows_norepack", fs_vec_dot_rows_norepack, &T_Q8_0, PICKED(q8_0));
    check_dispatch("fs_vec_dot_rows_norepack", fs_vec_dot_rows_norepack, &T_Q4_K, PICKED(q4_k));
    check_dispatch("fs_vec_dot_rows_norepack", fs_vec_dot_rows_norepack, &T_Q6_K, PICKED(q6_k));
    check_dispatch("fs_vec_dot_rows", fs_vec_dot_rows, &T_Q8_0, PICKED(q8_0));
    check_dispatch("fs_vec_dot_rows", fs_vec_dot_rows, &T_Q6_K, PICKED(q6_k));
    check_dispatch("fs_vec_dot_rows (gemv)", fs_vec_dot_rows, &T_Q4_0, neon ? fs_gemv_q4_0_neon : fs_gemv_q4_0_c);
    check_dispatch("fs_vec_dot_rows (gemv)", fs_vec_dot_rows, &T_Q4_K, neon ? fs_gemv_q4_k_neon : fs_gemv_q4_k_c);
    check_dispatch("fs_vec_dot_rows_gemm", fs_vec_dot_rows_gemm, &T_Q4_K, neon ? fs_gemm_q4_k_neon : fs_gemm_q4_k_c);
    check_dispatch("fs_vec_dot_tile", tile_dispatch, &T_Q8_0, PICKED(q8_0));
    check_dispatch("fs_vec_dot_tile", tile_dispatch, &T_Q6_K, PICKED(q6_k));
    /* a type without a NEON kernel takes the portable one */
    static const type_info T_Q5_K = {"Q5_K", FS_Q5_K, ACT_Q8_K, 256, 176, {0, 2}, 2};
    check_dispatch("fallback to portable", fs_vec_dot_rows_norepack, &T_Q5_K, fs_rows_q5_k_c);
    printf("dispatch: %s kernels picked\n", neon ? "NEON" : "portable");

    if (best == FS_IMPL_NEON) {
        const kernel_case cases[] = {
            {"q4_0 rows", &T_Q4_0, fs_rows_q4_0_neon, fs_rows_q4_0_c, 0},
            {"q4_1 rows", &T_Q4_1, fs_rows_q4_1_neon, fs_rows_q4_1_c, 0},
            {"q5_0 rows", &T_Q5_0, fs_rows_q5_0_neon, fs_rows_q5_0_c, 0},
            {"q5_1 rows", &T_Q5_1, fs_rows_q5_1_neon, fs_rows_q5_1_c, 0},
            {"q8_0 rows", &T_Q8_0, fs_rows_q8_0_neon, fs_rows_q8_0_c, 0},
            {"q4_k rows", &T_Q4_K, fs_rows_q4_k_neon, fs_rows_q4_k_c, 0},
            {"q6_k rows", &T_Q6_K, fs_rows_q6_k_neon, fs_rows_q6_k_c, 0},
            {"q4_0 gemv", &T_Q4_0, fs_gemv_q4_0_neon, fs_gemv_q4_0_c, 1},
            {"q4_k gemv", &T_Q4_K, fs_gemv_q4_k_neon, fs_gemv_q4_k_c, 1},
            {"q4_k gemm", &T_Q4_K, fs_gemm_q4_k_neon, fs_gemm_q4_k_c, 1},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_kernel(&cases[i]);
    } else {
        printf("this CPU lacks the dot-product extension: the NEON kernels are not run\n");
    }

    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
