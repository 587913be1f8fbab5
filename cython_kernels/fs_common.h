/* Shared macros for Fireside's C kernels.
 *
 * FS_DISPATCH marks a hot function for GCC's function multi-versioning: the compiler emits a
 * Haswell (AVX2 + FMA + F16C) clone and a baseline clone, and the dynamic loader picks one at load
 * time from the CPU's features (x86-64-v3 = AVX2, FMA, F16C, BMI; "arch=haswell" would be chosen by
 * CPU model, not features, and never picked on AMD or newer Intel parts). The build therefore never needs -march=native, and a portable
 * binary still runs on an old x86-64, only slower. Other compilers get the baseline only.
 */
#ifndef FS_COMMON_H
#define FS_COMMON_H

#include <stdint.h>
#include <stddef.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && !defined(FS_NO_DISPATCH)
#define FS_DISPATCH __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define FS_DISPATCH
#endif

/* Hand-written AVX2 (+FMA, F16C) code: compiled in with GCC or clang on x86-64 (not clang-cl, whose
 * <immintrin.h> hides AVX unless built with -mavx), marked FS_AVX2_FN, and run only when
 * fs_use_avx2() (fs_vecdot.h) says the chosen CPU variant is AVX2 or AVX-512. */
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(_MSC_VER) && !defined(FS_VECDOT_NO_AVX2)
#define FS_HAVE_AVX2_CODE 1
#define FS_AVX2_FN __attribute__((target("avx2,fma,f16c")))
#else
#define FS_HAVE_AVX2_CODE 0
#endif

/* Hand-written AVX-512 code (x86-64-v4 plus VNNI: AVX512F/BW/DQ/VL and AVX512_VNNI; Intel Ice Lake,
 * Sapphire Rapids and later servers, AMD Zen 4 and 5), marked FS_AVX512_FN, compiled wherever the
 * AVX2 code is and run only when fs_impl() (fs_traits.h) chose FS_IMPL_AVX512. It keeps the AVX2
 * code's numerics (the same float operations per output, exact integer sums), so its results are the
 * AVX2 implementation's bit for bit. */
#if FS_HAVE_AVX2_CODE && !defined(FS_VECDOT_NO_AVX512)
#define FS_HAVE_AVX512_CODE 1
#ifndef FS_AVX512_FN /* tests/emu512/emu512.h builds it for the AVX2 target, intrinsics emulated */
#define FS_AVX512_FN __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c,bmi2")))
#endif
#else
#define FS_HAVE_AVX512_CODE 0
#endif

/* Hand-written arm64 NEON code with the dot-product extension (FEAT_DotProd: SDOT/UDOT; Armv8.4 and
 * most Armv8.2 cores: Apple M1 and later, Cortex-A55/A76/X1 and later, Neoverse N1, Snapdragon X),
 * marked FS_NEON_FN and run only when fs_impl() (fs_traits.h) chose FS_IMPL_NEON, i.e. when the OS
 * reports the extension (a Cortex-A53 or A72 runs the portable code). Plain NEON is part of every
 * arm64 CPU; only the functions that issue SDOT carry the target attribute, so the rest of the build
 * stays at the baseline. GCC's arm_neon.h defines vdotq_s32 under "arch=armv8.2-a+dotprod", which a
 * caller must include; clang 16 and later define it under target("dotprod"), older clang only when
 * the whole build targets dotprod (macOS arm64 does by default), so without that such a compiler
 * builds the portable code only. MSVC (not clang-cl) builds the portable code only. */
#if (defined(__aarch64__) || defined(_M_ARM64)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(FS_VECDOT_NO_NEON) &&                                                               \
    (defined(__ARM_FEATURE_DOTPROD) || !defined(__clang__) || __clang_major__ >= 16)
#define FS_HAVE_NEON_CODE 1
#if defined(__ARM_FEATURE_DOTPROD)
#define FS_NEON_FN
#elif defined(__clang__)
#define FS_NEON_FN __attribute__((target("dotprod")))
#else
#define FS_NEON_FN __attribute__((target("arch=armv8.2-a+dotprod")))
#endif
#else
#define FS_HAVE_NEON_CODE 0
#endif

/* FS_ASSERT: a kernel's preconditions, checked once per call (never per element) in debug builds
 * (FIRESIDE_DEBUG=1 at build time defines FS_DEBUG); a failed one prints the condition and aborts, so a
 * caller's mistake is a clear stop instead of a write out of bounds. Release builds compile it away: the
 * Cython boundary (forward.pyx) checks everything a model file decides before it reaches the kernels. */
#ifdef FS_DEBUG
#include <stdio.h>
#include <stdlib.h>
#define FS_ASSERT(cond) do { if (!(cond)) { \
        fprintf(stderr, "fireside kernel precondition failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
        abort(); } } while (0)
#else
#define FS_ASSERT(cond) ((void)0)
#endif

#endif
