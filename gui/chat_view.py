"""The conversation pane: a scrolling column of :class:`MessageWidget`, with a streamed reply at the end.

Tokens arrive 20-50 times a second; re-rendering Markdown for each would cost the GUI thread more than
needed, so streamed text is collected and drawn at most every ``RENDER_INTERVAL_MS``.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QFrame, QScrollArea, QVBoxLayout, QWidget

from engine.generate import GenerationStats

from .message_widget import MessageWidget

RENDER_INTERVAL_MS = 40


class ChatView(QScrollArea):
    """Shows one conversation.

    Signals:
        edit_submitted(position, text): a user message was edited and should be resent.
        regenerate_requested(): Regenerate on the last reply.
        continue_requested(position): Continue on the last reply (cut by max tokens or Stop).
    """

    edit_submitted = Signal(int, str)
    regenerate_requested = Signal()
    continue_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._column = QWidget(self)
        self._column.setObjectName("chatColumn")
        self._layout = QVBoxLayout(self._column)
        self._layout.setContentsMargins(16, 12, 16, 12)
        self._layout.setSpacing(10)
        self._layout.addStretch(1)
        self.setWidget(self._column)
        self.messages: list[MessageWidget] = []
        self._busy = False
        self._can_continue = True  # False for a remote model: no Continue button
        self._stream: MessageWidget | None = None
        self._stream_text = ""
        self._render_timer = QTimer(self, singleShot=True, interval=RENDER_INTERVAL_MS)
        self._render_timer.timeout.connect(self._render_stream)
        self._stick = True  # follow the end while the user has not scrolled up
        bar = self.verticalScrollBar()
        bar.rangeChanged.connect(self._follow)
        bar.valueChanged.connect(lambda v: setattr(self, "_stick", v >= bar.maximum() - 4))

    def clear(self) -> None:
        """Remove every message."""
        self.end_stream()
        for w in self.messages:
            w.deleteLater()
        self.messages.clear()
        self._stick = True

    def set_messages(self, messages) -> None:
        """Show ``messages`` (objects with ``role``, ``content``, ``position`` and, for saved replies,
        ``stats``: a :data:`gui.conversations.STATS_FIELDS` dict or None) in place of the current ones; a
        reply's saved stats bring back its stats line, marker and Continue."""
        self.clear()
        for m in messages:
            w = self.add_message(m.role, m.content, m.position)
            record = getattr(m, "stats", None)
            if m.role == "assistant" and record:
                w.finish_reply(GenerationStats(**record))
        self._update_buttons()

    def add_message(self, role: str, text: str, position: int) -> MessageWidget:
        """Append a message widget and return it."""
        w = MessageWidget(role, text, position, self._column)
        w.edit_submitted.connect(self.edit_submitted)
        w.regenerate_clicked.connect(self.regenerate_requested)
        w.continue_requested.connect(self.continue_requested)
        self._layout.insertWidget(self._layout.count() - 1, w)
        self.messages.append(w)
        self._stick = True
        self._update_buttons()
        return w

    def remove_last(self) -> None:
        """Remove the last message (a reply being regenerated, or one that failed)."""
        if self.messages:
            w = self.messages.pop()
            if w is self._stream:
                self.end_stream()
            w.deleteLater()
            self._update_buttons()

    def truncate(self, position: int) -> None:
        """Remove the messages at ``position`` and after."""
        while self.messages and self.messages[-1].position >= position:
            self.remove_last()

    def set_busy(self, busy: bool) -> None:
        """Disable Edit/Regenerate while a reply is being generated."""
        self._busy = busy
        self._update_buttons()

    def set_can_continue(self, on: bool) -> None:
        """Offer Continue on a cut reply (local models) or never (a remote model cannot continue one)."""
        self._can_continue = bool(on)
        self._update_buttons()

    # Streaming -----------------------------------------------------------------------------------

    def begin_stream(self, position: int) -> MessageWidget:
        """Add an empty assistant message that :meth:`append_stream` fills."""
        self._stream = self.add_message("assistant", "", position)
        self._stream_text = ""
        return self._stream

    def resume_stream(self, position: int, text: str) -> MessageWidget | None:
        """Stream into the last message again (Continue): it shows ``text`` and :meth:`append_stream` adds
        to it. None when the last message is not the one at ``position``."""
        if not self.messages or self.messages[-1].position != position:
            return None
        self._stream = self.messages[-1]
        self._stream.resume(text)
        self._stream_text = text
        self._stick = True
        self._update_buttons()
        return self._stream

    def append_stream(self, piece: str) -> None:
        """Add ``piece`` to the streamed reply; drawn within RENDER_INTERVAL_MS."""
        if self._stream is None:
            return
        self._stream_text += piece
        if not self._render_timer.isActive():
            self._render_timer.start()

    def end_stream(self, final_text: str | None = None, stats=None) -> None:
        """Draw the complete reply (``final_text`` if given) and stop streaming; ``stats`` (the reply's
        ``GenerationStats``) puts its numbers and a cut-off marker under it."""
        if self._stream is not None:
            self._render_timer.stop()
            if final_text is not None:
                self._stream_text = final_text
            self._render_stream()
            self._stream.finish_reply(stats)
        self._stream = None
        self._update_buttons()

    def _render_stream(self) -> None:
        if self._stream is not None:
            self._stream.set_text(self._stream_text)

    # Helpers -------------------------------------------------------------------------------------

    def _update_buttons(self) -> None:
        last = self.messages[-1] if self.messages else None
        for w in self.messages:
            w.set_busy(self._busy)
            w.regenerate_button.setVisible(w is last and w.role == "assistant" and not self._busy)
            # Continue is for the last reply only, once it is complete and was cut (its footer says)
            w.continue_button.setVisible(self._can_continue and w is last and w.footer.can_continue
                                         and w is not self._stream)

    def _follow(self, _min: int, maximum: int) -> None:
        if self._stick:
            self.verticalScrollBar().setValue(maximum)
