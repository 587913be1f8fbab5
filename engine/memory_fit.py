"""Will a model fit in memory? An estimate of what running a GGUF file takes, against what is free.

What a loaded model costs, as the engine lays it out:

* **Weights**: the file is memory-mapped and every tensor is read by the kernels, so the whole file ends
  up resident (page cache): its size in bytes (``engine.model.load_model`` copies nothing large).
* **KV cache**: ``cython_kernels/forward.pyx`` ``ForwardContext`` allocates K and V as
  ``(n_layer, n_seq * n_ctx, n_head_kv * head_dim)`` uint16 arrays (f16 bits, llama.cpp's default cache
  type), for every layer, sliding-window layers included. That is llama.cpp's formula
  (``src/llama-kv-cache.cpp``: per layer ``ggml_row_size(type_k, n_embd_k_gqa) * kv_size`` for K and the
  same with ``n_embd_v_gqa`` for V) with ``kv_size = n_ctx * n_seq`` and ``n_embd_k_gqa = n_embd_v_gqa =
  n_head_kv * head_dim``. The pages are taken from the OS as rows are first written, so this is what a
  full context costs.
* **Compute buffers**: ForwardContext's activation buffers for a batch of ``n_batch + n_seq - 1`` tokens
  (``engine.context.Context.max_batch``), the per-thread attention scratch
  (``FS_ATTN_WORK_FLOATS`` of ``fs_ops.h``), mixture-of-experts scratch (``fs_moe_work_sizes`` of
  ``fs_moe.c``) and ``Context``'s float32 ``(n_seq, n_vocab)`` logits.

Files whose architecture the engine does not run are still estimated, from the GGUF metadata keys
llama.cpp reads (``{arch}.block_count``, ``attention.head_count_kv`` (a number or one per layer),
``attention.key_length`` / ``value_length``), and marked approximate; so is an estimate from a file's
size alone (:func:`estimate_from_size`, for a file not downloaded yet).

Available memory is ``psutil.virtual_memory().available``: what can be given to a program without
swapping (free memory plus reclaimable page cache).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import gguf
import psutil

from .defaults import DEFAULT_N_BATCH, DEFAULT_N_CTX
from .gguf_file import GGUFError, GGUFFile
#: Above this share of the available memory a fit is "tight": the OS, the app and other programs need
#: room too, and available memory moves while the model runs.
TIGHT_SHARE = 0.8
KV_ELEMENT_BYTES = 2  # f16

# fs_ops.h constants (FS_MATMUL_ACT_BYTES, FS_ATTN_WORK_FLOATS).
_ACT_ROW_EXTRA = 64
_ATTN_KEY_CHUNK = 16


class Fit(str, Enum):
    """Whether the estimate fits the available memory."""

    YES = "yes"
    TIGHT = "tight"
    NO = "no"


@dataclass(frozen=True)
class MemoryShape:
    """What the estimate needs from a model file: sizes read from its GGUF header.

    Attributes:
        weights_bytes: bytes mapped for the weights (the file size).
        n_ctx_train: the trained context length in tokens (``{arch}.context_length``; 0 if unknown).
        kv_bytes_per_token: K plus V bytes, all layers, for one token of one sequence.
        n_embd, n_q, n_kv, n_ff, n_vocab, head_dim, group: widths of the compute buffers: embedding,
            query row (n_head * head_dim), K/V row (n_head_kv * head_dim), feed-forward, vocabulary,
            one head, query heads per KV head.
        n_expert, n_expert_used, n_ff_exp, n_ff_shexp: mixture of experts (0 for a dense model).
        exact: the shape is the engine's own (``read_hparams``); False when read from generic metadata.
    """

    weights_bytes: int
    n_ctx_train: int
    kv_bytes_per_token: int
    n_embd: int = 0
    n_q: int = 0
    n_kv: int = 0
    n_ff: int = 0
    n_vocab: int = 0
    head_dim: int = 0
    group: int = 1
    n_expert: int = 0
    n_expert_used: int = 0
    n_ff_exp: int = 0
    n_ff_shexp: int = 0
    exact: bool = True


@dataclass(frozen=True)
class MemoryEstimate:
    """The memory a model needs at a context size, against what is available.

    Attributes:
        weights_bytes, kv_bytes, compute_bytes: the three parts (see the module docstring), bytes.
        needed_bytes: their sum.
        available_bytes: ``psutil.virtual_memory().available`` (or the value given), bytes.
        fits: :class:`Fit`.
        n_ctx, n_parallel: the context per sequence (tokens) and the sequences the estimate is for.
        approx: True when the shape was not the engine's own (generic metadata, or the file size alone).
        explanation: one sentence for people.
    """

    weights_bytes: int
    kv_bytes: int
    compute_bytes: int
    needed_bytes: int
    available_bytes: int
    fits: Fit
    n_ctx: int
    n_parallel: int
    approx: bool
    explanation: str

    @property
    def short(self) -> str:
        """A table cell: ``"0.4 GiB · fits"``, ``"≈ 2.1 GiB · tight"``, ``"9.0 GiB · too big"``."""
        word = {Fit.YES: "fits", Fit.TIGHT: "tight", Fit.NO: "too big"}[self.fits]
        return f"{'≈ ' if self.approx else ''}{format_bytes(self.needed_bytes)} · {word}"


def format_bytes(n: int) -> str:
    """Bytes in binary units for people: ``"94 MiB"``, ``"4.1 GiB"``."""
    if n >= 2**30:
        return f"{n / 2**30:.1f} GiB"
    return f"{max(n, 0) / 2**20:.0f} MiB"


def kv_cache_bytes(shape: MemoryShape, n_ctx: int, n_parallel: int = 1) -> int:
    """Bytes of the KV cache for ``n_parallel`` sequences of ``n_ctx`` tokens each (K and V, f16)."""
    return shape.kv_bytes_per_token * int(n_ctx) * int(n_parallel)


def _act_bytes(n_in: int) -> int:
    """fs_ops.h ``FS_MATMUL_ACT_BYTES``: quantized-activation bytes for one row of ``n_in`` floats."""
    return n_in * 4 + _ACT_ROW_EXTRA


def _attn_work_floats(head_dim: int, n_ctx: int, group: int) -> int:
    """fs_ops.h ``FS_ATTN_WORK_FLOATS``: per-thread attention scratch, floats."""
    tile_tokens = 1 if group >= 16 else 16 // group
    tile_q = tile_tokens * group
    return tile_q * (n_ctx + 8) + (_ATTN_KEY_CHUNK + tile_q) * head_dim + 64


def _moe_work_bytes(n_tok: int, shape: MemoryShape) -> int:
    """fs_moe.c ``fs_moe_work_sizes`` summed (each buffer at least 64 bytes plus 64 for alignment), plus
    ForwardContext's ``moe_out``."""
    pairs = n_tok * shape.n_expert_used
    widest = max(shape.n_embd, shape.n_ff_exp)
    sh_tok = n_tok if shape.n_ff_shexp > 0 else 0
    sh_widest = max(shape.n_embd, shape.n_ff_shexp)
    sizes = [n_tok * shape.n_expert * 4, pairs * 4, pairs * 4, (shape.n_expert + 1) * 4, pairs * 4, pairs * 4,
             (shape.n_expert + 1) * 4, 2 * pairs * _act_bytes(widest), pairs * shape.n_ff_exp * 4,
             pairs * shape.n_ff_exp * 4, pairs * shape.n_embd * 4, 2 * sh_tok * _act_bytes(sh_widest),
             sh_tok * shape.n_ff_shexp * 4, sh_tok * shape.n_ff_shexp * 4, sh_tok * shape.n_embd * 4, sh_tok * 4]
    return sum(max(s, 64) + 64 for s in sizes) + n_tok * shape.n_embd * 4


def compute_bytes(shape: MemoryShape, n_ctx: int, n_parallel: int = 1, n_threads: int | None = None,
                  n_batch: int = DEFAULT_N_BATCH) -> int:
    """Bytes of the buffers a Context allocates besides the KV cache (``ForwardContext.__init__`` and
    ``Context.__init__``): activations for ``min(n_batch, n_ctx) + n_parallel - 1`` tokens, attention
    scratch for ``n_threads`` threads (default: the CPUs this process may use), logits."""
    n_threads = int(n_threads or _cpus())
    rows = max(1, min(int(n_batch), int(n_ctx))) + int(n_parallel) - 1
    n_ff = shape.n_ff if shape.n_ff else 1
    floats = rows * (2 * shape.n_embd + 2 * shape.n_q + 2 * shape.n_kv + 2 * n_ff)
    total = floats * 4 + rows * _act_bytes(max(shape.n_embd, n_ff, shape.n_q)) + rows * 4
    total += n_threads * _attn_work_floats(shape.head_dim, int(n_ctx), max(1, shape.group)) * 4
    if shape.n_expert:
        total += _moe_work_bytes(rows, shape)
    total += int(n_parallel) * shape.n_vocab * 4  # Context._logits
    return total


def _cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def resolve_n_ctx(n_ctx: int, n_ctx_train: int) -> int:
    """The context a Context gets for a setting of ``n_ctx`` (0 = ``min(n_ctx_train, DEFAULT_N_CTX)``,
    as ``engine.context.Context``)."""
    if n_ctx and n_ctx > 0:
        return int(n_ctx)
    return min(n_ctx_train, DEFAULT_N_CTX) if n_ctx_train > 0 else DEFAULT_N_CTX


def verdict(needed: int, available: int) -> Fit:
    """:class:`Fit` of ``needed`` bytes in ``available`` bytes (tight above ``TIGHT_SHARE`` of it)."""
    if needed > available:
        return Fit.NO
    if needed > TIGHT_SHARE * available:
        return Fit.TIGHT
    return Fit.YES


def available_memory() -> int:
    """Bytes that can be given to programs without swapping: ``psutil.virtual_memory().available``."""
    return int(psutil.virtual_memory().available)


def estimate(shape: MemoryShape, n_ctx: int = 0, n_parallel: int = 1, *, n_threads: int | None = None,
             available: int | None = None, approx: bool | None = None) -> MemoryEstimate:
    """Estimate the memory to run a model of ``shape``.

    Args:
        shape: from :func:`shape_from_gguf` (or :func:`estimate_from_size`'s guess).
        n_ctx: context tokens per sequence; 0 = the engine's default (:func:`resolve_n_ctx`).
        n_parallel: sequences (the app's parallel slots), each with its own n_ctx of cache.
        n_threads: kernel threads (default: the CPUs this process may use).
        available: bytes free (default :func:`available_memory`).
        approx: mark the estimate approximate (default: ``not shape.exact``).

    Raises:
        ValueError: ``n_parallel`` below 1.
    """
    if n_parallel < 1:
        raise ValueError(f"n_parallel must be at least 1, not {n_parallel}")
    ctx = resolve_n_ctx(n_ctx, shape.n_ctx_train)
    kv = kv_cache_bytes(shape, ctx, n_parallel)
    comp = compute_bytes(shape, ctx, n_parallel, n_threads)
    needed = shape.weights_bytes + kv + comp
    avail = available_memory() if available is None else int(available)
    fit = verdict(needed, avail)
    approx = (not shape.exact) if approx is None else approx
    slots = f" × {n_parallel} slots" if n_parallel > 1 else ""
    about = "roughly " if approx else "about "
    ending = {Fit.YES: "it fits.", Fit.TIGHT: "it fits, but tightly: close other programs or lower the context.",
              Fit.NO: "not enough memory: lower the context or the parallel slots, or pick a smaller file."}[fit]
    explanation = (f"Needs {about}{format_bytes(needed)} (weights {format_bytes(shape.weights_bytes)}, "
                   f"context cache {format_bytes(kv)} for {ctx:,} tokens{slots}, buffers {format_bytes(comp)}); "
                   f"{format_bytes(avail)} available: {ending}")
    return MemoryEstimate(shape.weights_bytes, kv, comp, needed, avail, fit, ctx, int(n_parallel), approx,
                          explanation)


# -- shapes from files ---------------------------------------------------------------------------------
def shape_from_hparams(hp, weights_bytes: int) -> MemoryShape:
    """The :class:`MemoryShape` of an ``engine.models.base.HParams`` (the engine's own reading)."""
    return MemoryShape(
        weights_bytes=int(weights_bytes), n_ctx_train=int(hp.n_ctx_train),
        kv_bytes_per_token=2 * hp.n_layer * hp.n_head_kv * hp.head_dim * KV_ELEMENT_BYTES,
        n_embd=hp.n_embd, n_q=hp.n_head * hp.head_dim, n_kv=hp.n_head_kv * hp.head_dim,
        n_ff=hp.n_ff if not (hp.n_expert and hp.n_ff == 0) else 0, n_vocab=hp.n_vocab, head_dim=hp.head_dim,
        group=max(1, hp.n_head // max(1, hp.n_head_kv)), n_expert=hp.n_expert, n_expert_used=hp.n_expert_used,
        n_ff_exp=hp.n_ff_exp, n_ff_shexp=hp.n_ff_shexp, exact=True)


def _per_layer(value, n_layer: int) -> list[int]:
    """A metadata value that is one number or one per layer (llama.cpp ``get_key_or_arr``)."""
    if isinstance(value, (int, float)):
        return [int(value)] * n_layer
    values = [int(v) for v in value]
    if len(values) != n_layer:
        raise ValueError(f"{len(values)} values for {n_layer} layers")
    return values


def generic_shape(gf: GGUFFile) -> MemoryShape:
    """A :class:`MemoryShape` from the metadata keys llama.cpp reads for any architecture (``exact`` False).

    Raises:
        GGUFError: the keys needed (``general.architecture``, ``{arch}.block_count``,
            ``{arch}.embedding_length``, ``{arch}.attention.head_count``) are missing or malformed.
    """
    arch = gf.get("general.architecture")
    if not isinstance(arch, str):
        raise GGUFError(gf.path, "missing metadata key general.architecture")
    try:
        n_layer = int(gf.require(f"{arch}.block_count"))
        n_embd = int(gf.require(f"{arch}.embedding_length"))
        n_head = _per_layer(gf.require(f"{arch}.attention.head_count"), n_layer)
        n_head_kv = _per_layer(gf.get(f"{arch}.attention.head_count_kv", n_head), n_layer)
        head_dim_default = n_embd // max(1, max(n_head))
        key_len = int(gf.get(f"{arch}.attention.key_length", head_dim_default))
        value_len = int(gf.get(f"{arch}.attention.value_length", key_len))
        n_ff_raw = gf.get(f"{arch}.feed_forward_length", 0)
        n_ff = max(_per_layer(n_ff_raw, n_layer)) if n_layer else 0
    except (TypeError, ValueError) as exc:
        raise GGUFError(gf.path, f"malformed attention metadata ({exc})") from None
    emb = gf.tensors.get("token_embd.weight")
    n_vocab = emb.ne[1] if emb is not None and len(emb.ne) > 1 else len(gf.get("tokenizer.ggml.tokens", []) or [])
    kv_per_token = sum(h * (key_len + value_len) * KV_ELEMENT_BYTES for h in n_head_kv)
    max_kv = max(n_head_kv) if n_head_kv else 1
    return MemoryShape(
        weights_bytes=gf.file_size, n_ctx_train=int(gf.get(f"{arch}.context_length", 0) or 0),
        kv_bytes_per_token=kv_per_token, n_embd=n_embd, n_q=max(n_head) * key_len, n_kv=max_kv * key_len,
        n_ff=n_ff, n_vocab=int(n_vocab), head_dim=key_len, group=max(1, max(n_head) // max(1, max_kv)),
        n_expert=int(gf.get(f"{arch}.expert_count", 0) or 0),
        n_expert_used=int(gf.get(f"{arch}.expert_used_count", 0) or 0),
        n_ff_exp=int(gf.get(f"{arch}.expert_feed_forward_length", 0) or 0), exact=False)


def shape_from_gguf(gf: GGUFFile) -> MemoryShape:
    """The :class:`MemoryShape` of an open GGUF file, from its header only (no weight is read).

    Uses the engine's own ``read_hparams`` when the engine runs the architecture, else
    :func:`generic_shape`.

    Raises:
        GGUFError: the metadata lacks what even the generic reading needs.
    """
    from .model import read_hparams  # the kernels' module; imported only when a file is read

    try:
        hp = read_hparams(gf)
    except GGUFError:
        return generic_shape(gf)
    return shape_from_hparams(hp, gf.file_size)


def estimate_file(path: str | Path, n_ctx: int = 0, n_parallel: int = 1, **kwargs) -> MemoryEstimate:
    """:func:`estimate` for a ``.gguf`` file, reading only its header.

    Raises:
        GGUFError: not a usable GGUF header. OSError: the file cannot be read.
    """
    with GGUFFile(path) as gf:
        shape = shape_from_gguf(gf)
    return estimate(shape, n_ctx, n_parallel, **kwargs)


# -- a file not downloaded yet ---------------------------------------------------------------------------
#: Bits per weight assumed when a file name names no quantization (about Q4_K_M's average).
DEFAULT_BITS_PER_WEIGHT = 4.8
#: A default context for an unknown model: the engine's default.
_GUESS_N_CTX_TRAIN = DEFAULT_N_CTX


def bits_per_weight(quant: str | None) -> float:
    """Average bits per weight of a quantization name (``"Q4_K_M"`` -> 4.5, from ``gguf.GGML_QUANT_SIZES``
    of its base type ``Q4_K``; ``"F16"`` -> 16); :data:`DEFAULT_BITS_PER_WEIGHT` when unknown."""
    if not quant:
        return DEFAULT_BITS_PER_WEIGHT
    name = quant.upper()
    for candidate in (name, name.rsplit("_", 1)[0], name.rsplit("_", 2)[0]):
        try:
            block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[candidate]]
        except KeyError:
            continue
        return size * 8 / block
    return DEFAULT_BITS_PER_WEIGHT


def guess_shape(file_size: int, quant: str | None = None, n_params: int | None = None,
                n_ctx_train: int | None = None) -> MemoryShape:
    """A rough :class:`MemoryShape` from a file's size and quantization name only (``exact`` False).

    The parameter count is ``n_params`` when known (the Hub reads it from the files), else
    ``file_size * 8 / bits_per_weight(quant)``; the KV cache per token is guessed as
    ``2 * sqrt(n_params)`` bytes, which is at or above what published grouped-query-attention models need
    (SmolLM2 135M: 23 KB per token against 23 KB guessed; Llama 3.2 1B: 32 against 70; Llama 3 8B: 128
    against 179), so the guess errs on the side of "does not fit". Compute buffers are left out (small
    next to these). ``n_ctx_train`` (tokens) sets the default context, else 4096.
    """
    if not n_params or n_params <= 0:
        n_params = file_size * 8 / bits_per_weight(quant)
    return MemoryShape(weights_bytes=int(file_size), n_ctx_train=int(n_ctx_train or _GUESS_N_CTX_TRAIN),
                       kv_bytes_per_token=int(2 * math.sqrt(max(n_params, 0.0))), exact=False)


def estimate_from_size(file_size: int, n_ctx: int = 0, n_parallel: int = 1, quant: str | None = None,
                       n_params: int | None = None, n_ctx_train: int | None = None, **kwargs) -> MemoryEstimate:
    """:func:`estimate` for a file known only by its size (and quantization name): approximate.

    Args:
        file_size: bytes. n_ctx: tokens per sequence (0 = the engine's default: min(n_ctx_train, 4096)).
        n_parallel: sequences. quant: e.g. ``"Q4_K_M"`` (``engine.download.parse_quant`` of the name).
        n_params, n_ctx_train: the model's parameter count and trained context (tokens), when known.
        kwargs: as :func:`estimate` (``available``, ``n_threads``).
    """
    return estimate(guess_shape(file_size, quant, n_params, n_ctx_train), n_ctx, n_parallel, approx=True, **kwargs)
