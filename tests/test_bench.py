"""`fireside bench`: comma lists, bytes read per token, interleaving, the JSON report, the llama.cpp option.

Speed itself is never asserted (the machine is shared and noisy); the llama.cpp comparison is a benchmark
(`make bench`), and only its plumbing is checked here when llama-cpp-python happens to be installed.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest

from conftest import MODELS_DIR, ROOT
from cython_kernels import vecdot
from engine.bench import (RSS_OVERHEAD_BYTES, FiresideRunner, decode_weight_bytes, kv_bytes_read_per_token,
                          kv_cache_bytes, parse_count_list, run_bench)
from engine.cli import build_parser, main
from engine.context import Context
from engine.gguf_file import GGUFFile
from engine.models.base import HParams

HAVE_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None


def fireside(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "FIRESIDE_MODELS": str(MODELS_DIR)})


# -- comma lists -------------------------------------------------------------------------------

def test_parse_count_list():
    assert parse_count_list("512") == [512]
    assert parse_count_list("512,4096") == [512, 4096]
    assert parse_count_list(" 0, 128 ") == [0, 128]
    for bad, fragment in (("", "empty"), ("512,,4096", "empty"), ("512,4k", "'4k'"), ("-1", "negative")):
        with pytest.raises(ValueError, match=fragment):
            parse_count_list(bad)


def test_bench_options_take_comma_lists(capsys):
    args = build_parser().parse_args(["bench", "-p", "512,4096", "-n", "0", "--vs-llama-cpp"])
    assert args.n_prompt == [512, 4096] and args.n_gen == [0] and args.vs_llama_cpp
    defaults = build_parser().parse_args(["bench"])
    assert defaults.n_prompt == [512] and defaults.n_gen == [128] and not defaults.vs_llama_cpp
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "-p", "512,abc"])
    assert "'abc' is not a whole number" in capsys.readouterr().err


# -- bytes read per generated token ------------------------------------------------------------

def write_untied(path: Path) -> Path:
    """A GGUF with a Q8_0 token embedding (16 x 64), its own F32 output head, one F32 matrix and a norm."""
    w = gguf.GGUFWriter(str(path), "llama")
    q8 = gguf.GGMLQuantizationType.Q8_0
    block, size = gguf.GGML_QUANT_SIZES[q8]  # 32 values in 34 bytes
    w.add_tensor("token_embd.weight", np.zeros((16, 64 // block * size), np.uint8), raw_dtype=q8)
    w.add_tensor("output.weight", np.zeros((16, 64), np.float32))
    w.add_tensor("blk.0.attn_q.weight", np.zeros((64, 64), np.float32))
    w.add_tensor("output_norm.weight", np.zeros(64, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_decode_bytes_untied_skip_the_embedding_matrix_but_one_row(tmp_path):
    gf = GGUFFile(write_untied(tmp_path / "untied.gguf"))
    try:
        row = 64 // 32 * 34  # one Q8_0 row of 64 values
        head, attn_q, norm = 16 * 64 * 4, 64 * 64 * 4, 64 * 4
        assert decode_weight_bytes(gf.tensors) == head + attn_q + norm + row
    finally:
        gf.close()


def test_decode_bytes_of_experts_count_the_chosen_ones(tmp_path):
    """A token of a mixture of experts reads n_expert_used / n_expert of each stacked expert tensor."""
    path = tmp_path / "moe.gguf"
    w = gguf.GGUFWriter(str(path), "qwen3moe")
    w.add_tensor("token_embd.weight", np.zeros((16, 64), np.float32))
    w.add_tensor("blk.0.ffn_gate_inp.weight", np.zeros((8, 64), np.float32))
    w.add_tensor("blk.0.ffn_up_exps.weight", np.zeros((8, 32, 64), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    gf = GGUFFile(path)
    try:
        embd, router, experts = 16 * 64 * 4, 8 * 64 * 4, 8 * 32 * 64 * 4
        assert decode_weight_bytes(gf.tensors) == embd + router + experts + 64 * 4
        assert decode_weight_bytes(gf.tensors, 8, 2) == embd + router + experts // 4 + 64 * 4
    finally:
        gf.close()


def test_decode_bytes_tied_read_the_whole_embedding(smollm2_path):
    # SmolLM2 has no output.weight: the head is the token embedding, read whole, plus the looked-up row.
    # Expected figure from gguf-py's own reader, independent of engine.gguf_file.
    reader = gguf.GGUFReader(str(smollm2_path))
    assert "output.weight" not in {t.name for t in reader.tensors}
    embd = next(t for t in reader.tensors if t.name == "token_embd.weight")
    block, size = gguf.GGML_QUANT_SIZES[embd.tensor_type]
    row = int(embd.shape[0]) // block * size  # gguf-py's shape is ggml order: shape[0] is the row length
    expected = sum(int(t.n_bytes) for t in reader.tensors) + row
    gf = GGUFFile(smollm2_path)
    try:
        assert decode_weight_bytes(gf.tensors) == expected
    finally:
        gf.close()


def test_kv_bytes_follow_sliding_windows():
    hp = HParams(arch="test", n_layer=2, n_embd=8, n_head=2, n_head_kv=1, n_ff=16, head_dim=4, n_rot=4,
                 n_ctx_train=64, n_vocab=10, eps=1e-5, rope_base=1e4, layer_window=(0, 3))
    # tg5 from an empty cache: the full layer attends to 1..5 positions (15), the window-3 layer to
    # 1, 2, 3, 3, 3 (12); each position is a K and a V row of n_embd_kv = 4 f16 values.
    assert kv_bytes_read_per_token(hp, 5) == pytest.approx(2 * 4 * 2 * (15 + 12) / 5)
    assert kv_bytes_read_per_token(hp, 0) == 0
    assert kv_cache_bytes(hp, 100) == 2 * 2 * 100 * 4 * 2


# -- the timing loop ---------------------------------------------------------------------------

class RecordingReference(FiresideRunner):
    """A second real engine (Fireside on the same context) that notes how many tokens the cache held when
    called, and empties it after each run: a full cache on every call shows that a Fireside run came just
    before it, so the two engines alternated."""

    def __init__(self, ctx: Context):
        super().__init__(ctx, seed=1)
        self.calls: list[tuple[str, int, int]] = []

    def time_prefill(self, n_prompt: int) -> float:
        self.calls.append(("pp", n_prompt, len(self.ctx.tokens)))
        seconds = super().time_prefill(n_prompt)
        self.ctx.reset()
        return seconds

    def time_decode(self, n_gen: int) -> float:
        self.calls.append(("tg", n_gen, len(self.ctx.tokens)))
        seconds = super().time_decode(n_gen)
        self.ctx.reset()
        return seconds


def test_run_bench_interleaves_rep_by_rep(smollm2):
    ctx = Context(smollm2, n_ctx=64, n_batch=16, n_threads=2)
    ref = RecordingReference(ctx)
    results = run_bench(ctx, [8, 20], 4, reps=2, reference=ref)
    assert [r.test for r in results] == ["pp8", "pp20", "tg4"]
    # Warm-up (whole prompt for pp, one token for tg), then F, L, F, L: before each reference call the
    # cache holds exactly what Fireside's run just before it left there.
    assert ref.calls == [("pp", 8, 8)] * 3 + [("pp", 20, 20)] * 3 + [("tg", 1, 1)] + [("tg", 4, 4)] * 2
    for r in results:
        assert len(r.samples) == len(r.ref_samples) == 2
        assert all(s > 0 for s in r.samples + r.ref_samples)
        assert r.ratio == pytest.approx(np.mean(r.samples) / np.mean(r.ref_samples))
    with pytest.raises(ValueError, match="too small"):
        run_bench(ctx, 100, 0)


def test_bench_json_report(smollm2_path):
    out = fireside("bench", "-m", str(smollm2_path), "-p", "8,16", "-n", "4", "-r", "1", "-c", "64", "-t", "2",
                   "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert [r["test"] for r in report["results"]] == ["pp8", "pp16", "tg4"]
    assert all(r["tokens_per_s"] > 0 and "llama_cpp" not in r for r in report["results"])
    gf = GGUFFile(smollm2_path)
    try:
        weights = decode_weight_bytes(gf.tensors)
    finally:
        gf.close()
    tg = report["results"][2]
    assert tg["bytes_per_token"]["weights"] == weights
    read = weights + tg["bytes_per_token"]["kv_cache_mean"]
    assert tg["gb_per_s"] == pytest.approx(read * tg["tokens_per_s"] / 1e9)
    assert report["n_ctx"] == 64
    assert report["rss_target"] == report["file_size"] + report["kv_cache_bytes"] + RSS_OVERHEAD_BYTES
    assert report["peak_rss"] > report["file_size"] // 2  # the mapped weights were read
    assert report["cpu_variant"] in vecdot.variants()
    assert report["read_loop_gb_per_s"] > 0
    assert tg["read_loop_share"] == pytest.approx(tg["gb_per_s"] / report["read_loop_gb_per_s"])


# -- llama.cpp ---------------------------------------------------------------------------------

def test_vs_llama_cpp_without_the_package_says_how_to_install(monkeypatch, capsys, smollm2_path):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # what `import llama_cpp` meets when it is not installed
    status = main(["bench", "-m", str(smollm2_path), "-p", "8", "-n", "0", "--vs-llama-cpp"])
    assert status == 1
    assert "make llama-cpp" in capsys.readouterr().err


def test_vs_llama_cpp_reports_both_engines(smollm2_path):
    # `make test` installs llama-cpp-python (the [bench] extra): missing, this fails rather than skips
    assert HAVE_LLAMA_CPP, "llama-cpp-python is not installed: run `make llama-cpp`"
    out = fireside("bench", "-m", str(smollm2_path), "-p", "8", "-n", "4", "-r", "1", "-c", "64", "-t", "2",
                   "--vs-llama-cpp", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    for r in report["results"]:
        assert r["llama_cpp"]["tokens_per_s"] > 0
        assert r["ratio"] == pytest.approx(r["tokens_per_s"] / r["llama_cpp"]["tokens_per_s"])
    assert report["llama_cpp"]["peak_rss"] > 0 and report["llama_cpp"]["system_info"]
