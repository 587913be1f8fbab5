"""Mistral 3 (``general.architecture = mistral3``): Ministral 3, Mistral Small 3.x text models.

A llama block (adjacent-pair RoPE, optional biases, RoPE factors) plus Llama 4's attention
temperature: Q of the token at position p is scaled by ``log(floor(p / n_ctx_orig) + 1) *
attention.temperature_scale + 1`` (offset 0, floor scale ``rope.scaling.original_context_length``),
and YaRN's ``yarn_beta_fast`` / ``yarn_beta_slow`` / ``yarn_log_multiplier`` keys. Source: llama.cpp
``src/models/mistral3.cpp``, ``src/llama-graph.cpp`` llm_graph_input_attn_temp.
"""
from __future__ import annotations

from ..gguf_file import GGUFError, GGUFFile
from . import llama
from .base import HParams, TensorTable, read_common


def read_hparams(gf: GGUFFile) -> HParams:
    """Read a Mistral 3 model's :class:`HParams` from its GGUF metadata.

    Raises:
        GGUFError: temperature scaling without an original context length.
    """
    common = read_common(gf, "mistral3")
    temp = gf.get_float("mistral3.attention.temperature_scale", 0.0, lo=0.0, hi=1e6)
    if temp != 0.0 and common["rope"].n_ctx_orig <= 0:
        raise GGUFError(gf.path, "attention.temperature_scale needs rope.scaling.original_context_length")
    return HParams(**common, rope_neox=False, attn_temp_scale=temp)


def tensors(hp: HParams) -> TensorTable:
    """Mistral 3 reads llama's tensors."""
    return llama.TENSORS
