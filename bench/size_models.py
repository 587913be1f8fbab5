"""Realistic-size GGUF files of seeded random weights, for speed only: Llama 3-shaped 1B, 3B and 8B, a
Qwen2.5-shaped 1.5B (Q/K/V biases) and a scaled-down Qwen3-30B-A3B (``qwen3moe``: Qwen3-30B-A3B's layer
width, heads and expert width, 20 of its 48 layers and 32 of its 128 experts, 4 used per token instead
of 8, an eighth of the experts active per token), written in F16 with ``gguf``'s writer and quantized by llama.cpp's own
quantizer (``llama_model_quantize``) to Q4_K_M, Q8_0 and IQ4_XS, into ``.cache/bench`` (git ignored).

Shapes are those of the released models' config.json (Llama-3.2-1B / 3B, Llama-3.1-8B, Qwen2.5-1.5B,
Qwen3-30B-A3B scaled down as above):
n_embd, blocks, heads, KV heads, n_ff; the tokenizer and vocabulary are SmolLM2's (49,152 tokens: the
embedding and output matrices are smaller than Llama 3's 128,256 rows, which the bytes-per-token figure
of ``fireside bench`` accounts for). Random weights predict nothing: these files measure speed only.

Run: ``.venv/bin/python bench/size_models.py [--shapes 1b,3b] [--types Q4_K_M]`` prints the paths
(building what is missing); ``make bench`` calls it.
"""
from __future__ import annotations

import argparse
import ctypes
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / ".cache" / "bench"
sys.path.insert(0, str(ROOT / "tests"))


@dataclass(frozen=True)
class Shape:
    name: str
    arch: str
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ff: int
    rope_base: float
    bias: bool = False  # Q/K/V biases (qwen2)
    tied: bool = True   # output head tied to the embedding
    head_dim: int = 0   # attention.key_length (0: n_embd / n_head)
    qk_norm: bool = False  # per-head Q/K RMSNorm (qwen3, qwen3moe)
    n_expert: int = 0   # mixture of experts: experts, experts per token, one expert's FFN width
    n_expert_used: int = 0
    n_ff_exp: int = 0


SHAPES = {
    "1b": Shape("llama3-1b", "llama", 2048, 16, 32, 8, 8192, 500000.0),
    "3b": Shape("llama3-3b", "llama", 3072, 28, 24, 8, 8192, 500000.0),
    "8b": Shape("llama3-8b", "llama", 4096, 32, 32, 8, 14336, 500000.0, tied=False),
    "qwen1.5b": Shape("qwen2.5-1.5b", "qwen2", 1536, 28, 12, 2, 8960, 1000000.0, bias=True),
    "qwen3moe": Shape("qwen3moe-a3b-small", "qwen3moe", 2048, 20, 32, 4, 6144, 1000000.0, head_dim=128, qk_norm=True,
                      n_expert=32, n_expert_used=4, n_ff_exp=768),
}
TYPES = ("Q4_K_M", "Q8_0", "IQ4_XS")
_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:10]


def _tokenizer_kv(smollm2: Path) -> list[tuple[str, object, object, object]]:
    """SmolLM2's tokenizer and chat-template keys: (key, value, value type, element type)."""
    from gguf import GGUFReader, GGUFValueType

    r = GGUFReader(smollm2)
    out = []
    for name, f in r.fields.items():
        if name.startswith("tokenizer."):
            vtype = f.types[0]
            sub = f.types[1] if vtype == GGUFValueType.ARRAY and len(f.types) > 1 else None
            out.append((name, f.contents(), vtype, sub))
    return out


def _write_f16(shape: Shape, smollm2: Path, out: Path, seed: int = 0) -> None:
    """The F16 model, one tensor in memory at a time."""
    from gguf import GGMLQuantizationType, GGUFValueType, GGUFWriter

    hd = shape.head_dim or shape.n_embd // shape.n_head
    kv = shape.n_head_kv * hd
    q = shape.n_head * hd
    n_vocab = 49152
    tensors: list[tuple[str, tuple[int, ...], bool]] = [("token_embd.weight", (n_vocab, shape.n_embd), True),
                                                        ("output_norm.weight", (shape.n_embd,), False)]
    if not shape.tied:
        tensors.append(("output.weight", (n_vocab, shape.n_embd), True))
    for i in range(shape.n_layer):
        b = f"blk.{i}."
        tensors += [(b + "attn_norm.weight", (shape.n_embd,), False),
                    (b + "attn_q.weight", (q, shape.n_embd), True),
                    (b + "attn_k.weight", (kv, shape.n_embd), True),
                    (b + "attn_v.weight", (kv, shape.n_embd), True),
                    (b + "attn_output.weight", (shape.n_embd, q), True),
                    (b + "ffn_norm.weight", (shape.n_embd,), False)]
        if shape.qk_norm:
            tensors += [(b + "attn_q_norm.weight", (hd,), False), (b + "attn_k_norm.weight", (hd,), False)]
        if shape.n_expert:  # the router stays F32, as llama.cpp's quantizer keeps it
            e, f = shape.n_expert, shape.n_ff_exp
            tensors += [(b + "ffn_gate_inp.weight", (e, shape.n_embd), False),
                        (b + "ffn_gate_exps.weight", (e, f, shape.n_embd), True),
                        (b + "ffn_up_exps.weight", (e, f, shape.n_embd), True),
                        (b + "ffn_down_exps.weight", (e, shape.n_embd, f), True)]
        else:
            tensors += [(b + "ffn_gate.weight", (shape.n_ff, shape.n_embd), True),
                        (b + "ffn_up.weight", (shape.n_ff, shape.n_embd), True),
                        (b + "ffn_down.weight", (shape.n_embd, shape.n_ff), True)]
        if shape.bias:
            tensors += [(b + "attn_q.bias", (shape.n_embd,), False), (b + "attn_k.bias", (kv,), False),
                        (b + "attn_v.bias", (kv,), False)]
    w = GGUFWriter(out, shape.arch)
    a = shape.arch
    w.add_key_value("general.name", shape.name, GGUFValueType.STRING)
    w.add_key_value("general.file_type", 1, GGUFValueType.UINT32)  # MOSTLY_F16
    for key, value, vtype in ((f"{a}.block_count", shape.n_layer, GGUFValueType.UINT32),
                              (f"{a}.context_length", 8192, GGUFValueType.UINT32),
                              (f"{a}.embedding_length", shape.n_embd, GGUFValueType.UINT32),
                              (f"{a}.feed_forward_length", shape.n_ff, GGUFValueType.UINT32),
                              (f"{a}.attention.head_count", shape.n_head, GGUFValueType.UINT32),
                              (f"{a}.attention.head_count_kv", shape.n_head_kv, GGUFValueType.UINT32),
                              (f"{a}.rope.dimension_count", hd, GGUFValueType.UINT32),
                              (f"{a}.rope.freq_base", shape.rope_base, GGUFValueType.FLOAT32),
                              (f"{a}.attention.layer_norm_rms_epsilon", 1e-5, GGUFValueType.FLOAT32)):
        w.add_key_value(key, value, vtype)
    if shape.head_dim:
        w.add_key_value(f"{a}.attention.key_length", hd, GGUFValueType.UINT32)
        w.add_key_value(f"{a}.attention.value_length", hd, GGUFValueType.UINT32)
    if shape.n_expert:
        w.add_key_value(f"{a}.expert_count", shape.n_expert, GGUFValueType.UINT32)
        w.add_key_value(f"{a}.expert_used_count", shape.n_expert_used, GGUFValueType.UINT32)
        w.add_key_value(f"{a}.expert_feed_forward_length", shape.n_ff_exp, GGUFValueType.UINT32)
    for key, value, vtype, sub in _tokenizer_kv(smollm2):
        if vtype == GGUFValueType.ARRAY:
            w.add_key_value(key, list(value), vtype, sub_type=sub)
        else:
            w.add_key_value(key, value, vtype)
    for name, dims, is_matrix in tensors:
        dtype = np.float16 if is_matrix else np.float32
        nbytes = int(np.prod(dims)) * np.dtype(dtype).itemsize
        w.add_tensor_info(name, dims, np.dtype(dtype), nbytes,
                          raw_dtype=GGMLQuantizationType.F16 if is_matrix else GGMLQuantizationType.F32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    rng = np.random.default_rng(seed)
    for name, dims, is_matrix in tensors:
        if is_matrix:  # rows of unit RMS over sqrt(n_in): activations keep their size through the blocks
            data = (rng.standard_normal(dims, dtype=np.float32) / np.sqrt(dims[-1])).astype(np.float16)
        elif name.endswith("ffn_gate_inp.weight"):  # router logits of standard deviation about 1
            data = rng.standard_normal(dims, dtype=np.float32) / np.float32(np.sqrt(dims[-1]))
        elif name.endswith("norm.weight"):
            data = np.ones(dims, np.float32)
        else:
            data = (0.02 * rng.standard_normal(dims, dtype=np.float32))
        w.write_tensor_data(data)
    w.close()


def _quantize(src: Path, out: Path, ftype: str) -> None:
    import llama_cpp

    log: list[str] = []
    callback = llama_cpp.llama_log_callback(lambda level, text, user: log.append(text.decode("utf-8", "replace")))
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{ftype}")
    params.nthread = 2
    try:
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(out).encode(), params)
    finally:
        llama_cpp.llama_log_set(llama_cpp.llama_log_callback(), ctypes.c_void_p(0))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize {ftype} failed ({rc}): {''.join(log)[-500:]}")


def build(shape_key: str, ftype: str, smollm2: Path) -> Path:
    """The file of one shape and type (built once per version of this module)."""
    shape = SHAPES[shape_key]
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    path = BENCH_DIR / f"{shape.name}-{ftype}-{_HASH}.gguf"
    if path.is_file():
        return path
    for stale in BENCH_DIR.glob(f"{shape.name}-{ftype}-*"):
        stale.unlink()
    f16 = BENCH_DIR / f"{shape.name}-F16-{_HASH}.gguf"
    if not f16.is_file():
        for stale in BENCH_DIR.glob(f"{shape.name}-F16-*"):
            stale.unlink()
        tmp = f16.with_suffix(".part")
        _write_f16(shape, smollm2, tmp)
        tmp.replace(f16)
    tmp = path.with_suffix(".part")
    _quantize(f16, tmp, ftype)
    tmp.replace(path)
    return path


def main() -> None:
    from conftest import SMOLLM2_FILE, MODELS_DIR

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="1b,3b,8b,qwen1.5b,qwen3moe", help=f"comma list of {', '.join(SHAPES)}")
    ap.add_argument("--types", default=",".join(TYPES), help="comma list of llama.cpp ftypes")
    ap.add_argument("--keep-f16", action="store_true", help="keep the F16 sources (default: delete once quantized)")
    args = ap.parse_args()
    for key in args.shapes.split(","):
        for ftype in args.types.split(","):
            print(build(key, ftype, MODELS_DIR / SMOLLM2_FILE), flush=True)
        if not args.keep_f16:
            for f16 in BENCH_DIR.glob(f"{SHAPES[key].name}-F16-*"):
                f16.unlink()


if __name__ == "__main__":
    main()
