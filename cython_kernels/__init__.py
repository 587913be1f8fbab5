"""Fireside's compiled kernels (Cython + C): dequantization, quantized dot products and the
transformer forward pass. Knows nothing of the ``engine`` package."""

import os

# OpenMP worker threads spin-wait at barriers before sleeping. GNU libgomp's default spin (300,000
# iterations) makes every barrier cost a whole scheduler time slice when another program holds a
# core: on a 2-core laptop with one busy core, decode fell from ~130 to ~1 token/s. A short spin
# keeps barriers cheap when the machine is idle and degrades gently under load. Set before the
# extensions (and libgomp) are loaded; an explicit user setting wins.
os.environ.setdefault("GOMP_SPINCOUNT", "200")
