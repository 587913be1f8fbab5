/* The GGML type traits table: every fact Fireside's kernels know about a weight type, in one row.
 *
 * Modelled on ggml's type_traits (ggml/src/ggml.c: blck_size, type_size, to_float) and
 * type_traits_cpu (ggml/src/ggml-cpu/ggml-cpu.c: vec_dot, vec_dot_type, from_float), plus the
 * repack policy of ggml/src/ggml-cpu/repack.cpp (ggml_repack_get_optimal_repack_type, x86 AVX2).
 * Adding a type is one row in fs_traits.c plus its kernels in its family's file (fs_kernel.h lists
 * the families); the Python side (cython_kernels/quants.pyx, engine/model.py) reads the list of
 * supported types from this table.
 */
#ifndef FS_TRAITS_H
#define FS_TRAITS_H

#include <stddef.h>
#include <stdint.h>

#include "fs_kernel.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Implementations of the dot products ("CPU variants"): index into the per-CPU arrays below. They form
 * one chain per architecture, each able to run where the one it falls back to (fs_impl_fallback) can:
 * x86-64 AVX-512 -> AVX2 -> portable, arm64 NEON -> portable. A row whose entry for the chosen
 * implementation is NULL takes the next one down its chain that is not (never an entry of the other
 * architecture's chain: on arm64 the x86 entries are NULL, and NEON falls back to portable). */
enum { FS_IMPL_PORTABLE = 0, FS_IMPL_AVX2 = 1, FS_IMPL_AVX512 = 2, FS_IMPL_NEON = 3, FS_IMPL_COUNT = 4 };

/* An activation format (ggml's vec_dot_type): Q8_0, Q8_1, Q8_K or a float type. */
typedef struct fs_act_traits {
    int type;             /* GGML type id of the format */
    int64_t block_elems;  /* elements per block (1 for the float formats) */
    int64_t block_bytes;  /* bytes per block */
    fs_quant_act_fn quantize; /* one implementation for every CPU: the bytes never depend on it */
} fs_act_traits;

/* One weight type. Function pointers that a type lacks are NULL (then the caller falls back: no
 * tiles -> the row function per activation row; no avx2 -> the portable one). */
typedef struct fs_type_traits {
    int type;                 /* GGML type id (ggml.h, gguf.GGMLQuantizationType) */
    const char *name;         /* GGML type name, e.g. "Q4_K" */
    int64_t block_elems;      /* elements per block */
    int64_t block_bytes;      /* bytes per block */
    int act_type;             /* vec_dot_type: the activation format it is dotted with */
    fs_dequant_fn dequant;    /* blocks -> float32, bit-identical to gguf.quants.dequantize */
    fs_rows_fn rows[FS_IMPL_COUNT];   /* ggml_vec_dot_* arithmetic */
    fs_tiles_fn tiles[FS_IMPL_COUNT]; /* register-tiled, same bits as rows (prefill) */
    /* llama.cpp's x86 AVX2 repack: a tensor whose row count is a multiple of repack_rows is
     * multiplied with ggml_gemv_* (one activation row; arithmetic `gemv`) and ggml_gemm_* (groups of
     * 4 activation rows; `gemm`, NULL = same as gemv). repack_rows = 0: never repacked. */
    int repack_rows;
    fs_rows_fn gemv[FS_IMPL_COUNT];
    fs_rows_fn gemm[FS_IMPL_COUNT];
    fs_tiles_fn gemm_tiles[FS_IMPL_COUNT];
    /* several activation rows with the `gemv` arithmetic, each weight row read once for all (the
     * rows a batch leaves after its groups of 4); NULL: `gemv` per activation row */
    fs_tiles_fn gemv_tiles[FS_IMPL_COUNT];
} fs_type_traits;

/* The row of `type`, or NULL if Fireside has no kernels for it. */
const fs_type_traits *fs_traits(int type);

/* The table in GGML type id order: fs_traits_at(i) for 0 <= i < fs_traits_count(). */
int fs_traits_count(void);
const fs_type_traits *fs_traits_at(int i);

/* The activation format `act_type`, or NULL. */
const fs_act_traits *fs_act_traits_of(int act_type);

/* The implementation the kernels use in this process, chosen once, at the first call: the best one
 * the CPU runs (fs_impl_best), or the one FIRESIDE_CPU names ("portable", "avx2", "avx512", "neon")
 * when the CPU runs it (fs_impl_runs); a name the CPU cannot run, or an unknown one, leaves the best
 * (the Python side warns). */
int fs_impl(void);

/* The best implementation this CPU and build can run. x86-64: FS_IMPL_AVX512 with AVX512F/BW/DQ/VL
 * and AVX512_VNNI (the OS saving the ZMM state), FS_IMPL_AVX2 with AVX2, FMA and F16C. arm64:
 * FS_IMPL_NEON when the OS reports the dot-product extension (Linux / Android: getauxval(AT_HWCAP)
 * & HWCAP_ASIMDDP; macOS: sysctl hw.optional.arm.FEAT_DotProd; Windows: IsProcessorFeaturePresent(
 * PF_ARM_V82_DP_INSTRUCTIONS_AVAILABLE); FreeBSD: elf_aux_info). Else portable. */
int fs_impl_best(void);

/* The implementation of the one-activation-row kernels (rows, gemv, gemm: decode): fs_impl(), except
 * that when the variant was chosen automatically (no FIRESIDE_CPU) and is AVX-512 on an AMD family 19h
 * CPU (Zen 4, which runs each 512-bit operation as two 256-bit halves), the AVX2 row kernels, which give
 * the same bits (tests/test_cpu_variants.py) and read memory faster there: a 75 MB Q4_K matrix, one
 * thread, 17-20 against 12-16 GB/s; the 1B Q4_K_M file's decode, 2 threads, 24-27 against 22 GB/s
 * (this repo's Zen 4 VM). Tiles (prefill) keep fs_impl(). */
int fs_rows_impl(void);

/* The implementation impl falls back to where a type has no kernel of its own (AVX-512 -> AVX2 ->
 * portable, NEON -> portable); -1 for portable or an invalid impl. */
int fs_impl_fallback(int impl);

/* 1 if this CPU and build run impl: it is fs_impl_best() or on its fallback chain. */
int fs_impl_runs(int impl);

/* "portable", "avx2", "avx512", "neon" for 0 <= impl < FS_IMPL_COUNT, else NULL. */
const char *fs_impl_name(int impl);

#ifdef __cplusplus
}
#endif

#endif /* FS_TRAITS_H */
