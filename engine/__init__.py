"""Fireside's engine: GGUF loading, tokenizer, KV cache, sampling and generation.

The per-token forward pass lives in the compiled ``cython_kernels`` package; this package only
orchestrates it between tokens. It never imports Qt.
"""

__version__ = "0.1.0"
