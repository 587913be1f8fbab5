"""Every CPU variant of the kernels this machine can run, each in its own process (the variant is chosen
once per process; ``FIRESIDE_CPU`` forces one), against the others.

* The AVX-512 variant (x86-64-v4 with VNNI) computes the AVX2 variant's exact integer sums with wider
  instructions and keeps its float operations, so every product it runs (row kernels in each of
  llama.cpp's modes, register-tiled prefill through ``forward.matmul`` at token counts around the tile
  sizes, 1 and 2 threads, every weight type Fireside has) must equal the AVX2 variant's bit for bit.
* The AVX2 variant itself is checked against ggml's float operations in tests/test_vecdot.py and
  tests/test_quant_families.py in whatever process runs them; here it is also run by name, so on an
  AVX-512 machine (where the suite's own process runs the AVX-512 variant) the AVX2 code still runs.
* ``FIRESIDE_CPU`` naming a variant the CPU cannot run, or an unknown name, leaves the best one.

A variant the machine cannot execute cannot be tested here: the test says which ran
(``-rs`` shows the skips).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cython_kernels import quants, vecdot

ROOT = Path(__file__).resolve().parent.parent

#: (n_tok, n_out): decode (1), the 4-token gemm groups and their leftovers, the 16-row matmul tiles
#: and 8-row repack groups with leftovers.
SHAPES = [(1, 40), (1, 37), (3, 16), (4, 24), (6, 9), (9, 40), (70, 16)]
N_IN = (512, 2304)  # one and nine super-blocks; 2304 also exercises the 4-block steps and their tail

_SCRIPT = r"""
import json, sys
import numpy as np
sys.path.insert(0, "tests")
from cython_kernels import forward, quants, vecdot
from kernel_calls import c_vec_dot_rows, make_x
from test_cpu_variants import weights
from gguf import GGMLQuantizationType as T

want, out_path, shapes, n_ins = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
assert vecdot.impl() == want, (vecdot.impl(), want)
out = {}
for tid in quants.SUPPORTED_TYPES:
    t = T(tid)
    for n in n_ins:
        w, x = weights(t, n)
        act = vecdot.quantize_act(tid, x[0])
        for mode in ("gemv", "gemm", "norepack"):
            out[f"{t.name}/{n}/{mode}"] = c_vec_dot_rows(mode, t, w, act, n)
        for n_tok, n_out in shapes:
            for threads in (1, 2):
                out[f"{t.name}/{n}/matmul/{n_tok}x{n_out}/{threads}"] = forward.matmul(tid, w[:n_out], x[:n_tok], threads)
np.savez(out_path, **out)
"""


def weights(t, n: int) -> tuple[np.ndarray, np.ndarray]:
    """40 weight rows of type t (uint8, (40, row_bytes)) and 70 activation rows ((70, n) float32),
    seeded by type and n."""
    from gguf import GGMLQuantizationType as T

    sys.path.insert(0, str(ROOT / "tests"))
    from kernel_calls import make_x
    from quant_reference.common import random_blocks
    from test_vecdot import ALL_TYPES, make_weights

    rng = np.random.default_rng(7 * int(t) + n)
    w = make_weights(T(t), 40, n, rng) if t in ALL_TYPES else random_blocks(T(t), 40, n, rng)
    return w, np.stack([make_x(n, rng) for _ in range(70)])


def _run(variant: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{variant}.npz"
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, FIRESIDE_CPU=variant, PYTHONPATH=pythonpath)
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, variant, str(out), json.dumps(SHAPES), json.dumps(N_IN)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = np.load(out)
    return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def variant_results(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("variants")
    return {v: _run(v, tmp) for v in vecdot.variants() if v != "portable"}


def test_variants_listed():
    """variants() runs from portable up to best(); this process runs best() unless FIRESIDE_CPU says
    otherwise."""
    vs = vecdot.variants()
    assert vs[0] == "portable" and vs[-1] == vecdot.best()
    # one architecture's chain: x86-64 portable < avx2 < avx512, arm64 portable < neon
    assert vs in {vecdot.VARIANTS[:n] for n in (1, 2, 3)} | {("portable", "neon")}
    if "FIRESIDE_CPU" not in os.environ:
        assert vecdot.impl() == vecdot.best()


@pytest.mark.parametrize("name", ["nonsense", "neon", "avx512", "avx2", "portable"])
def test_fireside_cpu_names(name):
    """A name this CPU runs is taken; any other leaves the best variant."""
    code = "from cython_kernels import vecdot; print(vecdot.impl()); print(vecdot.variant_warning())"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, FIRESIDE_CPU=name),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    want = name if name in vecdot.variants() else vecdot.best()
    got, warning = proc.stdout.splitlines()
    assert got == want
    if name in vecdot.variants():
        assert warning == "None"
    else:
        assert warning.startswith(f"FIRESIDE_CPU={name}: ") and warning.endswith(f"using {want}")


def test_avx512_equals_avx2_bit_for_bit(variant_results):
    if "avx512" not in variant_results:
        pytest.skip(f"this CPU runs {', '.join(vecdot.variants())}: the AVX-512 variant cannot run here")
    fast, ref = variant_results["avx512"], variant_results["avx2"]
    assert fast.keys() == ref.keys()
    assert len({k.split("/")[0] for k in ref}) == len(quants.SUPPORTED_TYPES)
    bad = [k for k in ref if not np.array_equal(fast[k].view(np.uint32), ref[k].view(np.uint32))]
    assert not bad, f"{len(bad)} of {len(ref)} products differ, first: {bad[:8]}"


def test_simd_variants_agree_with_numpy(variant_results):
    """Each SIMD variant's matmul is within quantization error of the float64 product of the
    dequantized weights (a variant that computed garbage the same way as another would fail here)."""
    from gguf import GGMLQuantizationType as T
    from gguf.quants import dequantize

    if not variant_results:
        pytest.skip("this CPU runs the portable variant only")
    n = N_IN[0]
    for tid in quants.SUPPORTED_TYPES:
        t = T(tid)
        w, x = weights(t, n)
        for v, res in variant_results.items():
            W = dequantize(w, t).reshape(40, n).astype(np.float64)
            y = res[f"{t.name}/{n}/matmul/9x40/1"]
            ref = x[:9].astype(np.float64) @ W.T
            scale = np.abs(x[:9]).astype(np.float64) @ np.abs(W).T
            assert np.all(np.abs(y - ref) <= 0.03 * scale + 1e-6), (v, t.name)
