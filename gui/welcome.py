"""The first page when no model is loaded: drop a GGUF here, open a file, or load a model already in
the models folder (the starter model first)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QLabel, QPushButton, QVBoxLayout, QWidget

from engine.paths import list_models
from engine.starter_models import DEFAULT_STARTER

from .model_card import format_size
from .signals import emit

MAX_LISTED = 6


class WelcomePage(QWidget):
    """Signals: ``open_requested()`` (File > Open), ``model_chosen(path)``."""

    open_requested = Signal()
    model_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("welcome")
        title = QLabel("Welcome to Fireside", self)
        title.setObjectName("welcomeTitle")
        intro = QLabel("Chat with a language model that runs entirely on this computer.\n"
                       "Nothing you type leaves it.", self)
        intro.setAlignment(Qt.AlignmentFlag.AlignCenter)
        drop = QFrame(self)
        drop.setObjectName("dropZone")
        drop_label = QLabel("Drop a .gguf model file here", drop)
        drop_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        QVBoxLayout(drop).addWidget(drop_label)
        drop.setMinimumHeight(110)
        self.open_button = QPushButton("Open a model file…", self)
        self.open_button.clicked.connect(self.open_requested)
        self._models_box = QVBoxLayout()
        self.model_buttons: list[QPushButton] = []

        col = QVBoxLayout()
        col.addStretch(1)
        col.addWidget(title, 0, Qt.AlignmentFlag.AlignHCenter)
        col.addWidget(intro, 0, Qt.AlignmentFlag.AlignHCenter)
        col.addSpacing(16)
        col.addWidget(drop)
        col.addWidget(self.open_button, 0, Qt.AlignmentFlag.AlignHCenter)
        col.addSpacing(8)
        col.addLayout(self._models_box)
        col.addStretch(2)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(48, 24, 48, 24)
        wrap = QWidget(self)
        wrap.setLayout(col)
        wrap.setMaximumWidth(560)
        outer.addWidget(wrap, 0, Qt.AlignmentFlag.AlignHCenter)

    def refresh(self, folder: Path) -> None:
        """List the ``.gguf`` files of ``folder`` as buttons, the starter model first."""
        for b in self.model_buttons:
            b.deleteLater()
        self.model_buttons.clear()
        try:
            models = list_models(folder) if folder.is_dir() else []
        except OSError:
            models = []
        models.sort(key=lambda p: (p.name != DEFAULT_STARTER.filename, p.name))
        if models:
            label = QLabel(f"Or load a model from {folder}:", self)
            label.setWordWrap(True)
            self._models_box.addWidget(label)
            self.model_buttons.append(label)
        for p in models[:MAX_LISTED]:
            tag = "  (starter model)" if p.name == DEFAULT_STARTER.filename else ""
            b = QPushButton(f"{p.name}  ·  {format_size(p.stat().st_size)}{tag}", self)
            b.setProperty("modelPath", str(p))
            b.clicked.connect(lambda _=False, path=str(p): emit(self.model_chosen, path))
            self._models_box.addWidget(b)
            self.model_buttons.append(b)
