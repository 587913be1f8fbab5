"""llama.cpp as the test oracle: every position's logits of a token sequence, through llama-cpp-python's
C API (the low-level path ``engine/bench_llama_cpp.py`` uses; its high-level ``Llama`` class is not used).
"""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

from engine.bench_llama_cpp import LlamaCppBench, LlamaCppError


class LlamaCppLogits(LlamaCppBench):
    """llama.cpp on one GGUF file (llama-bench's context settings: flash attention auto, n_ubatch =
    n_batch), returning logits.

    Raises:
        LlamaCppError: not installed or the model could not be loaded.
    """

    def logits(self, tokens: list[int], first: int = 0) -> np.ndarray:
        """float32 (len(tokens) - first, n_vocab): logits of positions ``first..``, the sequence evaluated from
        an empty cache in one batch (len(tokens) <= n_batch). Only those positions are marked as outputs
        (``llama_batch.logits``), so llama.cpp computes the output layer for them alone and
        ``llama_get_logits`` holds their rows in batch order (llama.cpp ``src/llama-context.cpp``, outputs)."""
        lib, n = self.lib, len(tokens)
        if not 0 <= first < n:
            raise ValueError(f"first {first} outside 0..{n - 1}")
        self._clear()
        batch = lib.llama_batch_init(n, 0, 1)
        try:
            for i, t in enumerate(tokens):
                batch.token[i] = t
                batch.pos[i] = i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = int(i >= first)
            batch.n_tokens = n
            self._decode(batch)
            ptr = lib.llama_get_logits(self.ctx)
            return np.ctypeslib.as_array(ptr, shape=(n - first, self.n_vocab)).copy()
        finally:
            lib.llama_batch_free(batch)

    def greedy(self, prompt: list[int], n: int) -> tuple[list[int], list[float]]:
        """n greedy tokens, decoded one at a time after the prompt, and llama.cpp's top-two logit margin
        at each step."""
        lib = self.lib
        last = self.logits(prompt, len(prompt) - 1)[0]
        out, margins = [], []
        for _ in range(n):
            top2 = np.partition(last, -2)[-2:]
            margins.append(float(top2[1] - top2[0]))
            out.append(int(last.argmax()))
            tok = (lib.llama_token * 1)(out[-1])
            batch = lib.llama_batch_get_one(tok, 1)
            self._decode(batch)
            last = np.ctypeslib.as_array(lib.llama_get_logits_ith(self.ctx, -1), shape=(self.n_vocab,)).copy()
        return out, margins


def llama_cpp_logits(path, n_ctx: int, n_threads: int = 2) -> LlamaCppLogits:
    """Open the oracle; a missing llama-cpp-python fails the test (the [test] extra installs it)."""
    try:
        return LlamaCppLogits(path, n_ctx=n_ctx, n_batch=n_ctx, n_threads=n_threads)
    except LlamaCppError as exc:
        pytest.fail(str(exc))
