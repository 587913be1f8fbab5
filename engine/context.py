"""An inference context: a model plus its KV cache, and the tokens that cache currently holds.

Evaluating a new prompt reuses the longest common prefix with what the cache already holds, so a
second chat turn only processes the new tokens (llama.cpp server's ``n_past`` / prompt-cache reuse).

A context can hold several independent sequences (``n_seq``, the server's parallel slots), each with
``n_ctx`` cache rows of its own, and evaluate a batch that mixes them (:meth:`Context.eval_batch`):
continuous batching as llama.cpp's server does it, one forward pass for every slot's next token.
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np

from cython_kernels.forward import ForwardContext

from .defaults import DEFAULT_N_BATCH, DEFAULT_N_CTX
from .errors import FiresideError, ModelOutputError, PromptError
from .model import Model



class ContextFullError(FiresideError, ValueError):
    """The tokens do not fit in the context window (n_ctx)."""


def default_n_threads() -> int:
    """Threads to use by default: the CPU cores this process may run on (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _nonfinite(logits: np.ndarray) -> bool:
    """True if float32 ``logits`` hold a NaN or an infinity (NaN propagates through min and max, and an
    infinity shows in one of them: two fast reductions)."""
    lo, hi = float(np.min(logits)), float(np.max(logits))
    return not (np.isfinite(lo) and np.isfinite(hi))


def _damaged(pos: int) -> ModelOutputError:
    """The error for NaN/inf logits at token position ``pos``."""
    return ModelOutputError(f"the model produced NaN/inf logits at token {pos}: the file is probably damaged")


class Context:
    """A model's run state: KV cache of ``n_ctx`` tokens per sequence and buffers for batches of ``n_batch``.

    Args:
        model: a loaded :class:`~engine.model.Model`.
        n_ctx: context length in tokens, per sequence; default ``min(model's training context, 4096)``.
        n_batch: tokens per forward call during prefill.
        n_threads: kernel threads; default :func:`default_n_threads`.
        n_seq: independent sequences (parallel slots), each with its own ``n_ctx`` cache rows; the
            methods take ``seq`` (default 0). The cache memory is taken from the OS as rows are first
            written, so unused sequences cost address space, not RAM.

    Attributes:
        seq_tokens: per sequence, the token ids whose keys and values are in its cache, in order.
        tokens: ``seq_tokens[0]``.
    """

    def __init__(self, model: Model, n_ctx: int | None = None, n_batch: int = DEFAULT_N_BATCH,
                 n_threads: int | None = None, n_seq: int = 1):
        self.model = model
        self.n_ctx = int(n_ctx or min(model.hparams.n_ctx_train, DEFAULT_N_CTX))
        self.n_batch = max(1, min(int(n_batch), self.n_ctx))
        self.n_threads = int(n_threads or default_n_threads())
        self.n_seq = int(n_seq)
        if self.n_seq < 1:
            raise ValueError(f"n_seq must be at least 1, not {n_seq}")
        self.n_vocab = model.hparams.n_vocab
        # A batch of eval_batch holds at most one prefill chunk's n_batch tokens plus one token of each
        # other sequence.
        self.max_batch = self.n_batch + self.n_seq - 1
        self._fwd = ForwardContext(model.compiled, self.n_ctx, self.max_batch, self.n_threads, self.n_seq)
        self._logits = np.zeros((self.n_seq, self.n_vocab), np.float32)  # per sequence: its last token's logits
        self.seq_tokens: list[list[int]] = [[] for _ in range(self.n_seq)]

    @property
    def tokens(self) -> list[int]:
        """Sequence 0's cached token ids (the list itself)."""
        return self.seq_tokens[0]

    @tokens.setter
    def tokens(self, value: list[int]) -> None:
        self.seq_tokens[0] = value

    def reset(self, seq: int = 0) -> None:
        """Forget a sequence's cached tokens (the cache rows are simply overwritten later)."""
        self.seq_tokens[seq] = []

    def common_prefix(self, tokens: Sequence[int], seq: int = 0) -> int:
        """Length of the common prefix of ``tokens`` and the sequence's cached tokens."""
        n = 0
        for a, b in zip(self.seq_tokens[seq], tokens):
            if a != b:
                break
            n += 1
        return n

    def check_prompt(self, tokens: Sequence[int]) -> None:
        """Raise :class:`PromptError` for an empty prompt, :class:`ContextFullError` for one longer than n_ctx."""
        if not tokens:
            raise PromptError("empty prompt: at least one token is needed")
        if len(tokens) > self.n_ctx:
            raise ContextFullError(f"prompt is {len(tokens)} tokens, longer than the context (n_ctx = {self.n_ctx})")

    def _check_room(self, pos0: int, n: int) -> None:
        """Raise :class:`ContextFullError` unless n more tokens fit after a sequence's pos0 cached ones."""
        if pos0 + n > self.n_ctx:
            raise ContextFullError(f"context is full: {pos0} + {n} tokens exceed n_ctx = {self.n_ctx}")

    def check_tokens(self, tokens: Sequence[int]) -> None:
        """Raise :class:`PromptError` if a token id lies outside the vocabulary."""
        bad = next((t for t in tokens if not 0 <= t < self.n_vocab), None)
        if bad is not None:
            raise PromptError(f"token id {bad} is outside the vocabulary (0..{self.n_vocab - 1})")

    def _eval(self, tokens: list[int], logits: np.ndarray | None, logits_from: int = -1, seq: int = 0) -> None:
        cached = self.seq_tokens[seq]
        pos0 = len(cached)
        self._check_room(pos0, len(tokens))
        self.check_tokens(tokens)
        self._fwd.eval(np.asarray(tokens, np.int32), pos0, logits, logits_from, seq)
        cached.extend(tokens)
        if logits is not None and _nonfinite(logits):
            del cached[pos0:]  # those cache rows hold garbage too
            raise _damaged(pos0 + len(tokens) - 1)

    def eval_batch(self, parts: Sequence[tuple[int, Sequence[int], bool]]) -> list[np.ndarray | ModelOutputError | None]:
        """Append tokens to several sequences in one forward pass (continuous batching).

        Each part is computed as an evaluation of its tokens alone would be (``ForwardContext.eval_batch``).

        Args:
            parts: ``(seq, tokens, want_logits)`` per sequence, each sequence at most once, all the tokens
                together at most ``max_batch`` (n_batch + n_seq - 1).

        Returns:
            Per part: float32 (n_vocab,) logits of its last token (a view, valid until the next
            evaluation on this context) when wanted, else None; or a :class:`ModelOutputError` for a part whose logits
            came out NaN/inf (its tokens are not kept; the other parts are unaffected).

        Raises:
            ContextFullError: a part does not fit in its sequence's n_ctx (nothing is evaluated).
            PromptError: a token id outside the vocabulary.
            ValueError: a repeated sequence, an empty part or too many tokens.
        """
        flat: list[int] = []
        segs = []
        rows = 0
        for seq, toks, want in parts:
            pos0 = len(self.seq_tokens[seq])
            self._check_room(pos0, len(toks))
            self.check_tokens(toks)
            segs.append((seq, pos0, len(flat), len(toks), len(toks) - 1 if want else -1))
            flat.extend(toks)
            rows += bool(want)
        if len(flat) > self.max_batch:
            raise ValueError(f"a batch of {len(flat)} tokens; at most {self.max_batch}")
        logits = self._logits[:rows] if rows else None
        self._fwd.eval_batch(np.asarray(flat, np.int32), segs, logits)
        out: list[np.ndarray | ModelOutputError | None] = []
        r = 0
        for (seq, toks, want), (_, pos0, _, _, _) in zip(parts, segs):
            self.seq_tokens[seq].extend(toks)
            if not want:
                out.append(None)
                continue
            row = self._logits[r]
            r += 1
            if _nonfinite(row):
                del self.seq_tokens[seq][pos0:]
                out.append(_damaged(pos0 + len(toks) - 1))
            else:
                out.append(row)
        return out

    def prefill(self, tokens: list[int], progress: Callable[[int, int], None] | None = None,
                seq: int = 0) -> tuple[np.ndarray, int]:
        """Bring a sequence's cache to exactly ``tokens`` and return the last token's logits.

        Args:
            tokens: the full prompt, ids.
            progress: called as ``progress(done, total)`` after each batch (tokens to process).
            seq: the sequence.

        Returns:
            (logits float32 (n_vocab,) for the last token, number of prompt tokens reused from the cache).

        Raises:
            ContextFullError: the prompt is longer than n_ctx.
            PromptError: empty prompt, or a token id outside the vocabulary.
            ModelOutputError: the model produced NaN or infinite logits (a damaged file).
        """
        self.check_prompt(tokens)
        n_keep = self.keep_prefix(tokens, seq)
        todo = tokens[n_keep:]
        out = self._logits[seq : seq + 1]
        for start in range(0, len(todo), self.n_batch):
            batch = todo[start : start + self.n_batch]
            last = start + len(batch) == len(todo)
            self._eval(batch, out if last else None, seq=seq)
            if progress is not None:
                progress(start + len(batch), len(todo))
        return out[0], n_keep

    def keep_prefix(self, tokens: Sequence[int], seq: int = 0) -> int:
        """Drop the sequence's cached tokens after its common prefix with ``tokens`` (keeping at least the
        last prompt token to evaluate: its logits are the output) and return how many are kept."""
        n_keep = min(self.common_prefix(tokens, seq), len(tokens) - 1)
        del self.seq_tokens[seq][n_keep:]
        return n_keep

    def share_prefix(self, tokens: Sequence[int], seq: int = 0) -> int:
        """Extend a sequence's cache with what another sequence already holds of ``tokens``.

        Call after :meth:`keep_prefix` (the sequence's cache is then a prefix of ``tokens``). If another
        sequence's cached tokens share a longer prefix with ``tokens`` (e.g. the same system prompt in
        two server slots), its cache rows beyond this sequence's are copied over (a memory copy of
        ``2 * n_layer * n_head_kv * head_dim * 2`` bytes per token, against a forward pass per token to
        compute them), keeping at least the last prompt token to evaluate, as keep_prefix does.

        Returns:
            Tokens of ``tokens`` the sequence's cache now holds (at least what it held).
        """
        own = len(self.seq_tokens[seq])
        best, src = own, None
        for s in range(self.n_seq):
            if s != seq:
                n = min(self.common_prefix(tokens, s), len(tokens) - 1)
                if n > best:
                    best, src = n, s
        if src is None:
            return own
        self._fwd.copy_rows(src, seq, own, best)
        self.seq_tokens[seq].extend(tokens[own:best])
        return best

    def shift(self, n_keep: int, n_discard: int, seq: int = 0) -> None:
        """Context shift: forget cached tokens ``n_keep .. n_keep + n_discard - 1`` of a sequence and move
        the later ones down (their keys re-rotated to the new positions), making room for more tokens
        (llama-server's ``--context-shift``; ``ForwardContext.shift``).

        Raises:
            ValueError: the range is not inside the cached tokens.
        """
        cached = self.seq_tokens[seq]
        self._fwd.shift(seq, n_keep, n_discard, len(cached))
        del cached[n_keep : n_keep + n_discard]

    def decode(self, token: int, seq: int = 0) -> np.ndarray:
        """Append one token to a sequence and return its logits, float32 (n_vocab,).

        Raises:
            ContextFullError: the cache already holds n_ctx tokens.
            PromptError: a token id outside the vocabulary.
            ModelOutputError: NaN or infinite logits.
        """
        out = self._logits[seq : seq + 1]
        self._eval([token], out, seq=seq)
        return out[0]

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
