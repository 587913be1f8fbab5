"""Gemma 3 (``general.architecture = gemma3``).

Differences from llama, per llama.cpp ``src/models/gemma3.cpp``:
- token embeddings scaled by sqrt(n_embd); output tied to the embedding;
- RMSNorm on each head of Q and K (``attn_q_norm``/``attn_k_norm``), then NEOX-style RoPE;
- RMSNorm on the attention output and on the FFN output before each residual add
  (``post_attention_norm``, ``post_ffw_norm``); the norm weights already include Gemma's ``1 +``;
- GELU (tanh approximation) gated FFN;
- sliding-window attention on 5 layers of every 6 (the 6th is global), window
  ``attention.sliding_window``; local layers use RoPE base ``rope.freq_base_swa`` (default 10000),
  global ones ``rope.freq_base``;
- Q scaled by 1/sqrt(key_length) before attention (1/sqrt(n_embd / n_head) for the 62-layer 27B).
"""
from __future__ import annotations

from ..gguf_file import GGUFFile
from .base import (ACT_GELU_TANH, MAX_CTX, POST_NORMS, PRE_NORMS, QK_NORMS, HParams, TensorTable, attn_output, gated_ffn,
                   qkv, read_common, swa_hparams, swa_layers)

SWA_PATTERN = 6  # llama.cpp: load_swa_pattern(ml, 6)
SWA_ROPE_BASE = 10000.0  # llama.cpp: rope_freq_base_train_swa default

TENSORS = TensorTable(layer=(*PRE_NORMS, *POST_NORMS, *qkv(), *QK_NORMS, *attn_output(), *gated_ffn()))


def read_hparams(gf: GGUFFile) -> HParams:
    """Read a Gemma 3 model's :class:`HParams` from its GGUF metadata."""
    common = read_common(gf, "gemma3")
    n_layer = common["n_layer"]
    window = gf.get_int("gemma3.attention.sliding_window", 0, lo=0, hi=MAX_CTX)
    is_local = swa_layers(gf, "gemma3", n_layer, SWA_PATTERN) if window > 0 else [False] * n_layer
    swa_base = gf.get_float("gemma3.rope.freq_base_swa", SWA_ROPE_BASE, lo=1.0, hi=1e12)
    if n_layer == 62:
        common["attn_scale"] = (common["n_embd"] // common["n_head"]) ** -0.5
    common.update(swa_hparams(is_local, window, swa_base, common["rope_base"]))
    return HParams(
        **common,
        rope_neox=True,
        act=ACT_GELU_TANH,
        embd_scale=float(common["n_embd"]) ** 0.5,
        attn_scale_on_q=True,
        logit_softcap=gf.get_float("gemma3.final_logit_softcapping", 0.0, lo=0.0, hi=1e6),
    )


def tensors(hp: HParams) -> TensorTable:
    """The gemma3 tensor table."""
    return TENSORS
