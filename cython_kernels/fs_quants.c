/* Dequantization of GGML tensor rows to float32: the public API of fs_quants.h over the traits table.
 *
 * Each type's decoder is in its family file (fs_float.c, fs_q32.c, fs_kquants.c, fs_iq4.c, fs_iq2.c,
 * fs_iq3.c, fs_iq1.c, fs_ternary.c, fs_mxfp4.c), bit-identical to gguf-py's gguf.quants.dequantize
 * (tests/test_dequant.py); this file only looks the type up and checks the sizes.
 */
#include "fs_quants.h"

#include "fs_traits.h"

int fs_type_supported(int type) { return fs_traits(type) != NULL; }

int64_t fs_block_elems(int type) {
    const fs_type_traits *t = fs_traits(type);
    return t ? t->block_elems : 0;
}

int64_t fs_block_bytes(int type) {
    const fs_type_traits *t = fs_traits(type);
    return t ? t->block_bytes : 0;
}

size_t fs_row_bytes(int type, int64_t n) {
    const fs_type_traits *t = fs_traits(type);
    if (t == NULL || n < 0 || n % t->block_elems != 0) return 0;
    return (size_t)(n / t->block_elems) * (size_t)t->block_bytes;
}

int fs_dequantize_row(int type, const void *src, float *dst, int64_t n) {
    const fs_type_traits *t = fs_traits(type);
    if (t == NULL || n < 0 || n % t->block_elems != 0) return -1;
    t->dequant((const uint8_t *)src, dst, n / t->block_elems);
    return 0;
}

float fs_fp16_to_fp32(uint16_t h) { return dq_half_to_float(h); }
