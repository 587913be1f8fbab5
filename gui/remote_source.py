"""The window's remote model source: which remote model is being checked, which one is in use, and the
File > Remote servers dialog.

:class:`RemoteModelSource` owns the :class:`~gui.remote_settings.RemoteServersDialog` (made on demand),
the :class:`~gui.remote_engine.RemoteEngine` checking the model last chosen and the one whose model the
chat uses. It holds no window state: the window shows its signals in the load strip, banner and status
bar and switches the chat's engine (``ChatController.set_engine``).
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from .remote_engine import RemoteEngine, RemoteModel
from .remote_settings import RemoteEndpoint, RemoteEndpoints, RemoteServersDialog
from .signals import emit


class RemoteModelSource(QObject):
    """The remote engines of one window and its Remote servers dialog.

    Args:
        endpoints: the saved servers the dialog lists.
        parent: the window (the dialog's parent too).

    Signals: ``model_chosen(RemoteEndpoint, model_id)`` ("Use model" in the dialog, which hides);
    ``progress(stage, step, n_steps)`` of the check under way; ``loaded(RemoteModel)``: the checked
    model is the one in use now (:attr:`engine`; the engine used before is shut down after the signal);
    ``failed(model_id, message)``: the check failed, its engine is shut down and the one in use stays.
    Events of a check dropped meanwhile (:meth:`drop_checking`, a newer :meth:`use`) are ignored.

    Attributes: ``engine`` the engine of the remote model in use (None: none); ``checking`` the engine
    checking a model (None: none); ``dialog`` the dialog once opened; ``preferred`` True from
    :meth:`use` until :meth:`prefer_local` (the chat should take the remote model, not a local load
    ending meanwhile).
    """

    model_chosen = Signal(object, str)
    progress = Signal(str, int, int)
    loaded = Signal(object)
    failed = Signal(str, str)

    def __init__(self, endpoints: RemoteEndpoints, parent: QWidget):
        super().__init__(parent)
        self._endpoints = endpoints
        self._window = parent
        self.engine: RemoteEngine | None = None
        self.checking: RemoteEngine | None = None
        self._checking_id = ""  # the model id ``checking`` was asked for
        self.dialog: RemoteServersDialog | None = None
        self.preferred = False
        self._closed = False

    def open_dialog(self) -> None:
        """Show File > Remote servers (made on first use, with the window as parent) and raise it."""
        if self.dialog is None:
            dlg = RemoteServersDialog(self._endpoints, self._window)
            dlg.model_chosen.connect(self.model_chosen)
            dlg.model_chosen.connect(lambda _e, _m: dlg.hide())
            self.dialog = dlg
        self.dialog.show()
        self.dialog.raise_()

    def use(self, endpoint: RemoteEndpoint, model_id: str) -> str:
        """Start checking ``model_id`` on ``endpoint`` (a check under way is dropped first) and prefer it.

        Returns:
            the model's identity ``"<API root>#<model>"`` (:attr:`RemoteModel.path`), for the load strip.
        """
        self.drop_checking()
        self.preferred = True
        engine = RemoteEngine(endpoint.url, endpoint.api_key, endpoint.name)
        self._connect(engine)
        self.checking, self._checking_id = engine, model_id
        engine.load(model_id)
        return RemoteModel(engine.base_url, model_id).path

    def prefer_local(self) -> bool:
        """A local model was opened: drop a check under way and stop preferring a remote model.

        Returns:
            whether a check was dropped.
        """
        dropped = self.drop_checking()
        self.preferred = False
        return dropped

    def drop_checking(self) -> bool:
        """Forget the model being checked (its late events are ignored) and shut its engine down.

        Returns:
            whether a check was under way.
        """
        engine, self.checking = self.checking, None
        if engine is None:
            return False
        self._disconnect(engine)
        engine.shutdown()
        return True

    def release(self) -> RemoteEngine | None:
        """Stop using the remote engine in use and hand it back (None: none), for the caller to shut down
        once the chat has switched away from it."""
        engine, self.engine = self.engine, None
        return engine

    def shutdown(self) -> None:
        """Close the dialog (stopping its check), drop a check under way and shut the engine in use down;
        later events are ignored. Safe to call twice."""
        self._closed = True
        if self.dialog is not None:
            self.dialog.reject()
        self.drop_checking()
        engine = self.release()
        if engine is not None:
            engine.shutdown()

    # The checking engine's signals -------------------------------------------------------------------

    def _connect(self, engine: RemoteEngine) -> None:
        engine.load_progress.connect(self._on_progress)
        engine.model_loaded.connect(self._on_loaded)
        engine.load_failed.connect(self._on_failed)

    def _disconnect(self, engine: RemoteEngine) -> None:
        engine.load_progress.disconnect(self._on_progress)
        engine.model_loaded.disconnect(self._on_loaded)
        engine.load_failed.disconnect(self._on_failed)

    def _current(self, model_id: str, base_url: str | None = None) -> RemoteEngine | None:
        """The engine checking ``model_id`` (at ``base_url``) now, or None (an event of a dropped one)."""
        engine = self.checking
        if self._closed or engine is None or model_id != self._checking_id:
            return None
        if base_url is not None and engine.base_url != base_url:
            return None
        return engine

    def _on_progress(self, stage: str, step: int, n_steps: int) -> None:
        if self.checking is not None and not self._closed:
            emit(self.progress, stage, step, n_steps)

    def _on_loaded(self, model: RemoteModel) -> None:
        engine = self._current(model.model, model.base_url)
        if engine is None or engine.model != model.model:
            return
        self._disconnect(engine)
        self.checking = None
        old, self.engine = self.engine, engine
        emit(self.loaded, model)
        if old is not None:
            old.shutdown()

    def _on_failed(self, model_id: str, message: str) -> None:
        if self._current(model_id) is None:
            return
        self.drop_checking()
        self.preferred = self.engine is not None
        emit(self.failed, model_id, message)
