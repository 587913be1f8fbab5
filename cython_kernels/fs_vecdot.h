/* Quantized dot products of weight rows with an activation row, the way llama.cpp's CPU backend
 * computes them (Fireside's C kernels).
 *
 * ggml never multiplies a quantized weight by float activations directly: it first converts the
 * activation row to the weight type's "vec_dot_type" and then takes integer dot products block by
 * block. This module does the same, with the same block formats and the same arithmetic:
 *
 *   weight type                       activation format (vec_dot_type)           bytes per row of n
 *   F32 / F16 / BF16                  the same type (F16, BF16: round to nearest even)  4n / 2n
 *   Q4_0, Q5_0, Q8_0, IQ4_NL, MXFP4   Q8_0 blocks of 32: f16 d | 32 x int8 qs           34 n/32
 *   Q4_1, Q5_1                        Q8_1 blocks of 32: f16 d | f16 s (= d * sum qs) | 32 x int8  36 n/32
 *   Q2_K .. Q6_K, IQ2/IQ3/IQ1 types,  Q8_K blocks of 256: f32 d | 256 x int8 qs | 16 x int16 bsums
 *   IQ4_XS, TQ1_0, TQ2_0              (bsums[j] = sum of qs[16j .. 16j+16))             292 n/256
 * (each type's row of the traits table, fs_traits.c, names its format).
 *
 * Sources (llama.cpp): block layouts ggml/src/ggml-common.h; activation quantization
 * ggml/src/ggml-quants.c (quantize_row_q8_0_ref, quantize_row_q8_1_ref, quantize_row_q8_K_ref);
 * dot products ggml/src/ggml-cpu/quants.c (ggml_vec_dot_*_generic) and
 * ggml/src/ggml-cpu/arch/x86/quants.c (the AVX2 versions); F32/F16/BF16 dots
 * ggml/src/ggml-cpu/vec.cpp (ggml_vec_dot_f32/_f16/_bf16) with ggml-cpu/simd-mappings.h;
 * vec_dot_type per weight type from ggml/src/ggml-cpu/ggml-cpu.c (type_traits_cpu).
 *
 * Guarantees:
 *  - fs_quantize_act produces the bytes of ggml's reference quantizers exactly (one
 *    implementation, used whatever the CPU), so it also equals gguf-py's gguf.quants.quantize for
 *    Q8_0 (both round half away from zero, as roundf does). Known difference: llama.cpp's CPU
 *    backend quantizes Q8_0 / Q8_1 activations with SIMD versions of these functions where it has
 *    them: x86 AVX/AVX2 (arch/x86/quants.c) uses id = 127 / amax instead of 1 / (amax / 127) and
 *    rounds half to even; ARM NEON (arch/arm/quants.c) rounds half to even. On random activations
 *    the x86 version gives a different int8 (by 1) for about one element in 600,000. Q8_K (the
 *    K-quants) uses the reference quantizer on every platform, so there the bytes always agree.
 *  - fs_vec_dot_rows: the integer part of every block dot product is exact. The float part follows
 *    ggml operation for operation: the portable implementation is ggml's scalar "generic" code,
 *    the AVX2 implementation is ggml's AVX2 code (same 8 lanes, same FMAs, same horizontal sums),
 *    so each gives bit for bit the float32 that ggml's corresponding code gives (checked against
 *    copies of ggml's functions, and by tests/test_vecdot.py against a numpy transcription). The
 *    two implementations differ from each other only by float summation order (a few ulps).
 *    This needs the file built without FMA contraction of the scalar code: Fireside compiles with
 *    -ffp-contract=off and the file repeats it with pragmas (which clang ignores under an explicit
 *    -ffp-contract=fast). ggml's AVX2 code is selected by llama.cpp on AVX2 machines unless it uses
 *    other paths for a matrix product (repacked Q4_0 / IQ4_NL layouts, llamafile sgemm, AMX).
 *  - No allocation, no global state except the one-time choice of implementation; safe to call
 *    from many threads at once and without the Python GIL.
 *
 * Implementation choice ("CPU variants", fs_traits.h fs_impl): on x86-64 with GCC or clang, the
 * AVX-512 code (AVX512F/BW/DQ/VL + AVX512_VNNI) runs when the CPU has those features, else the AVX2
 * (+FMA, F16C) code when it has those, else the portable code; the environment variable FIRESIDE_CPU
 * (portable, avx2, avx512, neon; read once, at the first call) picks a lower one. A type without a kernel
 * in the chosen variant takes the next one down. The AVX-512 kernels compute the AVX2 kernels' exact
 * integer sums with wider instructions and keep their float operations, so the two give the same bits
 * (llama.cpp on an AVX-512 CPU also runs ggml's AVX2 vec_dot code, with VNNI only inside its exact
 * integer helpers). On arm64 with GCC or clang, the NEON code runs when the CPU has the dot-product
 * extension (FEAT_DotProd, as the OS reports it), else the portable code; FIRESIDE_CPU=portable picks
 * that. Its row kernels follow ggml's __ARM_NEON vec_dot code (ggml-cpu/arch/arm/quants.c: SDOT lanes,
 * two 4-lane float accumulators for the 32-element types, one running sum per row for Q4_K / Q6_K), so
 * they differ from the portable results by float summation order (tests/arm64/neon_check.c bounds
 * it); its repacked Q4_0 / Q4_K products give the portable bits. Types without a NEON kernel (Q2_K,
 * Q3_K, Q5_K, the IQ and TQ types, the float types) run the portable one; there are no NEON register
 * tiles (prefill runs row kernels per token) and no i8mm (SMMLA) kernels. Elsewhere (MSVC, old x86)
 * the portable code runs. Define FS_VECDOT_NO_AVX2, FS_VECDOT_NO_AVX512 or FS_VECDOT_NO_NEON at
 * compile time to leave SIMD code out.
 *
 * Byte order: weight rows and the F32 activation format are read as little-endian (every platform
 * Fireside targets); f16 fields are assembled byte by byte.
 */
#ifndef FS_VECDOT_H
#define FS_VECDOT_H

#include <stddef.h>
#include <stdint.h>

#include "fs_common.h"
#include "fs_quants.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of one activation row of n floats quantized for weights of type wtype (see the table
 * above). n must be a non-negative multiple of the weight's block size (fs_block_elems(wtype));
 * returns 0 if it is not, or if wtype is unsupported. */
size_t fs_act_row_bytes(int wtype, int64_t n);

/* Quantize one activation row x[0..n) into dst (fs_act_row_bytes(wtype, n) bytes, any alignment)
 * in wtype's vec_dot_type. Does nothing if fs_act_row_bytes(wtype, n) is 0. */
void fs_quantize_act(int wtype, const float *x, void *dst, int64_t n);

/* out[r] = dot(weight row r, activation row) for r in [0, n_rows). Weight row r starts at
 * w + r * row_bytes (row_bytes >= fs_row_bytes(wtype, n)); act was written by fs_quantize_act for
 * the same wtype and n. Same result as ggml's vec_dot for that type, up to float summation order
 * between the portable and the SIMD versions. Does nothing if wtype or n is invalid. */
void fs_vec_dot_rows(int wtype, const uint8_t *w, size_t row_bytes, int64_t n_rows, const void *act, int64_t n,
                     float *out);

/* As fs_vec_dot_rows, with the arithmetic llama.cpp's x86 repacked GEMM uses for activation rows
   taken four at a time (ggml_gemm_q4_K_8x8_q8_K: Q4_K sums per 64 elements); equal to
   fs_vec_dot_rows for every other type. */
void fs_vec_dot_rows_gemm(int wtype, const uint8_t *w, size_t row_bytes, int64_t n_rows, const void *act, int64_t n,
                          float *out);

/* ggml_vec_dot arithmetic for every type (what llama.cpp computes for Q4_0/Q4_K weights it does not
   repack, i.e. when the row count is not a multiple of 8). */
void fs_vec_dot_rows_norepack(int wtype, const uint8_t *w, size_t row_bytes, int64_t n_rows, const void *act,
                              int64_t n, float *out);

/* out[t * out_stride + r] = dot(weight row r, activation row t) for r < n_rows, t < n_act, where
 * activation row t starts at act + t * act_bytes: bit for bit fs_vec_dot_rows_norepack for each t,
 * computed with register tiles (several weight rows times several activation rows per pass over the
 * blocks; llamafile's tinyBLAS idea) where fs_vec_dot_tiled(wtype) is 1, row by row otherwise. */
void fs_vec_dot_tile(int wtype, const uint8_t *w, size_t row_bytes, int64_t n_rows, const void *act, size_t act_bytes,
                     int64_t n_act, int64_t n, float *out, int64_t out_stride);

/* As fs_vec_dot_tile, with fs_vec_dot_rows_gemm's arithmetic (llama.cpp's repacked gemm) for every
 * activation row; register-tiled for Q4_K with AVX2. */
void fs_vec_dot_tile_gemm(int wtype, const uint8_t *w, size_t row_bytes, int64_t n_rows, const void *act,
                          size_t act_bytes, int64_t n_act, int64_t n, float *out, int64_t out_stride);

/* As fs_vec_dot_tile, with fs_vec_dot_rows' arithmetic (llama.cpp's repacked gemv) for every activation
 * row; each weight row read once for several activation rows for Q4_K with AVX2 and AVX-512. */
void fs_vec_dot_tile_gemv(int wtype, const uint8_t *w, size_t row_bytes, int64_t n_rows, const void *act,
                          size_t act_bytes, int64_t n_act, int64_t n, float *out, int64_t out_stride);

/* 1 if fs_vec_dot_tile has a register-tiled kernel for wtype on this CPU. */
int fs_vec_dot_tiled(int wtype);

/* 1 if llama.cpp on x86 (AVX2) repacks a weight of type wtype with n_rows rows (Q4_0, Q4_K, IQ4_NL,
 * MXFP4 with a multiple of 8 rows, ggml-cpu/repack.cpp): it then multiplies with its gemm for groups of
 * 4 activation rows (fs_vec_dot_tile_gemm) and its gemv for the rest (fs_vec_dot_rows). */
int fs_vec_dot_repacked(int wtype, int64_t n_rows);

/* The chosen CPU variant's name: "portable", "avx2", "avx512" or "neon". */
const char *fs_vecdot_impl(void);

/* The GGML type id of the activation format fs_quantize_act writes for weights of type wtype
 * (Q8_0, Q8_1, Q8_K, F32, F16 or BF16), -1 if unsupported: two weight types with the same format
 * can share one quantized activation row. */
int fs_act_format(int wtype);

/* 1 when the hand-written AVX2 code may run (the chosen variant is AVX2 or AVX-512); the choice is
 * made once, at the first call. */
int fs_use_avx2(void);

#ifdef __cplusplus
}
#endif

#endif /* FS_VECDOT_H */
