"""The collapsed reasoning of a reply, above its answer: "Thinking…" while the model reasons, then
"Thought for N s"; a click shows or hides the reasoning text."""
from __future__ import annotations

import time

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QToolButton, QVBoxLayout, QWidget

from .text_view import AutoHeightBrowser


def duration_text(seconds: float) -> str:
    """``seconds`` for people: "0.4 s", "12 s", "2 min 5 s"."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 59.5:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


class ReasoningSection(QFrame):
    """A toggle (``toggle``, a checkable tool button) and the reasoning text (``view``), hidden until
    the toggle is clicked. The view is filled only while shown, so a long reasoning being streamed costs
    nothing while collapsed.

    The time shown is the one given to :meth:`set_time`, else the wall time from the first reasoning
    text streamed to the end of the reasoning (measured here, in the GUI thread; seconds).
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("reasoningSection")
        self.text = ""
        self.thinking = False
        self.seconds: float | None = None
        self._started: float | None = None
        self._label = ""
        self.toggle = QToolButton(self, checkable=True, autoRaise=True)
        self.toggle.setObjectName("reasoningToggle")
        self.toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.toggle.setToolTip("Show or hide the model's reasoning")
        self.toggle.toggled.connect(self._show_body)
        self.body = QFrame(self)
        self.body.setObjectName("reasoningBody")
        self.view = AutoHeightBrowser(code=False, parent=self.body)
        body_box = QVBoxLayout(self.body)
        body_box.setContentsMargins(8, 0, 0, 0)
        body_box.addWidget(self.view)
        self.body.hide()
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(2)
        box.addWidget(self.toggle, 0, Qt.AlignmentFlag.AlignLeft)
        box.addWidget(self.body)
        self._relabel()

    @property
    def expanded(self) -> bool:
        """Whether the reasoning text is shown."""
        return self.toggle.isChecked()

    def set_reasoning(self, text: str, thinking: bool) -> None:
        """Show reasoning ``text``; ``thinking`` while more of it is still being generated."""
        if thinking and self._started is None:
            self._started = time.monotonic()
        if not thinking and self.thinking and self.seconds is None and self._started is not None:
            self.seconds = time.monotonic() - self._started
        self.text, self.thinking = text, thinking
        self._relabel()
        if self.expanded:
            self.view.set_content(text)

    def set_time(self, seconds: float | None) -> None:
        """Show ``seconds`` as the reasoning time (None: the measured one, if any)."""
        self.seconds = seconds
        self._relabel()

    def _relabel(self) -> None:
        if self.thinking:
            label = "Thinking…"
        elif self.seconds is not None:
            label = f"Thought for {duration_text(self.seconds)}"
        else:
            label = "Reasoning"
        if label != self._label:  # set_reasoning runs on every streamed render
            self._label = label
            self.toggle.setText(label)

    def _show_body(self, on: bool) -> None:
        self.toggle.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)
        if on:
            self.view.set_content(self.text)
        self.body.setVisible(on)
