"""An inference context: a model plus its KV cache, and the tokens that cache currently holds.

Evaluating a new prompt reuses the longest common prefix with what the cache already holds, so a
second chat turn only processes the new tokens (llama.cpp server's ``n_past`` / prompt-cache reuse).
"""
from __future__ import annotations

import os
from typing import Callable

import numpy as np

from cython_kernels.forward import ForwardContext

from .errors import FiresideError, ModelOutputError, PromptError
from .model import Model

DEFAULT_N_CTX = 4096
DEFAULT_N_BATCH = 512


class ContextFullError(FiresideError, ValueError):
    """The tokens do not fit in the context window (n_ctx)."""


def default_n_threads() -> int:
    """Threads to use by default: the CPU cores this process may run on (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


class Context:
    """A model's run state: KV cache of ``n_ctx`` tokens and buffers for batches of ``n_batch``.

    Args:
        model: a loaded :class:`~engine.model.Model`.
        n_ctx: context length in tokens; default ``min(model's training context, 4096)``.
        n_batch: tokens per forward call during prefill.
        n_threads: kernel threads; default :func:`default_n_threads`.

    Attributes:
        tokens: the token ids whose keys and values are in the cache, in order.
    """

    def __init__(self, model: Model, n_ctx: int | None = None, n_batch: int = DEFAULT_N_BATCH,
                 n_threads: int | None = None):
        self.model = model
        self.n_ctx = int(n_ctx or min(model.hparams.n_ctx_train, DEFAULT_N_CTX))
        self.n_batch = max(1, min(int(n_batch), self.n_ctx))
        self.n_threads = int(n_threads or default_n_threads())
        self.n_vocab = model.hparams.n_vocab
        self._fwd = ForwardContext(model.compiled, self.n_ctx, self.n_batch, self.n_threads)
        self._logits = np.zeros((1, self.n_vocab), np.float32)  # (1, n_vocab): last token's logits
        self.tokens: list[int] = []

    def reset(self) -> None:
        """Forget the cached tokens (the cache rows are simply overwritten later)."""
        self.tokens = []

    def common_prefix(self, tokens: list[int]) -> int:
        """Length of the common prefix of ``tokens`` and the cached tokens."""
        n = 0
        for a, b in zip(self.tokens, tokens):
            if a != b:
                break
            n += 1
        return n

    def _eval(self, tokens: list[int], logits: np.ndarray | None, logits_from: int = -1) -> None:
        pos0 = len(self.tokens)
        if pos0 + len(tokens) > self.n_ctx:
            raise ContextFullError(f"context is full: {pos0} + {len(tokens)} tokens exceed n_ctx = {self.n_ctx}")
        bad = next((t for t in tokens if not 0 <= t < self.n_vocab), None)
        if bad is not None:
            raise PromptError(f"token id {bad} is outside the vocabulary (0..{self.n_vocab - 1})")
        self._fwd.eval(np.asarray(tokens, np.int32), pos0, logits, logits_from)
        self.tokens.extend(tokens)
        if logits is not None:
            # NaN propagates through max and min, and inf shows in one of them: two fast reductions.
            lo, hi = float(np.min(logits)), float(np.max(logits))
            if not (np.isfinite(lo) and np.isfinite(hi)):
                del self.tokens[pos0:]  # those cache rows hold garbage too
                raise ModelOutputError(f"the model produced NaN/inf logits at token {pos0 + len(tokens) - 1}: "
                                       f"the file is probably damaged")

    def prefill(self, tokens: list[int], progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, int]:
        """Bring the cache to exactly ``tokens`` and return the last token's logits.

        Args:
            tokens: the full prompt, ids.
            progress: called as ``progress(done, total)`` after each batch (tokens to process).

        Returns:
            (logits float32 (n_vocab,) for the last token, number of prompt tokens reused from the cache).

        Raises:
            ContextFullError: the prompt is longer than n_ctx.
            PromptError: empty prompt, or a token id outside the vocabulary.
            ModelOutputError: the model produced NaN or infinite logits (a damaged file).
        """
        if not tokens:
            raise PromptError("empty prompt: at least one token is needed")
        if len(tokens) > self.n_ctx:
            raise ContextFullError(f"prompt is {len(tokens)} tokens, longer than the context (n_ctx = {self.n_ctx})")
        # Keep at least the last token to evaluate: its logits are the output.
        n_keep = min(self.common_prefix(tokens), len(tokens) - 1)
        del self.tokens[n_keep:]
        todo = tokens[n_keep:]
        for start in range(0, len(todo), self.n_batch):
            batch = todo[start : start + self.n_batch]
            last = start + len(batch) == len(todo)
            self._eval(batch, self._logits if last else None)
            if progress is not None:
                progress(start + len(batch), len(todo))
        return self._logits[0], n_keep

    def decode(self, token: int) -> np.ndarray:
        """Append one token and return its logits, float32 (n_vocab,).

        Raises:
            ContextFullError: the cache already holds n_ctx tokens.
            PromptError: a token id outside the vocabulary.
            ModelOutputError: NaN or infinite logits.
        """
        self._eval([token], self._logits)
        return self._logits[0]

    def eval_logits(self, tokens: list[int], logits_from: int) -> np.ndarray:
        """Evaluate ``tokens`` from an empty cache and return logits of positions ``logits_from..``.

        Used by perplexity. Runs in batches of n_batch.

        Returns:
            float32 (len(tokens) - logits_from, n_vocab).
        """
        self.reset()
        out = np.zeros((len(tokens) - logits_from, self.n_vocab), np.float32)
        for start in range(0, len(tokens), self.n_batch):
            batch = tokens[start : start + self.n_batch]
            end = start + len(batch)
            if end <= logits_from:
                self._eval(batch, None)
                continue
            first = max(logits_from, start)
            self._eval(batch, out[first - logits_from : end - logits_from], first - start)
        return out
