"""The model library page: the installed models with what they are, whether Fireside runs them and whether
they fit in memory at the current context size; Load and Delete.

Listing the folders and reading each file's header (:func:`engine.model_scan.scan_model`) run in
:class:`LibraryScanner`, a QObject on its own QThread, so a big folder never freezes the window: the rows
appear as the folder is listed, then fill in file by file. The memory column is arithmetic on the scanned
shapes (:mod:`engine.memory_fit`), redone in the GUI thread when the context setting changes.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, Signal, Slot
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QMessageBox, QPushButton,
                               QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from engine import memory_fit as mf
from engine.model_scan import ModelEntry, scan_model
from engine.paths import list_models

from .model_card import format_params, format_size
from .signals import emit

COLUMNS = ("Model", "Size", "Quantization", "Architecture", "Parameters", "Runs in Fireside", "Memory")
COL_NAME, COL_SIZE, COL_QUANT, COL_ARCH, COL_PARAMS, COL_RUNS, COL_MEMORY = range(len(COLUMNS))
_PATH_ROLE = Qt.ItemDataRole.UserRole + 1
_PENDING = "reading…"
_ERROR_COLOUR = QColor("#b3261e")
# Threads of pages closed while a scan was still reading a file: kept referenced until they end.
_orphans: set[QThread] = set()


def same_file(a: str | Path | None, b: str | Path | None) -> bool:
    """Whether two paths name the same file (either may be missing or None)."""
    if a is None or b is None:
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def model_files(folders: list[Path]) -> list[Path]:
    """The ``.gguf`` files of ``folders`` in order, a name found in an earlier folder hiding it in later
    ones (as :func:`engine.paths.list_models`); missing or unreadable folders are skipped."""
    seen: dict[str, Path] = {}
    for folder in folders:
        try:
            files = list_models(folder) if folder.is_dir() else []
        except OSError:
            continue
        for p in files:
            seen.setdefault(p.name, p)
    return list(seen.values())


class LibraryScanner(QObject):
    """Lists folders and reads the headers of their models in its own thread.

    Call :meth:`scan` through a queued signal; :meth:`stop_scans` directly (thread-safe).

    Signals:
        listed(generation, paths): the files found (``list[str]``), before any is read.
        scanned(generation, entry): one file's :class:`engine.model_scan.ModelEntry`.
        finished(generation): every file of that scan was read (not emitted for a superseded scan).
    """

    listed = Signal(int, object)
    scanned = Signal(int, object)
    finished = Signal(int)

    def __init__(self):
        super().__init__()
        self._latest = 0
        self._lock = threading.Lock()

    def supersede(self, generation: int) -> None:
        """Mark scans older than ``generation`` as stale: they stop at the next file (thread-safe)."""
        with self._lock:
            self._latest = max(self._latest, generation)

    def _stale(self, generation: int) -> bool:
        with self._lock:
            return generation < self._latest

    @Slot(int, object)
    def scan(self, generation: int, folders: list) -> None:
        """List ``folders`` (``list[Path]``) and scan each ``.gguf`` file, reporting as it goes."""
        if self._stale(generation):
            return
        paths = model_files([Path(f) for f in folders])
        emit(self.listed, generation, [str(p) for p in paths])
        for p in paths:
            if self._stale(generation):
                return
            try:
                entry = scan_model(p)
            except Exception as exc:  # never let an exception escape the worker thread
                entry = ModelEntry(p, 0, p.stem, error=f"{type(exc).__name__}: {exc}")
            emit(self.scanned, generation, entry)
        emit(self.finished, generation)


class ModelLibraryPage(QWidget):
    """The installed models as a table, with Load, Delete and Refresh.

    Args:
        parent: parent widget.
        n_ctx: context tokens per slot for the memory column (0 = each model's default, as the engine).
        n_parallel: slots (each keeps its own n_ctx of KV cache).
        n_threads: kernel threads (0 = all CPUs this process may use).

    Signals:
        load_requested(path): the user asked to load a model (Load, or a double-click on a usable row).
        model_deleted(path): a file was deleted (after the user confirmed).
        scan_finished(): every listed file has been read (tests and status bars wait on it).

    Call :meth:`refresh` with the folders to list, :meth:`set_context` when the context settings change,
    :meth:`set_loaded` with the models in use (loaded, being loaded: they cannot be deleted), and
    :meth:`shutdown` before the application ends (it stops the scanning thread).
    """

    load_requested = Signal(str)
    model_deleted = Signal(str)
    scan_finished = Signal()
    _scan_requested = Signal(int, object)

    def __init__(self, parent: QWidget | None = None, n_ctx: int = 0, n_parallel: int = 1, n_threads: int = 0):
        super().__init__(parent)
        self.setObjectName("modelLibrary")
        self.n_ctx, self.n_parallel, self.n_threads = int(n_ctx), max(1, int(n_parallel)), int(n_threads)
        self.in_use: list[str] = []  # the loaded model and one being loaded: never deleted
        self.entries: dict[str, ModelEntry] = {}
        self._items: dict[str, QTreeWidgetItem] = {}  # path as the scanner gave it -> its row
        self.folders: list[Path] = []
        self.confirm_box: QMessageBox | None = None
        self._generation = 0
        self._scanning = False

        title = QLabel("Model library", self)
        title.setObjectName("welcomeTitle")
        self.summary = QLabel(self)
        self.summary.setWordWrap(True)
        self.table = QTreeWidget(self)
        self.table.setHeaderLabels(list(COLUMNS))
        self.table.setRootIsDecorated(False)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setSortingEnabled(False)
        header = self.table.header()
        header.setStretchLastSection(False)
        for col in range(len(COLUMNS)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COL_RUNS, QHeaderView.ResizeMode.Stretch)  # long errors are elided (tooltip)
        self.details = QLabel(self)
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.load_button = QPushButton("Load", self)
        self.delete_button = QPushButton("Delete…", self)
        self.refresh_button = QPushButton("Refresh", self)

        buttons = QHBoxLayout()
        buttons.addWidget(self.refresh_button)
        buttons.addStretch(1)
        buttons.addWidget(self.delete_button)
        buttons.addWidget(self.load_button)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.details)
        layout.addWidget(self.status)
        layout.addLayout(buttons)

        self._thread = QThread()
        self._thread.setObjectName("fireside-library-scan")
        self._scanner = LibraryScanner()
        self._scanner.moveToThread(self._thread)
        self._thread.finished.connect(self._scanner.deleteLater)
        self._scan_requested.connect(self._scanner.scan)
        self._scanner.listed.connect(self._on_listed)
        self._scanner.scanned.connect(self._on_scanned)
        self._scanner.finished.connect(self._on_finished)
        self._thread.start()
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.itemDoubleClicked.connect(lambda *_: self.request_load())
        self.load_button.clicked.connect(self.request_load)
        self.delete_button.clicked.connect(self.ask_delete)
        self.refresh_button.clicked.connect(lambda: self.refresh())
        self._update_buttons()

    # -- inputs -------------------------------------------------------------------------------------------
    def refresh(self, folders: list[Path] | Path | None = None) -> None:
        """List ``folders`` (default: the last ones given) again, in the scanning thread.

        Args:
            folders: the models folder, or it followed by further folders (a packaged app's); a file name
                found in an earlier folder hides the same name in later ones.
        """
        if folders is not None:
            self.folders = [Path(folders)] if isinstance(folders, (str, Path)) else [Path(f) for f in folders]
        if self._thread is None:
            return  # shut down
        self._generation += 1
        self._scanner.supersede(self._generation)
        self._scanning = True
        self.entries.clear()
        self._items.clear()
        self.table.clear()
        self.status.setText("Reading the models folder…")
        self._update_summary()
        self._update_buttons()
        emit(self._scan_requested, self._generation, list(self.folders))

    def set_context(self, n_ctx: int, n_parallel: int = 1, n_threads: int = 0) -> None:
        """Show the memory estimate for ``n_ctx`` tokens per slot (0 = each model's default) and
        ``n_parallel`` slots; no file is read again."""
        self.n_ctx, self.n_parallel, self.n_threads = int(n_ctx), max(1, int(n_parallel)), int(n_threads)
        self._update_summary()
        available = mf.available_memory()
        for i in range(self.table.topLevelItemCount()):
            item = self.table.topLevelItem(i)
            entry = self.entries.get(item.data(0, _PATH_ROLE))
            if entry is not None:
                self._fill_memory(item, entry, available)
        self._update_details()

    def set_loaded(self, *paths: str | Path | None) -> None:
        """The models in use: the one the engine has loaded and one it is loading (None entries are
        ignored; no argument: none). They are marked "(loaded)" and cannot be deleted."""
        self.in_use = [str(p) for p in paths if p]
        for i in range(self.table.topLevelItemCount()):
            item = self.table.topLevelItem(i)
            self._mark_loaded(item)
        self._update_buttons()

    # -- table ----------------------------------------------------------------------------------------------
    def rows(self) -> list[list[str]]:
        """The table's text, row by row (for tests and accessibility tools)."""
        return [[self.table.topLevelItem(i).text(c) for c in range(len(COLUMNS))]
                for i in range(self.table.topLevelItemCount())]

    def item_for(self, path: str | Path) -> QTreeWidgetItem | None:
        """The row of a file, or None."""
        item = self._items.get(str(path))
        if item is not None:
            return item
        return next((it for key, it in self._items.items() if same_file(key, path)), None)

    def select(self, path: str | Path) -> bool:
        """Select a file's row; False if it is not listed."""
        item = self.item_for(path)
        if item is None:
            return False
        self.table.setCurrentItem(item)
        item.setSelected(True)
        return True

    def selected_path(self) -> str | None:
        """The selected row's file path (as listed), or None."""
        items = self.table.selectedItems()
        return items[0].data(0, _PATH_ROLE) if items else None

    def selected_entry(self) -> ModelEntry | None:
        """The selected file's scanned :class:`~engine.model_scan.ModelEntry`, or None (none selected, or
        not read yet)."""
        path = self.selected_path()
        return self.entries.get(path) if path else None

    def _in_use(self, path: str | Path | None) -> bool:
        return path is not None and any(same_file(path, p) for p in self.in_use)

    def _mark_loaded(self, item: QTreeWidgetItem) -> None:
        path = item.data(0, _PATH_ROLE)
        loaded = self._in_use(path)
        item.setText(COL_NAME, Path(path).name + ("  (loaded)" if loaded else ""))
        font = item.font(COL_NAME)
        font.setBold(loaded)
        item.setFont(COL_NAME, font)

    @Slot(int, object)
    def _on_listed(self, generation: int, paths: list) -> None:
        if generation != self._generation:
            return
        for p in paths:
            item = QTreeWidgetItem([Path(p).name] + [_PENDING] * (len(COLUMNS) - 1))
            item.setData(0, _PATH_ROLE, p)
            item.setToolTip(COL_NAME, p)
            item.setTextAlignment(COL_SIZE, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.addTopLevelItem(item)
            self._items[p] = item
            self._mark_loaded(item)
        if not paths:
            where = ", ".join(str(f) for f in self.folders) or "no folder"
            self.status.setText(f"No .gguf models in {where}. Download one or drop a file on the window.")
        else:
            self.status.setText(f"Reading {len(paths)} model file(s)…")
        self._update_buttons()

    @Slot(int, object)
    def _on_scanned(self, generation: int, entry: ModelEntry) -> None:
        if generation != self._generation:
            return
        key = str(entry.path)
        self.entries[key] = entry
        item = self.item_for(key)
        if item is None:
            return
        dash = "—"
        item.setText(COL_SIZE, format_size(entry.file_size) if entry.file_size else dash)
        item.setText(COL_QUANT, entry.quantization or dash)
        item.setText(COL_ARCH, entry.architecture or dash)
        item.setText(COL_PARAMS, format_params(entry.n_params) if entry.n_params else dash)
        if entry.error is not None:
            item.setText(COL_RUNS, f"Error: {entry.error}")
            item.setForeground(COL_RUNS, QBrush(_ERROR_COLOUR))
        elif entry.supported:
            item.setText(COL_RUNS, "Yes")
        else:
            item.setText(COL_RUNS, f"No: {entry.problem}")
            item.setForeground(COL_RUNS, QBrush(_ERROR_COLOUR))
        item.setToolTip(COL_RUNS, item.text(COL_RUNS))
        self._fill_memory(item, entry, mf.available_memory())
        self._update_buttons()
        self._update_details()

    @Slot(int)
    def _on_finished(self, generation: int) -> None:
        if generation != self._generation:
            return
        self._scanning = False
        n = len(self.entries)
        bad = sum(1 for e in self.entries.values() if e.error is not None)
        if n:
            self.status.setText(f"{n} model file(s)" + (f", {bad} unreadable" if bad else "") + ".")
        emit(self.scan_finished)

    def _fill_memory(self, item: QTreeWidgetItem, entry: ModelEntry, available: int) -> None:
        est = self.estimate(entry, available)
        if est is None:
            item.setText(COL_MEMORY, "—")
            item.setToolTip(COL_MEMORY, "")
            return
        item.setText(COL_MEMORY, est.short)
        item.setToolTip(COL_MEMORY, est.explanation)
        if est.fits is mf.Fit.NO:
            item.setForeground(COL_MEMORY, QBrush(_ERROR_COLOUR))
        else:
            item.setForeground(COL_MEMORY, self.table.palette().text())

    def estimate(self, entry: ModelEntry | None, available: int | None = None) -> mf.MemoryEstimate | None:
        """The memory estimate of a scanned file at the page's context settings, or None if unknown."""
        if entry is None or entry.shape is None:
            return None
        return mf.estimate(entry.shape, self.n_ctx, self.n_parallel, n_threads=self.n_threads or None,
                           available=available)

    def _update_summary(self) -> None:
        ctx = f"{self.n_ctx:,} tokens" if self.n_ctx else "each model's default"
        slots = f" × {self.n_parallel} slots" if self.n_parallel > 1 else ""
        where = ", ".join(str(f) for f in self.folders)
        self.summary.setText(f"Models in {where}. Memory is estimated for a context of {ctx}{slots} "
                             f"(Settings), against {mf.format_bytes(mf.available_memory())} available now.")

    def _update_details(self) -> None:
        entry = self.selected_entry()
        if entry is None:
            self.details.setText("")
            return
        parts = [str(entry.path)]
        if entry.error is not None:
            parts.append(f"This file cannot be read: {entry.error}")
        else:
            if entry.name != entry.path.stem:
                parts.insert(0, entry.name)
            if entry.n_ctx_train:
                parts.append(f"Trained context: {entry.n_ctx_train:,} tokens")
            if entry.problem:
                parts.append(f"Fireside cannot run it: {entry.problem}")
            est = self.estimate(entry)
            if est is not None:
                parts.append(est.explanation)
        self.details.setText("\n".join(parts))

    # -- actions --------------------------------------------------------------------------------------------
    @Slot()
    def _update_buttons(self) -> None:
        path = self.selected_path()
        entry = self.entries.get(path) if path else None
        loaded = self._in_use(path)
        self.load_button.setEnabled(entry is not None and entry.supported and not loaded)
        self.delete_button.setEnabled(path is not None and not loaded and self.confirm_box is None)
        self.delete_button.setToolTip("The loaded model cannot be deleted: load another one first." if loaded else "")
        self._update_details()

    @Slot()
    def request_load(self) -> None:
        """Emit ``load_requested`` for the selected model, if the engine runs it and it is not loaded."""
        entry = self.selected_entry()
        if entry is None or not entry.supported or self._in_use(entry.path):
            return
        emit(self.load_requested, str(entry.path))

    @Slot()
    def ask_delete(self) -> None:
        """Ask to confirm deleting the selected file (a window-modal box; the window keeps running)."""
        path = self.selected_path()
        if path is None or self.confirm_box is not None:
            return
        if self._in_use(path):
            self.status.setText(f"{Path(path).name} is loaded: load another model before deleting it.")
            return
        size = self.entries[path].file_size if path in self.entries else 0
        box = QMessageBox(QMessageBox.Icon.Warning, "Delete model",
                          f"Delete {Path(path).name}{f' ({format_size(size)})' if size else ''} from disk?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self)
        box.setInformativeText(f"{path}\nThe file is removed for good; download it again to get it back.")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.finished.connect(lambda result, p=path: self._on_confirm(p, result))
        self.confirm_box = box
        self._update_buttons()
        box.open()

    def _on_confirm(self, path: str, result: int) -> None:
        box, self.confirm_box = self.confirm_box, None
        if box is not None:
            box.deleteLater()
        self._update_buttons()
        if result != QMessageBox.StandardButton.Yes:
            self.status.setText("Nothing was deleted.")
            return
        self.delete(path)

    def delete(self, path: str | Path) -> bool:
        """Delete a model file now (no question asked; :meth:`ask_delete` asks first).

        Refuses the loaded model. A failure (permissions, already gone) is shown in the status line.

        Returns:
            True if the file was deleted.
        """
        path = str(path)
        if self._in_use(path):
            self.status.setText(f"{Path(path).name} is loaded: load another model before deleting it.")
            return False
        item = self.item_for(path)
        try:
            os.remove(path)
        except OSError as exc:
            self.status.setText(f"Could not delete {Path(path).name}: {exc.strerror or exc}")
            return False
        if item is not None:
            key = item.data(0, _PATH_ROLE)
            self.entries.pop(key, None)
            self._items.pop(key, None)
            self.table.takeTopLevelItem(self.table.indexOfTopLevelItem(item))
        self.status.setText(f"Deleted {Path(path).name}.")
        self._update_buttons()
        emit(self.model_deleted, path)
        return True

    # -- lifetime -------------------------------------------------------------------------------------------
    @Slot()
    def shutdown(self) -> None:
        """Stop the scanning thread (a file being read is finished first). Safe to call twice."""
        if self._thread is None:
            return
        self._scanner.supersede(self._generation + 1)
        thread, self._thread = self._thread, None
        thread.quit()
        if not thread.wait(2000):
            _orphans.add(thread)
            thread.finished.connect(lambda: _orphans.discard(thread))
