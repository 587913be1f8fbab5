"""Fireside's compiled kernels (Cython + C): dequantization, quantized dot products and the
transformer forward pass. Knows nothing of the ``engine`` package."""
