"""Qwen3 dense (``general.architecture = qwen3``): Qwen3 0.6B-32B.

A llama block with an RMSNorm on each head of Q and K (``attn_q_norm`` / ``attn_k_norm``, head_dim
wide) before NEOX-style RoPE, no biases, and ``attention.key_length`` independent of
n_embd / n_head (Q is n_head * key_length wide). Source: llama.cpp ``src/models/qwen3.cpp``.
"""
from __future__ import annotations

from ..gguf_file import GGUFFile
from .base import PRE_NORMS, QK_NORMS, HParams, TensorTable, attn_output, gated_ffn, qkv, read_common

TENSORS = TensorTable(layer=(*PRE_NORMS, *qkv(), *QK_NORMS, *attn_output(), *gated_ffn()))


def read_hparams(gf: GGUFFile) -> HParams:
    """Read a Qwen3 model's :class:`HParams` from its GGUF metadata."""
    return HParams(**read_common(gf, "qwen3"), rope_neox=True)


def tensors(hp: HParams) -> TensorTable:
    """The qwen3 tensor table."""
    return TENSORS
