# Declarations of the C dequantization kernels in fs_quants.h / fs_quants.c (see that header for
# the block layouts, guarantees and sources). Usable from any .pyx built together with
# fs_quants.c:
#     from cython_kernels.quants cimport fs_dequantize_row, fs_row_bytes, FS_Q4_K
# Every function is plain C, thread-safe and callable without the GIL.
from libc.stdint cimport int64_t, uint16_t


cdef extern from "fs_quants.h" nogil:
    cdef enum fs_ggml_type:
        FS_F32
        FS_F16
        FS_Q4_0
        FS_Q4_1
        FS_Q5_0
        FS_Q5_1
        FS_Q8_0
        FS_Q4_K
        FS_Q5_K
        FS_Q6_K
        FS_BF16

    int fs_type_supported(int type) noexcept
    int64_t fs_block_elems(int type) noexcept
    int64_t fs_block_bytes(int type) noexcept
    size_t fs_row_bytes(int type, int64_t n) noexcept
    int fs_dequantize_row(int type, const void *src, float *dst, int64_t n) noexcept
    float fs_fp16_to_fp32(uint16_t h) noexcept
