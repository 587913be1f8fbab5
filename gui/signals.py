"""``emit(signal, *args)``: emit a Qt signal from Python, working around a reference-count bug.

PySide6 6.12.0's ``SignalInstance.emit`` returns ``True`` without adding a reference, so every call
drops one reference to ``True``; after as many emits as ``True`` had references (a few thousand: one
long reply streams that many tokens) CPython aborts with "bool_dealloc: deallocating True or False".
At import we measure whether the installed PySide6 has the bug, and if so :func:`emit` gives the
returned object its missing reference back. With a fixed PySide6 it is a plain ``signal.emit``.
"""
from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject, Signal

_PROBE_EMITS = 64


class _Probe(QObject):
    ping = Signal()


def _emit_drops_a_reference() -> bool:
    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(_PROBE_EMITS):
        probe.ping.emit()
    lost = before - sys.getrefcount(True)
    # Other threads may move True's count a little meanwhile; the bug moves it by one per emit.
    return lost >= _PROBE_EMITS * 3 // 4


EMIT_DROPS_REFERENCE = _emit_drops_a_reference()
if EMIT_DROPS_REFERENCE:  # give back what the probe itself took
    for _ in range(_PROBE_EMITS):
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(True))


def emit(signal, *args):
    """``signal.emit(*args)``, keeping reference counts right on PySide6 builds that drop one.

    Safe from any thread (Qt queues the call to receivers living in other threads).
    """
    result = signal.emit(*args)
    if EMIT_DROPS_REFERENCE and result is not None:
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(result))
    return result
