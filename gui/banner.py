"""A message strip at the top of the window: errors (bad model file, context full) and notices.

Messages stay until closed or replaced: no modal dialog stops the user (or a test) from going on.
"""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton, QWidget


class Banner(QFrame):
    """Shows one message with a close button; ``kind`` "error" or "info" picks the colours (theme.py)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.action = QPushButton(self)  # the message's one remedy ("Reload"), when it has one
        self.action.hide()
        self.action.clicked.connect(self._on_action)
        self._callback: Callable[[], None] | None = None
        close = QToolButton(self, text="✕", autoRaise=True, toolTip="Dismiss")
        close.clicked.connect(self.hide)
        row = QHBoxLayout(self)
        row.setContentsMargins(12, 6, 6, 6)
        row.addWidget(self.label, 1)
        row.addWidget(self.action)
        row.addWidget(close)
        self.kind = ""
        self.tag = ""
        self.hide()

    def show_message(self, text: str, kind: str = "error", action: tuple[str, Callable[[], None]] | None = None,
                     tag: str = "") -> None:
        """Show ``text``; ``kind`` is "error" or "info"; ``action`` an optional (button label, callback),
        run once when clicked (the banner then closes); ``tag`` names the message's cause, so that
        :meth:`withdraw` takes it away once the cause is gone ("" for none)."""
        self.kind = kind
        self.tag = tag
        self.setObjectName("errorBanner" if kind == "error" else "infoBanner")
        self.style().unpolish(self)
        self.style().polish(self)
        self.label.setText(text)
        self._callback = action[1] if action else None
        self.action.setText(action[0] if action else "")
        self.action.setVisible(action is not None)
        self.show()

    def withdraw(self, tag: str) -> None:
        """Hide the message if it is shown with ``tag`` (its cause is gone; "" withdraws an untagged message,
        such as a file that could not be loaded); other messages stay."""
        if self.tag == tag and not self.isHidden():
            self.hide()

    def _on_action(self) -> None:
        callback, self._callback = self._callback, None
        self.hide()
        if callback is not None:
            callback()

    def text(self) -> str:
        """The message shown, or "" when hidden."""
        return "" if self.isHidden() else self.label.text()
