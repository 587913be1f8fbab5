"""Llama (``general.architecture = llama``): Llama 2/3.x, Mistral (``mistral`` alias), TinyLlama, SmolLM2.

The plain pre-norm block: RMSNorm, attention with RoPE on adjacent pairs (the converter permutes Q/K
so that GGML_ROPE_TYPE_NORM applies), SiLU-gated FFN; optional biases on Q/K/V, the attention output
and the FFN; Llama 3.1/3.2's per-dimension RoPE factors (``rope_freqs.weight``) and linear / YaRN
scaling (``rope.scaling.*``); output tied to the embedding when the file has no ``output.weight``.
Source: llama.cpp ``src/models/llama.cpp``, ``src/llama-model.cpp`` (create_tensor_qkv,
get_rope_factors).
"""
from __future__ import annotations

from ..gguf_file import GGUFFile
from .base import PRE_NORMS, HParams, TensorTable, attn_output, gated_ffn, qkv, read_common

TENSORS = TensorTable(
    layer=(*PRE_NORMS, *qkv(), *attn_output(bias=False), *gated_ffn(bias=False)),
    rope_factors=True,
)


def read_hparams(gf: GGUFFile) -> HParams:
    """Read a llama model's :class:`HParams` from its GGUF metadata."""
    # Aliases (mistral) keep their own key prefix, so read under the name the file uses.
    return HParams(**read_common(gf, str(gf.require("general.architecture"))), rope_neox=False)


def tensors(hp: HParams) -> TensorTable:
    """The llama tensor table."""
    return TENSORS
