"""Load a GGUF model: check it, describe it, and hand its memory-mapped weights to the kernels.

Nothing is copied or dequantized at load except 1-D norm vectors stored in a non-F32 type (a few KB).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from cython_kernels.forward import CompiledModel
from cython_kernels.quants import SUPPORTED_TYPE_NAMES, dequantize, type_supported

from .chat_template import ChatTemplate
from .errors import ModelFileChangedError
from .gguf_file import GGUFError, GGUFFile, TensorInfo, ggml_type_name
from .models import MOE_ARCHITECTURES, architecture_module, supported_architectures
from .models.base import Fused, HParams, Tensor, TensorTable
from .tokenizer import Tokenizer

log = logging.getLogger(__name__)

#: The GGML type names Fireside computes with: the rows of the kernels' traits table (fs_traits.c).
SUPPORTED_TYPES = SUPPORTED_TYPE_NAMES

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


@dataclass(frozen=True)
class FileIdentity:
    """What identifies the bytes of a file on disk: device, inode, size in bytes, mtime in nanoseconds.

    Copying another file over it (``cp new.gguf model.gguf`` keeps the inode) changes the size or the
    mtime; replacing it (a download renamed over it) changes the inode.
    """

    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | Path) -> "FileIdentity":
        """The identity of ``path`` now. Raises OSError if it cannot be read."""
        st = os.stat(path)
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class Model:
    """A loaded model: hyper-parameters, tokenizer, chat template and compiled weights.

    Create with :func:`load_model`. The GGUF mapping stays open for the model's lifetime.

    Attributes:
        identity: the model file's :class:`FileIdentity` when it was loaded (see :meth:`check_file`).
    """

    def __init__(self, gf: GGUFFile, hparams: HParams, compiled: CompiledModel, tokenizer: Tokenizer,
                 chat_template: ChatTemplate, info: ModelInfo, identity: FileIdentity | None = None):
        self.gguf = gf
        self.path = gf.path
        self.hparams = hparams
        self.compiled = compiled
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        self.info = info
        self.identity = identity if identity is not None else FileIdentity.of(gf.path)

    def check_file(self) -> None:
        """Check that the file on disk is still the one that was loaded (same device, inode, size, mtime).

        The weights are read from a memory mapping of the file, so a file rewritten in place would
        change the model under the running engine, and a shortened one makes the next read of a page
        past its new end fail with SIGBUS, which no program can recover from (llama.cpp's mmap has the
        same limit). The engine calls this before each generation and between tokens; what it cannot
        catch is a file cut short during the few milliseconds of one forward pass.

        Raises:
            ModelFileChangedError: the file was modified, replaced or deleted since it was loaded.
        """
        try:
            now = FileIdentity.of(self.path)
        except OSError:
            raise ModelFileChangedError(f"the model file {self.path} is gone from disk; reload the model") from None
        if now != self.identity:
            raise ModelFileChangedError(f"the model file {self.path.name} changed on disk; reload it")


def _check_type(gf: GGUFFile, t: TensorInfo) -> None:
    if not type_supported(t.ggml_type):
        raise GGUFError(
            gf.path,
            f"tensor {t.name} has type {ggml_type_name(t.ggml_type)}, which Fireside does not support "
            f"(supported: {', '.join(SUPPORTED_TYPES)})",
        )


def _matrix(gf: GGUFFile, name: str, shape: tuple[int, ...]) -> dict:
    """A weight as the kernels take it: ``shape`` (n_out, n_in), or (n_expert, n_out, n_in) for stacked
    experts (then n_out counts every expert's rows)."""
    t = gf.tensor(name)
    _check_type(gf, t)
    if t.shape != shape:
        raise GGUFError(gf.path, f"inconsistent shapes: tensor {name} is {t.shape}, expected {shape}")
    return {"data": t.data, "type": t.ggml_type, "n_in": shape[-1], "n_out": int(np.prod(shape[:-1]))}


def _vector(gf: GGUFFile, name: str, n: int) -> np.ndarray:
    t = gf.tensor(name)
    _check_type(gf, t)
    if t.n_elements != n:
        raise GGUFError(gf.path, f"inconsistent shapes: tensor {name} has {t.n_elements} elements, expected {n}")
    if t.type_name == "F32":
        return t.data.reshape(-1).view(np.float32)  # a view into the mapping
    return dequantize(t.data.reshape(1, -1), t.ggml_type, (n,))


def quantization_name(gf: GGUFFile) -> str:
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
        quantization=quantization_name(gf),
        file_size=gf.file_size,
        n_ctx_train=hp.n_ctx_train,
        has_chat_template="tokenizer.chat_template" in gf.metadata,
    )


def _is_moe(gf: GGUFFile, arch: str) -> bool:
    """Whether the file is a mixture-of-experts model (an MoE architecture, ``expert_count`` > 0, or
    expert tensors, as Mixtral's ``ffn_*_exps`` under ``llama``)."""
    count = gf.get(f"{arch}.expert_count", 0)
    return (arch in MOE_ARCHITECTURES or (isinstance(count, int) and count > 0)
            or any(".ffn_gate_inp." in name or "_exps." in name for name in gf.tensors))


def read_hparams(gf: GGUFFile) -> HParams:
    """Read :class:`HParams` for the file's architecture.

    Raises:
        GGUFError: unsupported architecture (the message lists the supported ones), a mixture-of-experts
            model, or bad metadata.
    """
    arch = gf.get("general.architecture")
    if arch is None:
        raise GGUFError(gf.path, "missing metadata key general.architecture")
    if not isinstance(arch, str):
        raise GGUFError(gf.path, f"metadata key general.architecture = {arch!r} is not a string")
    module = architecture_module(arch)
    if _is_moe(gf, arch) and not getattr(module, "MOE", False):
        runs = ", ".join(sorted(name for name in supported_architectures()
                                if getattr(architecture_module(name), "MOE", False)))
        raise GGUFError(gf.path, f"{arch!r} is a mixture-of-experts model of a kind Fireside does not run yet "
                                 f"(mixture-of-experts architectures it runs: {runs}; supported: "
                                 f"{', '.join(supported_architectures())})")
    if module is None:
        raise GGUFError(
            gf.path, f"unsupported architecture {arch!r} (supported: {', '.join(supported_architectures())})"
        )
    if not gf.tensors:
        raise GGUFError(gf.path, "the file has no tensors (a vocab-only GGUF cannot generate text)")
    return module.read_hparams(gf)


def _fused(gf: GGUFFile, hp: HParams, entry: Fused, name: str) -> dict:
    """Zero-copy row views of a fused tensor, keyed by field."""
    rows = [(fld, n(hp)) for fld, n in entry.parts]
    total = sum(n for _, n in rows)
    if entry.n_in is not None:
        whole = _matrix(gf, name, (total, entry.n_in(hp)))
        out, r0 = {}, 0
        for fld, n in rows:
            out[fld] = {**whole, "data": whole["data"][r0:r0 + n], "n_out": n}
            r0 += n
        return out
    vec = _vector(gf, name, total)
    out, i0 = {}, 0
    for fld, n in rows:
        out[fld] = vec[i0:i0 + n]
        i0 += n
    return out


def _layer_tensors(gf: GGUFFile, hp: HParams, table: TensorTable, il: int) -> dict:
    """Load one layer's entries of the architecture's tensor table.

    Raises:
        GGUFError: a required tensor is missing, or a tensor has the wrong shape or an unsupported type.
    """
    fields: dict = {}
    for entry in table.layer:
        name = entry.name.format(i=il)
        if isinstance(entry, Fused):
            if name in gf.tensors:
                fields.update(_fused(gf, hp, entry, name))
            elif entry.required:
                raise GGUFError(gf.path, f"missing tensor {name}")
            continue
        if entry.field in fields:
            continue
        if name not in gf.tensors:
            if entry.required:
                raise GGUFError(gf.path, f"missing tensor {name}")
            continue
        shape = entry.shape(hp)
        fields[entry.field] = _matrix(gf, name, shape) if entry.is_matrix else _vector(gf, name, shape[0])
    return fields


def _rope_factors(gf: GGUFFile, hp: HParams, table: TensorTable) -> tuple:
    """(short or only factors, long factors) as float32 (n_rot/2,) arrays or None (llama.cpp
    ``llama_model::get_rope_factors``: ``rope_freqs`` wins; else Phi-3's short / long pair)."""
    if not table.rope_factors:
        return None, None
    n = hp.n_rot // 2

    def vec(name: str):
        return _vector(gf, name, n) if name in gf.tensors else None

    freqs = vec("rope_freqs.weight")
    if freqs is not None:
        return freqs, None
    return vec("rope_factors_short.weight"), vec("rope_factors_long.weight")


def _layer_rope(hp: HParams, il: int, factors: tuple) -> dict:
    r = hp.rope
    return {
        "n_rot": hp.n_rot if hp.layer_rope[il] else 0, "neox": int(hp.rope_neox), "base": hp.layer_rope_base[il],
        "freq_scale": r.freq_scale, "ext_factor": r.ext_factor, "attn_factor": r.attn_factor,
        "beta_fast": r.beta_fast, "beta_slow": r.beta_slow, "n_ctx_orig": r.n_ctx_orig,
        "factors": factors[0], "factors_long": factors[1],
    }


def _output(gf: GGUFFile, hp: HParams, table: TensorTable, tok_embd: dict) -> dict:
    if table.output == "embedding" or (table.output == "or_embedding" and "output.weight" not in gf.tensors):
        return tok_embd
    if "output.weight" not in gf.tensors:
        raise GGUFError(gf.path, "missing tensor output.weight")
    return _matrix(gf, "output.weight", (hp.n_vocab, hp.n_embd))


def _config(hp: HParams) -> dict:
    """CompiledModel's Config (cython_kernels/forward.pyx) from the hparams."""
    return {
        "n_layer": hp.n_layer, "n_embd": hp.n_embd, "n_head": hp.n_head, "n_head_kv": hp.n_head_kv,
        "head_dim": hp.head_dim, "n_ff": hp.n_ff, "n_vocab": hp.n_vocab, "act": hp.act,
        "attn_scale_on_q": int(hp.attn_scale_on_q),
        "q_norm_n": hp.n_embd_q if hp.qk_norm_full else hp.head_dim,
        "k_norm_n": hp.n_embd_kv if hp.qk_norm_full else hp.head_dim,
        "n_ctx_orig": hp.rope.n_ctx_orig, "eps": hp.eps, "embd_scale": hp.embd_scale, "attn_scale": hp.attn_scale,
        "attn_softcap": hp.attn_softcap, "logit_softcap": hp.logit_softcap, "residual_scale": hp.residual_scale,
        "logit_scale": hp.logit_scale, "attn_temp_scale": hp.attn_temp_scale, "attn_temp_offset": 0.0,
        "attn_temp_floor": float(hp.rope.n_ctx_orig),
        "n_expert": hp.n_expert, "n_expert_used": hp.n_expert_used, "n_ff_exp": hp.n_ff_exp,
        "moe_gating": hp.moe_gating, "moe_norm_w": int(hp.moe_norm_w), "moe_w_scale": hp.moe_w_scale,
        "n_ff_shexp": hp.n_ff_shexp,
    }


def load_model(path: str | Path) -> Model:
    """Open, check and prepare a GGUF model for inference.

    Args:
        path: a ``.gguf`` file.

    Returns:
        :class:`Model`. Weights stay memory-mapped; nothing large is copied (fused tensors become row views).

    Raises:
        GGUFError: not a GGUF, truncated, unsupported version/architecture/type, missing tensor,
            inconsistent shapes.
        FileNotFoundError: no such file.
    """
    gf = GGUFFile(path)
    try:
        identity = FileIdentity.of(gf.path)  # before anything is read through the mapping
        huge = gf.use_huge_pages()  # before any tensor byte is read (it samples the tensor data)
        log.info("page cache of %s: %s (%s)", gf.path.name, huge.state, huge.reason)
        hp = read_hparams(gf)
        table = architecture_module(hp.arch).tensors(hp)
        factors = _rope_factors(gf, hp, table)
        layers = []
        for il in range(hp.n_layer):
            layer = _layer_tensors(gf, hp, table, il)
            layer["rope"] = _layer_rope(hp, il, factors)
            layer["window"] = hp.layer_window[il]
            layers.append(layer)
        tok_embd = _matrix(gf, "token_embd.weight", (hp.n_vocab, hp.n_embd))
        output = _output(gf, hp, table, tok_embd)
        output_bias = (_vector(gf, "output.bias", hp.n_vocab)
                       if table.output_bias and "output.bias" in gf.tensors else None)
        compiled = CompiledModel(_config(hp), layers, tok_embd, output,
                                 _vector(gf, "output_norm.weight", hp.n_embd), output_bias)
        # The tokenizer comes after the tensor checks so a broken file reports its tensor problem first.
        tokenizer = Tokenizer.from_metadata(gf.metadata, source=str(gf.path))
        chat_template = ChatTemplate.from_metadata(gf.metadata, tokenizer)
        # llama.cpp sizes token_embd.weight from the vocabulary (llama-model.cpp load_tensors: n_vocab =
        # vocab.n_tokens()) and refuses any other shape; a smaller vocabulary would let the sampler pick
        # a row the tokenizer cannot decode, a larger one a token the model has no embedding for.
        if tokenizer.n_vocab != hp.n_vocab:
            raise GGUFError(gf.path, f"inconsistent shapes: the tokenizer has {tokenizer.n_vocab} tokens but "
                                     f"token_embd.weight has {hp.n_vocab} rows")
        return Model(gf, hp, compiled, tokenizer, chat_template, _info(gf, hp), identity)
    except BaseException:
        gf.close()
        raise
