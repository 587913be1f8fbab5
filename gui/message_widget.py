"""One chat message on screen: Markdown prose (QTextBrowser.setMarkdown), code blocks with a Copy
button and Pygments colours, a reply's collapsed reasoning, and the message's own buttons (Copy; Edit for
the user's messages; Regenerate on the last reply).
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QToolButton, QVBoxLayout, QWidget

from . import theme
from .highlight import CodeHighlighter
from .markdown_blocks import Block, split_blocks
from .message_editor import MessageEditor
from .reasoning_section import ReasoningSection
from .reply_footer import ReplyFooter
from .signals import emit
from .text_view import AutoHeightBrowser
from .think_tags import split_think


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

    A reply's reasoning is shown collapsed above its answer (:class:`ReasoningSection`): the
    ``<think>...</think>`` section at the start of its text (:func:`gui.think_tags.split_think`), after
    any reasoning the engine passed separately (:meth:`append_reasoning`). :attr:`text` stays the whole
    text as given (what the conversation store keeps); :attr:`answer` is what is shown below it.

    A reply created empty (``text == ""``) is *live*, being streamed, until :meth:`finish_reply`; only a
    live reply's open section reads "Thinking…" (a saved one cut off while reasoning reads "Reasoning").

    Attributes:
        starts_in_reasoning: set True before streaming when the prompt itself opened a ``<think>``
            section (DeepSeek-R1's template): the reply is reasoning until ``</think>``.

    Signals:
        edit_submitted(position, new_text): the user edited this message and asked to resend it.
        regenerate_clicked(): Regenerate on the last reply.
        continue_requested(position): Continue on a reply cut by max tokens or stopped
            (:meth:`finish_reply` shows it).
    """

    edit_submitted = Signal(int, str)
    regenerate_clicked = Signal()
    continue_requested = Signal(int)

    def __init__(self, role: str, text: str, position: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.role = role
        self.position = position
        self.text = ""
        self.answer = ""
        self.starts_in_reasoning = False
        self.live = role == "assistant" and text == ""
        self._engine_reasoning = ""
        self._think_reasoning = ""
        self._think_open = False  # the reply's <think> section has not been closed yet
        self.setObjectName("userMessage" if role == "user" else "assistantMessage")
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self._blocks: list[QWidget] = []

        self.who = QLabel("You" if role == "user" else "Assistant", self)
        self.who.setObjectName("messageRole")
        self.copy_button = QToolButton(self, text="Copy", autoRaise=True, toolTip="Copy this message")
        self.copy_button.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.answer))
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

        self.reasoning_section = ReasoningSection(self)
        self.reasoning_section.hide()
        self._reasoning_shown = False

        self.body = QVBoxLayout()
        self.body.setContentsMargins(0, 0, 0, 0)
        self.body.setSpacing(6)
        self.editor: MessageEditor | None = None
        box = QVBoxLayout(self)
        box.setContentsMargins(12, 6, 12, 8)
        box.setSpacing(2)
        box.addLayout(head)
        box.addWidget(self.reasoning_section)
        box.addLayout(self.body)
        self.footer = ReplyFooter(self)
        self.continue_button = self.footer.continue_button
        self.continue_button.clicked.connect(lambda: emit(self.continue_requested, self.position))
        box.addWidget(self.footer)
        self.set_text(text)

    @property
    def reasoning(self) -> str:
        """The reply's reasoning: the engine's (:meth:`append_reasoning`), then its ``<think>`` section."""
        return "\n\n".join(r for r in (self._engine_reasoning, self._think_reasoning) if r)

    def set_text(self, text: str) -> None:
        """Render ``text``; block widgets are reused, so streaming only re-renders the last block."""
        self.text = text
        if self.role == "assistant":
            split = split_think(text, self.starts_in_reasoning)
            self._think_reasoning, self.answer = split.reasoning, split.answer
            self._think_open = split.thinking
        else:
            self.answer = text
        self._show_reasoning()
        # The user's words are shown as typed; the model's replies are Markdown.
        blocks = split_blocks(self.answer) if self.role == "assistant" else [Block("plain", text)]
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

    # Reasoning ------------------------------------------------------------------------------------

    def append_reasoning(self, text: str) -> None:
        """Add reasoning the engine split off the reply (``GeneratedToken.reasoning``, gpt-oss's analysis
        channel): shown in the reasoning section, not in :attr:`text`."""
        if text:
            self._engine_reasoning += text
            self._show_reasoning()

    def set_reasoning_time(self, seconds: float | None) -> None:
        """Show "Thought for ``seconds``" (None: the time measured while streaming, if any)."""
        self.reasoning_section.set_time(seconds)

    def resume(self, text: str) -> None:
        """Stream into this finished reply again (Continue): it shows ``text``, its footer is hidden until
        :meth:`finish_reply`."""
        self.live = True
        self.footer.clear()
        self.set_text(text)

    def finish_reply(self, stats=None) -> None:
        """The reply is complete (``stats``: its ``engine.generate.GenerationStats``, or None).

        Code blocks left open are lexed whole once more, the reasoning section stops "Thinking…", and the
        engine's ``stats.reasoning`` is shown when none was streamed with :meth:`append_reasoning`. With
        ``stats``, the footer shows its numbers, and a reply cut by max tokens or stopped gets a marker and
        Continue (:class:`gui.reply_footer.ReplyFooter`).
        """
        self.live = False
        if stats is not None:
            self.footer.show_stats(stats)
        if stats is not None and stats.reasoning and not self._engine_reasoning:
            self._engine_reasoning = stats.reasoning
        self._show_reasoning()
        for b in self._blocks:
            if isinstance(b, CodeBlock):
                b.finish()

    def _show_reasoning(self) -> None:
        """Show the reasoning section when there is reasoning, or while a live reply opened one."""
        thinking = self.live and (self._think_open or bool(self._engine_reasoning) and not self.answer.strip())
        text = self.reasoning
        has = bool(text) or thinking
        if has != self._reasoning_shown:  # (no Qt call per streamed render when nothing changes)
            self._reasoning_shown = has
            self.reasoning_section.setVisible(has)
        if has or self.reasoning_section.text:
            self.reasoning_section.set_reasoning(text, thinking)

    def set_busy(self, busy: bool) -> None:
        """While a reply is generated, editing and regenerating are disabled."""
        self.edit_button.setEnabled(not busy)
        self.regenerate_button.setEnabled(not busy)
        self.continue_button.setEnabled(not busy)

    # Editing -------------------------------------------------------------------------------------

    def start_edit(self) -> None:
        """Replace the text by an editor (:class:`gui.message_editor.MessageEditor`) with Save & send /
        Cancel: Tab moves the focus, Esc cancels, Ctrl+Enter saves; Save is disabled while the text is blank."""
        if self.editor is not None:
            return
        self.editor = MessageEditor(self.text, self)
        save = self.save_button = QPushButton("Save && send", self, toolTip="Save and send (Ctrl+Enter)")
        cancel = self.cancel_button = QPushButton("Cancel", self, toolTip="Cancel the edit (Esc)")
        save.clicked.connect(self._submit_edit)
        cancel.clicked.connect(self._end_edit)
        self.editor.save_requested.connect(self._submit_edit)
        self.editor.cancel_requested.connect(self._end_edit)
        self.editor.textChanged.connect(lambda: save.setEnabled(bool(self.editor and self.editor.toPlainText().strip())))
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
        if self.edit_button.isVisible():
            self.edit_button.setFocus()  # keyboard users go on from where they were
