"""The forward pass's attention kernel (fs_attention_team through forward.attention) against a float64
reference: causal masks, sliding windows, soft-capping, GQA groups of every size the tiled path takes
(and one above), head sizes that are and are not multiples of 16, positions after a cached prefix, and
1 or 2 threads. Batches of FS_FA_TILE_Q = 64 queries and more take the float-accumulating tiled path;
smaller ones llama.cpp's f16 path (q and the accumulator rounded to f16, hence the looser bound)."""
from __future__ import annotations

import numpy as np
import pytest

from cython_kernels import forward

TILE_Q = 64  # FS_FA_TILE_Q (fs_ops.h)


def reference(q, k_cache, v_cache, pos0, n_head, n_head_kv, scale, softcap, window, sinks=None):
    n_tok, width = q.shape
    hd = width // n_head
    group = n_head // n_head_kv
    k = k_cache.astype(np.float64)
    v = v_cache.astype(np.float64)
    out = np.zeros((n_tok, width))
    for t in range(n_tok):
        p = pos0 + t
        first = max(0, p - window + 1) if window > 0 else 0
        for h in range(n_head):
            g = h // group
            kh = k[first:p + 1, g * hd:(g + 1) * hd]
            s = kh @ q[t, h * hd:(h + 1) * hd].astype(np.float64) * scale
            if softcap:
                s = softcap * np.tanh(s / softcap)
            m = s.max() if sinks is None else max(s.max(), float(sinks[h]))
            w = np.exp(s - m)
            total = w.sum() + (0.0 if sinks is None else np.exp(float(sinks[h]) - m))
            out[t, h * hd:(h + 1) * hd] = (w / total) @ v[first:p + 1, g * hd:(g + 1) * hd]
    return out


CASES = [
    # n_tok, pos0, n_head, n_head_kv, head_dim, window, softcap
    (64, 0, 32, 8, 64, 0, 0.0),        # Llama 3.2 1B's group of 4, one tile row per 4 tokens
    (130, 37, 12, 2, 64, 0, 0.0),      # Qwen2.5's group of 6: tiles of 2 tokens, a partial last tile
    (97, 5, 4, 1, 256, 0, 0.0),        # Gemma 3 270M: group 4, head_dim 256
    (70, 0, 8, 8, 80, 0, 0.0),         # no GQA (tiles of 16 tokens), head_dim 80
    (65, 3, 16, 1, 72, 0, 0.0),        # group 16 (one token per tile), head_dim not a multiple of 16
    (66, 0, 20, 1, 64, 0, 0.0),        # group 20: one token's 20 heads per tile
    (100, 60, 8, 4, 64, 48, 0.0),      # sliding window shorter than the batch
    (80, 10, 8, 2, 64, 0, 50.0),       # soft-capped scores (Gemma 2)
    (9, 30, 8, 2, 64, 0, 0.0),         # under TILE_Q: the f16 path
    (1, 77, 32, 8, 64, 16, 0.0),       # one token (decode), with a window
]


@pytest.mark.parametrize("n_tok,pos0,n_head,n_head_kv,head_dim,window,softcap", CASES)
@pytest.mark.parametrize("threads", [1, 2])
def test_attention_matches_float64(n_tok, pos0, n_head, n_head_kv, head_dim, window, softcap, threads):
    rng = np.random.default_rng(n_tok * 1000 + head_dim)
    n_ctx = pos0 + n_tok + 11
    q = rng.standard_normal((n_tok, n_head * head_dim)).astype(np.float32)
    k_cache = rng.standard_normal((n_ctx, n_head_kv * head_dim)).astype(np.float16)
    v_cache = rng.standard_normal((n_ctx, n_head_kv * head_dim)).astype(np.float16)
    k_cache[pos0 + n_tok:] = np.float16(1e4)  # rows past the batch must never be read
    scale = 1.0 / np.sqrt(head_dim)
    got = forward.attention(q, k_cache, v_cache, pos0, n_head, n_head_kv, scale, softcap, window, threads)
    want = reference(q, k_cache, v_cache, pos0, n_head, n_head_kv, scale, softcap, window)
    # float32 scores and sums over at most a few hundred keys: errors ~1e-6 on outputs of size ~0.1-1; the
    # f16 path rounds q, each product's sum and the accumulator to f16 (relative 2^-11 per step)
    tol = 2e-5 if n_tok >= TILE_Q else 2e-2
    assert np.max(np.abs(got - want)) < tol


@pytest.mark.parametrize("n_tok,pos0,window", [(70, 0, 0), (130, 20, 0), (9, 30, 0), (1, 77, 16), (80, 10, 32)])
@pytest.mark.parametrize("threads", [1, 2])
def test_attention_sinks_match_float64(n_tok, pos0, window, threads):
    """gpt-oss's attention sinks: one logit per head in the softmax's denominator, weighing no V row; some
    above every score (the sink is the maximum), some below, on the tiled, f32 and f16 paths."""
    rng = np.random.default_rng(n_tok + pos0)
    n_head, n_head_kv, head_dim = 8, 2, 64
    n_ctx = pos0 + n_tok + 3
    q = rng.standard_normal((n_tok, n_head * head_dim)).astype(np.float32)
    k_cache = rng.standard_normal((n_ctx, n_head_kv * head_dim)).astype(np.float16)
    v_cache = rng.standard_normal((n_ctx, n_head_kv * head_dim)).astype(np.float16)
    sinks = np.array([-3.0, 0.0, 1.5, 4.0, 8.0, -1.0, 2.5, 20.0], np.float32)
    scale = 1.0 / np.sqrt(head_dim)
    got = forward.attention(q, k_cache, v_cache, pos0, n_head, n_head_kv, scale, 0.0, window, threads, sinks)
    want = reference(q, k_cache, v_cache, pos0, n_head, n_head_kv, scale, 0.0, window, sinks)
    plain = reference(q, k_cache, v_cache, pos0, n_head, n_head_kv, scale, 0.0, window)
    tol = 2e-5 if n_tok >= TILE_Q else 2e-2
    assert np.max(np.abs(got - want)) < tol
    assert np.max(np.abs(want - plain)) > 0.5  # the sinks matter at this size


def test_attention_rejects_bad_shapes():
    q = np.zeros((4, 64), np.float32)
    kv = np.zeros((8, 64), np.float16)
    with pytest.raises(ValueError):
        forward.attention(q, kv, kv, 6, 1, 1, 1.0)  # positions 6..9 beyond n_ctx 8
    with pytest.raises(ValueError):
        forward.attention(q, kv.astype(np.float32), kv, 0, 1, 1, 1.0)


VARIANT_SCRIPT = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[2])
from test_attention import CASES
from cython_kernels import forward, vecdot
out = {}
for c in CASES:
    n_tok, pos0, nh, nkv, hd, win, cap = c
    rng = np.random.default_rng(n_tok * 1000 + hd)
    n_ctx = pos0 + n_tok + 11
    q = rng.standard_normal((n_tok, nh * hd)).astype(np.float32)
    k = rng.standard_normal((n_ctx, nkv * hd)).astype(np.float16)
    v = rng.standard_normal((n_ctx, nkv * hd)).astype(np.float16)
    out[str(c)] = forward.attention(q, k, v, pos0, nh, nkv, 1 / np.sqrt(hd), cap, win, 2)
np.savez(sys.argv[1], impl=vecdot.impl(), **out)
"""


def run_variant(script, variant, tmp_path):
    """The arrays `script` saves (its argv: the .npz path, this folder) when run in a fresh interpreter under
    FIRESIDE_CPU=variant; asserts that the variant is the one that ran."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / f"{variant}.npz"
    subprocess.run([sys.executable, "-c", script, str(out), str(Path(__file__).parent)], check=True,
                   env={**os.environ, "FIRESIDE_CPU": variant})
    run = np.load(out)
    assert str(run["impl"]) == variant
    return run


def test_avx512_attention_is_avx2_bit_for_bit(tmp_path):
    from cython_kernels import vecdot

    if "avx512" not in vecdot.variants():
        pytest.skip(f"this CPU runs {vecdot.variants()}: no AVX-512 to compare")
    runs = {variant: run_variant(VARIANT_SCRIPT, variant, tmp_path) for variant in ("avx2", "avx512")}
    for case in runs["avx2"].files:
        if case != "impl":
            np.testing.assert_array_equal(runs["avx512"][case], runs["avx2"][case], err_msg=case)


# Batches under TILE_Q (decode, small chunks): llama.cpp's f16 path, by the F16C kernel
# (attend_f16_acc_avx2) on SIMD variants and by the scalar emulation on `portable`, 1 and 2 threads.
F16_CASES = [
    # n_tok, pos0, n_head, n_head_kv, head_dim, window, softcap, sinks
    (1, 77, 32, 8, 64, 0, 0.0, False),     # Llama 3.2 1B decode: group 4
    (1, 200, 9, 3, 64, 0, 0.0, False),     # SmolLM2: group 3
    (1, 50, 4, 1, 256, 0, 0.0, False),     # Gemma 3 270M: one KV head
    (4, 30, 12, 2, 128, 0, 0.0, False),    # Qwen2.5's group 6
    (9, 30, 8, 2, 64, 0, 50.0, False),     # soft-capped
    (3, 40, 16, 1, 64, 20, 0.0, False),    # group 16, sliding window
    (2, 10, 20, 1, 64, 0, 0.0, False),     # group 20
    (5, 60, 8, 8, 64, 0, 0.0, False),      # no GQA
    (1, 33, 8, 2, 64, 0, 0.0, True),       # attention sinks
    (63, 0, 8, 2, 32, 0, 0.0, False),      # the largest batch on this path, head_dim 32
]

F16_SCRIPT = """
import sys
import numpy as np
sys.path.insert(0, sys.argv[2])
from test_attention import F16_CASES
from cython_kernels import forward, vecdot
out = {}
for c in F16_CASES:
    n_tok, pos0, nh, nkv, hd, win, cap, with_sinks = c
    rng = np.random.default_rng(n_tok * 1000 + hd + pos0)
    n_ctx = pos0 + n_tok + 5
    q = (3 * rng.standard_normal((n_tok, nh * hd))).astype(np.float32)
    k = rng.standard_normal((n_ctx, nkv * hd)).astype(np.float16)
    v = rng.standard_normal((n_ctx, nkv * hd)).astype(np.float16)
    sinks = rng.uniform(-4, 12, nh).astype(np.float32) if with_sinks else None
    for threads in (1, 2):
        out[f"{c} threads={threads}"] = forward.attention(q, k, v, pos0, nh, nkv, 1 / np.sqrt(hd), cap, win,
                                                          threads, sinks)
np.savez(sys.argv[1], impl=vecdot.impl(), **out)
"""


def test_f16_path_simd_is_portable_bit_for_bit(tmp_path):
    """The F16C kernel gives exactly the bits of the portable scalar emulation of ggml's f16 flash
    attention (ggml-cpu/ops.cpp ggml_compute_forward_flash_attn_ext_f16_one_chunk), which the
    float64 comparison above cannot see (its bound is 2e-2)."""
    from cython_kernels import vecdot

    simd = [v for v in vecdot.variants() if v != "portable"]
    if not simd:
        pytest.skip(f"this CPU runs {vecdot.variants()}: no SIMD variant to compare")
    runs = {variant: run_variant(F16_SCRIPT, variant, tmp_path) for variant in ("portable", *simd)}
    for variant in simd:
        for case in runs["portable"].files:
            if case != "impl":
                np.testing.assert_array_equal(runs[variant][case].view(np.uint32),
                                              runs["portable"][case].view(np.uint32), err_msg=f"{variant} {case}")
