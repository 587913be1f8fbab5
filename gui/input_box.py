"""The message input: Enter sends, Shift+Enter starts a new line."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QPlainTextEdit, QSizePolicy, QWidget

from .signals import emit

MIN_LINES = 2
MAX_LINES = 8


class InputBox(QPlainTextEdit):
    """A multi-line input that emits ``submitted(text)`` on Enter (Shift+Enter inserts a newline)."""

    submitted = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setPlaceholderText("Message the model (Enter sends, Shift+Enter for a new line)")
        self.setAcceptDrops(False)  # a dropped model file is for the window
        self.setTabChangesFocus(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.document().contentsChanged.connect(self._fit)
        self._fit()

    def _fit(self) -> None:
        """Grow with the text from MIN_LINES to MAX_LINES lines (then scroll)."""
        # A QPlainTextEdit's document size is counted in lines (wrapped lines included).
        lines = min(max(int(self.document().size().height()), MIN_LINES), MAX_LINES)
        margins = self.contentsMargins().top() + self.contentsMargins().bottom()
        doc_margin = 2 * self.document().documentMargin()
        self.setFixedHeight(int(lines * self.fontMetrics().lineSpacing() + margins + doc_margin + 4))

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._fit()

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
                event.modifiers() & (Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.AltModifier)):
            text = self.toPlainText()
            if text.strip():
                emit(self.submitted, text)
            return
        super().keyPressEvent(event)
