"""Qwen3 mixture of experts (``general.architecture = qwen3moe``): Qwen3-30B-A3B, Qwen3-235B-A22B.

Qwen3's attention (per-head QK RMSNorm before NEOX RoPE, ``attention.key_length`` independent of
n_embd / n_head) and, in every layer, a mixture of experts instead of the dense FFN: the router
``ffn_gate_inp``, softmax over ``expert_count`` experts, the ``expert_used_count`` most probable ones
with their probabilities renormalized to sum 1, SiLU-gated experts ``ffn_{gate,up,down}_exps`` of
width ``expert_feed_forward_length``; no shared expert. Source: llama.cpp ``src/models/qwen3moe.cpp``
(``build_moe_ffn(..., LLM_FFN_SILU, norm_w = true, ..., LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX)``).
"""
from __future__ import annotations

from ..gguf_file import GGUFFile
from .base import (MOE_SOFTMAX, PRE_NORMS, QK_NORMS, HParams, TensorTable, attn_output, moe_ffn, qkv, read_common,
                   read_moe)

MOE = True  # reads expert tensors (engine/model.py refuses MoE files of architectures without this)
TENSORS = TensorTable(layer=(*PRE_NORMS, *qkv(), *QK_NORMS, *attn_output(), *moe_ffn()))


def read_hparams(gf: GGUFFile) -> HParams:
    """Read a Qwen3-MoE model's :class:`HParams` from its GGUF metadata (llama.cpp: n_ff_exp defaults to
    n_ff / n_expert_used)."""
    common = read_common(gf, "qwen3moe")
    return HParams(**common, rope_neox=True, moe_gating=MOE_SOFTMAX, moe_norm_w=True,
                   **read_moe(gf, "qwen3moe", None, n_ff=common["n_ff"]))


def tensors(hp: HParams) -> TensorTable:
    """The qwen3moe tensor table."""
    return TENSORS
