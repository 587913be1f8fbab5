"""The engine's batched quantized matmul (fs_matmul, with its register-tiled kernels) on odd shapes.

Checks, for every GGML type the engine runs:
* each output row (token) is bit for bit what the single-row kernel gives for that activation row
  (``fs_vec_dot_rows_norepack``, i.e. ggml_vec_dot), except for llama.cpp's repacked Q4_0 / Q4_K
  layouts (row counts that are multiples of 8), which follow ggml's gemm/gemv split and are checked
  against those modes;
* the result is close to gguf-py's numpy reference, ``dequantize(W) @ x``;
* 1 and 2 threads give identical bits.
Shapes: row counts that are not multiples of the tile sizes (4, 16) and token counts 1..7 and 70,
so every edge of the tiles is run.
"""
from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize

from cython_kernels import forward, vecdot
from test_vecdot import ALL_TYPES, REPACKED, c_vec_dot_rows, make_weights, make_x

SHAPES = [(1, 37), (3, 16), (5, 8), (7, 21), (70, 13), (9, 24), (14, 40)]  # (n_tok, n_out)


def _x(n_tok: int, n: int, rng) -> np.ndarray:
    return np.stack([make_x(n, rng) for _ in range(n_tok)])


def _row_by_row(t: T, w: np.ndarray, x: np.ndarray, mode: str) -> np.ndarray:
    if len(x) == 0:
        return np.zeros((0, w.shape[0]), np.float32)
    return np.stack([c_vec_dot_rows(mode, t, w, vecdot.quantize_act(int(t), xi), xi.size) for xi in x])


@pytest.mark.parametrize("t", ALL_TYPES, ids=lambda t: t.name)
@pytest.mark.parametrize("n_tok,n_out", SHAPES)
def test_matmul_equals_row_kernels_and_numpy(t, n_tok, n_out):
    rng = np.random.default_rng(1000 * int(t) + n_tok)
    n = 512
    w = make_weights(t, n_out, n, rng)
    x = _x(n_tok, n, rng)
    y1 = forward.matmul(int(t), w, x, 1)
    y2 = forward.matmul(int(t), w, x, 2)
    assert np.array_equal(y1, y2)
    if t in REPACKED and n_out % 8 == 0:
        n_gemm = n_tok - n_tok % 4
        want = np.concatenate([_row_by_row(t, w, x[:n_gemm], "gemm"), _row_by_row(t, w, x[n_gemm:], "gemv")])
    else:
        want = _row_by_row(t, w, x, "norepack")
    assert np.array_equal(y1, want)
    W = dequantize(w, t).reshape(n_out, n).astype(np.float64)
    ref = x.astype(np.float64) @ W.T
    scale = np.abs(x).astype(np.float64) @ np.abs(W).T
    assert np.all(np.abs(y1 - ref) <= 0.02 * scale + 1e-6)


@pytest.mark.parametrize("t", REPACKED, ids=lambda t: t.name)
def test_matmul_parts_get_the_bits_they_get_alone(t):
    """Continuous batching: the rows of one call are parts (sequences) of different lengths; with
    ``parts`` each part's rows are bit for bit a call with its rows alone, though the repacked layouts
    send the first L - L % 4 rows of a call of L to ggml's gemm and the rest to its gemv."""
    rng = np.random.default_rng(77 + int(t))
    n, n_out = 512, 40
    assert vecdot.repacked(int(t), n_out) and not vecdot.repacked(int(t), n_out + 4)
    w = make_weights(t, n_out, n, rng)
    for parts in ([1, 1, 1, 1], [4, 1, 1, 1], [1, 3, 5], [6, 4, 1, 2, 9], [8]):
        x = _x(sum(parts), n, rng)
        alone = np.concatenate([forward.matmul(int(t), w, x[a : a + k], 1)
                                for a, k in zip(np.cumsum([0] + parts[:-1]), parts)])
        for n_threads in (1, 2):
            assert np.array_equal(forward.matmul(int(t), w, x, n_threads, parts=parts), alone), parts
        if parts == [1, 1, 1, 1] and t == T.Q4_K:
            # without parts the 4 rows go to the gemm, whose rounding differs for Q4_K (for Q4_0 on these
            # rows the two happen to agree)
            assert not np.array_equal(forward.matmul(int(t), w, x, 1), alone)
    with pytest.raises(ValueError, match="do not split"):
        forward.matmul(int(t), w, _x(3, n, rng), 1, parts=[1, 1])


def test_matmul_rejects_bad_shapes():
    with pytest.raises(ValueError):
        forward.matmul(int(T.Q4_1), np.zeros((4, 20), np.uint8), np.zeros((2, 33), np.float32))
