"""OLMo 2 (``general.architecture = olmo2``).

Differences from llama, per llama.cpp ``src/models/olmo2.cpp``:
- no norm before attention or the FFN: the block reads the residual stream itself, and RMSNorms the
  attention output and the FFN output before each residual add (``post_attention_norm``,
  ``post_ffw_norm``);
- QK-norm over the whole Q row (n_embd wide) and the whole K row (n_head_kv * head_dim), before RoPE;
- NEOX-style RoPE; ``output.weight`` required (never tied);
- with ``attention.sliding_window`` > 0 (OLMo 3), sliding-window attention on 3 layers of every 4.
"""
from __future__ import annotations

from ..gguf_file import GGUFError, GGUFFile
from .base import (MAX_CTX, POST_NORMS, HParams, TensorTable, attn_output, gated_ffn, norm, qkv, read_common, swa_hparams,
                   swa_layers)

TENSORS = TensorTable(
    layer=(
        *qkv(),
        norm("attn_q_norm", "q_norm", lambda h: h.n_embd_q),
        norm("attn_k_norm", "k_norm", lambda h: h.n_embd_kv),
        *attn_output(),
        *gated_ffn(),
        *POST_NORMS,
    ),
    output="required",
)


def read_hparams(gf: GGUFFile) -> HParams:
    """Read an OLMo 2 model's :class:`HParams` from its GGUF metadata.

    Raises:
        GGUFError: sliding-window layers together with RoPE scaling (their unscaled RoPE is not built).
    """
    common = read_common(gf, "olmo2")
    window = gf.get_int("olmo2.attention.sliding_window", 0, lo=0, hi=MAX_CTX)
    if window > 0:
        if common["rope"].freq_scale != 1.0 or common["rope"].ext_factor != 0.0:
            raise GGUFError(gf.path, "olmo2 sliding-window layers with RoPE scaling are not supported")
        is_swa = swa_layers(gf, "olmo2", common["n_layer"], 4)
        common.update(swa_hparams(is_swa, window, common["rope_base"], common["rope_base"]))
    return HParams(**common, rope_neox=True, qk_norm_full=True)


def tensors(hp: HParams) -> TensorTable:
    """The olmo2 tensor table."""
    return TENSORS
