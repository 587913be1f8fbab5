"""One chat message on screen: Markdown prose (QTextBrowser.setMarkdown), code blocks with a Copy
button, and the message's own buttons (Copy; Edit for the user's messages; Regenerate on the last reply).
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication, QTextOption
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QSizePolicy, QTextBrowser,
                               QToolButton, QVBoxLayout, QWidget)

from . import theme
from .highlight import CodeHighlighter
from .markdown_blocks import Block, split_blocks
from .signals import emit


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


class CodeBlock(QFrame):
    """A fenced code block: language label, Copy button, monospace text coloured by Pygments
    (:class:`gui.highlight.CodeHighlighter`, in the current theme's code style; recoloured when the
    application palette changes, as :func:`gui.theme.apply_theme` does)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("codeBlock")
        self._text = ""
        self.lang = QLabel(self)
        self.lang.setObjectName("codeLang")
        self.copy_button = QToolButton(self, text="Copy code", autoRaise=True)
        self.copy_button.clicked.connect(lambda: QGuiApplication.clipboard().setText(self._text))
        self.view = AutoHeightBrowser(code=True, parent=self)
        self.highlighter = CodeHighlighter(self.view.document(), theme.current())
        head = QHBoxLayout()
        head.setContentsMargins(8, 2, 4, 0)
        head.addWidget(self.lang)
        head.addStretch(1)
        head.addWidget(self.copy_button)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 4)
        box.setSpacing(0)
        box.addLayout(head)
        box.addWidget(self.view)

    def set_block(self, block: Block) -> None:
        """Show ``block`` (a code :class:`Block`); a block that grew is only appended to."""
        self._text = block.text
        self.lang.setText(block.lang or "code")
        self.highlighter.set_code(block.text, block.lang, final=block.closed)

    def finish(self) -> None:
        """The reply ended: a block still open (no closing fence) is lexed once more from its start."""
        self.highlighter.set_code(self._text, self.highlighter.lexer.lang, final=True)

    def changeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self.highlighter.set_theme(theme.current())


class MessageWidget(QFrame):
    """One message. ``position`` is its index in the conversation.

    Signals:
        edit_submitted(position, new_text): the user edited this message and asked to resend it.
        regenerate_clicked(): Regenerate on the last reply.
    """

    edit_submitted = Signal(int, str)
    regenerate_clicked = Signal()

    def __init__(self, role: str, text: str, position: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.role = role
        self.position = position
        self.text = ""
        self.setObjectName("userMessage" if role == "user" else "assistantMessage")
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self._blocks: list[QWidget] = []

        self.who = QLabel("You" if role == "user" else "Assistant", self)
        self.who.setObjectName("messageRole")
        self.copy_button = QToolButton(self, text="Copy", autoRaise=True, toolTip="Copy this message")
        self.copy_button.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.text))
        self.edit_button = QToolButton(self, text="Edit", autoRaise=True, toolTip="Edit and resend")
        self.edit_button.clicked.connect(self.start_edit)
        self.edit_button.setVisible(role == "user")
        self.regenerate_button = QToolButton(self, text="Regenerate", autoRaise=True, toolTip="Regenerate (Ctrl+R)")
        self.regenerate_button.clicked.connect(self.regenerate_clicked)
        self.regenerate_button.setVisible(False)
        head = QHBoxLayout()
        head.setContentsMargins(0, 0, 0, 0)
        head.addWidget(self.who)
        head.addStretch(1)
        for b in (self.edit_button, self.regenerate_button, self.copy_button):
            head.addWidget(b)

        self.body = QVBoxLayout()
        self.body.setContentsMargins(0, 0, 0, 0)
        self.body.setSpacing(6)
        self.editor: QPlainTextEdit | None = None
        box = QVBoxLayout(self)
        box.setContentsMargins(12, 6, 12, 8)
        box.setSpacing(2)
        box.addLayout(head)
        box.addLayout(self.body)
        self.set_text(text)

    def set_text(self, text: str) -> None:
        """Render ``text``; block widgets are reused, so streaming only re-renders the last block."""
        self.text = text
        # The user's words are shown as typed; the model's replies are Markdown.
        blocks = split_blocks(text) if self.role == "assistant" else [Block("plain", text)]
        for i, block in enumerate(blocks):
            want = CodeBlock if block.kind == "code" else AutoHeightBrowser
            if i < len(self._blocks) and type(self._blocks[i]) is want:
                w = self._blocks[i]
            else:
                for old in self._blocks[i:]:
                    old.deleteLater()
                del self._blocks[i:]
                w = CodeBlock(self) if want is CodeBlock else AutoHeightBrowser(code=False, parent=self)
                self.body.insertWidget(i, w)
                self._blocks.append(w)
            if block.kind == "code":
                w.set_block(block)
            else:
                w.set_content(block.text, markdown=block.kind == "text")
        for old in self._blocks[len(blocks):]:
            old.deleteLater()
        del self._blocks[len(blocks):]

    def set_busy(self, busy: bool) -> None:
        """While a reply is generated, editing and regenerating are disabled."""
        self.edit_button.setEnabled(not busy)
        self.regenerate_button.setEnabled(not busy)

    # Editing -------------------------------------------------------------------------------------

    def start_edit(self) -> None:
        """Replace the text by an editor with Save & send / Cancel."""
        if self.editor is not None:
            return
        self.editor = QPlainTextEdit(self.text, self)
        self.editor.setAcceptDrops(False)
        self.editor.setMinimumHeight(80)
        save = self.save_button = QPushButton("Save && send", self)
        cancel = QPushButton("Cancel", self)
        save.clicked.connect(self._submit_edit)
        cancel.clicked.connect(self._end_edit)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(cancel)
        row.addWidget(save)
        self._edit_row = QWidget(self)
        self._edit_row.setLayout(row)
        for w in self._blocks:
            w.hide()
        self.body.addWidget(self.editor)
        self.body.addWidget(self._edit_row)
        self.editor.setFocus()

    def _submit_edit(self) -> None:
        text = self.editor.toPlainText().strip() if self.editor else ""
        self._end_edit()
        if text:
            emit(self.edit_submitted, self.position, text)

    def _end_edit(self) -> None:
        if self.editor is None:
            return
        self.editor.deleteLater()
        self._edit_row.deleteLater()
        self.editor = None
        for w in self._blocks:
            w.show()
