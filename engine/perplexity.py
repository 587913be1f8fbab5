"""Perplexity by llama.cpp's method (``tools/perplexity/perplexity.cpp``, ``perplexity()``).

The text is tokenized once (BOS added where the model adds one) and cut into chunks of n_ctx tokens;
the first token of each chunk is replaced by BOS where the model adds one; each chunk is evaluated
from an empty cache and only its second half is scored (the first half is context). The value after
each chunk is exp(mean NLL) over all tokens scored so far.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .context import Context


@dataclass
class PerplexityResult:
    """Result of :func:`perplexity`.

    Attributes:
        ppl: final perplexity.
        stderr: its standard error (llama.cpp's ``±``, from the NLL's variance).
        running: perplexity after each chunk.
        n_tokens: tokens scored.
    """

    ppl: float
    stderr: float
    running: list[float] = field(default_factory=list)
    n_tokens: int = 0


def chunks(tokens: list[int], n_ctx: int, bos_id: int | None, n_chunks: int | None = None) -> list[list[int]]:
    """The token chunks llama-perplexity scores: consecutive runs of n_ctx tokens (at most n_chunks of them),
    the first token of each replaced by bos_id where the model adds one (None: left as it is).

    Raises:
        ValueError: fewer than 2 * n_ctx tokens.
    """
    if len(tokens) < 2 * n_ctx:
        raise ValueError(f"the text has {len(tokens)} tokens; at least 2 * n_ctx = {2 * n_ctx} are needed")
    total = len(tokens) // n_ctx
    if n_chunks is not None:
        total = min(total, n_chunks)
    out = []
    for i in range(total):
        chunk = tokens[i * n_ctx : (i + 1) * n_ctx]
        if bos_id is not None:
            chunk[0] = bos_id
        out.append(chunk)
    return out


def token_nll(rows: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Negative log-likelihood (nats, float64 (n,)) of targets (int (n,)) under logits rows (float32 (n, n_vocab)).

    llama.cpp's ``log_softmax`` (``tools/perplexity/perplexity.cpp``): the row's max subtracted, ``exp`` in
    float32, the sum of the exponentials and the logarithm in float64. Rows go through in blocks of about
    16 MiB, so a 262k-token vocabulary (Gemma) needs no 0.5 GiB float64 temporaries.

    Raises:
        ValueError: rows is not (len(targets), n_vocab), or a target is outside 0..n_vocab-1.
    """
    targets = np.asarray(targets)
    if rows.ndim != 2 or rows.shape[0] != len(targets):
        raise ValueError(f"logits rows {rows.shape} do not match {len(targets)} targets")
    n_vocab = rows.shape[1]
    if len(targets) and (targets.min() < 0 or targets.max() >= n_vocab):
        raise ValueError(f"a target token is outside the vocabulary of {n_vocab}")
    out = np.empty(len(targets), np.float64)
    block = max(1, (4 << 20) // max(1, n_vocab))
    for s in range(0, len(targets), block):
        r = np.asarray(rows[s : s + block], dtype=np.float32)
        mx = r.max(axis=1)
        sum_exp = np.exp(r - mx[:, None]).sum(axis=1, dtype=np.float64)
        picked = r[np.arange(len(r)), targets[s : s + block]]
        out[s : s + block] = np.log(sum_exp) - (picked.astype(np.float64) - mx.astype(np.float64))
    return out


def perplexity(ctx: Context, text: str, *, n_chunks: int | None = None,
               on_chunk: Callable[[int, float], None] | None = None) -> PerplexityResult:
    """Compute perplexity of ``text`` with chunks of ``ctx.n_ctx`` tokens.

    Args:
        ctx: a context; its n_ctx is the chunk size.
        text: the text to score.
        n_chunks: at most this many chunks (default: all that fit).
        on_chunk: called as ``on_chunk(chunk_index, running_ppl)`` after each chunk.

    Raises:
        ValueError: the text has fewer than 2 * n_ctx tokens.
    """
    tok = ctx.model.tokenizer
    n_ctx = ctx.n_ctx
    bos = tok.bos_id if tok.add_bos else None
    first = n_ctx // 2
    nll_sum = nll2_sum = 0.0
    count = 0
    running = []
    for i, chunk in enumerate(chunks(tok.encode(text, add_special=True), n_ctx, bos, n_chunks)):
        logits = ctx.eval_logits(chunk, first)  # (n_ctx - first, n_vocab), rows for positions first..n_ctx-1
        # position j predicts token j + 1
        nll = token_nll(logits[:-1], np.asarray(chunk[first + 1 :]))
        nll_sum += float(nll.sum())
        nll2_sum += float((nll * nll).sum())
        count += len(nll)
        ppl = math.exp(nll_sum / count)
        running.append(ppl)
        if on_chunk is not None:
            on_chunk(i, ppl)
    mean = nll_sum / count
    var = nll2_sum / count - mean * mean
    stderr = math.sqrt(max(var, 0.0) / max(count - 1, 1)) * running[-1]
    return PerplexityResult(ppl=running[-1], stderr=stderr, running=running, n_tokens=count)
