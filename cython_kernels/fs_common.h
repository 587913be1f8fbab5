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

#endif
