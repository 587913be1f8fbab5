"""Granite mixture of experts (``general.architecture = granitemoe``): Granite 3.x MoE (1B-A400M, 3B-A800M)
and Granite MoE shared.

Granite's four scales (embedding, residual, attention, logit; ``granite.py``) on a llama block whose FFN
is a mixture of experts: softmax over ``expert_count`` experts, the ``expert_used_count`` most probable
renormalized to sum 1, SiLU-gated experts ``feed_forward_length`` wide; Granite MoE shared adds a
shared expert ``ffn_*_shexp`` (``expert_shared_feed_forward_length`` wide, no gate) to the experts' sum.
Source: llama.cpp ``src/models/granite-moe.cpp`` (tensors) and ``src/models/granite.cpp`` (graph).
"""
from __future__ import annotations

from ..gguf_file import GGUFFile
from .base import (MAX_FF, MOE_SOFTMAX, PRE_NORMS, HParams, TensorTable, attn_output, moe_ffn, qkv, read_common,
                   read_moe, shared_expert)
from .granite import scales

MOE = True
_LAYER = (*PRE_NORMS, *qkv(), *attn_output(bias=False), *moe_ffn())
TENSORS = TensorTable(layer=_LAYER, rope_factors=True)
SHARED_TENSORS = TensorTable(layer=(*_LAYER, *shared_expert(gate=False)), rope_factors=True)


def read_hparams(gf: GGUFFile) -> HParams:
    """Read a Granite-MoE model's :class:`HParams` from its GGUF metadata.

    Raises:
        GGUFError: ``granitemoe.logit_scale`` missing, or a scale or expert key out of range.
    """
    common = read_common(gf, "granitemoe")
    common.update(scales(gf, "granitemoe", common))
    n_ff_shexp = gf.get_int("granitemoe.expert_shared_feed_forward_length", 0, lo=0, hi=MAX_FF)
    return HParams(**common, rope_neox=False, moe_gating=MOE_SOFTMAX, moe_norm_w=True, n_ff_shexp=n_ff_shexp,
                   **read_moe(gf, "granitemoe", common["n_ff"]))


def tensors(hp: HParams) -> TensorTable:
    """The granitemoe tensor table (with the shared expert where the file has one)."""
    return SHARED_TENSORS if hp.n_ff_shexp else TENSORS
