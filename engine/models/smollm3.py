"""SmolLM3 (``general.architecture = smollm3``).

A llama block (adjacent-pair RoPE, optional biases) that leaves out RoPE on every 4th layer
(``(il + 1) % 4 == 0``: NoPE layers, llama.cpp ``n_no_rope_layer_step = 4``). Source: llama.cpp
``src/models/smollm3.cpp``.
"""
from __future__ import annotations

from ..gguf_file import GGUFFile
from . import llama
from .base import HParams, TensorTable, read_common

NO_ROPE_LAYER_STEP = 4


def read_hparams(gf: GGUFFile) -> HParams:
    """Read a SmolLM3 model's :class:`HParams` from its GGUF metadata."""
    common = read_common(gf, "smollm3")
    common["layer_rope"] = tuple((il + 1) % NO_ROPE_LAYER_STEP != 0 for il in range(common["n_layer"]))
    return HParams(**common, rope_neox=False)


def tensors(hp: HParams) -> TensorTable:
    """SmolLM3 reads llama's tensors (without RoPE factors, which llama.cpp's smollm3 does not read)."""
    return SMOLLM3_TENSORS


SMOLLM3_TENSORS = TensorTable(layer=llama.TENSORS.layer)
