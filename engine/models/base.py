"""What every architecture shares: the hyper-parameter dataclass, the tensor-table vocabulary and the
metadata reading common to llama-like decoders.

An architecture file (``llama.py``, ``qwen2.py`` ...) owns its description: a ``read_hparams(gf)``
returning :class:`HParams` (the switches of the one compiled block included) and a ``tensors(hp)``
returning its :class:`TensorTable`. Tensor names follow llama.cpp's ``gguf-py/gguf/constants.py``
(``blk.{i}.attn_q.weight`` ...); the kernel field names are those of ``cython_kernels/forward.pyx``
``LayerWeights``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..gguf_file import GGUFError, GGUFFile

ACT_SILU = 0  # must match cython_kernels/forward.pyx
ACT_GELU_TANH = 1
ACT_SWIGLU_OAI = 2  # gpt-oss's clamped SwiGLU (forward.pyx, fs_ops.h fs_gated_act)
MOE_SOFTMAX = 0  # expert gating functions, as cython_kernels/fs_moe.h
MOE_SOFTMAX_WEIGHT = 1

ShapeFn = Callable[["HParams"], tuple[int, ...]]


@dataclass(frozen=True)
class RopeScaling:
    """RoPE frequency scaling of a model, as llama.cpp reads it (``src/llama-model.cpp`` load_hparams,
    ``src/llama-context.cpp`` for the YaRN factors).

    Attributes:
        type: ``rope.scaling.type``: ``none``, ``linear``, ``yarn`` or ``longrope``.
        freq_scale: 1 / ``rope.scaling.factor`` (1 for none / longrope without a factor).
        ext_factor: YaRN extrapolation mix (1 for yarn, else 0).
        attn_factor: magnitude factor on cos / sin (YaRN's mscale corrections times
            ``rope.scaling.attn_factor``).
        beta_fast, beta_slow: YaRN ramp bounds (``rope.scaling.yarn_beta_fast`` / ``_slow``; 32 and 1).
        n_ctx_orig: ``rope.scaling.original_context_length`` (else the trained context), in tokens.
    """

    type: str = "linear"
    freq_scale: float = 1.0
    ext_factor: float = 0.0
    attn_factor: float = 1.0
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    n_ctx_orig: int = 2048


@dataclass(frozen=True)
class HParams:
    """Hyper-parameters and block switches of a decoder-only transformer, read from GGUF metadata.

    Attributes:
        arch: ``general.architecture`` as the file names it.
        n_layer, n_embd, n_head, n_head_kv, n_ff: block count, embedding width, query heads, KV heads,
            feed-forward width.
        head_dim: width of one attention head (``attention.key_length`` or ``n_embd / n_head``).
        n_rot: RoPE dimensions per head (``rope.dimension_count``; less than head_dim = partial RoPE).
        n_ctx_train: ``context_length``, the context the model was trained for, in tokens.
        n_vocab: rows of ``token_embd.weight``.
        eps: RMSNorm epsilon.
        rope_base: RoPE frequency base of full-attention layers.
        rope: :class:`RopeScaling`.
        rope_neox: rotate (i, i + n_rot/2) pairs instead of adjacent ones.
        act: ACT_SILU, ACT_GELU_TANH or ACT_SWIGLU_OAI for the gated FFN (or the experts).
        embd_scale: factor on token embeddings (Gemma: sqrt(n_embd); Granite: ``embedding_scale``).
        attn_scale: factor on q·k (usually 1/sqrt(head_dim)).
        attn_scale_on_q: apply attn_scale to Q before attention rather than to the scores.
        attn_softcap: attention-logit soft-cap (Gemma 2; 0 = none).
        logit_softcap: final logit soft-cap (0 = none).
        residual_scale: factor on each block output before its residual add (Granite; 0 = none).
        logit_scale: factor on the logits (Granite: 1 / ``logit_scale``).
        attn_temp_scale: Llama 4 / Mistral 3 attention temperature (0 = off); its floor scale is
            ``rope.n_ctx_orig`` and offset 0 (llama.cpp ``src/models/mistral3.cpp``).
        qk_norm_full: Q / K norms span the whole Q / K row (OLMo 2) instead of one head.
        layer_window: per layer, sliding-window size in tokens (0 = full attention).
        layer_rope_base: per layer, RoPE base.
        layer_rope: per layer, whether RoPE applies (SmolLM3 skips every 4th layer).
        n_expert, n_expert_used, n_ff_exp: mixture of experts (``expert_count``, ``expert_used_count``,
            one expert's FFN width); 0 for a dense model.
        moe_gating: MOE_SOFTMAX (softmax over all experts, then top-k) or MOE_SOFTMAX_WEIGHT (top-k of
            the logits, softmax over those).
        moe_norm_w: renormalize the chosen experts' weights to sum 1.
        moe_w_scale: factor on the chosen weights (``expert_weights_scale``; 0 = none).
        n_ff_shexp: width of the shared expert every token also uses (Qwen2-MoE, Granite-MoE shared;
            ``expert_shared_feed_forward_length``); 0 = none.
    """

    arch: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    n_ff: int
    head_dim: int
    n_rot: int
    n_ctx_train: int
    n_vocab: int
    eps: float
    rope_base: float
    rope: RopeScaling = field(default_factory=RopeScaling)
    rope_neox: bool = False
    act: int = ACT_SILU
    embd_scale: float = 1.0
    attn_scale: float = 0.0
    attn_scale_on_q: bool = False
    attn_softcap: float = 0.0
    logit_softcap: float = 0.0
    residual_scale: float = 0.0
    logit_scale: float = 1.0
    attn_temp_scale: float = 0.0
    qk_norm_full: bool = False
    layer_window: tuple[int, ...] = ()
    layer_rope_base: tuple[float, ...] = ()
    layer_rope: tuple[bool, ...] = ()
    n_expert: int = 0
    n_expert_used: int = 0
    n_ff_exp: int = 0
    moe_gating: int = MOE_SOFTMAX
    moe_norm_w: bool = False
    moe_w_scale: float = 0.0
    n_ff_shexp: int = 0

    @property
    def n_embd_q(self) -> int:
        """Width of one token's Q across heads."""
        return self.n_head * self.head_dim

    @property
    def n_embd_kv(self) -> int:
        """Width of one token's K (or V) across KV heads."""
        return self.n_head_kv * self.head_dim


@dataclass(frozen=True)
class Tensor:
    """One per-layer GGUF tensor of the block.

    Attributes:
        name: GGUF name with ``{i}`` for the layer, e.g. ``"blk.{i}.attn_q.weight"``.
        field: the ``LayerWeights`` field it fills (``wq``, ``bq``, ``attn_norm`` ...).
        shape: logical shape from the hparams: ``(n_out, n_in)`` for a matrix, ``(n,)`` for a vector.
        required: a missing required tensor is an error; a missing optional one leaves the field empty.
    """

    name: str
    field: str
    shape: ShapeFn
    required: bool = True

    @property
    def is_matrix(self) -> bool:
        return self.field.startswith("w")


@dataclass(frozen=True)
class Fused:
    """A GGUF tensor that holds several fields' rows one after the other (Phi-3's ``attn_qkv``,
    ``ffn_up`` = gate | up), loaded as zero-copy row views. Fields it fills are skipped by later
    :class:`Tensor` entries. Optional: where the file lacks it, the separate tensors are read.

    Attributes:
        name: GGUF name with ``{i}``.
        parts: ``(field, rows)`` in storage order; rows from the hparams.
        n_in: row length (a matrix) or None (a vector, e.g. a fused bias).
        required: whether the file must have it.
    """

    name: str
    parts: tuple[tuple[str, Callable[["HParams"], int]], ...]
    n_in: Callable[["HParams"], int] | None = None
    required: bool = False


@dataclass(frozen=True)
class TensorTable:
    """Everything an architecture reads from the file.

    Attributes:
        layer: per-layer entries (:class:`Fused` first where they replace separate tensors).
        output_bias: read ``output.bias`` (n_vocab,) if present.
        rope_factors: read ``rope_freqs.weight`` or Phi-3's ``rope_factors_short`` / ``_long`` (n_rot/2,)
            if present (llama.cpp ``llama_model::get_rope_factors``).
        output: where the output head comes from: ``"or_embedding"`` (``output.weight``, else the tied
            ``token_embd.weight``), ``"required"`` (``output.weight`` only) or ``"embedding"`` (always the
            embedding, as Gemma 2).
    """

    layer: tuple
    output_bias: bool = False
    rope_factors: bool = False
    output: str = "or_embedding"


# ---- building blocks of tensor tables (llama.cpp create_tensor_qkv and the llama layer) ----------------

def _q(h: HParams) -> int:
    return h.n_embd_q


def _kv(h: HParams) -> int:
    return h.n_embd_kv


def _embd(h: HParams) -> int:
    return h.n_embd


def qkv(*, bias: bool = False) -> tuple:
    """Q, K, V projections: a fused ``attn_qkv`` (and its bias) where the file has one, else the separate
    matrices, with optional biases (llama.cpp ``llama_model_base::create_tensor_qkv``)."""
    return (
        Fused("blk.{i}.attn_qkv.weight", (("wq", _q), ("wk", _kv), ("wv", _kv)), n_in=_embd),
        Fused("blk.{i}.attn_qkv.bias", (("bq", _q), ("bk", _kv), ("bv", _kv))),
        Tensor("blk.{i}.attn_q.weight", "wq", lambda h: (h.n_embd_q, h.n_embd)),
        Tensor("blk.{i}.attn_k.weight", "wk", lambda h: (h.n_embd_kv, h.n_embd)),
        Tensor("blk.{i}.attn_v.weight", "wv", lambda h: (h.n_embd_kv, h.n_embd)),
        Tensor("blk.{i}.attn_q.bias", "bq", lambda h: (h.n_embd_q,), required=bias),
        Tensor("blk.{i}.attn_k.bias", "bk", lambda h: (h.n_embd_kv,), required=bias),
        Tensor("blk.{i}.attn_v.bias", "bv", lambda h: (h.n_embd_kv,), required=bias),
    )


def attn_output(*, bias: bool | None = None) -> tuple:
    """``attn_output`` (n_embd, n_head * head_dim); bias None = not read, False = optional."""
    out = (Tensor("blk.{i}.attn_output.weight", "wo", lambda h: (h.n_embd, h.n_embd_q)),)
    if bias is not None:
        out += (Tensor("blk.{i}.attn_output.bias", "bo", lambda h: (h.n_embd,), required=bias),)
    return out


def gated_ffn(*, bias: bool | None = None) -> tuple:
    """``ffn_gate``, ``ffn_up`` (n_ff, n_embd) and ``ffn_down`` (n_embd, n_ff); bias as attn_output."""
    out = (
        Tensor("blk.{i}.ffn_gate.weight", "w_gate", lambda h: (h.n_ff, h.n_embd)),
        Tensor("blk.{i}.ffn_up.weight", "w_up", lambda h: (h.n_ff, h.n_embd)),
        Tensor("blk.{i}.ffn_down.weight", "w_down", lambda h: (h.n_embd, h.n_ff)),
    )
    if bias is not None:
        out += (
            Tensor("blk.{i}.ffn_gate.bias", "b_gate", lambda h: (h.n_ff,), required=bias),
            Tensor("blk.{i}.ffn_up.bias", "b_up", lambda h: (h.n_ff,), required=bias),
            Tensor("blk.{i}.ffn_down.bias", "b_down", lambda h: (h.n_embd,), required=bias),
        )
    return out


def moe_ffn() -> tuple:
    """A mixture-of-experts FFN: the router ``ffn_gate_inp`` (n_expert, n_embd) and the stacked experts
    ``ffn_gate_exps`` / ``ffn_up_exps`` (n_expert, n_ff_exp, n_embd) and ``ffn_down_exps`` (n_expert,
    n_embd, n_ff_exp) (llama.cpp ``src/models/qwen3moe.cpp`` load_arch_tensors)."""
    return (
        Tensor("blk.{i}.ffn_gate_inp.weight", "w_gate_inp", lambda h: (h.n_expert, h.n_embd)),
        Tensor("blk.{i}.ffn_gate_exps.weight", "w_gate_exps", lambda h: (h.n_expert, h.n_ff_exp, h.n_embd)),
        Tensor("blk.{i}.ffn_up_exps.weight", "w_up_exps", lambda h: (h.n_expert, h.n_ff_exp, h.n_embd)),
        Tensor("blk.{i}.ffn_down_exps.weight", "w_down_exps", lambda h: (h.n_expert, h.n_embd, h.n_ff_exp)),
    )


def shared_expert(*, gate: bool) -> tuple:
    """A shared expert: ``ffn_gate_shexp`` / ``ffn_up_shexp`` (n_ff_shexp, n_embd), ``ffn_down_shexp``
    (n_embd, n_ff_shexp), and with ``gate`` Qwen2-MoE's ``ffn_gate_inp_shexp`` (n_embd), the vector whose
    dot with the input, through a sigmoid, scales the shared expert's output (llama.cpp
    ``src/models/qwen2moe.cpp``)."""
    out = (
        Tensor("blk.{i}.ffn_gate_shexp.weight", "w_gate_shexp", lambda h: (h.n_ff_shexp, h.n_embd)),
        Tensor("blk.{i}.ffn_up_shexp.weight", "w_up_shexp", lambda h: (h.n_ff_shexp, h.n_embd)),
        Tensor("blk.{i}.ffn_down_shexp.weight", "w_down_shexp", lambda h: (h.n_embd, h.n_ff_shexp)),
    )
    if gate:
        out += (Tensor("blk.{i}.ffn_gate_inp_shexp.weight", "shexp_gate_inp", lambda h: (h.n_embd,)),)
    return out


def norm(name: str, fld: str, width: Callable[[HParams], int] = _embd, required: bool = True) -> Tensor:
    """A norm weight vector ``blk.{i}.<name>.weight``."""
    return Tensor(f"blk.{{i}}.{name}.weight", fld, lambda h: (width(h),), required=required)


def head_dim(h: HParams) -> int:
    return h.head_dim


PRE_NORMS = (norm("attn_norm", "attn_norm"), norm("ffn_norm", "ffn_norm"))
POST_NORMS = (norm("post_attention_norm", "post_attn_norm"), norm("post_ffw_norm", "post_ffn_norm"))
QK_NORMS = (norm("attn_q_norm", "q_norm", head_dim), norm("attn_k_norm", "k_norm", head_dim))


# ---- metadata --------------------------------------------------------------------------------------

# Upper bounds on what a file may claim, far above any released model (Llama 3.1 405B: n_embd 16384,
# 126 blocks, n_ff 53248, 128 heads) yet small enough that nothing sized from them overflows a C int.
MAX_EMBD = 1 << 17
MAX_HEADS = 1 << 12
MAX_HEAD_DIM = 1 << 12
MAX_FF = 1 << 20
MAX_LAYERS = 1 << 12
MAX_CTX = (1 << 31) - 1


def block_indices(gf: GGUFFile) -> set[int]:
    """The ``N`` of every ``blk.N.*`` tensor in the file."""
    out = set()
    for name in gf.tensors:
        if name.startswith("blk."):
            head = name[4:].split(".", 1)[0]
            if head.isdigit():
                out.add(int(head))
    return out


def rope_scaling(gf: GGUFFile, arch: str, n_ctx_train: int) -> RopeScaling:
    """Read ``{arch}.rope.scaling.*`` and derive YaRN's factors as llama.cpp does (``llama-model.cpp``
    load_hparams; ``llama-context.cpp`` llama_context constructor: ext_factor, the mscale correction
    ``1 + 0.1 ln(factor)`` cancelled against the kernel's own, times ``rope.scaling.attn_factor``).

    Raises:
        GGUFError: an unknown scaling type, or a factor that is not a finite non-negative number.
    """
    def key(name: str) -> str:
        return f"{arch}.{name}"

    kind = gf.get_str(key("rope.scaling.type"), "linear")
    if kind not in ("none", "linear", "yarn", "longrope"):
        raise GGUFError(gf.path, f"unsupported rope.scaling.type {kind!r} (supported: none, linear, yarn, longrope)")
    factor = gf.get_float(key("rope.scaling.factor"), gf.get_float(key("rope.scale_linear"), 0.0, lo=0.0, hi=1e6),
                          lo=0.0, hi=1e6)
    if 0.0 < factor < 1e-6:
        raise GGUFError(gf.path, f"metadata key {key('rope.scaling.factor')} = {factor!r} must be 0 or at least 1e-6")
    freq_scale = 1.0 if factor == 0.0 or kind == "none" else 1.0 / factor
    ext_factor = 1.0 if kind == "yarn" else 0.0
    attn_factor = 1.0
    if ext_factor != 0.0:
        f = 1.0 / freq_scale

        def mscale(scale: float, m: float) -> float:
            return 1.0 if scale <= 1.0 else 0.1 * m * math.log(scale) + 1.0

        log_mul = gf.get_float(key("rope.scaling.yarn_log_multiplier"), 0.0, lo=-100.0, hi=100.0)
        attn_factor = mscale(f, 1.0) / mscale(f, log_mul) if log_mul != 0.0 else mscale(f, 1.0)
        if not math.isfinite(attn_factor):
            raise GGUFError(gf.path, f"metadata key {key('rope.scaling.yarn_log_multiplier')} = {log_mul!r} "
                                     f"gives a non-finite YaRN attention factor")
        attn_factor *= 1.0 / (1.0 + 0.1 * math.log(f))
    attn_factor *= gf.get_float(key("rope.scaling.attn_factor"), 1.0, lo=0.0, hi=1e3)
    return RopeScaling(
        type=kind, freq_scale=freq_scale, ext_factor=ext_factor, attn_factor=attn_factor,
        beta_fast=gf.get_float(key("rope.scaling.yarn_beta_fast"), 32.0, lo=-1e4, hi=1e4),
        beta_slow=gf.get_float(key("rope.scaling.yarn_beta_slow"), 1.0, lo=-1e4, hi=1e4),
        n_ctx_orig=gf.get_int(key("rope.scaling.original_context_length"), 0, lo=0, hi=MAX_CTX) or n_ctx_train,
    )


def read_common(gf: GGUFFile, arch: str) -> dict:
    """Read the hyper-parameters every llama-like architecture stores under ``{arch}.*``, checked against
    each other and the tensors before anything is sized from them (as llama.cpp's loader refuses a file
    whose hyper-parameters do not match its tensors, ``llama-model-loader.cpp``).

    Returns:
        dict of :class:`HParams` keyword arguments, with every layer full-attention, RoPE on, at
        ``rope.freq_base`` (architecture files replace the per-layer tuples where they differ).

    Raises:
        GGUFError: a required key is missing, a value has the wrong type or lies out of bounds, or the
            values are inconsistent (head counts that do not divide, ``n_rot`` odd or above the head
            size, ``block_count`` different from the ``blk.N`` blocks the file holds).
    """
    def key(name: str) -> str:
        return f"{arch}.{name}"

    def size(name: str, hi: int, default: int | None = None) -> int:
        value = gf.get_int(key(name), default, lo=1, hi=hi)
        if value is None:
            raise GGUFError(gf.path, f"missing metadata key {key(name)}")
        return value

    n_layer = size("block_count", MAX_LAYERS)
    present = block_indices(gf)
    if present != set(range(n_layer)):
        missing = sorted(set(range(n_layer)) - present)
        extra = sorted(present - set(range(n_layer)))
        detail = (f"blocks {missing[:5]} are missing" if missing else f"it holds blocks up to blk.{max(extra)}")
        raise GGUFError(gf.path, f"metadata key {key('block_count')} = {n_layer} does not match the tensors: "
                                 f"{detail}")
    n_embd = size("embedding_length", MAX_EMBD)
    n_head = size("attention.head_count", MAX_HEADS)
    n_head_kv = size("attention.head_count_kv", MAX_HEADS, n_head)
    if n_head % n_head_kv:
        raise GGUFError(gf.path, f"inconsistent heads: head_count {n_head} is not a multiple of head_count_kv "
                                 f"{n_head_kv}")
    head_dim = size("attention.key_length", MAX_HEAD_DIM, max(n_embd // n_head, 1))
    if gf.get_int(key("attention.value_length"), head_dim) != head_dim:
        raise GGUFError(gf.path, "attention.value_length different from key_length is not supported")
    n_rot = gf.get_int(key("rope.dimension_count"), head_dim)
    if n_rot < 0 or n_rot % 2 or n_rot > head_dim:
        raise GGUFError(gf.path, f"metadata key {key('rope.dimension_count')} = {n_rot} must be even and at most "
                                 f"the head size {head_dim}")
    n_ctx_train = size("context_length", MAX_CTX, 2048)
    rope_base = gf.get_float(key("rope.freq_base"), 10000.0, lo=1.0, hi=1e12)
    embd = gf.tensor("token_embd.weight")
    if len(embd.ne) != 2 or embd.ne[1] < 1:
        raise GGUFError(gf.path, f"inconsistent shapes: token_embd.weight has dimensions {list(embd.ne)}, "
                                 f"expected [n_embd, n_vocab] with n_vocab >= 1")
    return dict(
        arch=arch,
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        n_ff=size("feed_forward_length", MAX_FF),
        head_dim=head_dim,
        n_rot=n_rot,
        n_ctx_train=n_ctx_train,
        n_vocab=embd.shape[0],
        eps=gf.get_float(key("attention.layer_norm_rms_epsilon"), 1e-5, lo=0.0, hi=1.0),
        rope_base=rope_base,
        rope=rope_scaling(gf, arch, n_ctx_train),
        attn_scale=head_dim**-0.5,
        layer_window=(0,) * n_layer,
        layer_rope_base=(rope_base,) * n_layer,
        layer_rope=(True,) * n_layer,
    )


MAX_EXPERTS = 512  # llama.cpp LLAMA_MAX_EXPERTS
MAX_EXPERTS_USED = 64  # cython_kernels/fs_moe.h FS_MOE_MAX_USED


def read_moe(gf: GGUFFile, arch: str, n_ff_exp: int | None, n_ff: int = 0) -> dict:
    """The mixture-of-experts keys (``{arch}.expert_count``, ``expert_used_count``) and the experts'
    width, as :class:`HParams` keyword arguments, as llama.cpp's ``load_hparams`` / ``load_arch_tensors``
    take them.

    Args:
        n_ff_exp: the width where llama.cpp fixes it (``feed_forward_length`` for llama / Mixtral, olmoe,
            granitemoe; ``expert_feed_forward_length`` is then not read); None: that key, defaulting to
            ``n_ff / expert_used_count`` when n_ff is given (qwen2moe, qwen3moe) and required otherwise
            (gpt-oss).

    Raises:
        GGUFError: a key is missing or out of bounds (expert_used_count must be 1 .. expert_count, at
            most 64).
    """
    n_expert = gf.get_int(f"{arch}.expert_count", None, lo=1, hi=MAX_EXPERTS)
    if n_expert is None:
        raise GGUFError(gf.path, f"missing metadata key {arch}.expert_count (the file has expert tensors)")
    n_used = gf.get_int(f"{arch}.expert_used_count", None, lo=1, hi=min(n_expert, MAX_EXPERTS_USED))
    if n_used is None:
        raise GGUFError(gf.path, f"missing metadata key {arch}.expert_used_count")
    if n_ff_exp is None:
        # 0 means absent, as llama.cpp's n_ff_exp() ? n_ff_exp : n_ff / n_expert_used
        n_ff_exp = gf.get_int(f"{arch}.expert_feed_forward_length", 0, lo=0, hi=MAX_FF) or n_ff // n_used
        if n_ff_exp < 1:
            raise GGUFError(gf.path, f"missing metadata key {arch}.expert_feed_forward_length")
    return dict(n_expert=n_expert, n_expert_used=n_used, n_ff_exp=n_ff_exp)


def swa_hparams(is_swa: list[bool], window: int, swa_base: float, base: float) -> dict:
    """``layer_window`` and ``layer_rope_base`` for sliding-window layers ``is_swa`` (window tokens, RoPE
    base swa_base) among full-attention ones (RoPE base base)."""
    return dict(layer_window=tuple(window if s else 0 for s in is_swa),
                layer_rope_base=tuple(swa_base if s else base for s in is_swa))


def swa_layers(gf: GGUFFile, arch: str, n_layer: int, pattern: int) -> list[bool]:
    """Which layers use sliding-window attention (llama.cpp ``llama_model_base::load_swa_pattern``):
    ``attention.sliding_window_pattern`` as an array of bools, or as a period n, else ``pattern``; with a
    period, every layer but each n-th (``llama_hparams::set_swa_pattern``: il % n < n - 1).

    Raises:
        GGUFError: a pattern array whose length is not the block count.
    """
    value = gf.get(f"{arch}.attention.sliding_window_pattern")
    if isinstance(value, (list, tuple, np.ndarray)):
        if len(value) != n_layer:
            raise GGUFError(gf.path, f"metadata key {arch}.attention.sliding_window_pattern has {len(value)} "
                                     f"entries for {n_layer} layers")
        return [bool(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        pattern = value
    return [il % pattern < pattern - 1 for il in range(n_layer)]
