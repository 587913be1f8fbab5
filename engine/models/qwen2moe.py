"""Qwen2 mixture of experts (``general.architecture = qwen2moe``): Qwen1.5-MoE-A2.7B, Qwen2-57B-A14B.

Qwen2's attention (Q/K/V biases, NEOX RoPE) and, in every layer, a mixture of experts plus a shared
expert: the router ``ffn_gate_inp``, softmax over ``expert_count`` experts, the ``expert_used_count``
most probable with their probabilities as they are (not renormalized), SiLU-gated experts
``ffn_*_exps`` of width ``expert_feed_forward_length`` (default n_ff / expert_used_count); and the shared
expert ``ffn_*_shexp`` (width ``expert_shared_feed_forward_length``, default n_ff) that every token uses,
its output scaled by sigmoid(h . ``ffn_gate_inp_shexp``). Source: llama.cpp ``src/models/qwen2moe.cpp``.
"""
from __future__ import annotations

from ..gguf_file import GGUFFile
from .base import (MAX_FF, MOE_SOFTMAX, PRE_NORMS, HParams, TensorTable, attn_output, moe_ffn, qkv, read_common,
                   read_moe, shared_expert)

MOE = True
TENSORS = TensorTable(
    layer=(*PRE_NORMS, *qkv(bias=False), *attn_output(), *moe_ffn(), *shared_expert(gate=True)),
    output="required",
)


def read_hparams(gf: GGUFFile) -> HParams:
    """Read a Qwen2-MoE model's :class:`HParams` from its GGUF metadata."""
    common = read_common(gf, "qwen2moe")
    n_ff_shexp = gf.get_int("qwen2moe.expert_shared_feed_forward_length", 0, lo=0, hi=MAX_FF) or common["n_ff"]
    return HParams(**common, rope_neox=True, moe_gating=MOE_SOFTMAX, moe_norm_w=False, n_ff_shexp=n_ff_shexp,
                   **read_moe(gf, "qwen2moe", None, n_ff=common["n_ff"]))


def tensors(hp: HParams) -> TensorTable:
    """The qwen2moe tensor table."""
    return TENSORS
