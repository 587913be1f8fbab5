"""OLMoE (``general.architecture = olmoe``): OLMoE-1B-7B.

A llama block with full-width RMSNorms on Q and K (``attn_q_norm`` / ``attn_k_norm``, n_embd and
n_head_kv * head_dim wide, as OLMo 2), NEOX RoPE, and a mixture of experts in every layer: softmax
over ``expert_count`` experts, the ``expert_used_count`` most probable ones with their probabilities
as they are (not renormalized), SiLU-gated experts ``feed_forward_length`` wide. Source: llama.cpp
``src/models/olmoe.cpp`` (``build_moe_ffn(..., LLM_FFN_SILU, norm_w = false, ...)``) and
``llama_model_rope_type`` (NEOX).
"""
from __future__ import annotations

from ..gguf_file import GGUFFile
from .base import (MOE_SOFTMAX, PRE_NORMS, HParams, TensorTable, attn_output, moe_ffn, norm, qkv, read_common,
                   read_moe)

MOE = True
TENSORS = TensorTable(
    layer=(*PRE_NORMS, *qkv(), norm("attn_q_norm", "q_norm", lambda h: h.n_embd_q),
           norm("attn_k_norm", "k_norm", lambda h: h.n_embd_kv), *attn_output(), *moe_ffn()),
    output="required",
)


def read_hparams(gf: GGUFFile) -> HParams:
    """Read an OLMoE model's :class:`HParams` from its GGUF metadata."""
    common = read_common(gf, "olmoe")
    return HParams(**common, rope_neox=True, qk_norm_full=True, moe_gating=MOE_SOFTMAX, moe_norm_w=False,
                   **read_moe(gf, "olmoe", common["n_ff"]))


def tensors(hp: HParams) -> TensorTable:
    """The olmoe tensor table."""
    return TENSORS
