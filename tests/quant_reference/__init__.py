"""numpy references of the GGML weight types, one class per type (as gguf-py's gguf/quants.py has), grouped
in modules by family as the C kernels are (cython_kernels/fs_*.c):

- ``common``: float32 arithmetic as ggml does it, the activation formats Q8_0 / Q8_1 / Q8_K, the base class;
- ``floats``: F32, F16, BF16;  ``q32``: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0;
- ``kquants``: Q2_K .. Q6_K;  ``iq4``: IQ4_NL, IQ4_XS;  ``iq2``: IQ2_XXS, IQ2_XS, IQ2_S;
  ``iq3``: IQ3_XXS, IQ3_S;  ``iq1``: IQ1_S, IQ1_M;  ``ternary``: TQ1_0, TQ2_0;  ``mxfp4``: MXFP4.

Each class's ``dot(impl, row, act, n)`` is the float32 that llama.cpp's ggml_vec_dot gives, bit for bit,
for ``impl`` "portable" (the *_generic code, ggml-cpu/quants.c) or "avx2" (ggml-cpu/arch/x86/quants.c);
the types llama.cpp repacks on x86 (Q4_0, Q4_K, IQ4_NL, MXFP4) also have ``gemv`` (and ``gemm``) for its
repacked products.
"""
from __future__ import annotations

from gguf import GGMLQuantizationType as T

from .common import Reference
from .floats import BF16, F16, F32
from .iq1 import IQ1_M, IQ1_S
from .iq2 import IQ2_S, IQ2_XS, IQ2_XXS
from .iq3 import IQ3_S, IQ3_XXS
from .iq4 import IQ4_NL, IQ4_XS
from .kquants import Q2_K, Q3_K, Q4_K, Q5_K, Q6_K
from .mxfp4 import MXFP4
from .q32 import Q4_0, Q4_1, Q5_0, Q5_1, Q8_0
from .ternary import TQ1_0, TQ2_0

#: The types added with the traits table (tests/test_quant_families.py), type -> reference class
NEWER: dict[T, type[Reference]] = {
    cls.wtype: cls
    for cls in (Q2_K, Q3_K, IQ4_NL, IQ4_XS, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M, TQ1_0, TQ2_0, MXFP4)
}

#: Every weight type Fireside supports, type -> reference class
REFERENCES: dict[T, type[Reference]] = {
    **{cls.wtype: cls for cls in (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K)},
    **NEWER,
}
