"""Text generation: prefill the prompt, then sample and decode one token at a time.

Follows mlx-lm's ``generate_step`` shape: a generator of tokens, with prefill progress reported
through a callback and a stop flag checked between tokens (the GUI and the server use it).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol, Sequence

import numpy as np

from .context import Context
from .sampling import Sampler


class LogitsConstraint(Protocol):
    """Constrained decoding (a grammar or JSON schema): which tokens may come next.

    One object per generation, stateful. Before each token is sampled :meth:`mask` sets the logits of
    the tokens the constraint forbids to -inf; after the token is chosen :meth:`accept` advances the
    constraint's state. ``engine/constrain.py`` implements it with llguidance.
    """

    def mask(self, logits: np.ndarray) -> None:
        """Set forbidden tokens' entries of float32 ``logits`` (n_vocab,) to -inf, in place."""

    def accept(self, token: int) -> bool:
        """Advance past ``token``; return True when the constrained output is complete (stop now)."""


@dataclass(frozen=True)
class GeneratedToken:
    """One generated token and the text it completes (may be ``""`` while a UTF-8 character or a
    possible stop string is still pending).

    ``logprob`` (natural log, of the model's raw distribution before penalties and truncation) and
    ``top_logprobs`` (the k most likely ``(id, logprob)`` pairs, best first) are filled in only when
    :func:`generate` is called with ``logprobs=k``; ``id`` is -1 for a final flush of held-back text.
    ``reasoning``: the reasoning text this token completes, for replies split by a reply format
    (``engine/reasoning.py``; then ``text`` holds only the answer).
    """

    id: int
    text: str
    logprob: float | None = None
    top_logprobs: tuple[tuple[int, float], ...] = ()
    reasoning: str = ""


@dataclass
class GenerationStats:
    """Counts and timings of one generation.

    Attributes:
        n_prompt: prompt tokens; n_reused: of those, taken from the KV cache without processing.
        n_generated: tokens sampled (the stop token included).
        prefill_s, decode_s: wall time in seconds.
        finish_reason: ``"stop"`` (EOS/EOT or a stop string), ``"length"`` (max_tokens or context full),
            ``"cancelled"`` (the stop flag).
        context_full: the context window filled up before max_tokens.
        text: the generated text (the answer alone when a reply format split it); reasoning: the
            reasoning a reply format split off ("" otherwise).
    """

    n_prompt: int = 0
    n_reused: int = 0
    n_generated: int = 0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    finish_reason: str = ""
    context_full: bool = False
    text: str = ""
    reasoning: str = ""

    @property
    def prefill_tps(self) -> float:
        """Prompt tokens processed per second (reused tokens excluded)."""
        n = self.n_prompt - self.n_reused
        return n / self.prefill_s if self.prefill_s > 0 else 0.0

    @property
    def decode_tps(self) -> float:
        """Generated tokens per second, the first (sampled from the prefill's logits) excluded."""
        n = max(self.n_generated - 1, 0)
        return n / self.decode_s if self.decode_s > 0 else 0.0


@dataclass
class Generation:
    """An iterable generation; iterate for :class:`GeneratedToken`, then read :attr:`stats`."""

    _it: Iterator[GeneratedToken]
    stats: GenerationStats = field(default_factory=GenerationStats)

    def __iter__(self) -> Iterator[GeneratedToken]:
        return self._it

    def text(self) -> str:
        """Run to the end and return the whole generated text."""
        return "".join(t.text for t in self)


def _stop_cut(text: str, stops: Sequence[str]) -> tuple[int | None, int]:
    """Return (index of the first complete stop string or None, length of the text safe to emit)."""
    first = None
    for s in stops:
        i = text.find(s)
        if i >= 0 and (first is None or i < first):
            first = i
    if first is not None:
        return first, first
    # Hold back a tail that could still grow into a stop string.
    hold = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:k]):
                hold = max(hold, k)
                break
    return None, len(text) - hold


def _logprobs(logits: np.ndarray, token: int, k: int) -> tuple[float, tuple[tuple[int, float], ...]]:
    """Log-softmax of float32 ``logits`` (n_vocab,): the chosen token's value and the top ``k`` pairs."""
    x = logits.astype(np.float64)
    m = float(np.max(x))
    lse = m + float(np.log(np.sum(np.exp(x - m))))
    top: tuple[tuple[int, float], ...] = ()
    if k > 0:
        idx = np.argpartition(-x, min(k, x.size - 1))[:k]
        idx = idx[np.argsort(-x[idx], kind="stable")]
        top = tuple((int(i), float(x[i] - lse)) for i in idx)
    return float(x[token] - lse), top


class Continuation:
    """The token-by-token half of one generation: from logits to the next token, the text it completes,
    and when to stop. :func:`generate` drives one with a single sequence; the scheduler drives one per
    slot, with the logits of a batched forward pass.

    Args:
        tokenizer: the model's :class:`~engine.tokenizer.Tokenizer`.
        prompt_tokens: the prompt ids (the penalties' history starts with them).
        sampler, max_tokens, stop, logprobs, constraint: as :func:`generate`.
        n_ctx: the sequence's context length in tokens.
        context_shift: the caller makes room when the cache fills (it does not end the generation).
        stats: the :class:`GenerationStats` to update (n_generated, finish_reason, context_full, text).

    Once ``stats.finish_reason`` is set, :meth:`step` must not be called again.
    """

    def __init__(self, tokenizer, prompt_tokens: Sequence[int], *, sampler: Sampler, max_tokens: int,
                 stop: Sequence[str], logprobs: int | None, constraint: LogitsConstraint | None, n_ctx: int,
                 stats: GenerationStats, context_shift: bool = False):
        self._eog = tokenizer.eog_ids
        self._stops = [s for s in stop if s]
        self._sampler = sampler
        self._logprobs = logprobs
        self._constraint = constraint
        self._n_ctx = n_ctx
        self._shift = context_shift
        self._limit = max_tokens if max_tokens >= 0 else n_ctx
        self._history = list(prompt_tokens)
        self._decoder = tokenizer.stream_decoder()
        self._pending = ""  # decoded text not yet emitted (could start a stop string)
        self._emitted: list[str] = []
        self.stats = stats

    @property
    def text(self) -> str:
        """The text emitted so far."""
        return "".join(self._emitted)

    def _end(self, reason: str, out: list[GeneratedToken], flush: bool = True) -> tuple[list[GeneratedToken], None]:
        """Set the finish reason; with ``flush``, emit what was held back (as a token with id -1)."""
        self.stats.finish_reason = reason
        tail = self._pending + self._decoder.flush() if flush else ""
        self._pending = ""
        if tail:
            self._emitted.append(tail)
            out.append(GeneratedToken(-1, tail))
        self.stats.text = self.text
        return out, None

    def cancel(self) -> list[GeneratedToken]:
        """End with finish_reason "cancelled"; returns the held-back text (as a token with id -1), if any."""
        return self._end("cancelled", [])[0]

    def step(self, logits: np.ndarray, n_cached: int) -> tuple[list[GeneratedToken], int | None]:
        """Choose the next token from float32 ``logits`` (n_vocab,) of the last evaluated token.

        Args:
            logits: not modified.
            n_cached: tokens the sequence's cache holds now (the sampled token not counted).

        Returns:
            (tokens to emit, in order; the id to evaluate next, or None when the generation ended, then
            ``stats.finish_reason`` says why).
        """
        st = self.stats
        if st.n_generated >= self._limit:
            return self._end("length", [])
        if self._constraint is not None:
            masked = np.array(logits, np.float32, copy=True)
            self._constraint.mask(masked)
            token = self._sampler.sample(masked, self._history)
        else:
            token = self._sampler.sample(logits, self._history)
        lp, top = _logprobs(logits, token, self._logprobs) if self._logprobs is not None else (None, ())
        st.n_generated += 1
        self._history.append(token)
        complete = self._constraint is not None and self._constraint.accept(token)
        if token in self._eog:
            return self._end("stop", [], flush=False)
        self._pending += self._decoder.push(token)
        cut, safe = _stop_cut(self._pending, self._stops)
        if cut is not None:  # the text ends before the stop string
            self._emitted.append(self._pending[:cut])
            return self._end("stop", [GeneratedToken(token, self._pending[:cut], lp, top)], flush=False)
        if complete:  # the constrained output is whole: emit everything held back with this token, and stop
            text = self._pending + self._decoder.flush()
            self._emitted.append(text)
            return self._end("stop", [GeneratedToken(token, text, lp, top)], flush=False)
        text, self._pending = self._pending[:safe], self._pending[safe:]
        self._emitted.append(text)
        out = [GeneratedToken(token, text, lp, top)]
        if n_cached >= self._n_ctx and not self._shift:
            st.context_full = True
            return self._end("length", out)
        if st.n_generated >= self._limit:
            return self._end("length", out)
        return out, token


def generate(ctx: Context, prompt_tokens: list[int], *, sampler: Sampler, max_tokens: int = 256,
             stop: Sequence[str] = (), progress: Callable[[int, int], None] | None = None,
             should_stop: Callable[[], bool] | None = None, logprobs: int | None = None,
             constraint: LogitsConstraint | None = None) -> Generation:
    """Generate a continuation of ``prompt_tokens``.

    Args:
        ctx: the context (its cache is reused for the common prefix).
        prompt_tokens: prompt ids (BOS included if the model wants one).
        sampler: chooses tokens.
        max_tokens: most tokens to generate (< 0: until the context is full).
        stop: stop strings; the text stops before the first one and it is not emitted.
        progress: prefill progress callback ``(done, total)`` in tokens.
        should_stop: polled between tokens; returning True ends with finish_reason "cancelled".
        logprobs: when not None, attach each token's log-probability and the ``logprobs`` most likely
            alternatives (0 = only the chosen token's) to every :class:`GeneratedToken`.
        constraint: a :class:`LogitsConstraint` that masks the logits before each token is sampled
            (logprobs still report the model's raw distribution); when it reports completion the
            generation ends with finish_reason "stop".

    Returns:
        :class:`Generation`; the work happens while iterating it.

    Raises (while iterating):
        ContextFullError: the prompt alone does not fit in n_ctx.
        ModelFileChangedError: the model file changed on disk (checked before the prompt and each token).
        ModelOutputError: the model produced NaN or infinite logits.
        PromptError: an empty prompt or a token id outside the vocabulary.
    """
    stats = GenerationStats(n_prompt=len(prompt_tokens))

    def run() -> Iterator[GeneratedToken]:
        t0 = time.perf_counter()
        ctx.model.check_file()
        logits, stats.n_reused = ctx.prefill(prompt_tokens, progress)
        stats.prefill_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        cont = Continuation(ctx.model.tokenizer, prompt_tokens, sampler=sampler, max_tokens=max_tokens, stop=stop,
                            logprobs=logprobs, constraint=constraint, n_ctx=ctx.n_ctx, stats=stats)
        try:
            while True:
                if should_stop is not None and should_stop():
                    yield from cont.cancel()
                    break
                out, token = cont.step(logits, len(ctx.tokens))
                yield from out
                if token is None:
                    break
                ctx.model.check_file()  # a stat call, microseconds: stop before reading a rewritten file
                logits = ctx.decode(token)
        finally:
            stats.decode_s = time.perf_counter() - t1
            stats.text = cont.text

    return Generation(run(), stats)
