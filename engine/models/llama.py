"""Llama (``general.architecture = llama``): Llama 2/3.x, Mistral (``mistral`` alias), TinyLlama, SmolLM2,
Mixtral.

The plain pre-norm block: RMSNorm, attention with RoPE on adjacent pairs (the converter permutes Q/K
so that GGML_ROPE_TYPE_NORM applies), SiLU-gated FFN; optional biases on Q/K/V, the attention output
and the FFN; Llama 3.1/3.2's per-dimension RoPE factors (``rope_freqs.weight``) and linear / YaRN
scaling (``rope.scaling.*``); output tied to the embedding when the file has no ``output.weight``.
Mixtral is this architecture with ``expert_count`` > 0: each layer's FFN is a mixture of experts
(``ffn_gate_inp`` router, softmax, the ``expert_used_count`` most probable experts renormalized,
``feed_forward_length``-wide SiLU experts ``ffn_*_exps``). Source: llama.cpp ``src/models/llama.cpp``
(``build_moe_ffn(..., LLM_FFN_SILU, norm_w = true, ..., SOFTMAX)`` when ``ffn_gate_inp`` is present),
``src/llama-model.cpp`` (create_tensor_qkv, get_rope_factors).
"""
from __future__ import annotations

from ..gguf_file import GGUFFile
from .base import (MOE_SOFTMAX, PRE_NORMS, HParams, TensorTable, attn_output, gated_ffn, moe_ffn, qkv, read_common,
                   read_moe)

MOE = True  # Mixtral: llama with experts
TENSORS = TensorTable(
    layer=(*PRE_NORMS, *qkv(), *attn_output(bias=False), *gated_ffn(bias=False)),
    rope_factors=True,
)
MOE_TENSORS = TensorTable(
    layer=(*PRE_NORMS, *qkv(), *attn_output(bias=False), *moe_ffn()),
    rope_factors=True,
)


def read_hparams(gf: GGUFFile) -> HParams:
    """Read a llama model's :class:`HParams` from its GGUF metadata."""
    # Aliases (mistral) keep their own key prefix, so read under the name the file uses.
    arch = str(gf.require("general.architecture"))
    common = read_common(gf, arch)
    moe = {}
    if gf.get_int(f"{arch}.expert_count", 0, lo=0) or any(".ffn_gate_inp." in n for n in gf.tensors):
        # llama.cpp sizes a llama file's experts by feed_forward_length, whatever else the file says
        moe = dict(read_moe(gf, arch, common["n_ff"]), moe_gating=MOE_SOFTMAX, moe_norm_w=True)
    return HParams(**common, rope_neox=False, **moe)


def tensors(hp: HParams) -> TensorTable:
    """The llama tensor table (Mixtral's with experts)."""
    return MOE_TENSORS if hp.n_expert else TENSORS
