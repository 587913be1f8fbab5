"""The editor of a message being edited: Tab moves the focus, Esc cancels, Ctrl+Enter saves."""
from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QPlainTextEdit, QWidget

from .signals import emit


def _is_save(event: QKeyEvent) -> bool:
    return (event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
            and bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier))


class MessageEditor(QPlainTextEdit):
    """A plain text editor for a message (Cmd+Enter on macOS, where Qt maps Ctrl to Cmd).

    Esc and Ctrl+Enter are taken before the window's shortcuts (the window's Esc stops a reply), so
    they act on the edit while the editor has the focus.

    Signals:
        save_requested(): Ctrl+Enter (or keypad Enter), only when the text is not blank.
        cancel_requested(): Esc.
    """

    save_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, text: str = "", parent: QWidget | None = None):
        super().__init__(text, parent)
        self.setAcceptDrops(False)  # a dropped model file is for the window
        self.setTabChangesFocus(True)
        self.setMinimumHeight(80)
        self.setToolTip("Ctrl+Enter: save and send · Esc: cancel")

    def event(self, event) -> bool:  # noqa: D102 - Qt's
        if event.type() == QEvent.Type.ShortcutOverride and (
                event.key() == Qt.Key.Key_Escape or _is_save(event)):
            event.accept()  # the key comes to keyPressEvent instead of triggering a shortcut
            return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.key() == Qt.Key.Key_Escape:
            emit(self.cancel_requested)
            return
        if _is_save(event):
            if self.toPlainText().strip():
                emit(self.save_requested)
            return
        super().keyPressEvent(event)
