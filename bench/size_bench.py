#!/usr/bin/env python
"""Fireside against llama.cpp at the sizes users run: the random-weight Llama 3 1B / 3B / 8B and
Qwen2.5 1.5B files of ``bench/size_models.py`` (built on first use into ``.cache/bench``), each timed
by ``fireside bench --vs-llama-cpp`` in its own process (same file, threads and machine, the two
engines interleaved), gathered into one Markdown table: tokens/s of both, their ratio, the weight
bytes read per decoded token and the GB/s that makes.

Usage: ``python bench/size_bench.py [--shapes 1b,3b,8b,qwen1.5b] [--types Q4_K_M,Q8_0,IQ4_XS]
[-t 2] [-p 512] [-n 64] [-r 3]`` (``make bench-sizes``). The 8B F16 source is 16 GB on disk for a
few minutes; building every file once takes about half an hour on two cores.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import size_models  # noqa: E402


def run_one(path: Path, threads: int, n_prompt: int, n_gen: int, reps: int) -> dict:
    """``fireside bench --json --vs-llama-cpp`` on one file; its JSON report."""
    cmd = [sys.executable, "-m", "engine", "bench", "-m", str(path), "-t", str(threads), "-p", str(n_prompt),
           "-n", str(n_gen), "-r", str(reps), "--vs-llama-cpp", "--json"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ))
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def rows(report: dict, shape: str, ftype: str) -> list[str]:
    """Markdown table rows of one report."""
    out = []
    size = f"{report['file_size'] / 2**20:.0f} MiB"
    for r in report["results"]:
        ll = r.get("llama_cpp", {})
        bpt = r.get("bytes_per_token")
        traffic = (f"{bpt['weights'] / 1e6:.0f} MB | {r['gb_per_s']:.1f} | {ll.get('gb_per_s', float('nan')):.1f}"
                   if bpt else " | | ")  # three cells either way
        out.append(f"| {shape} | {ftype} | {size} | {r['test']} | {r['tokens_per_s']:.2f} ± {r['std']:.2f} | "
                   f"{ll.get('tokens_per_s', float('nan')):.2f} ± {ll.get('std', float('nan')):.2f} | "
                   f"{r.get('ratio', float('nan')):.2f} | {traffic} |")
    return out


def main() -> None:
    from conftest import MODELS_DIR, SMOLLM2_FILE

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="1b,3b,8b,qwen1.5b,qwen3moe", help=f"comma list of {', '.join(size_models.SHAPES)}")
    ap.add_argument("--types", default=",".join(size_models.TYPES), help="comma list of llama.cpp ftypes")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-p", "--n-prompt", type=int, default=512)
    ap.add_argument("-n", "--n-gen", type=int, default=64)
    ap.add_argument("-r", "--reps", type=int, default=3)
    args = ap.parse_args()
    table = ["| shape | type | size | test | fireside t/s | llama.cpp t/s | ratio | weights/token | fireside GB/s "
             "| llama.cpp GB/s |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    info = ""
    for key in args.shapes.split(","):
        for ftype in args.types.split(","):
            path = size_models.build(key, ftype, MODELS_DIR / SMOLLM2_FILE)
            report = run_one(path, args.threads, args.n_prompt, args.n_gen, args.reps)
            info = info or (f"fireside CPU variant: {report.get('cpu_variant', '?')}; llama.cpp "
                            f"{report['llama_cpp']['version']}: {report['llama_cpp']['system_info']}")
            new = rows(report, size_models.SHAPES[key].name, ftype)
            for line in new:
                print(line, file=sys.stderr, flush=True)  # progress
            table += new
        for f16 in size_models.BENCH_DIR.glob(f"{size_models.SHAPES[key].name}-F16-*"):
            f16.unlink()
    print(info)
    print("\n".join(table))


if __name__ == "__main__":
    main()
