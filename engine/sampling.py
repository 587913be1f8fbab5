"""Sampling: turn a logits vector into the next token id.

Composed small steps in llama.cpp's default order (``common/sampling.cpp``): penalties, top_k,
top_p, min_p, temperature, then a draw from the softmax with the sampler's own seeded RNG.
Temperature 0 (or below) means greedy argmax. Each step masks logits with -inf.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np


@dataclass
class SamplerParams:
    """Sampling settings (llama.cpp's names and defaults).

    Attributes:
        temperature: divides logits; <= 0 selects the argmax.
        top_k: keep the k most likely tokens (0 = off).
        top_p: keep the smallest set whose probability reaches p (1.0 = off); Holtzman et al. 2019.
        min_p: drop tokens whose probability is below min_p times the top one (0 = off).
        repeat_penalty: divide positive / multiply negative logits of recently seen tokens (1.0 = off).
        repeat_last_n: how many recent tokens the penalties look at.
        presence_penalty, frequency_penalty: OpenAI's additive penalties (0 = off).
        seed: RNG seed; None draws one from the OS.
    """

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.top_k < 0:
            raise ValueError("top_k must be >= 0")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError("top_p must be in (0, 1]")
        if not 0.0 <= self.min_p <= 1.0:
            raise ValueError("min_p must be in [0, 1]")
        if self.repeat_penalty <= 0:
            raise ValueError("repeat_penalty must be > 0")


def apply_penalties(logits: np.ndarray, history: list[int], params: SamplerParams) -> None:
    """Penalize recent tokens in place (llama.cpp ``llama_sampler_penalties_apply``).

    Args:
        logits: float32 (n_vocab,), modified in place.
        history: token ids so far (prompt and generated); only the last ``repeat_last_n`` count.
    """
    if params.repeat_last_n == 0 or not history:
        return
    if params.repeat_penalty == 1.0 and params.presence_penalty == 0.0 and params.frequency_penalty == 0.0:
        return
    recent = history[-params.repeat_last_n:] if params.repeat_last_n > 0 else history
    counts = Counter(recent)
    ids = np.fromiter(counts.keys(), np.int64, len(counts))
    freq = np.fromiter(counts.values(), np.float32, len(counts))
    vals = logits[ids]
    vals = np.where(vals > 0, vals / params.repeat_penalty, vals * params.repeat_penalty)
    vals -= freq * params.frequency_penalty + params.presence_penalty
    logits[ids] = vals


def mask_top_k(logits: np.ndarray, k: int) -> None:
    """Keep the k largest logits, set the rest to -inf (in place). k <= 0 or >= n_vocab: no-op."""
    if 0 < k < logits.size:
        kth = np.partition(logits, -k)[-k]
        logits[logits < kth] = -np.inf


def _probs(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - np.max(logits)
    p = np.exp(z)
    return p / p.sum()


def mask_top_p(logits: np.ndarray, p: float) -> None:
    """Nucleus filter: keep the most likely tokens whose cumulative probability first reaches p."""
    if p >= 1.0:
        return
    probs = _probs(logits)
    order = np.argsort(-probs, kind="stable")
    cum = np.cumsum(probs[order])
    n_keep = int(np.searchsorted(cum, p) + 1)
    logits[order[n_keep:]] = -np.inf


def mask_min_p(logits: np.ndarray, min_p: float) -> None:
    """Drop tokens whose probability is below ``min_p`` times the most likely token's."""
    if min_p <= 0.0:
        return
    # p_i / p_max = exp(l_i - l_max) < min_p  <=>  l_i < l_max + log(min_p)
    logits[logits < np.max(logits) + np.log(min_p)] = -np.inf


class Sampler:
    """Chooses next tokens; owns a seeded RNG so the same seed gives the same output.

    Args:
        params: :class:`SamplerParams`.
    """

    def __init__(self, params: SamplerParams | None = None):
        self.params = params or SamplerParams()
        self.rng = np.random.default_rng(self.params.seed)

    @property
    def greedy(self) -> bool:
        """True when sampling is argmax (temperature <= 0)."""
        return self.params.temperature <= 0.0

    def sample(self, logits: np.ndarray, history: list[int] | None = None) -> int:
        """Pick a token id.

        Args:
            logits: float32 (n_vocab,); not modified.
            history: earlier token ids, for the penalties.

        Returns:
            The chosen token id.
        """
        p = self.params
        logits = np.array(logits, dtype=np.float32, copy=True)
        apply_penalties(logits, history or [], p)
        if self.greedy:
            return int(np.argmax(logits))
        mask_top_k(logits, p.top_k)
        mask_top_p(logits, p.top_p)
        mask_min_p(logits, p.min_p)
        probs = _probs(logits / p.temperature)
        return int(self.rng.choice(probs.size, p=probs))
