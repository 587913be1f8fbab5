"""The C dequantization kernels (cython_kernels/fs_quants.c) are bit-identical to gguf-py's numpy
reference, gguf.quants.dequantize, for every supported GGML type: on random blocks, on F16 special
values, and on every tensor of both starter models."""
from __future__ import annotations

import gguf
import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T

import quant_reference
from cython_kernels import quants

SUPPORTED = [T.F32, T.F16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q4_K, T.Q5_K, T.Q6_K, T.BF16]
# the types added with the traits table (tests/test_quant_families.py checks their blocks)
NEWER = list(quant_reference.NEWER)

# Byte offsets of the f16 scale fields inside one block (ggml-common.h block_* structs).
F16_FIELDS = {
    T.Q4_0: [0],          # d
    T.Q4_1: [0, 2],       # d, m
    T.Q5_0: [0],          # d
    T.Q5_1: [0, 2],       # d, m
    T.Q8_0: [0],          # d
    T.Q4_K: [0, 2],       # d, dmin
    T.Q5_K: [0, 2],       # d, dmin
    T.Q6_K: [208],        # d (after ql, qh, scales)
}

# f16 bit patterns worth covering as scales: zeros, subnormals, smallest/largest normals.
EDGE_F16 = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0xBC00, 0x7BFF, 0xFBFF]

# Rows compared on a subset (first/last 512 plus a random sample) in tensors with more rows.
FULL_COMPARE_MAX_ROWS = 8192


def assert_bits_equal(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert actual.dtype == np.float32, f"{what}: dtype {actual.dtype}"
    expected = np.asarray(expected, dtype=np.float32)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    a, b = actual.view(np.uint32), expected.view(np.uint32)
    if not np.array_equal(a, b):
        bad = np.argwhere(a != b)
        i = tuple(bad[0])
        pytest.fail(
            f"{what}: {len(bad)} of {a.size} elements differ; first at {i}: "
            f"got {actual[i]!r} (0x{int(a[i]):08x}), expected {expected[i]!r} (0x{int(b[i]):08x})"
        )


def random_finite_f16(rng: np.random.Generator, n: int) -> np.ndarray:
    """n random f16 bit patterns (uint16), none of them inf or NaN."""
    bits = rng.integers(0, 1 << 16, size=n, dtype=np.uint16)
    return np.where((bits & 0x7C00) == 0x7C00, bits & np.uint16(0xBFFF), bits).astype(np.uint16)


def random_blocks(qtype: T, n_blocks: int, rng: np.random.Generator) -> np.ndarray:
    """(n_blocks, type_size) uint8: random bytes with every f16 scale field set to a finite value,
    the first blocks' scales set to EDGE_F16 values."""
    _, type_size = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for off in F16_FIELDS[qtype]:
        scales = random_finite_f16(rng, n_blocks)
        scales[: len(EDGE_F16)] = EDGE_F16
        raw[:, off : off + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
    return raw


def random_tensor_bytes(qtype: T, n_rows: int, n_row: int, rng: np.random.Generator) -> np.ndarray:
    """Bytes of an (n_rows, n_row) tensor of qtype, shaped (n_rows, row_bytes) like gguf stores it."""
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    n_blocks = n_rows * n_row // block_size
    if qtype == T.F32:
        raw = rng.integers(0, 1 << 32, size=n_blocks, dtype=np.uint32).view(np.uint8)  # NaN/inf too
    elif qtype == T.F16:
        raw = random_finite_f16(rng, n_blocks).view(np.uint8)
    elif qtype == T.BF16:
        raw = rng.integers(0, 1 << 16, size=n_blocks, dtype=np.uint16).view(np.uint8)  # NaN/inf too
    else:
        raw = random_blocks(qtype, n_blocks, rng)
    return raw.reshape(n_rows, n_row // block_size * type_size)


# ---- random blocks ---------------------------------------------------------------------------


@pytest.mark.parametrize("qtype", SUPPORTED, ids=lambda t: t.name)
def test_random_blocks_match_reference(qtype):
    rng = np.random.default_rng(1234 + int(qtype))
    block_size, _ = GGML_QUANT_SIZES[qtype]
    n_rows, n_row = 4, 16 * block_size if block_size > 1 else 1024  # 64 blocks of 32/256 elements
    raw = random_tensor_bytes(qtype, n_rows, n_row, rng)
    expected = gguf.quants.dequantize(raw, qtype)
    actual = quants.dequantize(raw, int(qtype), (n_rows, n_row))
    assert_bits_equal(actual, expected, qtype.name)


@pytest.mark.parametrize("qtype", SUPPORTED, ids=lambda t: t.name)
def test_3d_shape_and_unaligned_input(qtype):
    """Leading axes are just more rows; the source bytes need no alignment."""
    rng = np.random.default_rng(99 + int(qtype))
    block_size, _ = GGML_QUANT_SIZES[qtype]
    shape = (2, 3, 2 * max(block_size, 32))
    raw = random_tensor_bytes(qtype, 6, shape[-1], rng)
    store = np.zeros(raw.size + 3, dtype=np.uint8)
    unaligned = store[3:]
    unaligned[:] = raw.reshape(-1)
    expected = gguf.quants.dequantize(raw, qtype).reshape(shape)
    assert_bits_equal(quants.dequantize(unaligned, int(qtype), shape), expected, qtype.name)
    assert_bits_equal(quants.dequantize(raw.tobytes(), int(qtype), shape), expected, qtype.name + " (bytes)")


QUANTIZABLE = [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.BF16]  # gguf.quants.quantize supports these


@pytest.mark.parametrize("qtype", QUANTIZABLE, ids=lambda t: t.name)
def test_quantized_weights_match_reference(qtype):
    """Realistic blocks: weight-like data quantized by gguf itself."""
    rng = np.random.default_rng(7)
    weights = (rng.standard_normal((8, 512)) * 0.02).astype(np.float32)
    weights[0, :32] = 0.0  # an all-zero block (d = 0)
    raw = gguf.quants.quantize(weights, qtype)
    expected = gguf.quants.dequantize(raw, qtype)
    assert_bits_equal(quants.dequantize(raw, int(qtype), weights.shape), expected, qtype.name)


def test_f16_all_bit_patterns():
    """Every f16 value: exact (subnormals, ±0, ±inf included) and equal to numpy's cast; NaNs keep
    sign and payload and are not quieted."""
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    actual = quants.dequantize(bits.view(np.uint8), int(T.F16), (1 << 16,))
    is_nan = (bits & 0x7C00) == 0x7C00
    is_nan &= (bits & 0x03FF) != 0
    expected = bits.view(np.float16).astype(np.float32)
    assert_bits_equal(actual[~is_nan], expected[~is_nan], "F16 non-NaN")
    nan_bits = bits[is_nan].astype(np.uint32)
    expected_nan = ((nan_bits & 0x8000) << 16) | 0x7F800000 | ((nan_bits & 0x03FF) << 13)
    assert np.array_equal(actual[is_nan].view(np.uint32), expected_nan)
    quiet = is_nan & ((bits & 0x0200) != 0)  # hardware casts keep quiet NaN payloads too
    assert_bits_equal(actual[quiet], expected[quiet], "F16 quiet NaN")


def test_f16_special_values():
    specials = {
        0x0000: 0.0, 0x8000: -0.0, 0x0001: 2.0**-24, 0x8001: -(2.0**-24), 0x03FF: 1023 * 2.0**-24,
        0x0400: 2.0**-14, 0x3C00: 1.0, 0xC000: -2.0, 0x7BFF: 65504.0, 0x7C00: np.inf, 0xFC00: -np.inf,
    }
    bits = np.array(list(specials), dtype=np.uint16)
    actual = quants.dequantize(bits.view(np.uint8), int(T.F16), (len(bits),))
    assert_bits_equal(actual, np.array(list(specials.values()), dtype=np.float32), "F16 specials")
    assert_bits_equal(actual, gguf.quants.dequantize(bits.view(np.uint8), T.F16), "F16 specials vs gguf")
    for h, value in specials.items():
        got = quants.fp16_to_fp32(h)
        assert got == value and np.signbit(got) == np.signbit(value), hex(h)


def test_concurrent_calls_agree():
    """The kernels release the GIL and share no state: concurrent calls give the serial result."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(5)
    raws = {t: random_tensor_bytes(t, 64, 4096, rng) for t in (T.Q4_K, T.Q5_0, T.Q6_K, T.F16)}
    serial = {t: quants.dequantize(raw, int(t), (64, 4096)) for t, raw in raws.items()}
    jobs = [t for t in raws for _ in range(4)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda t: quants.dequantize(raws[t], int(t), (64, 4096)), jobs))
    for t, result in zip(jobs, results):
        assert_bits_equal(result, serial[t], f"{t.name} (threaded)")


# ---- API and errors --------------------------------------------------------------------------


def test_block_sizes_match_gguf():
    for qtype in T:
        if qtype in SUPPORTED + NEWER:
            assert quants.type_supported(int(qtype)), qtype.name
            assert (quants.block_elems(int(qtype)), quants.block_bytes(int(qtype))) == GGML_QUANT_SIZES[qtype]
            block_size, type_size = GGML_QUANT_SIZES[qtype]
            assert quants.row_bytes(int(qtype), 3 * block_size) == 3 * type_size
        else:
            assert not quants.type_supported(int(qtype)), qtype.name
    assert sorted(quants.SUPPORTED_TYPES) == sorted(int(t) for t in SUPPORTED + NEWER)


@pytest.mark.parametrize("bad_type", [int(T.Q8_1), int(T.Q8_K), int(T.NVFP4), int(T.I8), 4, 31, 99, -1])
def test_unsupported_type_raises(bad_type):
    assert not quants.type_supported(bad_type)
    with pytest.raises(ValueError, match="unsupported GGML type"):
        quants.dequantize(np.zeros(84, dtype=np.uint8), bad_type, (256,))
    with pytest.raises(ValueError, match="unsupported GGML type"):
        quants.block_elems(bad_type)
    with pytest.raises(ValueError, match="unsupported GGML type"):
        quants.block_bytes(bad_type)
    with pytest.raises(ValueError, match="unsupported GGML type"):
        quants.row_bytes(bad_type, 256)


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="not a multiple"):
        quants.dequantize(np.zeros(18, dtype=np.uint8), int(T.Q4_0), (16,))
    with pytest.raises(ValueError, match="needs 36 bytes, got 35"):
        quants.dequantize(np.zeros(35, dtype=np.uint8), int(T.Q4_0), (64,))
    with pytest.raises(ValueError, match="needs 144 bytes, got 288"):
        quants.dequantize(np.zeros(288, dtype=np.uint8), int(T.Q4_K), (1, 256))
    with pytest.raises(ValueError, match="not a non-negative multiple"):
        quants.row_bytes(int(T.Q6_K), 100)
    with pytest.raises(ValueError):
        quants.dequantize(np.zeros(4, dtype=np.uint8), int(T.F32), ())
    assert quants.dequantize(np.zeros(0, dtype=np.uint8), int(T.Q8_0), (0, 64)).shape == (0, 64)


# ---- starter models --------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["smollm2_path", "gemma3_path"], ids=["smollm2", "gemma3"])
def model_reader(request):
    """gguf.GGUFReader over a starter model (slow for gemma's 262k vocabulary: ~20 s).
    The path fixtures (conftest.py) fail the test if the file is missing."""
    return gguf.GGUFReader(request.getfixturevalue(request.param))


def test_every_model_tensor_matches_reference(model_reader):
    rng = np.random.default_rng(0)
    failures = []
    n_checked = 0
    for t in model_reader.tensors:
        qtype = T(int(t.tensor_type))
        assert quants.type_supported(int(qtype)), f"{t.name}: type {qtype.name} is not supported"
        shape = tuple(int(x) for x in reversed(t.shape))  # numpy order: the row last
        raw = np.asarray(t.data)
        raw = raw.view(np.uint8).reshape(-1, quants.row_bytes(int(qtype), shape[-1]))
        n_rows = raw.shape[0]
        if n_rows > FULL_COMPARE_MAX_ROWS:
            rows = np.unique(np.concatenate([
                np.arange(512), np.arange(n_rows - 512, n_rows), rng.choice(n_rows, 1024, replace=False),
            ]))
            raw = raw[rows]
            shape = (len(rows), shape[-1])
        expected = gguf.quants.dequantize(raw, qtype).reshape(shape)
        actual = quants.dequantize(raw, int(qtype), shape)
        a, b = actual.view(np.uint32), expected.view(np.uint32)
        if actual.shape != expected.shape or not np.array_equal(a, b):
            n_bad = int(np.count_nonzero(a != b)) if actual.shape == expected.shape else -1
            failures.append(f"{t.name} ({qtype.name}, shape {shape}): {n_bad} elements differ")
        n_checked += 1
    assert n_checked == len(model_reader.tensors) > 0
    assert not failures, "\n".join(failures)
