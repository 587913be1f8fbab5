"""The system-prompt dialog: edit a prompt, fill it from a preset, save it as a preset or delete one.

Picking a preset replaces the editor's text as one undoable edit (Ctrl+Z brings back what was there), so
nothing typed is lost. Problems (no name, a built-in's name) show in a line in the dialog, not a popup.
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QLineEdit,
                               QPlainTextEdit, QPushButton, QVBoxLayout, QWidget)

from .prompt_presets import PresetError, PresetLibrary
from .settings import Settings
from .signals import emit

PICK_HINT = "Presets…"
NAME_ROLE = Qt.ItemDataRole.UserRole
BUILTIN_ROLE = Qt.ItemDataRole.UserRole + 1


class SystemPromptDialog(QDialog):
    """Edits one system prompt, with presets.

    Args:
        text: the prompt to start from.
        settings: where user presets are kept (saves and deletes are written at once, even on Cancel).
        parent: the parent widget.
        label: the line above the editor.

    Signals:
        presets_changed(): a preset was saved or deleted.

    After ``exec()`` returns Accepted, :meth:`text` is the prompt.
    """

    presets_changed = Signal()

    def __init__(self, text: str, settings: Settings, parent: QWidget | None = None,
                 label: str = "System prompt for this chat (empty: none):"):
        super().__init__(parent)
        self.setWindowTitle("System prompt")
        self.library = PresetLibrary(settings)
        self.presets = QComboBox(self)
        self.presets.activated.connect(self._preset_picked)
        self.delete_button = QPushButton("Delete preset", self)
        self.delete_button.clicked.connect(self.delete_preset)
        self.editor = QPlainTextEdit(self)
        self.editor.setPlainText(text)
        self.editor.setTabChangesFocus(True)
        self.name = QLineEdit(self)
        self.name.setPlaceholderText("Preset name")
        self.name.installEventFilter(self)
        self.save_button = QPushButton("Save as preset", self)
        self.save_button.setAutoDefault(False)
        self.save_button.clicked.connect(self.save_preset)
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)

        top = QHBoxLayout()
        top.addWidget(self.presets, 1)
        top.addWidget(self.delete_button)
        save_row = QHBoxLayout()
        save_row.addWidget(self.name, 1)
        save_row.addWidget(self.save_button)
        box = QVBoxLayout(self)
        box.addLayout(top)
        box.addWidget(QLabel(label, self))
        box.addWidget(self.editor, 1)
        box.addLayout(save_row)
        box.addWidget(self.message)
        box.addWidget(buttons)
        self.resize(520, 360)
        self._fill_presets()
        self.editor.setFocus()

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt's name
        """Enter in the name field saves a preset, and goes no further (it would press OK)."""
        if (obj is self.name and event.type() == QEvent.Type.KeyPress
                and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)):
            self.save_preset()
            return True
        return super().eventFilter(obj, event)

    def text(self) -> str:
        """The prompt in the editor, blanks around it stripped."""
        return self.editor.toPlainText().strip()

    def preset_names(self) -> list[str]:
        """The presets offered, in order (built-ins first)."""
        names = (self.presets.itemData(i, NAME_ROLE) for i in range(self.presets.count()))
        return [n for n in names if n]

    def _fill_presets(self, select: str | None = None) -> None:
        self.presets.clear()
        self.presets.addItem(PICK_HINT)
        builtin_done = False
        for p in self.library.all():
            if not p.builtin and not builtin_done:
                self.presets.insertSeparator(self.presets.count())
                builtin_done = True
            self.presets.addItem(p.name)
            self.presets.setItemData(self.presets.count() - 1, p.name, NAME_ROLE)
            self.presets.setItemData(self.presets.count() - 1, p.builtin, BUILTIN_ROLE)
            self.presets.setItemData(self.presets.count() - 1, p.text, Qt.ItemDataRole.ToolTipRole)
        index = self.presets.findData(select, NAME_ROLE) if select else 0
        self.presets.setCurrentIndex(max(index, 0))
        self._update_delete()

    def _update_delete(self) -> None:
        i = self.presets.currentIndex()
        user_preset = bool(self.presets.itemData(i, NAME_ROLE)) and not self.presets.itemData(i, BUILTIN_ROLE)
        self.delete_button.setEnabled(user_preset)

    def choose_preset(self, name: str) -> None:
        """Put preset ``name`` in the editor (as if picked from the list); an unknown name does nothing."""
        index = self.presets.findData(name, NAME_ROLE)
        if index >= 0:
            self.presets.setCurrentIndex(index)
            self._preset_picked(index)

    def _preset_picked(self, index: int) -> None:
        self._update_delete()
        preset = self.library.get(self.presets.itemData(index, NAME_ROLE) or "")
        if preset is None:
            return
        cursor = self.editor.textCursor()  # one undoable edit, unlike setPlainText
        cursor.select(QTextCursor.SelectionType.Document)
        cursor.insertText(preset.text)
        self.editor.setTextCursor(cursor)
        self.name.setText("" if preset.builtin else preset.name)
        self.message.setText(f"Preset \u201c{preset.name}\u201d put in the editor (Ctrl+Z undoes it).")

    def save_preset(self) -> None:
        """Save the editor's prompt as a preset named by the name field (errors show in the dialog)."""
        name = self.name.text()
        replacing = self.library.get(" ".join(name.split())) is not None
        try:
            preset = self.library.save(name, self.text())
        except PresetError as e:
            self.message.setText(str(e))
            return
        self._fill_presets(select=preset.name)
        self.message.setText(f"{'Replaced' if replacing else 'Saved'} preset \u201c{preset.name}\u201d.")
        emit(self.presets_changed)

    def delete_preset(self) -> None:
        """Delete the user preset chosen in the list (the editor's text stays)."""
        name = self.presets.currentData(NAME_ROLE)
        if not name:
            return
        try:
            self.library.delete(name)
        except PresetError as e:
            self.message.setText(str(e))
            return
        self._fill_presets()
        self.message.setText(f"Deleted preset \u201c{name}\u201d.")
        emit(self.presets_changed)
