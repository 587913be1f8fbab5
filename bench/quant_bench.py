"""Fireside against llama.cpp on the quant zoo (tests/zoo_quants.py): perplexity and decode speed per file.

For every case: build the file (llama.cpp's quantizer, or written blocks), then
``fireside bench --vs-llama-cpp`` (decode, tg) and ``fireside perplexity`` next to llama.cpp's perplexity
of the same tokens (tests/test_zoo.compare_with_llama_cpp), and print one table row:
case | PPL Fireside | PPL llama.cpp | tg t/s Fireside | tg t/s llama.cpp | ratio.

Run: .venv/bin/python bench/quant_bench.py [-t THREADS] [-n N_GEN] [-k SUBSTRING]   (``make bench-quants``)
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import model_path, reference_file  # noqa: E402
from test_zoo import SOURCES, compare_with_llama_cpp  # noqa: E402
from zoo_quants import CASES, build_quant_case  # noqa: E402


def decode_speed(path: Path, threads: int, n_gen: int) -> tuple[float, float]:
    """(Fireside, llama.cpp) decode tokens per second from ``fireside bench --vs-llama-cpp --json``."""
    out = subprocess.run([sys.executable, "-m", "engine", "bench", "-m", str(path), "-t", str(threads), "-p", "0",
                          "-n", str(n_gen), "-r", "3", "--vs-llama-cpp", "--json"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    tg = next(r for r in json.loads(out)["results"] if r["test"].startswith("tg"))
    return float(tg["tokens_per_s"]), float(tg["llama_cpp"]["tokens_per_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-n", "--n-gen", type=int, default=64)
    ap.add_argument("-k", default="", help="only cases whose name contains this")
    args = ap.parse_args()
    text = reference_file("texts/apache-2.0.txt").read_text()
    print("| case | types | PPL Fireside | PPL llama.cpp | tg t/s Fireside | tg t/s llama.cpp | ratio |")
    print("|---|---|---|---|---|---|---|")
    for case in CASES:
        if args.k not in case.name:
            continue
        path = build_quant_case(case, model_path(SOURCES[case.source]))
        ppl, ppl_ref, _ = compare_with_llama_cpp(case.name, path, text, case.predicts_text)
        ours, theirs = decode_speed(path, args.threads, args.n_gen)
        ppl_cells = f"{ppl:.3f} | {ppl_ref:.3f}" if case.predicts_text else "(logits) | (logits)"
        print(f"| {case.name} | {', '.join(case.types)} | {ppl_cells} | {ours:.1f} | {theirs:.1f} | "
              f"{ours / theirs:.2f} |", flush=True)


if __name__ == "__main__":
    main()
