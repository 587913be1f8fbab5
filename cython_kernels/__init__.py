"""Fireside's compiled kernels (Cython + C): dequantization, quantized dot products and the
transformer forward pass, on the kernels' own thread pool (fs_pool.h). Knows nothing of the ``engine``
package."""
