"""Gemma 2 (``general.architecture = gemma2``).

Differences from llama, per llama.cpp ``src/models/gemma2.cpp``:
- token embeddings scaled by sqrt(n_embd); output always the embedding (``output.weight`` unused);
- RMSNorm on the attention output and on the FFN output before each residual add
  (``post_attention_norm``, ``post_ffw_norm``); the norm weights already include Gemma's ``1 +``;
- GELU (tanh approximation) gated FFN; NEOX-style RoPE; no QK-norm (that is Gemma 3);
- attention-logit soft-capping ``attn_logit_softcapping`` (default 50) and final-logit soft-capping
  ``final_logit_softcapping`` (default 30);
- sliding-window attention (``attention.sliding_window``, default 4096) on even layers (pattern 2),
  RoPE base ``rope.freq_base_swa`` there (default: the global base);
- Q scaled by 1/sqrt(head_dim) before attention, or 1/sqrt(n_embd / n_head) for the 46-layer 27B.
"""
from __future__ import annotations

from ..gguf_file import GGUFFile
from .base import (ACT_GELU_TANH, MAX_CTX, POST_NORMS, PRE_NORMS, HParams, TensorTable, attn_output, gated_ffn, qkv,
                   read_common, swa_hparams, swa_layers)

TENSORS = TensorTable(
    layer=(*PRE_NORMS, *POST_NORMS, *qkv(), *attn_output(), *gated_ffn()),
    output="embedding",  # llama.cpp reads token_embd as the output even where output.weight exists
)


def read_hparams(gf: GGUFFile) -> HParams:
    """Read a Gemma 2 model's :class:`HParams` from its GGUF metadata."""
    common = read_common(gf, "gemma2")
    n_layer = common["n_layer"]
    window = gf.get_int("gemma2.attention.sliding_window", 4096, lo=0, hi=MAX_CTX)
    swa_base = gf.get_float("gemma2.rope.freq_base_swa", common["rope_base"], lo=1.0, hi=1e12)
    is_swa = swa_layers(gf, "gemma2", n_layer, 2)
    q_width = common["n_embd"] // common["n_head"] if n_layer == 46 else common["head_dim"]
    common.update(attn_scale=q_width**-0.5, **swa_hparams(is_swa, window, swa_base, common["rope_base"]))
    return HParams(
        **common,
        rope_neox=True,
        act=ACT_GELU_TANH,
        embd_scale=float(common["n_embd"]) ** 0.5,
        attn_scale_on_q=True,
        attn_softcap=gf.get_float("gemma2.attn_logit_softcapping", 50.0, lo=0.0, hi=1e6),
        logit_softcap=gf.get_float("gemma2.final_logit_softcapping", 30.0, lo=0.0, hi=1e6),
    )


def tensors(hp: HParams) -> TensorTable:
    """The gemma2 tensor table."""
    return TENSORS
