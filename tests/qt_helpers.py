"""Helpers of the Qt tests (window, controller and remote-engine tests): a signal recorder that lives in the
GUI thread, and the data directory a test window starts on. Import after ``QT_QPA_PLATFORM`` is set."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject

from conftest import MODELS_DIR


class Recorder(QObject):
    """Records a signal's calls in the GUI thread, in order with the window's own slots (a QObject slot:
    queued from the engine's threads; a plain function connected to a worker signal would run in the
    worker's thread instead). ``on_call(calls)`` runs after each call; :meth:`stop` disconnects."""

    def __init__(self, signal, on_call=None):
        super().__init__()
        self.calls: list[tuple] = []
        self._on_call = on_call
        self._signal = signal
        signal.connect(self.record)

    def record(self, *args) -> None:
        self.calls.append(args)
        if self._on_call is not None:
            self._on_call(self.calls)

    def stop(self) -> None:
        self._signal.disconnect(self.record)


def window_data_dir(tmp_path: Path, monkeypatch, settings) -> Path:
    """A fresh data dir (``FIRESIDE_DATA_DIR``) under ``tmp_path`` holding ``settings`` (an
    :class:`gui.settings.AppSettings`), with the models folder set to the test models'."""
    from gui.settings import Settings

    d = tmp_path / "data"
    monkeypatch.setenv("FIRESIDE_DATA_DIR", str(d))
    monkeypatch.setenv("FIRESIDE_MODELS", str(MODELS_DIR))
    Settings().save(settings)
    return d
