/* The GGML type traits table (see fs_traits.h) and the one-time choice of implementation.
 *
 * Block sizes: ggml/src/ggml-common.h (static_asserts on sizeof(block_*)), equal to gguf-py's
 * GGML_QUANT_SIZES (checked by tests/test_dequant.py). vec_dot_type: ggml/src/ggml-cpu/ggml-cpu.c
 * type_traits_cpu. Repack policy: ggml/src/ggml-cpu/repack.cpp, ggml_repack_get_optimal_repack_type
 * on x86 with AVX2 (Q4_0 -> q4_0_8x8_q8_0, Q4_K -> q4_K_8x8_q8_K, IQ4_NL -> iq4_nl_8x8_q8_0, MXFP4 ->
 * mxfp4_8x8_q8_0, each when ne[1] % 8 == 0; Q2_K's q2_K_8x8_q8_K needs AVX-512 and is not followed
 * here).
 */
#include "fs_traits.h"

#include <stdlib.h>
#include <string.h>

#include "fs_families.h"

#if FS_HAVE_AVX2_CODE
#include <cpuid.h>
#define AVX2(f) f
#else
#define AVX2(f) NULL
#endif
#if FS_HAVE_AVX512_CODE
#define AVX512(f) f
#else
#define AVX512(f) NULL
#endif
#if FS_HAVE_NEON_CODE
#define NEON(f) f
#else
#define NEON(f) NULL
#endif

/* Arrays of kernels per implementation (FS_IMPL_*); entries not named are NULL. */
#define NONE {NULL}
#define ROWS(x) {[FS_IMPL_PORTABLE] = fs_rows_##x##_c, [FS_IMPL_AVX2] = AVX2(fs_rows_##x##_avx2)}
#define ROWS_NEON(x) \
    {[FS_IMPL_PORTABLE] = fs_rows_##x##_c, [FS_IMPL_AVX2] = AVX2(fs_rows_##x##_avx2), \
     [FS_IMPL_NEON] = NEON(fs_rows_##x##_neon)}
#define TILES(x) {[FS_IMPL_AVX2] = AVX2(fs_tiles_##x##_avx2)}
#define TILES512(x) {[FS_IMPL_AVX2] = AVX2(fs_tiles_##x##_avx2), [FS_IMPL_AVX512] = AVX512(fs_tiles_##x##_avx512)}
#define GEMV(x) {[FS_IMPL_PORTABLE] = fs_gemv_##x##_c, [FS_IMPL_AVX2] = AVX2(fs_gemv_##x##_avx2)}

/* GGML type ids of the activation-only formats (ggml.h). */
#define FS_Q8_1_ID 9
#define FS_Q8_K_ID 15

/* type, name, block elements, block bytes, vec_dot_type, dequantize, rows, tiles: the type that
 * llama.cpp does not repack on x86. */
#define PLAIN(T, x, NAME, QK_, BYTES, ACT, TILES_) \
    {T, NAME, QK_, BYTES, ACT, fs_dequant_##x, ROWS(x), TILES_, 0, NONE, NONE, NONE, NONE}
/* The same with AVX-512 tile kernels and NEON row kernels. */
#define PLAIN512(T, x, NAME, QK_, BYTES, ACT) \
    {T, NAME, QK_, BYTES, ACT, fs_dequant_##x, ROWS_NEON(x), TILES512(x), 0, NONE, NONE, NONE, NONE}

static const fs_type_traits TRAITS[] = {
    PLAIN(FS_F32, f32, "F32", 1, 4, FS_F32, NONE),
    PLAIN(FS_F16, f16, "F16", 1, 2, FS_F16, NONE),
    {FS_Q4_0, "Q4_0", QK, B_Q4_0, FS_Q8_0, fs_dequant_q4_0, ROWS_NEON(q4_0), TILES512(q4_0), 8,
     {[FS_IMPL_PORTABLE] = fs_gemv_q4_0_c, [FS_IMPL_AVX2] = AVX2(fs_gemv_q4_0_avx2),
      [FS_IMPL_NEON] = NEON(fs_gemv_q4_0_neon)},
     NONE,
     {[FS_IMPL_AVX2] = AVX2(fs_gemm_tiles_q4_0_avx2), [FS_IMPL_AVX512] = AVX512(fs_gemm_tiles_q4_0_avx512)},
     {[FS_IMPL_AVX2] = AVX2(fs_gemm_tiles_q4_0_avx2), [FS_IMPL_AVX512] = AVX512(fs_gemm_tiles_q4_0_avx512)}},
    PLAIN512(FS_Q4_1, q4_1, "Q4_1", QK, B_Q4_1, FS_Q8_1_ID),
    PLAIN512(FS_Q5_0, q5_0, "Q5_0", QK, B_Q5_0, FS_Q8_0),
    PLAIN512(FS_Q5_1, q5_1, "Q5_1", QK, B_Q5_1, FS_Q8_1_ID),
    {FS_Q8_0, "Q8_0", QK, B_Q8_0, FS_Q8_0, fs_dequant_q8_0,
     {fs_rows_q8_0_c, AVX2(fs_rows_q8_0_avx2), AVX512(fs_rows_q8_0_avx512), NEON(fs_rows_q8_0_neon)},
     TILES512(q8_0), 0, NONE, NONE, NONE, NONE},
    PLAIN(FS_Q2_K, q2_k, "Q2_K", QK_K, 84, FS_Q8_K_ID, TILES(q2_k)),
    PLAIN(FS_Q3_K, q3_k, "Q3_K", QK_K, 110, FS_Q8_K_ID, TILES(q3_k)),
    {FS_Q4_K, "Q4_K", QK_K, B_Q4_K, FS_Q8_K_ID, fs_dequant_q4_k, ROWS_NEON(q4_k), NONE, 8,
     {[FS_IMPL_PORTABLE] = fs_gemv_q4_k_c, [FS_IMPL_AVX2] = AVX2(fs_gemv_q4_k_avx2), /* AVX-512 runs it too (fs_kquants.c) */
      [FS_IMPL_NEON] = NEON(fs_gemv_q4_k_neon)},
     {[FS_IMPL_PORTABLE] = fs_gemm_q4_k_c, [FS_IMPL_AVX2] = AVX2(fs_gemm_q4_k_avx2),
      [FS_IMPL_NEON] = NEON(fs_gemm_q4_k_neon)},
     {[FS_IMPL_AVX2] = AVX2(fs_gemm_tiles_q4_k_avx2), [FS_IMPL_AVX512] = AVX512(fs_gemm_tiles_q4_k_avx512)},
     {[FS_IMPL_AVX2] = AVX2(fs_gemv_tiles_q4_k_avx2)}},
    PLAIN(FS_Q5_K, q5_k, "Q5_K", QK_K, B_Q5_K, FS_Q8_K_ID, TILES512(q5_k)),
    {FS_Q6_K, "Q6_K", QK_K, B_Q6_K, FS_Q8_K_ID, fs_dequant_q6_k,
     {fs_rows_q6_k_c, AVX2(fs_rows_q6_k_avx2), AVX512(fs_rows_q6_k_avx512), NEON(fs_rows_q6_k_neon)},
     TILES512(q6_k), 0, NONE, NONE, NONE, NONE},
    PLAIN(FS_IQ2_XXS, iq2_xxs, "IQ2_XXS", QK_K, 66, FS_Q8_K_ID, NONE),
    PLAIN(FS_IQ2_XS, iq2_xs, "IQ2_XS", QK_K, 74, FS_Q8_K_ID, NONE),
    PLAIN(FS_IQ3_XXS, iq3_xxs, "IQ3_XXS", QK_K, 98, FS_Q8_K_ID, NONE),
    PLAIN(FS_IQ1_S, iq1_s, "IQ1_S", QK_K, 50, FS_Q8_K_ID, NONE),
    {FS_IQ4_NL, "IQ4_NL", QK, 18, FS_Q8_0, fs_dequant_iq4_nl, ROWS(iq4_nl), TILES(iq4_nl), 8, GEMV(iq4_nl), NONE,
     NONE, NONE},
    PLAIN(FS_IQ3_S, iq3_s, "IQ3_S", QK_K, 110, FS_Q8_K_ID, NONE),
    PLAIN(FS_IQ2_S, iq2_s, "IQ2_S", QK_K, 82, FS_Q8_K_ID, NONE),
    PLAIN(FS_IQ4_XS, iq4_xs, "IQ4_XS", QK_K, 136, FS_Q8_K_ID, TILES512(iq4_xs)),
    PLAIN(FS_IQ1_M, iq1_m, "IQ1_M", QK_K, 56, FS_Q8_K_ID, NONE),
    PLAIN(FS_BF16, bf16, "BF16", 1, 2, FS_BF16, NONE),
    PLAIN(FS_TQ1_0, tq1_0, "TQ1_0", QK_K, 54, FS_Q8_K_ID, NONE),
    PLAIN(FS_TQ2_0, tq2_0, "TQ2_0", QK_K, 66, FS_Q8_K_ID, NONE),
    {FS_MXFP4, "MXFP4", QK, 17, FS_Q8_0, fs_dequant_mxfp4, ROWS(mxfp4), TILES(mxfp4), 8, GEMV(mxfp4), NONE,
     {[FS_IMPL_AVX2] = AVX2(fs_gemm_tiles_mxfp4_avx2)}, NONE},
};

#define N_TRAITS ((int)(sizeof TRAITS / sizeof TRAITS[0]))

static const fs_act_traits ACT_TRAITS[] = {
    {FS_F32, 1, 4, fs_quant_act_f32},
    {FS_F16, 1, 2, fs_quant_act_f16},
    {FS_BF16, 1, 2, fs_quant_act_bf16},
    {FS_Q8_0, QK, B_Q8_0, fs_quant_act_q8_0},
    {FS_Q8_1_ID, QK, B_Q8_1, fs_quant_act_q8_1},
    {FS_Q8_K_ID, QK_K, B_Q8_K, fs_quant_act_q8_k},
};

const fs_type_traits *fs_traits(int type) {
    for (int i = 0; i < N_TRAITS; i++)
        if (TRAITS[i].type == type) return &TRAITS[i];
    return NULL;
}

int fs_traits_count(void) { return N_TRAITS; }

const fs_type_traits *fs_traits_at(int i) { return i >= 0 && i < N_TRAITS ? &TRAITS[i] : NULL; }

const fs_act_traits *fs_act_traits_of(int act_type) {
    for (size_t i = 0; i < sizeof ACT_TRAITS / sizeof ACT_TRAITS[0]; i++)
        if (ACT_TRAITS[i].type == act_type) return &ACT_TRAITS[i];
    return NULL;
}

/* ---- the implementation, chosen once ------------------------------------------------------ */

static const char *const IMPL_NAMES[FS_IMPL_COUNT] = {"portable", "avx2", "avx512", "neon"};

/* Each implementation's fallback (fs_traits.h): one chain per architecture. */
static const int IMPL_FALLBACK[FS_IMPL_COUNT] = {-1, FS_IMPL_PORTABLE, FS_IMPL_AVX2, FS_IMPL_PORTABLE};

const char *fs_impl_name(int impl) { return impl >= 0 && impl < FS_IMPL_COUNT ? IMPL_NAMES[impl] : NULL; }

int fs_impl_fallback(int impl) { return impl >= 0 && impl < FS_IMPL_COUNT ? IMPL_FALLBACK[impl] : -1; }

int fs_impl_runs(int impl) {
    if (impl < 0 || impl >= FS_IMPL_COUNT) return 0;
    for (int i = fs_impl_best(); i >= 0; i = IMPL_FALLBACK[i])
        if (i == impl) return 1;
    return 0;
}

#if FS_HAVE_AVX2_CODE
static int cpu_has_f16c(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c & (1u << 29)) != 0; /* CPUID.1:ECX.F16C (clang's __builtin_cpu_supports lacks "f16c") */
}

/* The best implementation by CPUID (called once). */
static int detect_best(void) {
    int s = FS_IMPL_PORTABLE;
    __builtin_cpu_init();
    /* libgcc / compiler-rt also check that the OS saves the YMM (and for AVX-512 the ZMM and mask)
     * registers (XCR0) before they report these features. */
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c()) {
        s = FS_IMPL_AVX2;
#if FS_HAVE_AVX512_CODE
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
            __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("bmi2"))
            s = FS_IMPL_AVX512;
#endif
    }
    return s;
}
#elif FS_HAVE_NEON_CODE
/* FEAT_DotProd as the OS reports it. User space cannot read the ID registers portably (Linux traps
 * and emulates MRS, macOS and Windows do not), so each OS's own interface is asked. Under qemu-user
 * the emulated CPU's features appear in the auxiliary vector, which is how tests/test_arm64.py
 * checks both outcomes. */
#if defined(__linux__) || defined(__ANDROID__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20) /* arch/arm64/include/uapi/asm/hwcap.h */
#endif
static int cpu_has_dotprod(void) { return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0; }
#elif defined(__FreeBSD__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
static int cpu_has_dotprod(void) {
    unsigned long hw = 0;
    return elf_aux_info(AT_HWCAP, &hw, sizeof hw) == 0 && (hw & HWCAP_ASIMDDP) != 0;
}
#elif defined(__APPLE__)
#include <sys/sysctl.h>
static int cpu_has_dotprod(void) {
    int v = 0;
    size_t len = sizeof v;
    if (sysctlbyname("hw.optional.arm.FEAT_DotProd", &v, &len, NULL, 0) == 0) return v != 0;
    /* macOS before 12 lacks the key; every Apple arm64 chip it runs on (M1 and later) has the
     * extension, and a build for them says so. */
#if defined(__ARM_FEATURE_DOTPROD)
    return 1;
#else
    return 0;
#endif
}
#elif defined(_WIN32)
#include <windows.h>
#ifndef PF_ARM_V82_DP_INSTRUCTIONS_AVAILABLE
#define PF_ARM_V82_DP_INSTRUCTIONS_AVAILABLE 43 /* winnt.h */
#endif
static int cpu_has_dotprod(void) { return IsProcessorFeaturePresent(PF_ARM_V82_DP_INSTRUCTIONS_AVAILABLE) != 0; }
#else
/* No known way to ask: trust the build's target. */
static int cpu_has_dotprod(void) {
#if defined(__ARM_FEATURE_DOTPROD)
    return 1;
#else
    return 0;
#endif
}
#endif

static int detect_best(void) { return cpu_has_dotprod() ? FS_IMPL_NEON : FS_IMPL_PORTABLE; }
#endif

#if FS_HAVE_AVX2_CODE || FS_HAVE_NEON_CODE
/* The only mutable globals: threads racing on the first call all compute the same value; the atomic
 * load/store makes that race well defined. -1: not chosen yet. */
static int impl_state = -1, best_state = -1;

int fs_impl_best(void) {
    int s = __atomic_load_n(&best_state, __ATOMIC_ACQUIRE);
    if (s >= 0) return s;
    s = detect_best();
    __atomic_store_n(&best_state, s, __ATOMIC_RELEASE);
    return s;
}

int fs_impl(void) {
    int s = __atomic_load_n(&impl_state, __ATOMIC_ACQUIRE);
    if (s >= 0) return s;
    s = fs_impl_best();
    const char *env = getenv("FIRESIDE_CPU");
    if (env != NULL)
        for (int i = 0; i < FS_IMPL_COUNT; i++)
            if (strcmp(env, IMPL_NAMES[i]) == 0 && fs_impl_runs(i)) s = i;
    __atomic_store_n(&impl_state, s, __ATOMIC_RELEASE);
    return s;
}

#if FS_HAVE_AVX2_CODE
/* AMD family 19h (Zen 3 and Zen 4; of those only Zen 4 has AVX-512): CPUID leaf 0 vendor, leaf 1 family. */
static int cpu_is_amd_family_19h(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d) || b != 0x68747541u || d != 0x69746e65u || c != 0x444d4163u)
        return 0; /* "AuthenticAMD" */
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const unsigned base = (a >> 8) & 0xF, ext = (a >> 20) & 0xFF;
    return base == 0xF && base + ext == 0x19;
}
#endif

static int rows_state = -1;

int fs_rows_impl(void) {
    int s = __atomic_load_n(&rows_state, __ATOMIC_ACQUIRE);
    if (s >= 0) return s;
    s = fs_impl();
#if FS_HAVE_AVX2_CODE
    if (s == FS_IMPL_AVX512 && getenv("FIRESIDE_CPU") == NULL && cpu_is_amd_family_19h()) s = FS_IMPL_AVX2;
#endif
    __atomic_store_n(&rows_state, s, __ATOMIC_RELEASE);
    return s;
}
#else
int fs_impl_best(void) { return FS_IMPL_PORTABLE; }
int fs_impl(void) { return FS_IMPL_PORTABLE; }
int fs_rows_impl(void) { return FS_IMPL_PORTABLE; }
#endif
