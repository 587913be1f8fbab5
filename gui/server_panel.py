"""The local server panel: the API address (with a copy button), the model's slots, and recent requests.

Reads :class:`gui.server_control.ServerControl`: its URL, the Scheduler's slots
(:class:`engine.scheduler.SlotInfo`, read directly, no HTTP) and its request log
(:class:`engine.server.request_log.RequestLog`, filled by the server's middleware). All three are quick
in-memory reads, so the panel refreshes on the GUI thread, every second while it is shown.
"""
from __future__ import annotations

import time

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

REFRESH_MS = 1000
SHOWN_REQUESTS = 100  # newest first; the log keeps up to its own max_records
SLOT_COLUMNS = ("Slot", "State", "Cached", "Prompt", "Generated")
REQUEST_COLUMNS = ("Time", "Method", "Path", "Status", "Duration", "Client")


def _table(columns: tuple[str, ...], parent: QWidget) -> QTableWidget:
    t = QTableWidget(0, len(columns), parent)
    t.setHorizontalHeaderLabels(list(columns))
    t.verticalHeader().setVisible(False)
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    t.horizontalHeader().setStretchLastSection(True)
    return t


def _fill(table: QTableWidget, rows: list[tuple]) -> None:
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            item = table.item(r, c)
            text = str(value)
            if item is None:
                table.setItem(r, c, QTableWidgetItem(text))
            elif item.text() != text:
                item.setText(text)


def format_duration(seconds: float) -> str:
    """``"12 ms"`` below a second, ``"3.4 s"`` above."""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


class ServerPanel(QWidget):
    """Shows what the in-process server is doing.

    Args:
        control: the window's :class:`~gui.server_control.ServerControl`; parent: the widget it sits in.

    Attributes (for the window and tests): ``url_label``, ``copy_button``, ``slots_table``,
    ``requests_table``; :meth:`refresh` updates them all at once.
    """

    def __init__(self, control, parent: QWidget | None = None):
        super().__init__(parent)
        self.control = control
        self.url_label = QLabel(self)
        self.url_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.copy_button = QPushButton("Copy", self, toolTip="Copy the API address")
        self.copy_button.clicked.connect(self.copy_url)
        self.slots_table = _table(SLOT_COLUMNS, self)
        self.requests_table = _table(REQUEST_COLUMNS, self)
        self._log_version: int | None = None

        top = QHBoxLayout()
        top.addWidget(self.url_label, 1)
        top.addWidget(self.copy_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(QLabel("Slots", self))
        layout.addWidget(self.slots_table, 1)
        layout.addWidget(QLabel("Recent requests", self))
        layout.addWidget(self.requests_table, 2)

        self._timer = QTimer(self, interval=REFRESH_MS)
        self._timer.timeout.connect(self.refresh)
        self.refresh()

    def api_url(self) -> str | None:
        """The address clients use (``http://host:port/v1``), or None while the server is off."""
        url = self.control.url
        return f"{url}/v1" if url else None

    def copy_url(self) -> None:
        """Put the API address on the clipboard (nothing while the server is off)."""
        url = self.api_url()
        if url:
            QGuiApplication.clipboard().setText(url)

    def refresh(self) -> None:
        """Read the URL, slots and request log again and update the widgets."""
        url = self.api_url()
        self.url_label.setText(f"API: {url}" if url else "The local server is off (turn it on in Settings).")
        self.copy_button.setEnabled(url is not None)
        _fill(self.slots_table, [(s.id, s.state, s.n_cached, s.n_prompt, s.n_generated)
                                 for s in self.control.slots()])
        log = self.control.request_log
        if log.version != self._log_version:
            self._log_version = log.version
            rows = [(time.strftime("%H:%M:%S", time.localtime(r.time)), r.method, r.path,
                     "—" if r.status is None else r.status, format_duration(r.duration_s), r.client)
                    for r in reversed(log.recent(SHOWN_REQUESTS))]
            _fill(self.requests_table, rows)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.refresh()
        self._timer.start()
        super().showEvent(event)

    def hideEvent(self, event) -> None:  # noqa: N802
        self._timer.stop()
        super().hideEvent(event)
