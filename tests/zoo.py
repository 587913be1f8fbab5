"""The conformance zoo: GGUF files of every supported architecture, built from the starter models' own
weights moved into each architecture's layout, with ``gguf``'s writer.

Each case takes the SmolLM2 (llama) or Gemma 3 file and rewrites it as another architecture expects
it (llama.cpp ``src/models/<arch>.cpp`` and ``convert_hf_to_gguf.py`` say what each layout is):
- Q/K rows re-ordered per head where the RoPE style differs (adjacent pairs -> NEOX halves), so the
  rotated model computes what the original did;
- tensors fused where the architecture stores them fused (Phi-3's ``attn_qkv`` and gate | up
  ``ffn_up``: quantized rows are concatenated as they are, no re-quantization);
- the tensors an architecture adds (biases, QK-norms, RoPE factor tensors, post-norms) filled with
  seeded values of a sensible size, so the model still predicts text.
Every block is kept (cutting blocks out leaves a model that no longer predicts text). Files go to
``.cache/zoo`` (git ignored), named with a hash of this file, so they are rebuilt when the builder changes.
"""
from __future__ import annotations

import functools
import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
from gguf.quants import dequantize

ROOT = Path(__file__).resolve().parent.parent
ZOO_DIR = ROOT / ".cache" / "zoo"
F32 = GGMLQuantizationType.F32


@dataclass
class Tensor:
    """A tensor to write: raw bytes (n_rows, row_bytes) of a GGML type, or float32 values."""

    data: np.ndarray
    ggml_type: GGMLQuantizationType = F32

    @classmethod
    def f32(cls, values) -> "Tensor":
        return cls(np.ascontiguousarray(values, dtype=np.float32))

    def rows(self, idx) -> "Tensor":
        """Rows re-ordered or selected (a quantized row is a whole number of blocks, so rows move as bytes)."""
        return Tensor(np.ascontiguousarray(self.data[idx]), self.ggml_type)


@dataclass
class Source:
    """A starter model opened for rebuilding: its metadata values and tensors by name."""

    arch: str
    kv: dict
    tensors: dict[str, Tensor]

    def key(self, name: str, default=None):
        return self.kv.get(f"{self.arch}.{name}", (default, None))[0]


def read_source(path: Path) -> Source:
    """The starter file at ``path`` as a Source. gguf's GGUFReader takes about 15 s over Gemma's 262k-token
    vocabulary, so the parsed file is kept for the session (keyed by path, size and mtime); each caller gets
    its own dicts and lists (the tensors are read-only views of the mapping), so one case's edits cannot
    reach another's."""
    st = os.stat(path)
    src = _read_source(str(path), st.st_size, st.st_mtime_ns)
    kv = {k: (list(v) if isinstance(v, list) else v, t) for k, (v, t) in src.kv.items()}
    return Source(src.arch, kv, dict(src.tensors))


@functools.lru_cache(maxsize=2)
def _read_source(path: str, size: int, mtime_ns: int) -> Source:
    r = GGUFReader(path)
    kv = {}
    for name, f in r.fields.items():
        if name.startswith("GGUF."):
            continue
        vtype = f.types[0]
        sub = f.types[1] if vtype == GGUFValueType.ARRAY and len(f.types) > 1 else None
        kv[name] = (f.contents(), (vtype, sub))
    tensors = {}
    for t in r.tensors:
        n_rows = int(np.prod(t.shape[1:])) if len(t.shape) > 1 else 1
        if t.tensor_type == F32:
            tensors[t.name] = Tensor.f32(np.asarray(t.data).reshape(-1) if n_rows == 1 else
                                         np.asarray(t.data).reshape(n_rows, -1))
        else:
            tensors[t.name] = Tensor(np.asarray(t.data).view(np.uint8).reshape(n_rows, -1), t.tensor_type)
    arch = kv["general.architecture"][0]
    return Source(arch, kv, tensors)


def neox_perm(head_dim: int, n_rot: int, n_head: int) -> np.ndarray:
    """Row order turning adjacent-pair RoPE rows into NEOX rows: within each head the first n_rot dims
    become (0, 2, 4, ..., 1, 3, 5, ...), so NEOX's pair (i, i + n_rot/2) is the old pair (2i, 2i + 1)."""
    head = np.concatenate([np.arange(0, n_rot, 2), np.arange(1, n_rot, 2), np.arange(n_rot, head_dim)])
    return np.concatenate([h * head_dim + head for h in range(n_head)])


@dataclass
class Case:
    """One zoo file: a name, the starter it comes from and the function that rewrites it."""

    name: str
    source: str  # "smollm2" or "gemma3"
    build: Callable[[Source, np.random.Generator], tuple[str, dict, dict]]
    # False where the layout change leaves a model that no longer predicts text (OLMo 2 from a pre-norm
    # model): its perplexity is meaningless, so the logits are compared instead.
    predicts_text: bool = True
    # Perplexity tolerance relative to llama.cpp's, if tighter than tests/test_zoo.py's PPL_TOLERANCE: the
    # mixture-of-experts cases are held to the 1% their issue asks (measured 0.0-0.5%).
    ppl_tolerance: float | None = None


def _n_layer(src: Source) -> int:
    return int(src.key("block_count"))


def _hp(src: Source) -> dict:
    n_embd = int(src.key("embedding_length"))
    n_head = int(src.key("attention.head_count"))
    head_dim = int(src.key("attention.key_length", n_embd // n_head))
    return dict(n_embd=n_embd, n_head=n_head, n_head_kv=int(src.key("attention.head_count_kv", n_head)),
                head_dim=head_dim, n_ff=int(src.key("feed_forward_length")))


def _arch_kv(src: Source, arch: str, drop: tuple[str, ...] = ()) -> dict:
    """The source's metadata with ``{src.arch}.*`` keys renamed to ``{arch}.*`` (tokenizer and general
    keys as they are)."""
    out = {}
    for name, value in src.kv.items():
        if name.startswith(src.arch + "."):
            suffix = name[len(src.arch) + 1:]
            if suffix in drop:
                continue
            name = f"{arch}.{suffix}"
        out[name] = value
    out["general.architecture"] = (arch, (GGUFValueType.STRING, None))
    # (no architecture in the name: llama.cpp sets token attributes by general.name, "phi3" for one)
    out["general.name"] = ("Fireside zoo model", (GGUFValueType.STRING, None))
    return out


def _f32(v: float):
    return (float(v), (GGUFValueType.FLOAT32, None))


def _u32(v: int):
    return (int(v), (GGUFValueType.UINT32, None))


def _str(v: str):
    return (v, (GGUFValueType.STRING, None))


def _noise(rng: np.random.Generator, n: int, center: float, spread: float) -> Tensor:
    return Tensor.f32(center + spread * rng.standard_normal(n))


def _values(t: Tensor) -> np.ndarray:
    """float32 values of a tensor (n_rows, n_in) (``gguf.quants.dequantize`` for quantized ones)."""
    return t.data if t.ggml_type == F32 else dequantize(t.data, t.ggml_type).astype(np.float32)


def _head_rms(w: Tensor, norm_w: np.ndarray, rng: np.random.Generator) -> float:
    """Typical RMS of this projection's output heads on RMS-normed inputs: random unit-RMS rows times
    the block's input norm weights, through the dequantized matrix."""
    x = rng.standard_normal((32, norm_w.shape[0])).astype(np.float32) * norm_w
    return float(np.sqrt(np.mean((x @ _values(w).T) ** 2)))


def _permute_qk(src: Source, tensors: dict, hp: dict, n_rot: int) -> None:
    """Re-order Q and K rows of every layer from adjacent-pair RoPE to NEOX."""
    pq = neox_perm(hp["head_dim"], n_rot, hp["n_head"])
    pk = neox_perm(hp["head_dim"], n_rot, hp["n_head_kv"])
    for il in range(_n_layer(src)):
        tensors[f"blk.{il}.attn_q.weight"] = tensors[f"blk.{il}.attn_q.weight"].rows(pq)
        tensors[f"blk.{il}.attn_k.weight"] = tensors[f"blk.{il}.attn_k.weight"].rows(pk)


# ---- the cases -------------------------------------------------------------------------------------

def llama3_rope_freqs(n_rot: int, base: float, factor=8.0, low=1.0, high=4.0, n_ctx_orig=8192) -> np.ndarray:
    """Llama 3.1's RoPE frequency divisors (convert_hf_to_gguf.py LlamaModel.generate_extra_tensors)."""
    freqs = 1.0 / base ** (np.arange(0, n_rot, 2, dtype=np.float64) / n_rot)
    low_wl, high_wl = n_ctx_orig / low, n_ctx_orig / high
    out = []
    for f in freqs:
        wl = 2 * math.pi / f
        if wl < high_wl:
            out.append(1.0)
        elif wl > low_wl:
            out.append(factor)
        else:
            smooth = (n_ctx_orig / wl - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(out, np.float32)


def build_llama3(src: Source, rng):
    """llama with Llama 3.1's rope_freqs.weight (a short original context so the factors bite)."""
    kv = _arch_kv(src, "llama")
    t = dict(src.tensors)
    n_rot = int(src.key("rope.dimension_count"))
    t["rope_freqs.weight"] = Tensor.f32(llama3_rope_freqs(n_rot, float(src.key("rope.freq_base")), n_ctx_orig=256))
    return "llama", kv, t


def build_llama_yarn(src: Source, rng):
    """llama with YaRN scaling (factor 4 over an original context of 128) and seeded biases on every
    projection (llama.cpp reads them where present)."""
    kv = _arch_kv(src, "llama")
    kv["llama.rope.scaling.type"] = _str("yarn")
    kv["llama.rope.scaling.factor"] = _f32(4.0)
    kv["llama.rope.scaling.original_context_length"] = _u32(128)
    t = dict(src.tensors)
    hp = _hp(src)
    for il in range(_n_layer(src)):
        for name, n in (("attn_q", hp["n_head"] * hp["head_dim"]), ("attn_k", hp["n_head_kv"] * hp["head_dim"]),
                        ("attn_v", hp["n_head_kv"] * hp["head_dim"]), ("attn_output", hp["n_embd"]),
                        ("ffn_gate", hp["n_ff"]), ("ffn_up", hp["n_ff"]), ("ffn_down", hp["n_embd"])):
            t[f"blk.{il}.{name}.bias"] = _noise(rng, n, 0.0, 0.02)
    return "llama", kv, t


def build_llama_linear(src: Source, rng):
    """llama with linear RoPE scaling (``rope.scaling.factor`` 2: positions interpolated by half)."""
    kv = _arch_kv(src, "llama")
    kv["llama.rope.scaling.type"] = _str("linear")
    kv["llama.rope.scaling.factor"] = _f32(2.0)
    return "llama", kv, dict(src.tensors)


def build_qwen2(src: Source, rng):
    kv = _arch_kv(src, "qwen2")
    t = dict(src.tensors)
    hp = _hp(src)
    _permute_qk(src, t, hp, hp["head_dim"])
    for il in range(_n_layer(src)):
        t[f"blk.{il}.attn_q.bias"] = _noise(rng, hp["n_head"] * hp["head_dim"], 0.0, 0.05)
        t[f"blk.{il}.attn_k.bias"] = _noise(rng, hp["n_head_kv"] * hp["head_dim"], 0.0, 0.05)
        t[f"blk.{il}.attn_v.bias"] = _noise(rng, hp["n_head_kv"] * hp["head_dim"], 0.0, 0.02)
    t["output.bias"] = _noise(rng, src.tensors["token_embd.weight"].data.shape[0], 0.0, 0.1)
    t["output.weight"] = src.tensors["token_embd.weight"]
    return "qwen2", kv, t


def build_qwen3(src: Source, rng):
    kv = _arch_kv(src, "qwen3")
    hp = _hp(src)
    kv["qwen3.attention.key_length"] = _u32(hp["head_dim"])
    kv["qwen3.attention.value_length"] = _u32(hp["head_dim"])
    t = dict(src.tensors)
    _permute_qk(src, t, hp, hp["head_dim"])
    for il in range(_n_layer(src)):
        # RMS-normed heads have RMS 1; norm weights near 2 gave the best perplexity of 0.5 .. 4.5 tried
        for x in "qk":
            t[f"blk.{il}.attn_{x}_norm.weight"] = _noise(rng, hp["head_dim"], 2.0, 0.1)
    return "qwen3", kv, t


def build_phi3(src: Source, rng):
    """phi3: fused QKV and gate | up; partial RoPE on 32 of 64 dims at base sqrt(base) (so those 16
    pairs keep their frequencies); LongRoPE short/long factors with an original context of 256, so an
    n_ctx of 512 takes the long ones; the attention factor llama.cpp's converter writes."""
    kv = _arch_kv(src, "phi3")
    hp = _hp(src)
    n_rot = hp["head_dim"] // 2
    base = float(src.key("rope.freq_base"))
    kv["phi3.rope.dimension_count"] = _u32(n_rot)
    kv["phi3.rope.freq_base"] = _f32(math.sqrt(base))
    kv["phi3.rope.scaling.original_context_length"] = _u32(256)
    kv["phi3.rope.scaling.attn_factor"] = _f32(math.sqrt(1 + math.log(2.0) / math.log(256)))
    kv["phi3.rope.scaling.type"] = _str("longrope")
    t = dict(src.tensors)
    _permute_qk(src, t, hp, n_rot)
    for il in range(_n_layer(src)):
        q, k, v = (t.pop(f"blk.{il}.attn_{x}.weight") for x in "qkv")
        t[f"blk.{il}.attn_qkv.weight"] = Tensor(np.concatenate([q.data, k.data, v.data]), q.ggml_type)
        g, u = t.pop(f"blk.{il}.ffn_gate.weight"), t.pop(f"blk.{il}.ffn_up.weight")
        t[f"blk.{il}.ffn_up.weight"] = Tensor(np.concatenate([g.data, u.data]), g.ggml_type)
    t["rope_factors_short.weight"] = Tensor.f32(1.0 + 0.05 * rng.random(n_rot // 2))
    t["rope_factors_long.weight"] = Tensor.f32(np.linspace(1.0, 2.0, n_rot // 2))
    t["output.weight"] = src.tensors["token_embd.weight"]
    return "phi3", kv, t


def build_phi3_short(src: Source, rng):
    """phi3 as above with an original context of 4096, so an n_ctx of 512 takes the short factors."""
    arch, kv, t = build_phi3(src, rng)
    kv["phi3.rope.scaling.original_context_length"] = _u32(4096)
    return arch, kv, t


def build_gemma2(src: Source, rng):
    """gemma2 from Gemma 3: no QK-norm (its weights dropped; Q and K matrices rescaled, as float32, so
    their heads keep the size the norm gave them), attention soft-cap 50, final soft-cap 30, window 128;
    Gemma 3's own layer pattern (5 sliding of every 6) as a ``sliding_window_pattern`` bool array and its
    local RoPE base as ``rope.freq_base_swa``, the weights were trained with them."""
    kv = _arch_kv(src, "gemma2", drop=("final_logit_softcapping", "rope.freq_base_swa"))
    kv["gemma2.attn_logit_softcapping"] = _f32(50.0)
    kv["gemma2.final_logit_softcapping"] = _f32(30.0)
    kv["gemma2.attention.sliding_window"] = _u32(128)
    kv["gemma2.rope.freq_base_swa"] = _f32(10000.0)
    kv["gemma2.attention.sliding_window_pattern"] = (
        [il % 6 < 5 for il in range(_n_layer(src))], (GGUFValueType.ARRAY, GGUFValueType.BOOL))
    t = {n: x for n, x in src.tensors.items() if "attn_q_norm" not in n and "attn_k_norm" not in n
         and n != "output.weight"}
    for il in range(_n_layer(src)):
        norm_w = t[f"blk.{il}.attn_norm.weight"].data
        for x in "qk":
            w = t[f"blk.{il}.attn_{x}.weight"]
            gain = float(np.mean(src.tensors[f"blk.{il}.attn_{x}_norm.weight"].data))
            t[f"blk.{il}.attn_{x}.weight"] = Tensor.f32(_values(w) * (gain / _head_rms(w, norm_w, rng)))
    return "gemma2", kv, t


def build_granite(src: Source, rng):
    kv = _arch_kv(src, "granite")
    kv["granite.embedding_scale"] = _f32(1.25)
    kv["granite.residual_scale"] = _f32(0.9)
    kv["granite.attention.scale"] = _f32(0.11)
    kv["granite.logit_scale"] = _f32(1.3)
    return "granite", kv, dict(src.tensors)


def build_olmo2(src: Source, rng):
    """olmo2: no pre-norms, post-norms only, full-width QK-norms, NEOX, an untied output.weight (the
    original embedding). A pre-norm model's blocks fed the raw residual stream do not predict text
    (``Case.predicts_text`` is False: logits are compared instead); to keep the stream tame rather than
    chaotic, token_embd is rescaled (F16) to the first attn_norm's size and the post-norms are small
    (0.02 x the pre-norm weights they replace), so each block adds a small correction."""
    kv = _arch_kv(src, "olmo2")
    hp = _hp(src)
    t = dict(src.tensors)
    _permute_qk(src, t, hp, hp["head_dim"])
    emb = _values(src.tensors["token_embd.weight"])
    target = float(np.mean(np.abs(t["blk.0.attn_norm.weight"].data)))
    t["token_embd.weight"] = Tensor(emb * (target / float(np.sqrt(np.mean(emb**2)))), GGMLQuantizationType.F16)
    for il in range(_n_layer(src)):
        attn_w = t.pop(f"blk.{il}.attn_norm.weight").data
        ffn_w = t.pop(f"blk.{il}.ffn_norm.weight").data
        t[f"blk.{il}.post_attention_norm.weight"] = Tensor.f32(0.02 * ffn_w)
        t[f"blk.{il}.post_ffw_norm.weight"] = Tensor.f32(0.02 * attn_w)
        t[f"blk.{il}.attn_q_norm.weight"] = _noise(rng, hp["n_head"] * hp["head_dim"], 2.0, 0.1)
        t[f"blk.{il}.attn_k_norm.weight"] = _noise(rng, hp["n_head_kv"] * hp["head_dim"], 2.0, 0.1)
    t["output.weight"] = src.tensors["token_embd.weight"]
    return "olmo2", kv, t


def build_smollm3(src: Source, rng):
    return "smollm3", _arch_kv(src, "smollm3"), dict(src.tensors)


def build_mistral3(src: Source, rng):
    """mistral3: YaRN (factor 2 over 128 tokens, beta keys) and attention temperature 0.1 with floor
    scale 128, so positions past 128 get a larger Q."""
    kv = _arch_kv(src, "mistral3")
    kv["mistral3.rope.scaling.type"] = _str("yarn")
    kv["mistral3.rope.scaling.factor"] = _f32(2.0)
    kv["mistral3.rope.scaling.original_context_length"] = _u32(128)
    kv["mistral3.rope.scaling.yarn_beta_fast"] = _f32(16.0)
    kv["mistral3.rope.scaling.yarn_beta_slow"] = _f32(2.0)
    kv["mistral3.attention.temperature_scale"] = _f32(0.1)
    return "mistral3", kv, dict(src.tensors)


def _scale_q4_1(blocks: np.ndarray, factor) -> None:
    """Scale Q4_1 blocks (..., 20 bytes) in place by ``factor`` through their f16 d and m."""
    dm = blocks[..., :4].view(np.float16)  # Q4_1 block: f16 d, f16 m, 16 bytes of nibbles
    blocks[..., :4] = (dm.astype(np.float32) * factor).astype(np.float16).view(np.uint8)


def _experts(src: Source, t: dict, arch: str, kv: dict, rng, n_expert: int, n_used: int, gate_scale: float = 1.0,
             down_scale: float = 1.0) -> None:
    """Turn every layer's dense FFN into ``n_expert`` experts, each the same FFN in its own order of the
    hidden units (the units permuted in groups of 32: gate / up rows and down's Q4_1 blocks move as the
    bytes they are, so each expert alone computes exactly the dense FFN) with its down scaled by its own
    factor 0.7 .. 1.3 (in the blocks' d and m). The chosen experts' weights sum to 1, so the mixture
    stays the dense FFN's size and the model still predicts text, while a wrong expert (or rows of one
    expert read with another's) changes the output. A seeded router gives logits of standard deviation
    near 1 on the block's normed input. The ``{arch}.expert_*`` keys are set; ``n_ff`` stays the
    expert width. gate_scale and down_scale: further factors on every expert's gate and down."""
    hp = _hp(src)
    n_ff, n_embd = hp["n_ff"], hp["n_embd"]
    kv[f"{arch}.expert_count"] = _u32(n_expert)
    kv[f"{arch}.expert_used_count"] = _u32(n_used)
    for il in range(_n_layer(src)):
        gate, up, down = (t.pop(f"blk.{il}.ffn_{x}.weight") for x in ("gate", "up", "down"))
        assert down.ggml_type == GGMLQuantizationType.Q4_1 and n_ff % 32 == 0
        down_blocks = down.data.reshape(n_embd, n_ff // 32, 20)
        gs, us, ds = [], [], []
        for e in range(n_expert):
            perm = rng.permutation(n_ff // 32)
            rows = (perm[:, None] * 32 + np.arange(32)).reshape(-1)
            g = gate.data[rows].copy()
            if gate_scale != 1.0:
                _scale_q4_1(g.reshape(n_ff, -1, 20), gate_scale)
            gs.append(g)
            us.append(up.data[rows])
            blocks = down_blocks[:, perm].copy()
            _scale_q4_1(blocks, (0.7 + 0.6 * rng.random()) * down_scale)
            ds.append(blocks.reshape(n_embd, -1))
        t[f"blk.{il}.ffn_gate_exps.weight"] = Tensor(np.stack(gs), gate.ggml_type)
        t[f"blk.{il}.ffn_up_exps.weight"] = Tensor(np.stack(us), up.ggml_type)
        t[f"blk.{il}.ffn_down_exps.weight"] = Tensor(np.stack(ds), down.ggml_type)
        norm_rms = float(np.sqrt(np.mean(t[f"blk.{il}.ffn_norm.weight"].data ** 2)))
        sigma = 1.0 / (math.sqrt(n_embd) * norm_rms)
        t[f"blk.{il}.ffn_gate_inp.weight"] = Tensor.f32(sigma * rng.standard_normal((n_expert, n_embd)))


def build_qwen3moe(src: Source, rng):
    """qwen3moe: qwen3's attention (QK-norms, NEOX) and 4 experts, 2 used per token, their width in
    ``expert_feed_forward_length``."""
    arch, kv, t = build_qwen3(src, rng)
    kv = {n.replace("qwen3.", "qwen3moe.", 1) if n.startswith("qwen3.") else n: v for n, v in kv.items()}
    kv["general.architecture"] = _str("qwen3moe")
    _experts(src, t, "qwen3moe", kv, rng, n_expert=4, n_used=2)
    kv["qwen3moe.expert_feed_forward_length"] = _u32(_hp(src)["n_ff"])
    return "qwen3moe", kv, t


def build_mixtral(src: Source, rng):
    """llama with experts (Mixtral's layout, the expert width in ``feed_forward_length``): 3 experts, 2
    used per token."""
    kv = _arch_kv(src, "llama")
    t = dict(src.tensors)
    _experts(src, t, "llama", kv, rng, n_expert=3, n_used=2)
    return "llama", kv, t


def build_olmoe(src: Source, rng):
    """olmoe: NEOX, full-width QK-norms (llama.cpp sizes attn_k_norm by n_embd, so the KV heads are
    copied until there is one per query head: the same attention), an untied output.weight, 4 experts,
    2 used per token, their probabilities not renormalized."""
    kv = _arch_kv(src, "olmoe")
    hp = _hp(src)
    t = dict(src.tensors)
    _permute_qk(src, t, hp, hp["head_dim"])
    group = hp["n_head"] // hp["n_head_kv"]
    rows = np.concatenate([np.arange(hd, hd + hp["head_dim"]) for hd in
                           (h // group * hp["head_dim"] for h in range(hp["n_head"]))])
    kv["olmoe.attention.head_count_kv"] = _u32(hp["n_head"])
    for il in range(_n_layer(src)):
        for x in "kv":
            t[f"blk.{il}.attn_{x}.weight"] = t[f"blk.{il}.attn_{x}.weight"].rows(rows)
        for x in "qk":  # full-width norm weights near 1.5: perplexity 620 (2.0: 1030, 3.0: 4966)
            t[f"blk.{il}.attn_{x}_norm.weight"] = _noise(rng, hp["n_head"] * hp["head_dim"], 1.5, 0.1)
    _experts(src, t, "olmoe", kv, rng, n_expert=4, n_used=2)
    t["output.weight"] = src.tensors["token_embd.weight"]
    return "olmoe", kv, t


def build_gpt_oss(src: Source, rng):
    """gpt-oss: NEOX with YaRN (factor 4 over 128 tokens), a window of 128 tokens on even layers,
    seeded Q/K/V and output biases, attention sinks, the pre-FFN norm as post_attention_norm, an untied
    output.weight, 4 experts (2 chosen by the softmax of their router logits) with seeded router and
    expert biases. gpt-oss's clamped SwiGLU, min(g, 7) sigmoid(1.702 min(g, 7)) (clamp(u, -7, 7) + 1),
    is turned back into SmolLM2's SiLU(g) u where nothing clamps: gate rows divided by 1.702 (in the
    Q4_1 scales), up biases near -1, down multiplied by 1.702."""
    kv = _arch_kv(src, "gpt-oss")
    hp = _hp(src)
    kv["gpt-oss.rope.scaling.type"] = _str("yarn")
    kv["gpt-oss.rope.scaling.factor"] = _f32(4.0)
    kv["gpt-oss.rope.scaling.original_context_length"] = _u32(128)
    kv["gpt-oss.attention.sliding_window"] = _u32(128)
    kv["gpt-oss.attention.key_length"] = _u32(hp["head_dim"])
    kv["gpt-oss.attention.value_length"] = _u32(hp["head_dim"])
    t = dict(src.tensors)
    _permute_qk(src, t, hp, hp["head_dim"])
    n_expert, n_ff, n_embd = 4, hp["n_ff"], hp["n_embd"]
    _experts(src, t, "gpt-oss", kv, rng, n_expert=n_expert, n_used=2, gate_scale=1 / 1.702, down_scale=1.702)
    kv["gpt-oss.expert_feed_forward_length"] = _u32(n_ff)
    for il in range(_n_layer(src)):
        t[f"blk.{il}.post_attention_norm.weight"] = t.pop(f"blk.{il}.ffn_norm.weight")
        t[f"blk.{il}.attn_q.bias"] = _noise(rng, hp["n_head"] * hp["head_dim"], 0.0, 0.05)
        t[f"blk.{il}.attn_k.bias"] = _noise(rng, hp["n_head_kv"] * hp["head_dim"], 0.0, 0.05)
        t[f"blk.{il}.attn_v.bias"] = _noise(rng, hp["n_head_kv"] * hp["head_dim"], 0.0, 0.02)
        t[f"blk.{il}.attn_output.bias"] = _noise(rng, n_embd, 0.0, 0.02)
        t[f"blk.{il}.attn_sinks.weight"] = _noise(rng, hp["n_head"], 0.0, 1.0)
        t[f"blk.{il}.ffn_gate_inp.bias"] = _noise(rng, n_expert, 0.0, 0.5)
        t[f"blk.{il}.ffn_gate_exps.bias"] = Tensor.f32(0.02 * rng.standard_normal((n_expert, n_ff)))
        t[f"blk.{il}.ffn_up_exps.bias"] = Tensor.f32(-1.0 + 0.02 * rng.standard_normal((n_expert, n_ff)))
        t[f"blk.{il}.ffn_down_exps.bias"] = Tensor.f32(0.02 * rng.standard_normal((n_expert, n_embd)))
    t["output.weight"] = src.tensors["token_embd.weight"]
    return "gpt-oss", kv, t


def _shared_expert(src: Source, t: dict, il: int, down_scale: float) -> None:
    """The layer's dense FFN, taken from the source, as a shared expert ``ffn_*_shexp``,
    down scaled by ``down_scale`` in its Q4_1 blocks."""
    for x in ("gate", "up"):
        t[f"blk.{il}.ffn_{x}_shexp.weight"] = src.tensors[f"blk.{il}.ffn_{x}.weight"]
    down = src.tensors[f"blk.{il}.ffn_down.weight"]
    blocks = down.data.reshape(down.data.shape[0], -1, 20).copy()
    _scale_q4_1(blocks, down_scale)
    t[f"blk.{il}.ffn_down_shexp.weight"] = Tensor(blocks.reshape(down.data.shape), down.ggml_type)


def build_qwen2moe(src: Source, rng):
    """qwen2moe: qwen2's attention (Q/K/V biases, NEOX), 4 experts with 2 chosen (their softmax
    probabilities not renormalized, about 0.65 together) and a shared expert at 0.7 of the dense FFN
    behind a sigmoid gate near 0.5, so the sum stays near the dense FFN's size."""
    arch, kv, t = build_qwen2(src, rng)
    kv = {n.replace("qwen2.", "qwen2moe.", 1) if n.startswith("qwen2.") else n: v for n, v in kv.items()}
    kv["general.architecture"] = _str("qwen2moe")
    del t["output.bias"]  # llama.cpp's qwen2moe has none
    hp = _hp(src)
    _experts(src, t, "qwen2moe", kv, rng, n_expert=4, n_used=2)
    kv["qwen2moe.expert_feed_forward_length"] = _u32(hp["n_ff"])
    kv["qwen2moe.expert_shared_feed_forward_length"] = _u32(hp["n_ff"])
    for il in range(_n_layer(src)):
        _shared_expert(src, t, il, 0.7)
        t[f"blk.{il}.ffn_gate_inp_shexp.weight"] = _noise(rng, hp["n_embd"], 0.0, 0.01)
    return "qwen2moe", kv, t


def build_granitemoe(src: Source, rng):
    """granitemoe with a shared expert (Granite MoE shared): granite's scales, 4 experts with 2 chosen
    (renormalized) at half their size plus the shared expert at half the dense FFN."""
    arch, kv, t = build_granite(src, rng)
    kv = {n.replace("granite.", "granitemoe.", 1) if n.startswith("granite.") else n: v for n, v in kv.items()}
    kv["general.architecture"] = _str("granitemoe")
    _experts(src, t, "granitemoe", kv, rng, n_expert=4, n_used=2, down_scale=0.5)
    kv["granitemoe.expert_shared_feed_forward_length"] = _u32(_hp(src)["n_ff"])
    for il in range(_n_layer(src)):
        _shared_expert(src, t, il, 0.5)
    return "granitemoe", kv, t


def build_identity(src: Source, rng):
    return src.arch, _arch_kv(src, src.arch), dict(src.tensors)


CASES = [
    Case("llama", "smollm2", build_identity),
    Case("llama-rope-freqs", "smollm2", build_llama3),
    Case("llama-yarn-bias", "smollm2", build_llama_yarn),
    Case("llama-linear", "smollm2", build_llama_linear),
    Case("qwen2", "smollm2", build_qwen2),
    Case("qwen3", "smollm2", build_qwen3),
    Case("phi3", "smollm2", build_phi3),
    Case("phi3-short-factors", "smollm2", build_phi3_short),
    Case("gemma2", "gemma3", build_gemma2),
    Case("gemma3", "gemma3", build_identity),
    Case("granite", "smollm2", build_granite),
    Case("olmo2", "smollm2", build_olmo2, predicts_text=False),
    Case("smollm3", "smollm2", build_smollm3),
    Case("mistral3", "smollm2", build_mistral3),
    Case("qwen3moe", "smollm2", build_qwen3moe, ppl_tolerance=0.01),
    Case("mixtral", "smollm2", build_mixtral, ppl_tolerance=0.01),
    Case("olmoe", "smollm2", build_olmoe, ppl_tolerance=0.01),
    Case("gpt-oss", "smollm2", build_gpt_oss, ppl_tolerance=0.01),
    Case("qwen2moe", "smollm2", build_qwen2moe, ppl_tolerance=0.01),
    Case("granitemoe", "smollm2", build_granitemoe, ppl_tolerance=0.01),
]


def _write(path: Path, arch: str, kv: dict, tensors: dict[str, Tensor]) -> None:
    tmp = path.with_suffix(".tmp")
    w = GGUFWriter(tmp, arch)
    for name, (value, (vtype, sub)) in kv.items():
        if name == "general.architecture":
            continue
        if vtype == GGUFValueType.ARRAY:
            w.add_key_value(name, list(value), vtype, sub_type=sub)
        else:
            w.add_key_value(name, value, vtype)
    for name, t in tensors.items():
        if t.ggml_type == F32:
            w.add_tensor(name, t.data)
        elif t.ggml_type == GGMLQuantizationType.F16 and t.data.dtype != np.uint8:
            w.add_tensor(name, np.ascontiguousarray(t.data, dtype=np.float16))
        else:
            w.add_tensor(name, t.data, raw_shape=t.data.shape, raw_dtype=t.ggml_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.replace(path)


_BUILDER_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def build_case(case: Case, source_path: Path) -> Path:
    """Build (once per builder version) and return the zoo file of one case."""
    ZOO_DIR.mkdir(parents=True, exist_ok=True)
    path = ZOO_DIR / f"{case.name}-{_BUILDER_HASH}.gguf"
    if path.is_file():
        return path
    for stale in ZOO_DIR.glob(f"{case.name}-*.gguf"):
        stale.unlink()
    src = read_source(source_path)
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(case.name.encode()).digest()[:4], "little"))
    arch, kv, tensors = case.build(src, rng)
    _write(path, arch, kv, tensors)
    return path
