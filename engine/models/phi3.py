"""Phi-3 (``general.architecture = phi3``): Phi-3, Phi-3.5, Phi-4-mini, Phi-4.

Differences from llama, per llama.cpp ``src/models/phi3.cpp``:
- Q, K, V fused in ``attn_qkv`` (Q rows, then K, then V), and gate | up fused in ``ffn_up``
  (2 * n_ff rows: the first half is the gate, LLM_FFN_SWIGLU): both read as zero-copy row views;
- RoPE on (i, i + n_rot/2) pairs over the first ``rope.dimension_count`` dims only (partial RoPE);
- LongRoPE: ``rope_factors_short`` / ``rope_factors_long`` (n_rot/2 divisors of the frequencies),
  the long ones when n_ctx exceeds ``rope.scaling.original_context_length``
  (``llama_model::get_rope_factors``), with ``rope.scaling.attn_factor`` on cos / sin;
- Q scaled by 1/sqrt(head_dim) before attention; optional ``output.bias``;
- sliding-window metadata is ignored, as llama.cpp does (its Phi SWA is disabled).
"""
from __future__ import annotations

from ..gguf_file import GGUFFile
from .base import PRE_NORMS, Fused, HParams, Tensor, TensorTable, attn_output, qkv, read_common

TENSORS = TensorTable(
    layer=(
        *PRE_NORMS,
        *qkv(),
        *attn_output(),
        Fused("blk.{i}.ffn_up.weight", (("w_gate", lambda h: h.n_ff), ("w_up", lambda h: h.n_ff)),
              n_in=lambda h: h.n_embd, required=True),
        Tensor("blk.{i}.ffn_down.weight", "w_down", lambda h: (h.n_embd, h.n_ff)),
    ),
    output_bias=True,
    rope_factors=True,
)


def read_hparams(gf: GGUFFile) -> HParams:
    """Read a Phi-3 model's :class:`HParams` from its GGUF metadata."""
    return HParams(**read_common(gf, "phi3"), rope_neox=True, attn_scale_on_q=True)


def tensors(hp: HParams) -> TensorTable:
    """The phi3 tensor table."""
    return TENSORS
