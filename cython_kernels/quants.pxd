# Declarations of the C dequantization kernels in fs_quants.h / fs_quants.c (see that header for
# the guarantees and sources) and of the type traits table (fs_traits.h: the supported types). Usable from any .pyx built together with
# fs_quants.c:
#     from cython_kernels.quants cimport fs_dequantize_row, fs_row_bytes, FS_Q4_K
# Every function is plain C, thread-safe and callable without the GIL.
from libc.stdint cimport int64_t, uint16_t


cdef extern from "fs_quants.h" nogil:
    cdef enum fs_ggml_type:
        FS_F32
        FS_F16
        FS_Q4_K
        FS_BF16

    int fs_type_supported(int type) noexcept
    int64_t fs_block_elems(int type) noexcept
    int64_t fs_block_bytes(int type) noexcept
    size_t fs_row_bytes(int type, int64_t n) noexcept
    int fs_dequantize_row(int type, const void *src, float *dst, int64_t n) noexcept
    float fs_fp16_to_fp32(uint16_t h) noexcept


cdef extern from "fs_traits.h" nogil:
    ctypedef struct fs_type_traits:
        int type
        const char *name
        int64_t block_elems
        int64_t block_bytes
        int act_type

    int fs_traits_count() noexcept
    const fs_type_traits *fs_traits_at(int i) noexcept
