"""The settings dialog (Ctrl+,): appearance and chat, model (threads, context), sampling, local server."""
from __future__ import annotations

from dataclasses import replace

from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog,
                               QFormLayout, QHBoxLayout, QLineEdit, QPlainTextEdit, QPushButton, QSpinBox, QTabWidget,
                               QVBoxLayout, QWidget)

from .settings import THEMES, AppSettings


def _spin(lo: int, hi: int, value: int, special: str | None = None, step: int = 1) -> QSpinBox:
    s = QSpinBox(minimum=lo, maximum=hi, singleStep=step)
    if special:
        s.setSpecialValueText(special)  # shown at the minimum
    s.setValue(value)
    return s


def _dspin(lo: float, hi: float, value: float, step: float, decimals: int = 2) -> QDoubleSpinBox:
    s = QDoubleSpinBox(minimum=lo, maximum=hi, singleStep=step, decimals=decimals)
    s.setValue(value)
    return s


class SettingsDialog(QDialog):
    """Edits a copy of :class:`AppSettings`; read the result with :meth:`values` after ``exec()``."""

    def __init__(self, settings: AppSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self._initial = settings
        s = settings
        tabs = QTabWidget(self)

        # General: theme, models folder, default system prompt.
        self.theme = QComboBox()
        self.theme.addItems([t.capitalize() for t in THEMES])
        self.theme.setCurrentIndex(THEMES.index(s.theme))
        self.models_dir = QLineEdit(s.models_dir, placeholderText="default models folder")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.models_dir, 1)
        row.addWidget(browse)
        self.system_prompt = QPlainTextEdit(s.system_prompt)
        self.system_prompt.setPlaceholderText("none (a conversation can set its own: Chat > System prompt)")
        self.system_prompt.setMaximumHeight(90)
        tabs.addTab(self._form(("Theme", self.theme), ("Models folder", row),
                               ("Default system prompt", self.system_prompt)), "General")

        # Model: how it runs.
        self.n_threads = _spin(0, 512, s.n_threads, "all cores")
        self.n_ctx = _spin(0, 1 << 20, s.n_ctx, "model default (up to 4096)", step=256)
        self.n_parallel = _spin(1, 64, s.n_parallel)
        self.n_parallel.setToolTip("Replies computed at once (the chat window and each local-server client get "
                                   "a slot); each slot keeps its own context of the size above")
        self.context_shift = QCheckBox("Keep the system prompt and drop the oldest turns", self)
        self.context_shift.setChecked(s.context_shift)
        self.context_shift.setToolTip("When a chat outgrows the context size, older messages are left out of "
                                      "the prompt (they stay in the chat) instead of refusing the message")
        tabs.addTab(self._form(("Threads", self.n_threads), ("Context size (tokens)", self.n_ctx),
                               ("Parallel slots", self.n_parallel), ("Long chats", self.context_shift)), "Model")

        # Sampling: llama.cpp's names and ranges.
        self.temperature = _dspin(0.0, 5.0, s.temperature, 0.05)
        self.top_k = _spin(0, 100000, s.top_k, "off")
        self.top_p = _dspin(0.01, 1.0, s.top_p, 0.01)
        self.min_p = _dspin(0.0, 1.0, s.min_p, 0.01)
        self.repeat_penalty = _dspin(0.05, 5.0, s.repeat_penalty, 0.05)
        self.seed = _spin(-1, 2**31 - 1, s.seed, "random")
        self.max_tokens = _spin(1, 1 << 20, s.max_tokens)
        tabs.addTab(self._form(("Temperature", self.temperature), ("Top-k", self.top_k), ("Top-p", self.top_p),
                               ("Min-p", self.min_p), ("Repeat penalty", self.repeat_penalty), ("Seed", self.seed),
                               ("Max tokens per reply", self.max_tokens)), "Sampling")

        # Local server: the OpenAI-compatible API in this process, on the loaded model.
        self.server_enabled = QCheckBox("Serve the OpenAI-compatible API while the app runs")
        self.server_enabled.setChecked(s.server_enabled)
        self.server_host = QLineEdit(s.server_host)
        self.server_port = _spin(1, 65535, s.server_port)
        self.server_api_key = QLineEdit(s.server_api_key, placeholderText="none (anyone on this computer may call it)")
        self.server_api_key.setEchoMode(QLineEdit.EchoMode.PasswordEchoOnEdit)
        tabs.addTab(self._form(("", self.server_enabled), ("Host", self.server_host), ("Port", self.server_port),
                               ("API key", self.server_api_key)), "Local server")

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        box = QVBoxLayout(self)
        box.addWidget(tabs)
        box.addWidget(buttons)
        self.tabs = tabs

    @staticmethod
    def _form(*rows) -> QWidget:
        w = QWidget()
        form = QFormLayout(w)
        for label, field in rows:
            if isinstance(field, QHBoxLayout):
                form.addRow(label, field)
            elif label:
                form.addRow(label, field)
            else:
                form.addRow(field)
        return w

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Models folder", self.models_dir.text())
        if folder:
            self.models_dir.setText(folder)

    def values(self) -> AppSettings:
        """The settings as edited."""
        return replace(
            self._initial,
            theme=THEMES[self.theme.currentIndex()], models_dir=self.models_dir.text().strip(),
            system_prompt=self.system_prompt.toPlainText().strip(),
            n_threads=self.n_threads.value(), n_ctx=self.n_ctx.value(), n_parallel=self.n_parallel.value(),
            context_shift=self.context_shift.isChecked(),
            temperature=self.temperature.value(), top_k=self.top_k.value(), top_p=self.top_p.value(),
            min_p=self.min_p.value(), repeat_penalty=self.repeat_penalty.value(), seed=self.seed.value(),
            max_tokens=self.max_tokens.value(),
            server_enabled=self.server_enabled.isChecked(), server_host=self.server_host.text().strip() or "127.0.0.1",
            server_port=self.server_port.value(), server_api_key=self.server_api_key.text(),
        )
