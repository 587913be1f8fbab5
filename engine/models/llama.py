"""Llama (``general.architecture = llama``): Llama 2/3.x, Mistral, TinyLlama, SmolLM2.

The plain pre-norm block: RMSNorm, attention with RoPE on adjacent pairs (the converter permutes
Q/K so that GGML_ROPE_TYPE_NORM applies), SiLU-gated FFN. Output tied to the embedding when the file
has no ``output.weight``. Source: llama.cpp ``src/models/llama.cpp``.
"""
from __future__ import annotations

from ..gguf_file import GGUFFile
from .base import ACT_SILU, HParams, read_common


def read_hparams(gf: GGUFFile) -> HParams:
    """Read a llama model's :class:`HParams` from its GGUF metadata."""
    # Aliases (mistral) keep their own key prefix, so read under the name the file uses.
    common = read_common(gf, str(gf.require("general.architecture")))
    n_layer = common["n_layer"]
    return HParams(
        **common,
        rope_neox=False,
        act=ACT_SILU,
        layer_window=(0,) * n_layer,
        layer_rope_base=(common["rope_base"],) * n_layer,
    )
