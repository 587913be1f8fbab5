"""Granite (``general.architecture = granite``): IBM Granite 3.x dense models.

A llama block with four scales (llama.cpp ``src/models/granite.cpp``, ``src/llama-graph.cpp``
build_inp_embd): ``embedding_scale`` on the token embeddings, ``residual_scale`` on each attention and
FFN output before its residual add, ``attention.scale`` replacing 1/sqrt(head_dim) on q·k, and the
logits divided by ``logit_scale`` (required); optional biases and RoPE factors as llama.
"""
from __future__ import annotations

from ..gguf_file import GGUFFile
from . import llama
from .base import HParams, TensorTable, read_common


def scales(gf: GGUFFile, arch: str, common: dict) -> dict:
    """Granite's scales as :class:`HParams` keyword arguments (``attn_scale`` only where the file sets
    ``attention.scale``), read under ``arch`` (granite, granitemoe).

    Raises:
        GGUFError: ``{arch}.logit_scale`` missing, or a scale not a number in its range.
    """
    out = {}
    attn_scale = gf.get_float(f"{arch}.attention.scale", 0.0, lo=0.0, hi=1e6)
    if attn_scale:
        out["attn_scale"] = attn_scale
    gf.require(f"{arch}.logit_scale")
    logit_scale = gf.get_float(f"{arch}.logit_scale", lo=1e-6, hi=1e6)
    return dict(out,
                embd_scale=gf.get_float(f"{arch}.embedding_scale", 0.0, lo=0.0, hi=1e6) or 1.0,
                residual_scale=gf.get_float(f"{arch}.residual_scale", 0.0, lo=0.0, hi=1e6),
                logit_scale=1.0 / logit_scale)


def read_hparams(gf: GGUFFile) -> HParams:
    """Read a Granite model's :class:`HParams` from its GGUF metadata.

    Raises:
        GGUFError: ``granite.logit_scale`` missing, or not a number in 1e-6..1e6.
    """
    common = read_common(gf, "granite")
    common.update(scales(gf, "granite", common))
    return HParams(**common, rope_neox=False)


def tensors(hp: HParams) -> TensorTable:
    """Granite reads llama's tensors."""
    return llama.TENSORS
