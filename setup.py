"""Build the compiled kernels (Cython + small C files).

Flags are chosen per platform so the build never depends on ``-march=native`` being right for the
machine that runs it: the C kernels carry their own per-function CPU dispatch (see
``cython_kernels/fs_common.h``), so one binary runs on any x86-64 and uses AVX2/FMA where present, and
on any arm64 and uses the NEON dot-product kernels where the CPU has the extension (those functions
carry their own target attribute, so no -march flag is needed).
"""
import os
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup


def _compile_args():
    # Threads come from the kernels' own pool (cython_kernels/fs_pool.c: pthreads, or Win32 threads and
    # WaitOnAddress), not OpenMP, so Apple clang and MSVC builds use every core too.
    if sys.platform == "win32":
        # C11 atomics for the team barrier (fs_pool.h). Untested here: CI builds and runs on Linux only.
        return ["/O2", "/std:c11", "/experimental:c11atomics"], []
    # -ffp-contract=off: keep float rounding identical across the dispatch variants, so results
    # do not depend on whether the CPU has FMA.
    if sys.platform == "darwin":
        return ["-O3", "-std=c11", "-ffp-contract=off"], []
    return ["-O3", "-std=gnu11", "-pthread", "-ffp-contract=off"], ["-pthread"]


cflags, ldflags = _compile_args()
macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
if os.environ.get("FIRESIDE_DEBUG") == "1":  # kernel preconditions checked once per call (FS_ASSERT)
    macros.append(("FS_DEBUG", "1"))
common = dict(
    include_dirs=["cython_kernels", numpy.get_include()],
    extra_compile_args=cflags,
    extra_link_args=ldflags,
    define_macros=macros,
)

# The traits table, its dispatch, one family file per group of GGML types, and the forward-pass ops.
KERNEL_C = [
    f"cython_kernels/{name}.c"
    for name in ("fs_traits", "fs_quants", "fs_vecdot", "fs_float", "fs_q32", "fs_kquants", "fs_iq4", "fs_iq2", "fs_iq3",
                 "fs_iq1", "fs_ternary", "fs_mxfp4", "fs_pool", "fs_ops", "fs_moe")
]
extensions = [
    Extension(f"cython_kernels.{name}", [f"cython_kernels/{name}.pyx", *KERNEL_C], **common)
    for name in ("quants", "vecdot", "forward")
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": 3, "boundscheck": False, "wraparound": False, "cdivision": True},
    )
)
