"""Qwen2 (``general.architecture = qwen2``): Qwen2, Qwen2.5, DeepSeek-R1-Distill-Qwen.

A llama block with biases on Q, K and V, RoPE on (i, i + n_rot/2) pairs (GGML_ROPE_TYPE_NEOX), an
optional ``output.weight`` (tied otherwise) and optional ``output.bias``. Source: llama.cpp
``src/models/qwen2.cpp``; ``llama_model_rope_type`` in ``src/llama-model.cpp``.
"""
from __future__ import annotations

from ..gguf_file import GGUFFile
from .base import PRE_NORMS, HParams, TensorTable, attn_output, gated_ffn, qkv, read_common

TENSORS = TensorTable(
    layer=(*PRE_NORMS, *qkv(bias=False), *attn_output(), *gated_ffn()),
    output_bias=True,
)


def read_hparams(gf: GGUFFile) -> HParams:
    """Read a Qwen2 model's :class:`HParams` from its GGUF metadata."""
    return HParams(**read_common(gf, "qwen2"), rope_neox=True)


def tensors(hp: HParams) -> TensorTable:
    """The qwen2 tensor table (Q/K/V biases are read where present, as llama.cpp's create_tensor_qkv)."""
    return TENSORS
