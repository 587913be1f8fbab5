"""The C kernels' debug build checks each call's preconditions and stops with a clear message.

The kernels' C files are compiled here with ``-DFS_DEBUG`` (what ``FIRESIDE_DEBUG=1 pip install -e .``
builds) into a shared library under ``.cache/debug-kernels``, and called through ctypes in child
processes: a call that breaks a precondition (a RoPE width past the head, a weight whose rows do not
hold ``n_in`` elements, a token id past the embedding) aborts with ``precondition failed`` instead of
writing out of bounds; the same calls with valid arguments run.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap

import pytest

from conftest import ROOT

SOURCES = ["fs_traits", "fs_quants", "fs_vecdot", "fs_float", "fs_q32", "fs_kquants", "fs_iq4", "fs_iq2", "fs_iq3",
           "fs_iq1", "fs_ternary", "fs_mxfp4", "fs_pool", "fs_ops", "fs_moe"]


@pytest.fixture(scope="module")
def debug_lib() -> str:
    """Path of the debug build of the kernels (rebuilt when a C file, a header or the command changes)."""
    kdir = ROOT / "cython_kernels"
    flags = ["-O0", "-g", "-std=gnu11", "-pthread", "-ffp-contract=off", "-DFS_DEBUG", "-fPIC", "-shared"]
    digest = hashlib.sha256(" ".join(flags + SOURCES).encode())
    for p in sorted([*kdir.glob("*.c"), *kdir.glob("*.h")]):
        digest.update(p.name.encode() + p.read_bytes())
    out = ROOT / ".cache" / "debug-kernels" / digest.hexdigest()[:16] / "libfs_debug.so"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = ["gcc", *flags, f"-I{kdir}", "-o", str(out), *(str(kdir / f"{n}.c") for n in SOURCES), "-lm"]
        subprocess.run(cmd, check=True, capture_output=True)
    return str(out)


PRELUDE = textwrap.dedent('''
    import ctypes, sys
    lib = ctypes.CDLL(sys.argv[1])
    class Rope(ctypes.Structure):
        _fields_ = [("n_rot", ctypes.c_int), ("neox", ctypes.c_int), ("base", ctypes.c_float),
                    ("freq_scale", ctypes.c_float), ("ext_factor", ctypes.c_float), ("attn_factor", ctypes.c_float),
                    ("corr_dims", ctypes.c_float * 2), ("freq_factors", ctypes.c_void_p)]
    class Weight(ctypes.Structure):
        _fields_ = [("data", ctypes.c_void_p), ("type", ctypes.c_int), ("n_in", ctypes.c_int64),
                    ("n_out", ctypes.c_int64), ("row_bytes", ctypes.c_size_t)]
    x = (ctypes.c_float * 256)()
    pos = (ctypes.c_int32 * 4)(0, 1, 2, 3)
    def rope(n_rot, head_dim=16):
        rp = Rope(n_rot, 0, 10000.0, 1.0, 0.0, 1.0, (ctypes.c_float * 2)(0, 0), None)
        lib.fs_rope(x, ctypes.c_int64(2), 2, head_dim, pos, ctypes.byref(rp))
    wbuf = (ctypes.c_uint8 * 4096)()
    def get_rows(token, row_bytes=128):  # F32 (type 0) rows of 32 elements
        w = Weight(ctypes.cast(wbuf, ctypes.c_void_p), 0, 32, 4, row_bytes)
        toks = (ctypes.c_int32 * 1)(token)
        return lib.fs_get_rows(ctypes.byref(w), toks, ctypes.c_int64(1), ctypes.c_float(1.0), x)
''')


def _call(lib: str, code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code), lib], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("good, bad", [
    ("rope(16)", "rope(32)"),        # n_rot past the head size
    ("rope(8)", "rope(7)"),          # odd n_rot
    ("get_rows(3)", "get_rows(4)"),  # token id past the rows
    ("get_rows(0)", "get_rows(0, row_bytes=100)"),  # rows that do not hold n_in F32 values
])
def test_debug_build_stops_on_a_broken_precondition(debug_lib, good, bad):
    ok = _call(debug_lib, good)
    assert ok.returncode == 0, ok.stderr
    r = _call(debug_lib, bad)
    assert r.returncode < 0 and -r.returncode == 6, (r.returncode, r.stderr)  # SIGABRT
    assert "fireside kernel precondition failed" in r.stderr


def test_release_build_compiles_the_checks_away():
    """The installed (release) kernels have no FS_ASSERT strings in them."""
    import cython_kernels.forward as fwd

    assert b"precondition failed" not in open(fwd.__file__, "rb").read()
