#!/usr/bin/env python
"""Micro-benchmark of the quantized dot-product kernels (cython_kernels/fs_vecdot.c).

Times the C kernel fs_vec_dot_rows (one thread; the activation row quantized once beforehand;
batches of back-to-back calls timed by cython_kernels.vecdot.bench_vec_dot_rows, best batch kept)
over whole real weight tensors of the starter models and prints the weight bytes processed per
second, for the AVX2 implementation and for the portable one (each measured in its own process,
since the choice is made once per process; the portable one with FIRESIDE_CPU=portable).

Small tensors stay in the CPU caches between repetitions, so their GB/s is a compute figure; the
262144-row token embedding (~178 MB) does not fit and shows the memory-bound rate.

Usage:  python bench/vecdot_bench.py [--min-time SECONDS]
Models: $FIRESIDE_MODELS, default <repo>/.cache/models (fetch them with `make models`).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = Path(os.environ.get("FIRESIDE_MODELS", ROOT / ".cache" / "models"))
GEMMA = "gemma-3-270m-q4_k_m.gguf"
SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"
TENSORS = [
    (GEMMA, "blk.0.ffn_down.weight"),  # Q6_K
    (GEMMA, "blk.0.attn_output.weight"),  # Q4_K
    (GEMMA, "blk.0.attn_q.weight"),  # Q5_0
    (SMOLLM2, "blk.0.ffn_up.weight"),  # Q4_1
    (GEMMA, "token_embd.weight"),  # Q8_0, large
]


def measure(min_time: float) -> dict:
    import numpy as np

    from cython_kernels import vecdot
    from engine.gguf_file import GGUFFile

    rows = []
    rng = np.random.default_rng(0)
    for model, name in TENSORS:
        path = MODELS / model
        if not path.is_file():
            raise SystemExit(f"{path} is missing: run `make models`")
        gf = GGUFFile(path)
        t = gf.tensor(name)
        w = t.data
        x = rng.standard_normal(t.ne[0]).astype(np.float32)
        per_call = vecdot.bench_vec_dot_rows(t.ggml_type, w, x, 1)  # warm-up: pages the mapping in
        repeat = max(1, int(0.05 / max(per_call, 1e-7)))  # batches of ~50 ms
        best, total = float("inf"), 0.0
        while total < min_time:
            dt = vecdot.bench_vec_dot_rows(t.ggml_type, w, x, repeat)
            best, total = min(best, dt), total + dt * repeat
        rows.append({"tensor": f"{model.split('-')[0]}:{name}", "type": t.type_name, "rows": int(w.shape[0]),
                     "n": int(t.ne[0]), "bytes": int(w.nbytes), "seconds": best})
        del w
        gf.close()
    return {"impl": vecdot.impl(), "rows": rows}


def run_worker(env_extra: dict, min_time: float) -> dict:
    env = dict(os.environ, **env_extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    out = subprocess.run([sys.executable, __file__, "--worker", "--min-time", str(min_time)],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds of timing per tensor (default 1)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(measure(args.min_time)))
        return
    fast = run_worker({}, args.min_time)
    slow = run_worker({"FIRESIDE_CPU": "portable"}, args.min_time)
    print(f"fs_vec_dot_rows, one thread, best ~50 ms batch within {args.min_time:g} s per tensor; GB/s of weight bytes")
    print(f"{'tensor':34s} {'type':5s} {'rows x n':>14s} {'MB':>7s} {fast['impl']:>9s} {slow['impl']:>9s} {'speedup':>8s}")
    for a, b in zip(fast["rows"], slow["rows"]):
        ga, gb = a["bytes"] / a["seconds"] / 1e9, b["bytes"] / b["seconds"] / 1e9
        print(f"{a['tensor']:34s} {a['type']:5s} {a['rows']:>7d} x {a['n']:<5d} {a['bytes'] / 1e6:7.2f} "
              f"{ga:9.2f} {gb:9.2f} {ga / gb:7.1f}x")


if __name__ == "__main__":
    main()
