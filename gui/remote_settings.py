"""Remote servers (OpenAI-compatible endpoints) the user has saved, and the dialog that edits them.

They live in the app's QSettings store (:func:`gui.settings.make_qsettings`: the same file as the other
settings) in the group ``remote``, as a QSettings array of ``name``, ``url`` and ``api_key``. Like the
local server's key in :mod:`gui.settings`, keys are stored as plain text in that file.

The dialog adds or updates an endpoint (by name), removes one, and "Check" asks the server for its
models through a :class:`gui.remote_engine.RemoteEngine` (off the GUI thread); picking a listed model
and "Use model" emits :attr:`RemoteServersDialog.model_chosen`.
"""
from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QListWidget, QPushButton, QVBoxLayout, QWidget)

from .remote_api import RemoteError, normalize_base_url
from .remote_engine import RemoteEngine
from .settings import make_qsettings
from .signals import emit

GROUP = "remote"


@dataclass(frozen=True)
class RemoteEndpoint:
    """One saved server. ``url``: as typed (normalised when used); ``api_key``: "" for none."""

    name: str
    url: str
    api_key: str = ""


class RemoteEndpoints:
    """Reads and writes the saved endpoints (group ``remote`` of the app's QSettings).

    Args:
        qsettings: the store; defaults to :func:`gui.settings.make_qsettings`.
    """

    def __init__(self, qsettings: QSettings | None = None):
        self.q = qsettings if qsettings is not None else make_qsettings()

    def list(self) -> list[RemoteEndpoint]:
        """The saved endpoints in the order they were added (entries without a name or URL are skipped)."""
        out = []
        n = self.q.beginReadArray(GROUP)
        for i in range(n):
            self.q.setArrayIndex(i)
            name, url = str(self.q.value("name") or ""), str(self.q.value("url") or "")
            if name and url:
                out.append(RemoteEndpoint(name, url, str(self.q.value("api_key") or "")))
        self.q.endArray()
        return out

    def get(self, name: str) -> RemoteEndpoint | None:
        """The endpoint called ``name``, or None."""
        return next((e for e in self.list() if e.name == name), None)

    def save(self, endpoint: RemoteEndpoint) -> None:
        """Add ``endpoint``, or replace the one with its name (kept in its place); written at once.

        Raises:
            ValueError: no name, or a URL :func:`gui.remote_api.normalize_base_url` refuses.
        """
        check(endpoint)
        items = self.list()
        for i, e in enumerate(items):
            if e.name == endpoint.name:
                items[i] = endpoint
                break
        else:
            items.append(endpoint)
        self._write(items)

    def remove(self, name: str) -> bool:
        """Forget the endpoint called ``name``; returns whether there was one."""
        items = self.list()
        kept = [e for e in items if e.name != name]
        self._write(kept)
        return len(kept) != len(items)

    def _write(self, items: list[RemoteEndpoint]) -> None:
        self.q.remove(GROUP)
        self.q.beginWriteArray(GROUP, len(items))
        for i, e in enumerate(items):
            self.q.setArrayIndex(i)
            self.q.setValue("name", e.name)
            self.q.setValue("url", e.url)
            self.q.setValue("api_key", e.api_key)
        self.q.endArray()
        self.q.sync()


def check(endpoint: RemoteEndpoint) -> None:
    """Raises ValueError (a message for the user) if ``endpoint`` has no name or a bad URL."""
    if not endpoint.name.strip():
        raise ValueError("Give the server a name")
    try:
        normalize_base_url(endpoint.url)
    except RemoteError as exc:
        raise ValueError(str(exc)) from None


class RemoteServersDialog(QDialog):
    """Add, check and remove remote servers; pick one of a server's models.

    Args:
        endpoints: the store (default: the app's); parent: the window.

    Signals:
        model_chosen(RemoteEndpoint, str): "Use model" (or a double-click) on a checked server's model.
    """

    model_chosen = Signal(object, str)

    def __init__(self, endpoints: RemoteEndpoints | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Remote servers")
        self.store = endpoints if endpoints is not None else RemoteEndpoints()
        self._engine: RemoteEngine | None = None
        self._checked: RemoteEndpoint | None = None

        self.servers = QListWidget(self)
        self.servers.currentTextChanged.connect(self._show_server)
        self.name = QLineEdit(self, placeholderText="e.g. Workstation")
        self.url = QLineEdit(self, placeholderText="http://127.0.0.1:8080")
        self.api_key = QLineEdit(self, placeholderText="none")
        self.api_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.save_button = QPushButton("Save", self)
        self.check_button = QPushButton("Check", self, toolTip="Ask the server for its models")
        self.remove_button = QPushButton("Remove", self)
        self.save_button.clicked.connect(self.save_current)
        self.check_button.clicked.connect(self.check_current)
        self.remove_button.clicked.connect(self.remove_current)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.models = QListWidget(self)
        self.models.itemDoubleClicked.connect(lambda _item: self.use_model())
        self.use_button = QPushButton("Use model", self, enabled=False)
        self.use_button.clicked.connect(self.use_model)
        self.models.currentRowChanged.connect(lambda row: self.use_button.setEnabled(row >= 0))

        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Address", self.url)
        form.addRow("API key", self.api_key)
        buttons = QHBoxLayout()
        for b in (self.save_button, self.check_button, self.remove_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        close.rejected.connect(self.reject)
        use_row = QHBoxLayout()
        use_row.addStretch(1)
        use_row.addWidget(self.use_button)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Saved servers", self))
        layout.addWidget(self.servers)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(QLabel("Models", self))
        layout.addWidget(self.models)
        layout.addLayout(use_row)
        layout.addWidget(close)
        self._refresh()

    # Actions -------------------------------------------------------------------------------------

    def current(self) -> RemoteEndpoint:
        """The endpoint the form describes (not saved yet)."""
        return RemoteEndpoint(self.name.text().strip(), self.url.text().strip(), self.api_key.text().strip())

    def save_current(self) -> bool:
        """Save the form's endpoint; a bad one leaves the form as typed and says why. Returns success."""
        e = self.current()
        try:
            self.store.save(e)
        except ValueError as exc:
            self._say(str(exc))
            return False
        self._refresh(select=e.name)
        self._say(f"Saved {e.name}.")
        return True

    def remove_current(self) -> None:
        """Forget the selected server (the form keeps its text, so a slip can be saved again)."""
        name = self.name.text().strip()
        if self.store.remove(name):
            self._refresh()
            self._say(f"Removed {name}.")
        else:
            self._say(f"No saved server is called {name!r}.")

    def check_current(self) -> None:
        """Ask the form's server for its models (in the background); the list or a message follows."""
        e = self.current()
        try:
            check(RemoteEndpoint(e.name or "unnamed", e.url, e.api_key))
        except ValueError as exc:
            self._say(str(exc))
            return
        self._stop_engine()
        self.models.clear()
        self._checked = e
        self._engine = RemoteEngine(e.url, e.api_key, e.name)
        self._engine.models_listed.connect(self._on_models)
        self._engine.models_failed.connect(self._on_models_failed)
        self.check_button.setEnabled(False)
        self._say(f"Asking {self._engine.base_url} for its models…")
        self._engine.list_models()

    def use_model(self) -> None:
        """Emit ``model_chosen`` for the selected model of the checked server."""
        item = self.models.currentItem()
        if item is not None and self._checked is not None:
            emit(self.model_chosen, self._checked, item.text())

    def done(self, result: int) -> None:  # noqa: D401 - Qt's name
        """Close the dialog, stopping a check still under way."""
        self._stop_engine()
        super().done(result)

    # Internals -----------------------------------------------------------------------------------

    def _on_models(self, models: list) -> None:
        self.check_button.setEnabled(True)
        self.models.clear()
        self.models.addItems([str(m) for m in models])
        if models:
            self.models.setCurrentRow(0)
        self._say(f"{len(models)} model{'s' if len(models) != 1 else ''} on this server."
                  if models else "The server answered but offers no models (is one loaded there?).")

    def _on_models_failed(self, message: str) -> None:
        self.check_button.setEnabled(True)
        self._say(message)

    def _say(self, text: str) -> None:
        self.status.setText(text)

    def _stop_engine(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.models_listed.disconnect(self._on_models)
            engine.models_failed.disconnect(self._on_models_failed)
            engine.shutdown()
        self.check_button.setEnabled(True)

    def _refresh(self, select: str | None = None) -> None:
        self.servers.blockSignals(True)
        self.servers.clear()
        names = [e.name for e in self.store.list()]
        self.servers.addItems(names)
        self.servers.blockSignals(False)
        if select in names:
            self.servers.setCurrentRow(names.index(select))

    def _show_server(self, name: str) -> None:
        e = self.store.get(name)
        if e is not None:
            self.name.setText(e.name)
            self.url.setText(e.url)
            self.api_key.setText(e.api_key)
