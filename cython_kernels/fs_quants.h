/* Dequantization of GGML tensor rows to float32 (Fireside's C kernels).
 *
 * The supported types and their block layouts are the rows of the traits table (fs_traits.c; the
 * kernels live in the family files listed in fs_kernel.h).
 * The layouts are those of llama.cpp's ggml/src/ggml-common.h and ggml/src/ggml-quants.c
 * (dequantize_row_*), and the results are bit-identical to the numpy reference in gguf-py,
 * gguf/quants.py (gguf.quants.dequantize): every element is produced by the same float32
 * operations in the same order, provided the file is compiled without FMA contraction
 * (-ffp-contract=off, which Fireside's setup.py passes) and without -ffast-math.
 *
 * Byte order: GGUF files are little-endian. Multi-byte fields inside quantized blocks (f16
 * scales, the 32-bit high-bit mask of Q5_0/Q5_1) are assembled byte by byte, so they are read
 * correctly on any host; F32 rows are copied with memcpy and therefore assume a little-endian
 * host (every platform Fireside targets: x86-64 and arm64).
 *
 * All functions are pure C: no allocation, no global state, safe to call from several threads
 * at once and without the Python GIL.
 */
#ifndef FS_QUANTS_H
#define FS_QUANTS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* GGML type ids (values as in ggml.h / gguf.GGMLQuantizationType) of the weight types Fireside
 * has kernels for; which those are, with their block sizes and kernels, is the traits table
 * (fs_traits.h). */
enum fs_ggml_type {
    FS_F32 = 0,
    FS_F16 = 1,
    FS_Q4_0 = 2,
    FS_Q4_1 = 3,
    FS_Q5_0 = 6,
    FS_Q5_1 = 7,
    FS_Q8_0 = 8,
    FS_Q2_K = 10,
    FS_Q3_K = 11,
    FS_Q4_K = 12,
    FS_Q5_K = 13,
    FS_Q6_K = 14,
    FS_IQ2_XXS = 16,
    FS_IQ2_XS = 17,
    FS_IQ3_XXS = 18,
    FS_IQ1_S = 19,
    FS_IQ4_NL = 20,
    FS_IQ3_S = 21,
    FS_IQ2_S = 22,
    FS_IQ4_XS = 23,
    FS_IQ1_M = 29,
    FS_BF16 = 30,
    FS_TQ1_0 = 34,
    FS_TQ2_0 = 35,
    FS_MXFP4 = 39
};

/* 1 if `type` is one of the types above, else 0. */
int fs_type_supported(int type);

/* Elements per block (1 for F32/F16/BF16, 32 for Q4_0..Q8_0, IQ4_NL and MXFP4, 256 for the K, IQ and TQ
 * types); 0 if the type is unsupported. */
int64_t fs_block_elems(int type);

/* Bytes per block; 0 if the type is unsupported. */
int64_t fs_block_bytes(int type);

/* Bytes taken by a row of n elements (n a multiple of fs_block_elems(type)).
 * Returns 0 if the type is unsupported, n is negative or n is not a multiple of the block size. */
size_t fs_row_bytes(int type, int64_t n);

/* Dequantize n elements stored at `src` (fs_row_bytes(type, n) bytes, any alignment) into
 * dst[0..n) as float32. n may span several rows: rows of a GGML tensor are whole blocks, so a
 * contiguous run of rows is just a longer run of blocks.
 * Returns 0 on success, -1 if the type is unsupported or n is negative or not a multiple of the
 * block size (dst is left untouched then). */
int fs_dequantize_row(int type, const void *src, float *dst, int64_t n);

/* Exact IEEE binary16 -> binary32 conversion in portable C (no F16C needed). Normal numbers,
 * subnormals (converted to the equal normal float), signed zeros and infinities are exact; a NaN
 * keeps its sign and payload (shifted into the top of the float mantissa) and is not quieted,
 * as numpy's float16 -> float32 cast does. */
float fs_fp16_to_fp32(uint16_t h);

#ifdef __cplusplus
}
#endif

#endif /* FS_QUANTS_H */
