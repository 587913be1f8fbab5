"""The mixture-of-experts FFN kernel (``fs_moe_ffn_team``, cython_kernels/fs_moe.c) against references.

* Routing: softmax over the router's logits, the ``n_used`` most probable experts (best first), their
  probabilities renormalized (llama.cpp ``build_moe_ffn``), against numpy; gpt-oss's gating (top-k of
  the logits, softmax over those), no renormalization, and a weight scale.
* The mixture: what the engine's own matmul gives expert by expert for each token (``forward.matmul``),
  combined best expert first, up to the rounding of the down projection's 8-bit activations (the
  SiLU here is numpy's, not the kernel's); and close to a float64 numpy reference of the dequantized
  weights.
* A batch gives each token the bits it gets alone (grouping tokens by expert changes nothing; not for
  Q4_K, whose repacked layout takes llama.cpp's gemm arithmetic for groups of 4 tokens and its gemv
  arithmetic for one, as the dense matmul does), and 1, 2 and 3 threads give the same bits.
Weight types: Q8_0, Q4_K / Q6_K (a Q4_K_M file's experts), and gate / up in different activation
formats (Q8_0 and Q4_1), which the kernel quantizes separately.
"""
from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize

from cython_kernels import forward
from test_vecdot import make_weights

N_EMBD, N_FF = 256, 512


def _w(t: T, n_out: int, n_in: int, rng) -> dict:
    data = make_weights(t, n_out, n_in, rng)
    return {"data": data, "type": int(t), "n_in": n_in, "n_out": n_out}


def _experts(rng, n_expert: int, types=(T.Q8_0, T.Q8_0, T.Q8_0)) -> tuple[dict, dict, dict, dict]:
    router = {"data": (0.3 * rng.standard_normal((n_expert, N_EMBD))).astype(np.float32).view(np.uint8),
              "type": int(T.F32), "n_in": N_EMBD, "n_out": n_expert}
    gate = _w(types[0], n_expert * N_FF, N_EMBD, rng)
    up = _w(types[1], n_expert * N_FF, N_EMBD, rng)
    down = _w(types[2], n_expert * N_EMBD, N_FF, rng)
    return router, gate, up, down


def _expert(w: dict, e: int, rows: int) -> tuple[int, np.ndarray]:
    return w["type"], w["data"][e * rows:(e + 1) * rows]


def _route_ref(logits: np.ndarray, n_used: int, gating: int, norm_w: bool, w_scale: float):
    logits = logits.astype(np.float64)
    if gating == 1:
        ids = np.argsort(-logits, kind="stable")[:n_used]
        p = np.exp(logits[ids] - logits[ids].max())
        weights = p / p.sum()
    else:
        p = np.exp(logits - logits.max())
        p /= p.sum()
        ids = np.argsort(-p, kind="stable")[:n_used]
        weights = p[ids]
    if norm_w:
        weights = weights / weights.sum()
    if w_scale not in (0.0, 1.0):
        weights = weights * w_scale
    return ids, weights


def _silu(x):
    return x / (1 + np.exp(-x))


@pytest.mark.parametrize("gating, norm_w, w_scale", [(0, True, 0.0), (0, False, 0.0), (1, False, 2.5), (0, True, 1.5)])
def test_routing_matches_numpy(gating, norm_w, w_scale):
    rng = np.random.default_rng(7 + gating)
    n_expert, n_used = 16, 4
    router, gate, up, down = _experts(rng, n_expert)
    h = rng.standard_normal((40, N_EMBD)).astype(np.float32)
    _, ids, weights = forward.moe_ffn(h, router, gate, up, down, n_expert, n_used, gating, norm_w, w_scale)
    logits = forward.matmul(int(T.F32), router["data"], h)
    for t in range(len(h)):
        want_ids, want_w = _route_ref(logits[t], n_used, gating, norm_w, w_scale)
        assert list(ids[t]) == list(want_ids), t
        np.testing.assert_allclose(weights[t], want_w, rtol=2e-6)


@pytest.mark.parametrize("types", [(T.Q8_0, T.Q8_0, T.Q8_0), (T.Q4_K, T.Q4_K, T.Q6_K), (T.Q8_0, T.Q4_1, T.Q4_0)],
                         ids=lambda ts: "-".join(t.name for t in ts))
def test_mixture_equals_expert_by_expert_matmuls(types):
    rng = np.random.default_rng(int(types[2]))
    n_expert, n_used = 8, 3
    router, gate, up, down = _experts(rng, n_expert, types)
    h = rng.standard_normal((21, N_EMBD)).astype(np.float32)
    out, ids, weights = forward.moe_ffn(h, router, gate, up, down, n_expert, n_used)
    assert len({int(e) for e in ids.reshape(-1)}) > n_used  # the batch really spreads over experts
    ref64 = np.zeros((len(h), N_EMBD))
    for t in range(len(h)):
        want = None
        for s in range(n_used):
            e = int(ids[t, s])
            g = forward.matmul(*_expert(gate, e, N_FF), h[t:t + 1])
            u = forward.matmul(*_expert(up, e, N_FF), h[t:t + 1])
            a = (g / (1 + np.exp(-g.astype(np.float64)))).astype(np.float32) * u
            y = forward.matmul(*_expert(down, e, N_EMBD), a) * weights[t, s]
            want = y if want is None else want + y
            # float64 reference of the dequantized weights
            G = dequantize(_expert(gate, e, N_FF)[1], T(gate["type"])).reshape(N_FF, N_EMBD).astype(np.float64)
            U = dequantize(_expert(up, e, N_FF)[1], T(up["type"])).reshape(N_FF, N_EMBD).astype(np.float64)
            D = dequantize(_expert(down, e, N_EMBD)[1], T(down["type"])).reshape(N_EMBD, N_FF).astype(np.float64)
            x = h[t].astype(np.float64)
            ref64[t] += weights[t, s] * (D @ (_silu(G @ x) * (U @ x)))
        # numpy's SiLU differs from the kernel's in the last bits, which can move an 8-bit activation
        # of the down projection by one step
        assert np.max(np.abs(out[t] - want[0])) <= 2e-3 * np.abs(want).max()
    err = np.sqrt(np.mean((out - ref64) ** 2)) / np.sqrt(np.mean(ref64 ** 2))
    assert err < 0.03, err


def test_batch_gives_each_token_its_own_bits_for_any_thread_count():
    rng = np.random.default_rng(3)
    n_expert, n_used = 6, 2
    router, gate, up, down = _experts(rng, n_expert, (T.Q4_K, T.Q4_K, T.Q6_K))
    h = rng.standard_normal((37, N_EMBD)).astype(np.float32)
    out1, ids1, w1 = forward.moe_ffn(h, router, gate, up, down, n_expert, n_used, n_threads=1)
    for n_threads in (2, 3):
        out, ids, w = forward.moe_ffn(h, router, gate, up, down, n_expert, n_used, n_threads=n_threads)
        assert np.array_equal(out, out1) and np.array_equal(ids, ids1) and np.array_equal(w, w1)
    router, gate, up, down = _experts(rng, n_expert, (T.Q8_0, T.Q5_0, T.Q6_K))
    out, _, _ = forward.moe_ffn(h, router, gate, up, down, n_expert, n_used, n_threads=2)
    for t in (0, 5, 36):
        alone, _, _ = forward.moe_ffn(h[t:t + 1], router, gate, up, down, n_expert, n_used, n_threads=2)
        assert np.array_equal(alone[0], out[t])


def test_one_expert_per_token_and_every_expert():
    """n_used = 1 (weight 1 after renormalization) is that expert's FFN; n_used = n_expert uses all."""
    rng = np.random.default_rng(11)
    n_expert = 4
    router, gate, up, down = _experts(rng, n_expert)
    h = rng.standard_normal((5, N_EMBD)).astype(np.float32)
    out, ids, weights = forward.moe_ffn(h, router, gate, up, down, n_expert, 1)
    assert np.all(weights == 1.0)
    out_all, ids_all, _ = forward.moe_ffn(h, router, gate, up, down, n_expert, n_expert)
    assert all(sorted(row) == list(range(n_expert)) for row in ids_all.tolist())
    assert not np.allclose(out, out_all)


def test_gpt_oss_experts_biases_and_clamped_swiglu():
    """gpt-oss's experts: router and expert biases, softmax over the chosen logits, and the clamped
    SwiGLU (alpha 1.702, limit 7; ggml_swiglu_oai), against float64."""
    rng = np.random.default_rng(5)
    n_expert, n_used = 8, 4
    router, gate, up, down = _experts(rng, n_expert)
    b = {"router": rng.standard_normal(n_expert).astype(np.float32),
         "gate": rng.standard_normal(n_expert * N_FF).astype(np.float32),
         "up": rng.standard_normal(n_expert * N_FF).astype(np.float32),
         "down": rng.standard_normal(n_expert * N_EMBD).astype(np.float32)}
    h = (3 * rng.standard_normal((9, N_EMBD))).astype(np.float32)  # large enough that the clamps bite
    out, ids, weights = forward.moe_ffn(h, router, gate, up, down, n_expert, n_used, gating=1, norm_w=False,
                                        act=forward.ACT_SWIGLU_OAI, biases=b)
    logits = forward.matmul(int(T.F32), router["data"], h) + b["router"]
    clamped = 0
    for t in range(len(h)):
        want_ids, want_w = _route_ref(logits[t], n_used, 1, False, 0.0)
        assert list(ids[t]) == list(want_ids)
        np.testing.assert_allclose(weights[t], want_w, rtol=2e-6)
        ref = np.zeros(N_EMBD)
        for s, e in enumerate(ids[t]):
            G = dequantize(_expert(gate, e, N_FF)[1], T.Q8_0).reshape(N_FF, N_EMBD).astype(np.float64)
            U = dequantize(_expert(up, e, N_FF)[1], T.Q8_0).reshape(N_FF, N_EMBD).astype(np.float64)
            D = dequantize(_expert(down, e, N_EMBD)[1], T.Q8_0).reshape(N_EMBD, N_FF).astype(np.float64)
            g = G @ h[t] + b["gate"][e * N_FF:(e + 1) * N_FF]
            u = U @ h[t] + b["up"][e * N_FF:(e + 1) * N_FF]
            clamped += int(np.sum(g > 7) + np.sum(np.abs(u) > 7))
            x = np.minimum(g, 7.0)
            a = x / (1 + np.exp(-1.702 * x)) * (np.clip(u, -7.0, 7.0) + 1)
            ref += weights[t, s] * (D @ a + b["down"][e * N_EMBD:(e + 1) * N_EMBD])
        err = np.sqrt(np.mean((out[t] - ref) ** 2)) / np.sqrt(np.mean(ref ** 2))
        assert err < 0.03, (t, err)
    assert clamped > 0


@pytest.mark.parametrize("gated", [False, True])
def test_shared_expert(gated):
    """A shared expert every token uses (Granite-MoE shared; Qwen2-MoE with its sigmoid gate) is added to the
    experts' sum; 1 and 3 threads agree bit for bit."""
    rng = np.random.default_rng(17 + gated)
    n_expert, n_used, n_sh = 6, 2, 384
    router, gate, up, down = _experts(rng, n_expert)
    shared = {"gate": _w(T.Q8_0, n_sh, N_EMBD, rng), "up": _w(T.Q4_0, n_sh, N_EMBD, rng),
              "down": _w(T.Q8_0, N_EMBD, n_sh, rng)}
    if gated:
        shared["gate_inp"] = (0.2 * rng.standard_normal(N_EMBD)).astype(np.float32)
    h = rng.standard_normal((11, N_EMBD)).astype(np.float32)
    plain, ids, weights = forward.moe_ffn(h, router, gate, up, down, n_expert, n_used)
    out, ids2, _ = forward.moe_ffn(h, router, gate, up, down, n_expert, n_used, shared=shared)
    out3, _, _ = forward.moe_ffn(h, router, gate, up, down, n_expert, n_used, shared=shared, n_threads=3)
    assert np.array_equal(ids, ids2) and np.array_equal(out, out3)
    G = dequantize(shared["gate"]["data"], T.Q8_0).reshape(n_sh, N_EMBD).astype(np.float64)
    U = dequantize(shared["up"]["data"], T.Q4_0).reshape(n_sh, N_EMBD).astype(np.float64)
    D = dequantize(shared["down"]["data"], T.Q8_0).reshape(N_EMBD, n_sh).astype(np.float64)
    x = h.astype(np.float64)
    ref = (_silu(x @ G.T) * (x @ U.T)) @ D.T
    if gated:
        ref *= 1 / (1 + np.exp(-(x @ shared["gate_inp"].astype(np.float64))))[:, None]
    err = np.sqrt(np.mean((out - plain - ref) ** 2)) / np.sqrt(np.mean(ref ** 2))
    assert err < 0.03, err


def test_bad_arguments_raise():
    rng = np.random.default_rng(0)
    router, gate, up, down = _experts(rng, 4)
    h = np.zeros((2, N_EMBD), np.float32)
    with pytest.raises(ValueError):
        forward.moe_ffn(h, router, gate, up, down, 4, 5)
    with pytest.raises(ValueError):
        forward.moe_ffn(h, router, gate, up, down, 4, 0)
    with pytest.raises(ValueError):
        forward.moe_ffn(h, router, gate, up, down, 8, 2)  # router rows do not match n_expert
    with pytest.raises(ValueError):
        forward.moe_ffn(np.zeros((2, N_EMBD + 32), np.float32), router, gate, up, down, 4, 2)
