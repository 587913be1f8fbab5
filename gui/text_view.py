"""A read-only text view as tall as its content, for the chat's messages, code and reasoning."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase, QTextOption
from PySide6.QtWidgets import QFrame, QSizePolicy, QTextBrowser, QWidget


class AutoHeightBrowser(QTextBrowser):
    """A read-only text view as tall as its content (no vertical scroll bar); wraps to its width.

    Args:
        code: True for verbatim monospace text (code blocks), False for Markdown.
    """

    def __init__(self, code: bool = False, parent: QWidget | None = None):
        super().__init__(parent)
        self.setOpenExternalLinks(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setAcceptDrops(False)  # a dropped .gguf goes to the window, not into the text
        self.viewport().setAutoFillBackground(False)
        self.document().setDocumentMargin(6 if code else 2)
        if code:
            self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
            self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.document().documentLayout().documentSizeChanged.connect(self._fit)
        self._code = code
        self._source = None

    def set_content(self, text: str, markdown: bool = True) -> None:
        """Show ``text`` as Markdown, or verbatim for code or when ``markdown`` is False; no-op when unchanged."""
        if text == self._source:
            return
        self._source = text
        if self._code or not markdown:
            self.setPlainText(text)
        else:
            self.setMarkdown(text)
        self._fit()

    def _fit(self, *_) -> None:
        h = int(self.document().size().height() + 2 * self.frameWidth() + 1)
        if h != self.height():
            self.setFixedHeight(h)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._fit()
