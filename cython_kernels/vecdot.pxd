# Declarations of the C dot-product kernels in fs_vecdot.h / fs_vecdot.c (see that header for the
# activation formats, the sources in llama.cpp and the guarantees). Usable from any .pyx built
# together with fs_vecdot.c and fs_quants.c:
#     from cython_kernels.vecdot cimport fs_quantize_act, fs_vec_dot_rows, fs_act_row_bytes
# Every function is plain C, thread-safe and callable without the GIL.
from libc.stdint cimport int64_t, uint8_t


cdef extern from "fs_vecdot.h" nogil:
    size_t fs_act_row_bytes(int wtype, int64_t n) noexcept
    void fs_quantize_act(int wtype, const float *x, void *dst, int64_t n) noexcept
    void fs_vec_dot_rows(int wtype, const uint8_t *w, size_t row_bytes, int64_t n_rows, const void *act,
                         int64_t n, float *out) noexcept
    const char *fs_vecdot_impl() noexcept
    int fs_vec_dot_repacked(int wtype, int64_t n_rows) noexcept


cdef extern from "fs_traits.h" nogil:
    int fs_impl() noexcept
    int fs_impl_best() noexcept
    int fs_rows_impl() noexcept
    const char *fs_impl_name(int impl) noexcept
    int fs_impl_fallback(int impl) noexcept
