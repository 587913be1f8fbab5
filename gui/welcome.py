"""The first page when no model is loaded: drop a GGUF here, open a file, download one, or load a model
already in the models folder (the starter model first) or placed next to the packaged app."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QLabel, QPushButton, QVBoxLayout, QWidget

from engine.paths import bundled_model_dirs, list_models
from engine.starter_models import DEFAULT_STARTER

from .model_card import format_size
from .signals import emit

MAX_LISTED = 6


class WelcomePage(QWidget):
    """Signals: ``open_requested()`` (File > Open), ``download_requested()`` (File > Download model),
    ``model_chosen(path)``."""

    open_requested = Signal()
    download_requested = Signal()
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
        self.download_button = QPushButton("Download a model from Hugging Face…", self)
        self.download_button.setFlat(True)  # a link-like secondary action under the main button
        self.download_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.download_button.clicked.connect(self.download_requested)
        self._models_box = QVBoxLayout()
        self.model_buttons: list[QPushButton] = []

        col = QVBoxLayout()
        col.addStretch(1)
        col.addWidget(title, 0, Qt.AlignmentFlag.AlignHCenter)
        col.addWidget(intro, 0, Qt.AlignmentFlag.AlignHCenter)
        col.addSpacing(16)
        col.addWidget(drop)
        col.addWidget(self.open_button, 0, Qt.AlignmentFlag.AlignHCenter)
        col.addWidget(self.download_button, 0, Qt.AlignmentFlag.AlignHCenter)
        col.addSpacing(8)
        col.addLayout(self._models_box)
        col.addStretch(2)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(48, 24, 48, 24)
        wrap = QWidget(self)
        wrap.setLayout(col)
        wrap.setMaximumWidth(560)
        outer.addWidget(wrap, 0, Qt.AlignmentFlag.AlignHCenter)

    def refresh(self, folder: Path, bundled: list[Path] | None = None) -> None:
        """List the ``.gguf`` files of ``folder``, then of the packaged app's folders, as buttons.

        Args:
            folder: the models folder (the starter model is listed first).
            bundled: further folders (default :func:`engine.paths.bundled_model_dirs`: next to a packaged
                app's executable); a file name already listed from an earlier folder is skipped there, as
                :func:`engine.paths.list_models` does. At most ``MAX_LISTED`` models are shown in all.
        """
        for b in self.model_buttons:
            b.deleteLater()
        self.model_buttons.clear()
        bundled = bundled_model_dirs() if bundled is None else bundled
        seen: set[str] = set()
        left = MAX_LISTED
        for i, d in enumerate([folder, *bundled]):
            models = [p for p in _models_in(d) if p.name not in seen]
            seen.update(p.name for p in models)
            models.sort(key=lambda p: (p.name != DEFAULT_STARTER.filename, p.name))
            if not models or left <= 0:
                continue
            text = f"Or load a model from {d}:" if i == 0 else f"Models next to the app, in {d}:"
            label = QLabel(text, self)
            label.setWordWrap(True)
            self._models_box.addWidget(label)
            self.model_buttons.append(label)
            for p in models[:left]:
                tag = "  (starter model)" if p.name == DEFAULT_STARTER.filename else ""
                b = QPushButton(f"{p.name}  ·  {format_size(p.stat().st_size)}{tag}", self)
                b.setProperty("modelPath", str(p))
                b.setToolTip(str(p))
                b.clicked.connect(lambda _=False, path=str(p): emit(self.model_chosen, path))
                self._models_box.addWidget(b)
                self.model_buttons.append(b)
            left -= min(left, len(models))


def _models_in(folder: Path) -> list[Path]:
    """The ``.gguf`` files of ``folder``; none if it is missing or unreadable (the page still shows)."""
    try:
        return list_models(folder) if folder.is_dir() else []
    except OSError:
        return []
