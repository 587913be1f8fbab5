# cython: language_level=3, boundscheck=False, wraparound=False
"""Python entry points to the C dequantization kernels (``fs_quants.c``), mainly for tests.

The kernels decode GGML blocks exactly as llama.cpp's ``ggml/src/ggml-quants.c``
(``dequantize_row_*``) lays them out, with the float32 operations of gguf-py's numpy reference
``gguf/quants.py`` in the same order, so :func:`dequantize` is bit-identical to
``gguf.quants.dequantize``. The supported types are the rows of the C traits table
(``fs_traits.c``), read at import into :data:`SUPPORTED_TYPES` / :data:`SUPPORTED_TYPE_NAMES`.

Other Cython modules use the C functions directly (``from cython_kernels.quants cimport
fs_dequantize_row``); see ``quants.pxd``.
"""
import math

import numpy as np

from libc.stdint cimport int64_t, uint8_t, uint16_t

def _read_traits():
    cdef int i
    cdef const fs_type_traits *t
    names = {}
    for i in range(fs_traits_count()):
        t = fs_traits_at(i)
        names[int(t.type)] = t.name.decode("ascii")
    return names


#: GGML type id -> GGML type name, for every type the kernels support (the C traits table, fs_traits.c).
_TYPE_NAMES = _read_traits()

#: The GGML type ids these kernels decode and multiply, in id order.
SUPPORTED_TYPES = tuple(sorted(_TYPE_NAMES))

#: Their GGML type names, in id order.
SUPPORTED_TYPE_NAMES = tuple(_TYPE_NAMES[t] for t in SUPPORTED_TYPES)


def _type_name(int ggml_type):
    name = _TYPE_NAMES.get(ggml_type)
    if name is not None:
        return name
    try:
        from gguf import GGMLQuantizationType
        return GGMLQuantizationType(ggml_type).name
    except Exception:
        return "unknown"


cdef int _check_type(int ggml_type) except -1:
    if not fs_type_supported(ggml_type):
        supported = ", ".join(f"{_TYPE_NAMES[t]} ({t})" for t in SUPPORTED_TYPES)
        raise ValueError(
            f"unsupported GGML type {ggml_type} ({_type_name(ggml_type)}); supported types: {supported}"
        )
    return 0


def type_supported(int ggml_type):
    """True if GGML type id ``ggml_type`` can be dequantized by these kernels."""
    return bool(fs_type_supported(ggml_type))


def block_elems(int ggml_type):
    """Elements per block of ``ggml_type`` (1 for F32/F16/BF16, 32 for Q4_0..Q8_0, IQ4_NL and MXFP4, 256
    for the K, IQ and TQ types). Raises ValueError for an unsupported type."""
    _check_type(ggml_type)
    return int(fs_block_elems(ggml_type))


def block_bytes(int ggml_type):
    """Bytes per block of ``ggml_type`` (as ``gguf.GGML_QUANT_SIZES[t][1]``). Raises ValueError for
    an unsupported type."""
    _check_type(ggml_type)
    return int(fs_block_bytes(ggml_type))


def row_bytes(int ggml_type, int64_t n):
    """Bytes taken by a row of ``n`` elements of ``ggml_type``.

    Raises ValueError for an unsupported type, or if ``n`` is negative or not a multiple of the
    block size.
    """
    _check_type(ggml_type)
    cdef int64_t be = fs_block_elems(ggml_type)
    if n < 0 or n % be != 0:
        raise ValueError(
            f"row length {n} is not a non-negative multiple of the {_TYPE_NAMES[ggml_type]} block size {be}"
        )
    return int(fs_row_bytes(ggml_type, n))


def fp16_to_fp32(uint16_t h):
    """The exact float32 value of IEEE half-precision bit pattern ``h`` (0..65535), as a Python
    float (NaN payloads are kept, not quieted; see ``fs_fp16_to_fp32``)."""
    return fs_fp16_to_fp32(h)


def dequantize(raw, int ggml_type, shape):
    """Dequantize a GGML tensor to float32.

    Args:
        raw: the tensor's bytes as gguf stores them: a C-ordered numpy array (normally uint8 with
            the last axis in bytes, as ``gguf.GGUFReader`` gives quantized tensors; any other
            numeric dtype is taken as its raw bytes), or a bytes-like object. Its total size must
            be exactly ``prod(shape[:-1]) * row_bytes(ggml_type, shape[-1])`` bytes.
        ggml_type: GGML type id (``int(gguf.GGMLQuantizationType.Q4_K)`` etc.).
        shape: logical shape of the tensor in numpy order (rows first, the last axis is the row,
            i.e. GGML's ne reversed); ``shape[-1]`` must be a multiple of the block size.

    Returns:
        np.ndarray: float32 array of shape ``shape``, bit-identical to
        ``gguf.quants.dequantize(raw, ggml_type)`` reshaped to ``shape``.

    Raises:
        ValueError: unsupported type, bad shape, or a byte count that does not match the shape.

    The C loop runs with the GIL released.
    """
    _check_type(ggml_type)
    name = _TYPE_NAMES[ggml_type]
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        raise ValueError("shape must have at least one dimension (the row)")
    if any(s < 0 for s in shape):
        raise ValueError(f"negative dimension in shape {shape}")
    # (no negative indexing: this module is compiled with wraparound=False)
    n_row = shape[len(shape) - 1]
    be = int(fs_block_elems(ggml_type))
    if n_row % be != 0:
        raise ValueError(f"row length {n_row} is not a multiple of the {name} block size {be}")
    n_rows = math.prod(shape[:len(shape) - 1])
    expected = n_rows * (n_row // be) * int(fs_block_bytes(ggml_type))  # Python ints: no overflow

    if isinstance(raw, (bytes, bytearray, memoryview)):
        buf = np.frombuffer(raw, dtype=np.uint8)
    else:
        buf = np.ascontiguousarray(raw).reshape(-1)
        if buf.dtype != np.uint8:
            if buf.dtype.hasobject:
                raise ValueError(f"raw must hold the tensor's bytes, got an array of dtype {buf.dtype}")
            buf = buf.view(np.uint8)
    if buf.size != expected:
        raise ValueError(
            f"{name} tensor of shape {shape} needs {expected} bytes, got {buf.size}"
        )

    out = np.empty(shape, dtype=np.float32)
    if out.size == 0:
        return out
    cdef int64_t total = out.size
    cdef const uint8_t[::1] src = buf
    cdef float[::1] dst = out.reshape(-1)
    cdef int rc
    with nogil:
        rc = fs_dequantize_row(ggml_type, &src[0], &dst[0], total)
    if rc != 0:  # unreachable after the checks above
        raise ValueError(f"fs_dequantize_row failed for {name} with {total} elements")
    return out
