"""Load a GGUF model: check it, describe it, and hand its memory-mapped weights to the kernels.

Nothing is copied or dequantized at load except 1-D norm vectors stored in a non-F32 type (a few KB).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from cython_kernels.forward import CompiledModel
from cython_kernels.quants import dequantize, type_supported

from .chat_template import ChatTemplate
from .gguf_file import GGUFError, GGUFFile, TensorInfo, ggml_type_name
from .models import architecture_module, supported_architectures
from .models.base import LAYER_MATRICES, LAYER_VECTORS, HParams
from .tokenizer import Tokenizer

SUPPORTED_TYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K")

# forward.pyx's names for the per-layer tensors (GGUF suffix -> kernel field).
_KERNEL_NAMES = {
    "attn_q": "wq", "attn_k": "wk", "attn_v": "wv", "attn_output": "wo",
    "ffn_gate": "w_gate", "ffn_up": "w_up", "ffn_down": "w_down",
    "attn_norm": "attn_norm", "ffn_norm": "ffn_norm", "attn_q_norm": "q_norm", "attn_k_norm": "k_norm",
    "post_attention_norm": "post_attn_norm", "post_ffw_norm": "post_ffn_norm",
}


@dataclass(frozen=True)
class ModelInfo:
    """What a model card shows.

    Attributes:
        name: ``general.name`` or the file stem.
        architecture: ``general.architecture``.
        n_params: parameter count (sum of tensor elements).
        quantization: the file type, e.g. ``"Q4_K_M"`` (``general.file_type``).
        file_size: bytes.
        n_ctx_train: trained context length in tokens.
        has_chat_template: whether the file carries ``tokenizer.chat_template``.
    """

    name: str
    architecture: str
    n_params: int
    quantization: str
    file_size: int
    n_ctx_train: int
    has_chat_template: bool


class Model:
    """A loaded model: hyper-parameters, tokenizer, chat template and compiled weights.

    Create with :func:`load_model`. The GGUF mapping stays open for the model's lifetime.
    """

    def __init__(self, gf: GGUFFile, hparams: HParams, compiled: CompiledModel, tokenizer: Tokenizer,
                 chat_template: ChatTemplate, info: ModelInfo):
        self.gguf = gf
        self.path = gf.path
        self.hparams = hparams
        self.compiled = compiled
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        self.info = info


def _check_type(gf: GGUFFile, t: TensorInfo) -> None:
    if t.type_name not in SUPPORTED_TYPES or not type_supported(t.ggml_type):
        raise GGUFError(
            gf.path,
            f"tensor {t.name} has type {ggml_type_name(t.ggml_type)}, which Fireside does not support "
            f"(supported: {', '.join(SUPPORTED_TYPES)})",
        )


def _matrix(gf: GGUFFile, name: str, shape: tuple[int, int]) -> dict:
    t = gf.tensor(name)
    _check_type(gf, t)
    if t.shape != shape:
        raise GGUFError(gf.path, f"inconsistent shapes: tensor {name} is {t.shape}, expected {shape}")
    return {"data": t.data, "type": t.ggml_type, "n_in": shape[1], "n_out": shape[0]}


def _vector(gf: GGUFFile, name: str, n: int) -> np.ndarray:
    t = gf.tensor(name)
    _check_type(gf, t)
    if t.n_elements != n:
        raise GGUFError(gf.path, f"inconsistent shapes: tensor {name} has {t.n_elements} elements, expected {n}")
    if t.type_name == "F32":
        return t.data.reshape(-1).view(np.float32)  # a view into the mapping
    return dequantize(t.data.reshape(1, -1), t.ggml_type, (n,))


def _quantization(gf: GGUFFile) -> str:
    """``general.file_type`` as llama.cpp names it (``Q4_K_M``); else the most common 2-D type."""
    try:
        return gguf.LlamaFileType(int(gf.metadata["general.file_type"])).name.removeprefix("MOSTLY_")
    except (KeyError, ValueError, TypeError):
        counts: dict[str, int] = {}
        for t in gf.tensors.values():
            if len(t.ne) >= 2:
                counts[t.type_name] = counts.get(t.type_name, 0) + t.n_elements
        return max(counts, key=counts.get) if counts else "?"


def _info(gf: GGUFFile, hp: HParams) -> ModelInfo:
    return ModelInfo(
        name=str(gf.get("general.name", gf.path.stem)),
        architecture=hp.arch,
        n_params=sum(t.n_elements for t in gf.tensors.values()),
        quantization=_quantization(gf),
        file_size=gf.file_size,
        n_ctx_train=hp.n_ctx_train,
        has_chat_template="tokenizer.chat_template" in gf.metadata,
    )


def read_hparams(gf: GGUFFile) -> HParams:
    """Read :class:`HParams` for the file's architecture.

    Raises:
        GGUFError: unsupported architecture (the message lists the supported ones) or bad metadata.
    """
    arch = gf.get("general.architecture")
    if arch is None:
        raise GGUFError(gf.path, "missing metadata key general.architecture")
    module = architecture_module(str(arch))
    if module is None:
        raise GGUFError(
            gf.path, f"unsupported architecture {arch!r} (supported: {', '.join(supported_architectures())})"
        )
    if not gf.tensors:
        raise GGUFError(gf.path, "the file has no tensors (a vocab-only GGUF cannot generate text)")
    return module.read_hparams(gf)


def load_model(path: str | Path) -> Model:
    """Open, check and prepare a GGUF model for inference.

    Args:
        path: a ``.gguf`` file.

    Returns:
        :class:`Model`. Weights stay memory-mapped; nothing large is copied.

    Raises:
        GGUFError: not a GGUF, truncated, unsupported version/architecture/type, missing tensor,
            inconsistent shapes.
        FileNotFoundError: no such file.
    """
    gf = GGUFFile(path)
    try:
        hp = read_hparams(gf)
        layers = []
        for il in range(hp.n_layer):
            layer: dict = {"rope_base": hp.layer_rope_base[il], "rope_freq_scale": hp.rope_freq_scale,
                           "window": hp.layer_window[il]}
            for suffix, shape in LAYER_MATRICES.items():
                layer[_KERNEL_NAMES[suffix]] = _matrix(gf, f"blk.{il}.{suffix}.weight", shape(hp))
            for suffix in ("attn_norm", "ffn_norm", *hp.extra_layer_tensors):
                layer[_KERNEL_NAMES[suffix]] = _vector(gf, f"blk.{il}.{suffix}.weight", LAYER_VECTORS[suffix](hp))
            layers.append(layer)
        tok_embd = _matrix(gf, "token_embd.weight", (hp.n_vocab, hp.n_embd))
        output = _matrix(gf, "output.weight", (hp.n_vocab, hp.n_embd)) if "output.weight" in gf.tensors else tok_embd
        config = {
            "n_layer": hp.n_layer, "n_embd": hp.n_embd, "n_head": hp.n_head, "n_head_kv": hp.n_head_kv,
            "head_dim": hp.head_dim, "n_ff": hp.n_ff, "n_vocab": hp.n_vocab, "n_rot": hp.n_rot,
            "rope_neox": int(hp.rope_neox), "act": hp.act, "eps": hp.eps, "embd_scale": hp.embd_scale,
            "attn_scale": hp.attn_scale, "attn_scale_on_q": int(hp.attn_scale_on_q),
            "logit_softcap": hp.logit_softcap,
        }
        compiled = CompiledModel(config, layers, tok_embd, output,
                                 _vector(gf, "output_norm.weight", hp.n_embd))
        # The tokenizer comes after the tensor checks so a broken file reports its tensor problem first.
        tokenizer = Tokenizer.from_metadata(gf.metadata, source=str(gf.path))
        chat_template = ChatTemplate.from_metadata(gf.metadata, tokenizer)
        if tokenizer.n_vocab > hp.n_vocab:
            raise GGUFError(gf.path, f"inconsistent shapes: tokenizer has {tokenizer.n_vocab} tokens, "
                                     f"token_embd.weight only {hp.n_vocab} rows")
        return Model(gf, hp, compiled, tokenizer, chat_template, _info(gf, hp))
    except BaseException:
        gf.close()
        raise
