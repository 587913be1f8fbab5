"""The conversation list on the left: New chat, select, rename (double-click or F2), delete (Del)."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QListWidget, QListWidgetItem, QMenu, QMessageBox, QPushButton, QVBoxLayout,
                               QWidget)
from .signals import emit

ID_ROLE = Qt.ItemDataRole.UserRole


class Sidebar(QWidget):
    """Lists conversations (newest first) and reports what the user does with them.

    Signals:
        new_requested(); selected(conv_id); renamed(conv_id, title); delete_requested(conv_id).
    """

    new_requested = Signal()
    selected = Signal(int)
    renamed = Signal(int, str)
    delete_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("sidebar")
        self.new_button = QPushButton("+  New chat", self)
        self.new_button.setToolTip("New chat (Ctrl+N)")
        self.new_button.clicked.connect(self.new_requested)
        self.list = QListWidget(self)
        self.list.setAcceptDrops(False)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setUniformItemSizes(True)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._menu)
        self.list.currentItemChanged.connect(self._current_changed)
        self.list.itemChanged.connect(self._item_changed)
        self._filling = False
        rename = QAction("Rename (F2)", self.list)  # F2 itself is the window's Chat > Rename chat
        rename.triggered.connect(self.rename_current)
        delete = QAction("Delete", self.list, shortcut=QKeySequence.StandardKey.Delete,
                         shortcutContext=Qt.ShortcutContext.WidgetShortcut)
        delete.triggered.connect(lambda: self.delete_current())  # not triggered(checked) as confirm
        self.list.addActions([rename, delete])
        self._actions = (rename, delete)
        box = QVBoxLayout(self)
        box.setContentsMargins(8, 8, 4, 8)
        box.addWidget(self.new_button)
        box.addWidget(self.list, 1)

    def set_conversations(self, conversations, current_id: int | None) -> None:
        """Show ``conversations`` (objects with ``id`` and ``title``) and select ``current_id``."""
        self._filling = True
        try:
            self.list.clear()
            for c in conversations:
                item = QListWidgetItem(c.title)
                item.setData(ID_ROLE, c.id)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
                item.setToolTip(c.title)
                self.list.addItem(item)
                if c.id == current_id:
                    self.list.setCurrentItem(item)
            if current_id is None:
                self.list.setCurrentItem(None)
        finally:
            self._filling = False

    def set_title(self, conv_id: int, title: str) -> None:
        """Show ``title`` for a listed conversation (what the store keeps after a rename)."""
        self._filling = True
        try:
            for i in range(self.list.count()):
                item = self.list.item(i)
                if item.data(ID_ROLE) == conv_id:
                    item.setText(title)
                    item.setToolTip(title)
        finally:
            self._filling = False

    def ids(self) -> list[int]:
        """The listed conversation ids, top to bottom."""
        return [self.list.item(i).data(ID_ROLE) for i in range(self.list.count())]

    def current_id(self) -> int | None:
        """The selected conversation's id, or None."""
        item = self.list.currentItem()
        return item.data(ID_ROLE) if item is not None else None

    def rename_current(self) -> None:
        """Start editing the selected conversation's title in place."""
        item = self.list.currentItem()
        if item is not None:
            self.list.editItem(item)

    def delete_current(self, confirm: bool = True) -> None:
        """Delete the selected conversation, after asking when ``confirm``."""
        item = self.list.currentItem()
        if item is None:
            return
        if confirm and QMessageBox.question(
                self, "Delete chat", f"Delete “{item.text()}” and all its messages?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No) != QMessageBox.StandardButton.Yes:
            return
        emit(self.delete_requested, item.data(ID_ROLE))

    def _menu(self, pos) -> None:
        if self.list.itemAt(pos) is None:
            return
        menu = QMenu(self)
        menu.addActions(list(self._actions))
        menu.exec(self.list.viewport().mapToGlobal(pos))

    def _current_changed(self, item, _previous) -> None:
        if not self._filling and item is not None:
            emit(self.selected, item.data(ID_ROLE))

    def _item_changed(self, item) -> None:
        if not self._filling:
            emit(self.renamed, item.data(ID_ROLE), item.text())
