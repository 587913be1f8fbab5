"""What every architecture shares: the hyper-parameter dataclass and the GGUF tensor names.

An architecture file (``llama.py``, ``gemma3.py``) describes only how it differs from the plain
pre-norm decoder block: its :class:`HParams` values and which optional tensors its layers carry.
Tensor names follow llama.cpp's ``gguf-py/gguf/constants.py`` (``blk.{i}.attn_q.weight`` ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..gguf_file import GGUFError, GGUFFile

ACT_SILU = 0  # must match cython_kernels/forward.pyx
ACT_GELU_TANH = 1


@dataclass(frozen=True)
class HParams:
    """Hyper-parameters of a decoder-only transformer, read from GGUF metadata.

    Attributes:
        arch: ``general.architecture``.
        n_layer, n_embd, n_head, n_head_kv, n_ff: block count, embedding width, query heads, KV heads,
            feed-forward width.
        head_dim: width of one attention head (``attention.key_length`` or ``n_embd / n_head``).
        n_rot: RoPE dimensions per head (``rope.dimension_count``).
        n_ctx_train: ``context_length``, the context the model was trained for, in tokens.
        n_vocab: rows of ``token_embd.weight``.
        eps: RMSNorm epsilon.
        rope_base: RoPE frequency base of full-attention layers; rope_freq_scale its linear scale.
        rope_neox: rotate (i, i + n_rot/2) pairs instead of adjacent ones.
        act: ACT_SILU or ACT_GELU_TANH for the gated FFN.
        embd_scale: factor applied to token embeddings (Gemma: sqrt(n_embd)).
        attn_scale: factor applied to q·k (usually 1/sqrt(head_dim)).
        attn_scale_on_q: apply attn_scale to Q before attention rather than to the scores (Gemma's
            graph does this; it changes rounding only).
        logit_softcap: final logit soft-cap (0 = none).
        layer_window: per layer, sliding-window size in tokens (0 = full attention).
        layer_rope_base: per layer, RoPE base.
        optional_tensors: per-layer tensor suffixes this architecture requires beyond the llama set.
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
    rope_freq_scale: float = 1.0
    rope_neox: bool = False
    act: int = ACT_SILU
    embd_scale: float = 1.0
    attn_scale: float = 0.0
    attn_scale_on_q: bool = False
    logit_softcap: float = 0.0
    layer_window: tuple[int, ...] = ()
    layer_rope_base: tuple[float, ...] = ()
    extra_layer_tensors: tuple[str, ...] = field(default_factory=tuple)

    @property
    def n_embd_kv(self) -> int:
        """Width of one token's K (or V) across KV heads."""
        return self.n_head_kv * self.head_dim


# Tensors every supported block has, with their logical (n_out, n_in) shapes as functions of hparams.
LAYER_MATRICES = {
    "attn_q": lambda h: (h.n_head * h.head_dim, h.n_embd),
    "attn_k": lambda h: (h.n_embd_kv, h.n_embd),
    "attn_v": lambda h: (h.n_embd_kv, h.n_embd),
    "attn_output": lambda h: (h.n_embd, h.n_head * h.head_dim),
    "ffn_gate": lambda h: (h.n_ff, h.n_embd),
    "ffn_up": lambda h: (h.n_ff, h.n_embd),
    "ffn_down": lambda h: (h.n_embd, h.n_ff),
}
LAYER_VECTORS = {
    "attn_norm": lambda h: h.n_embd,
    "ffn_norm": lambda h: h.n_embd,
    "attn_q_norm": lambda h: h.head_dim,
    "attn_k_norm": lambda h: h.head_dim,
    "post_attention_norm": lambda h: h.n_embd,
    "post_ffw_norm": lambda h: h.n_embd,
}


def read_common(gf: GGUFFile, arch: str) -> dict:
    """Read the hyper-parameters every llama-like architecture stores under ``{arch}.*``.

    Returns:
        dict of :class:`HParams` keyword arguments (without the per-layer tuples).

    Raises:
        GGUFError: a required key is missing or the values are inconsistent.
    """
    def key(name: str) -> str:
        return f"{arch}.{name}"

    n_embd = int(gf.require(key("embedding_length")))
    n_head = int(gf.require(key("attention.head_count")))
    n_head_kv = int(gf.get(key("attention.head_count_kv"), n_head))
    if n_head <= 0 or n_head_kv <= 0 or n_head % n_head_kv:
        raise GGUFError(gf.path, f"inconsistent heads: head_count {n_head}, head_count_kv {n_head_kv}")
    head_dim = int(gf.get(key("attention.key_length"), n_embd // n_head))
    if int(gf.get(key("attention.value_length"), head_dim)) != head_dim:
        raise GGUFError(gf.path, "attention.value_length different from key_length is not supported")
    embd = gf.tensor("token_embd.weight")
    return dict(
        arch=arch,
        n_layer=int(gf.require(key("block_count"))),
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        n_ff=int(gf.require(key("feed_forward_length"))),
        head_dim=head_dim,
        n_rot=int(gf.get(key("rope.dimension_count"), head_dim)),
        n_ctx_train=int(gf.get(key("context_length"), 2048)),
        n_vocab=embd.shape[0],
        eps=float(gf.get(key("attention.layer_norm_rms_epsilon"), 1e-5)),
        rope_base=float(gf.get(key("rope.freq_base"), 10000.0)),
        rope_freq_scale=1.0 / float(gf.get(key("rope.scaling.factor"), 1.0) or 1.0),
        attn_scale=head_dim**-0.5,
    )
