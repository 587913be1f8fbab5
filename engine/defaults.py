"""Engine defaults that modules without the compiled kernels need too (the memory estimate, the app's
settings): one place, so an estimate and the context it estimates cannot drift apart.

The values are llama.cpp's defaults (``common/common.h`` ``common_params``: ``n_batch`` 2048 there for the
logical batch, 512 for the physical ``n_ubatch``, which is what one forward call takes; ``n_ctx`` 4096).
"""

#: Context length in tokens when the user leaves it at 0 (capped by the model's ``n_ctx_train``).
DEFAULT_N_CTX = 4096
#: Tokens per forward call during prefill.
DEFAULT_N_BATCH = 512
