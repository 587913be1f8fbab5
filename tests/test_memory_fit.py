"""engine/memory_fit.py: the memory estimate against the engine's real allocations, on both starter models."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import psutil
import pytest

from conftest import GEMMA3_FILE, ROOT, SMOLLM2_FILE, loaded_model, model_path
from engine import memory_fit as mf
from engine.context import DEFAULT_N_CTX, Context
from engine.gguf_file import GGUFError, GGUFFile

MODELS = [SMOLLM2_FILE, GEMMA3_FILE]


@pytest.mark.parametrize("filename", MODELS)
@pytest.mark.parametrize("n_ctx,n_seq", [(256, 1), (640, 3)])
def test_kv_estimate_equals_the_engines_kv_cache(filename, n_ctx, n_seq):
    """The KV part is exactly the bytes of ForwardContext's K and V arrays (all sequences)."""
    model = loaded_model(filename)
    ctx = Context(model, n_ctx=n_ctx, n_threads=1, n_seq=n_seq)
    real = sum(a.nbytes for seq in range(n_seq) for a in ctx._fwd.kv_cache(seq))
    est = mf.estimate_file(model_path(filename), n_ctx, n_seq, n_threads=1)
    assert est.kv_bytes == real
    assert est.n_ctx == n_ctx and est.n_parallel == n_seq and not est.approx
    assert est.weights_bytes == model_path(filename).stat().st_size
    assert est.needed_bytes == est.weights_bytes + est.kv_bytes + est.compute_bytes


@pytest.mark.parametrize("filename", MODELS)
def test_llama_cpp_generic_formula_agrees_with_the_engines_reading(filename):
    """The fallback for architectures the engine does not run (llama.cpp's metadata keys) gives the same
    cache size as the engine's own hyper-parameters on these files."""
    with GGUFFile(model_path(filename)) as gf:
        exact = mf.shape_from_gguf(gf)
        generic = mf.generic_shape(gf)
    assert exact.exact and not generic.exact
    assert generic.kv_bytes_per_token == exact.kv_bytes_per_token > 0
    assert (generic.n_ctx_train, generic.n_vocab, generic.head_dim) == (exact.n_ctx_train, exact.n_vocab, exact.head_dim)


@pytest.mark.parametrize("filename", MODELS)
def test_default_context_is_the_engines(filename):
    model = loaded_model(filename)
    est = mf.estimate_file(model_path(filename), 0, 1)
    assert est.n_ctx == Context(model, n_threads=1).n_ctx == min(model.hparams.n_ctx_train, DEFAULT_N_CTX)


# The measurement runs in a fresh interpreter so that memory freed by earlier tests cannot be handed out
# again (which would hide part of the growth).
_MEASURE = textwrap.dedent("""
    import json, sys
    import numpy as np, psutil
    from engine.context import Context
    from engine.model import load_model
    path, n_ctx = sys.argv[1], int(sys.argv[2])
    proc = psutil.Process()
    def anon():  # resident memory not backed by a file: the mapped weights are left out
        m = proc.memory_info()
        return m.rss - m.shared
    model = load_model(path)
    before = anon()
    ctx = Context(model, n_ctx=n_ctx, n_threads=2)
    ctx.prefill([int(t) for t in np.random.default_rng(0).integers(0, model.hparams.n_vocab, n_ctx)])
    print(json.dumps({"growth": anon() - before}))
""")


@pytest.mark.parametrize("filename", MODELS)
def test_estimate_bounds_the_memory_a_full_context_takes(filename):
    """RSS growth (anonymous memory) of creating a Context and filling all its n_ctx rows.

    Bounds: at least the KV cache (every row of every layer is written by the prefill; 2 % slack for
    allocator reuse), at most KV + compute buffers + 8 MiB (numpy temporaries of a prefill, Python
    objects). Buffers count fully in the estimate but are taken from the OS only where a pass writes
    them (numpy's zeros is calloc), so the real growth lies between the two.
    """
    n_ctx = 512
    path = model_path(filename)
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(path), str(n_ctx)], capture_output=True, text=True,
                         cwd=ROOT, timeout=600, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    growth = json.loads(out.stdout.strip().splitlines()[-1])["growth"]
    est = mf.estimate_file(path, n_ctx, 1, n_threads=2)
    assert 0.98 * est.kv_bytes <= growth <= est.kv_bytes + est.compute_bytes + (8 << 20), (growth, est)


def test_verdicts_and_explanation():
    with GGUFFile(model_path(SMOLLM2_FILE)) as gf:
        shape = mf.shape_from_gguf(gf)
    need = mf.estimate(shape, 2048, 2, n_threads=2, available=1 << 40).needed_bytes
    assert mf.estimate(shape, 2048, 2, n_threads=2, available=need * 2).fits is mf.Fit.YES
    tight = mf.estimate(shape, 2048, 2, n_threads=2, available=int(need / 0.9))
    assert tight.fits is mf.Fit.TIGHT and "tightly" in tight.explanation
    no = mf.estimate(shape, 2048, 2, n_threads=2, available=need - 1)
    assert no.fits is mf.Fit.NO and "not enough memory" in no.explanation and no.short.endswith("too big")
    assert "2,048 tokens × 2 slots" in no.explanation
    # More context costs exactly the cache rows it adds.
    a, b = (mf.estimate(shape, n, 1, n_threads=2, available=1) for n in (1000, 2000))
    assert b.kv_bytes - a.kv_bytes == 1000 * shape.kv_bytes_per_token
    with pytest.raises(ValueError):
        mf.estimate(shape, 100, 0)


def test_available_memory_is_psutils():
    est = mf.estimate_file(model_path(SMOLLM2_FILE), 512)
    assert abs(est.available_bytes - psutil.virtual_memory().available) < 512 << 20


def test_estimate_from_size_is_approximate_and_conservative():
    size = model_path(SMOLLM2_FILE).stat().st_size
    with GGUFFile(model_path(SMOLLM2_FILE)) as gf:
        exact = mf.shape_from_gguf(gf)
    guess = mf.estimate_from_size(size, 4096, 1, "Q4_1", available=1 << 40)
    assert guess.approx and guess.short.startswith("≈ ") and guess.weights_bytes == size
    assert guess.kv_bytes >= 0.9 * mf.kv_cache_bytes(exact, 4096)
    assert mf.bits_per_weight("Q4_K_M") == 4.5 and mf.bits_per_weight("F16") == 16 and mf.bits_per_weight("Q8_0") == 8.5
    assert mf.bits_per_weight(None) == mf.bits_per_weight("nonsense") == mf.DEFAULT_BITS_PER_WEIGHT


def test_a_file_without_a_usable_header_raises_ggufferror(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\xff" * 20)
    with pytest.raises(GGUFError):
        mf.estimate_file(bad)
