"""Search the saved conversations: a line edit over a results list, reporting the chosen conversation.

The query runs :meth:`gui.conversations.ConversationStore.search` on the GUI thread (an FTS5 lookup in a
local database takes milliseconds), a short moment after the user stops typing, or at once on Enter.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QLineEdit, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from .conversations import ConversationStore
from .signals import emit

ID_ROLE = Qt.ItemDataRole.UserRole
POSITION_ROLE = Qt.ItemDataRole.UserRole + 1
DEBOUNCE_MS = 200
NO_MATCHES = "No matching chats"


class ConversationSearch(QWidget):
    """A search box and its results; activating a result (click, Enter) reports its conversation.

    Args:
        store: the conversations to search (used from the GUI thread, as the window's own store).
        parent: the parent widget.

    Signals:
        conversation_chosen(conv_id): the user picked a result.
        message_chosen(conv_id, position): the same pick, with the matching message's position
            (-1 when the title matched), for a window that scrolls to it.
    """

    conversation_chosen = Signal(int)
    message_chosen = Signal(int, int)

    def __init__(self, store: ConversationStore, parent: QWidget | None = None):
        super().__init__(parent)
        self.store = store
        self.edit = QLineEdit(self)
        self.edit.setPlaceholderText("Search chats")
        self.edit.setClearButtonEnabled(True)
        self.results = QListWidget(self)
        self.results.setWordWrap(True)
        self.results.setAcceptDrops(False)
        self.results.itemActivated.connect(self._activated)
        self.results.itemClicked.connect(self._activated)
        self._timer = QTimer(self, singleShot=True, interval=DEBOUNCE_MS)
        self._timer.timeout.connect(self.run_search)
        self.edit.textChanged.connect(self._timer.start)
        self.edit.returnPressed.connect(self._enter)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.edit)
        box.addWidget(self.results, 1)
        self.results.hide()  # the results take room only while there is a query
        self.edit.installEventFilter(self)

    def run_search(self) -> None:
        """Search for the line edit's text now and show the results (none for blank text)."""
        self._timer.stop()
        text = self.edit.text()
        self.results.clear()
        self.results.setVisible(bool(text.strip()))
        if not text.strip():
            return
        hits = self.store.search(text)
        for hit in hits:
            item = QListWidgetItem(f"{hit.conversation.title}\n{hit.snippet}")
            item.setData(ID_ROLE, hit.conversation.id)
            item.setData(POSITION_ROLE, -1 if hit.position is None else hit.position)
            item.setToolTip(hit.snippet)
            self.results.addItem(item)
        if not hits:
            item = QListWidgetItem(NO_MATCHES)
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.results.addItem(item)
        else:
            self.results.setCurrentRow(0)

    def result_ids(self) -> list[int]:
        """The conversation ids shown, in order (empty when there are no matches)."""
        ids = (self.results.item(i).data(ID_ROLE) for i in range(self.results.count()))
        return [i for i in ids if i is not None]

    def _enter(self) -> None:
        """Enter in the line edit: search now if a search is due, then open the current (first) result."""
        if self._timer.isActive():
            self.run_search()
        item = self.results.currentItem()
        if item is not None:
            self._activated(item)

    def _activated(self, item: QListWidgetItem) -> None:
        conv_id = item.data(ID_ROLE)
        if conv_id is None:  # the "no matches" line
            return
        emit(self.message_chosen, conv_id, item.data(POSITION_ROLE))
        emit(self.conversation_chosen, conv_id)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        """Down arrow in the line edit moves into the results."""
        if obj is self.edit and event.type() == event.Type.KeyPress and event.key() == Qt.Key.Key_Down:
            if self.result_ids():
                self.results.setFocus()
                return True
        return super().eventFilter(obj, event)
