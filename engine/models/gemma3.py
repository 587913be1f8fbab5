"""Gemma 3 (``general.architecture = gemma3``).

Differences from llama, per llama.cpp ``src/models/gemma3.cpp`` and ``src/llama-model.cpp``:
- token embeddings scaled by sqrt(n_embd); output tied to the embedding;
- RMSNorm on each head of Q and K (``attn_q_norm``/``attn_k_norm``), then NEOX-style RoPE;
- RMSNorm on the attention output and on the FFN output before each residual add
  (``post_attention_norm``, ``post_ffw_norm``); the norm weights already include Gemma's ``1 +``;
- GELU (tanh approximation) gated FFN;
- sliding-window attention on 5 layers of every 6 (the 6th is global), window
  ``attention.sliding_window``; local layers use RoPE base 10000, global ones ``rope.freq_base``;
- attention scale 1/sqrt(key_length).
"""
from __future__ import annotations

from ..gguf_file import GGUFFile
from .base import ACT_GELU_TANH, HParams, read_common

SWA_PATTERN = 6  # llama.cpp: hparams.set_swa_pattern(6)
SWA_ROPE_BASE = 10000.0  # llama.cpp: rope_freq_base_train_swa for gemma3


def read_hparams(gf: GGUFFile) -> HParams:
    """Read a Gemma 3 model's :class:`HParams` from its GGUF metadata."""
    common = read_common(gf, "gemma3")
    n_layer = common["n_layer"]
    window = int(gf.get("gemma3.attention.sliding_window", 0))
    is_local = [il % SWA_PATTERN < SWA_PATTERN - 1 for il in range(n_layer)]
    return HParams(
        **common,
        rope_neox=True,
        act=ACT_GELU_TANH,
        embd_scale=float(common["n_embd"]) ** 0.5,
        attn_scale_on_q=True,
        logit_softcap=float(gf.get("gemma3.final_logit_softcapping", 0.0)),
        layer_window=tuple(window if local else 0 for local in is_local),
        layer_rope_base=tuple(SWA_ROPE_BASE if local else common["rope_base"] for local in is_local),
        extra_layer_tensors=("attn_q_norm", "attn_k_norm", "post_attention_norm", "post_ffw_norm"),
    )
