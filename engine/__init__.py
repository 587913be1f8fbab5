"""Fireside's engine: GGUF loading, tokenizer, KV cache, sampling and generation.

The per-token forward pass lives in the compiled ``cython_kernels`` package; this package only
orchestrates it between tokens. It never imports Qt.
"""

__version__ = "0.1.0"

import os as _os

# numpy's OpenBLAS keeps its own worker threads spinning after each BLAS call; the engine does no
# BLAS work per token (the kernels are ours), and spinning threads on a 2-core laptop take CPU from
# the forward pass (seen in perf during decode). Must be set before numpy is first imported; an
# explicit user setting wins.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
