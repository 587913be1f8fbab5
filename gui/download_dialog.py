"""The "Download model" dialog: search Hugging Face or pick a repository, choose one of its .gguf files,
see whether it would fit in memory, download it.

The network work runs in QObjects on their own QThreads (docs/STYLE.md 11): listing and downloading in
:class:`DownloadWorker`, searches in :class:`SearchWorker` (so a search answers while a download runs).
The dialog asks them through queued signals and hears back through signals; the workers never touch
widgets. Cancel is a ``threading.Event`` checked between chunks; the partial
file stays in the models folder and the next Download of the same file resumes it (HTTP Range).
All the download logic is :mod:`engine.download`.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, Signal, Slot
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDialog, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
                               QProgressBar, QPushButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget)

from gui.signals import emit

from engine import download as dl
from engine import memory_fit as mf
from engine.models import supported_architectures
from engine.paths import models_dir as default_models_dir

_PROGRESS_STEPS = 1000  # QProgressBar is int-based: show per-mille, not bytes (files pass 2 GiB)
_FILE_ROLE = Qt.ItemDataRole.UserRole + 1
_MATCH_ROLE = Qt.ItemDataRole.UserRole + 2  # a search result row: (repo_id, file path or None)
FILE_COLUMNS = ("File", "Quantization", "Size", "Memory (approx.)")
RESULT_COLUMNS = ("Repository", "Architecture", "Downloads", "Likes")
# Threads of closed dialogs whose worker is still inside a network call: kept referenced until they end.
_orphans: set[QThread] = set()


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 2**20:,.1f} MiB" if n < 2**30 else f"{n / 2**30:,.2f} GiB"


class DownloadWorker(QObject):
    """Lists and downloads in its own thread. Call the slots through queued signals; ``cancel`` directly.

    Signals:
        listed(repo_id, files): the repository's files, a ``list[engine.download.RemoteFile]``.
        progress(p): an :class:`engine.download.Progress` (download, then verify).
        done(path): the verified file.
        cancelled(): the download stopped on request; its partial file is kept.
        failed(message): one user-facing line.
    """

    listed = Signal(str, object)
    progress = Signal(object)
    done = Signal(str)
    cancelled = Signal()
    failed = Signal(str)

    def __init__(self, endpoint: str | None = None):
        super().__init__()
        self.endpoint = endpoint
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Stop the running download at the next chunk (thread-safe)."""
        self._cancel.set()

    @Slot(str)
    def list_files(self, repo_id: str) -> None:
        try:
            files = dl.list_gguf_files(repo_id, endpoint=self.endpoint)
        except dl.DownloadError as exc:
            emit(self.failed, str(exc))
        except Exception as exc:  # never let an exception escape the worker thread
            emit(self.failed, f"listing {repo_id} failed: {type(exc).__name__}: {exc}")
        else:
            emit(self.listed, repo_id, files)

    @Slot(str, str, str)
    def download(self, repo_id: str, filename: str, dest_dir: str) -> None:
        self._cancel.clear()
        last = [0.0, ""]  # time and phase of the last progress signal

        def report(p: dl.Progress) -> None:
            # At most ~20 signals a second (a fast link reads hundreds of chunks a second), plus every
            # phase change and the last chunk.
            now = time.monotonic()
            if now - last[0] >= 0.05 or p.phase != last[1] or p.done == p.total:
                last[0], last[1] = now, p.phase
                emit(self.progress, p)

        try:
            path = dl.download_gguf(repo_id, filename, dest_dir=dest_dir, endpoint=self.endpoint,
                                    on_progress=report, cancel=self._cancel)
        except dl.DownloadCancelled:
            emit(self.cancelled)
        except dl.DownloadError as exc:
            emit(self.failed, str(exc))
        except Exception as exc:
            emit(self.failed, f"downloading {filename} failed: {type(exc).__name__}: {exc}")
        else:
            emit(self.done, str(path))


class SearchWorker(QObject):
    """Searches the Hub in its own thread (:func:`engine.download.search_gguf_repos`).

    Signals:
        found(generation, query, matches): a ``list[engine.download.RepoMatch]``.
        failed(generation, message): one user-facing line.
    """

    found = Signal(int, str, object)
    failed = Signal(int, str)

    def __init__(self, endpoint: str | None = None):
        super().__init__()
        self.endpoint = endpoint

    @Slot(int, str)
    def search(self, generation: int, query: str) -> None:
        """Search for ``query``; answers ``found`` or ``failed`` tagged with ``generation``."""
        try:
            matches = dl.search_gguf_repos(query, endpoint=self.endpoint)
        except dl.DownloadError as exc:
            emit(self.failed, generation, str(exc))
        except Exception as exc:  # never let an exception escape the worker thread
            emit(self.failed, generation, f"searching for {query!r} failed: {type(exc).__name__}: {exc}")
        else:
            emit(self.found, generation, query, matches)


def _count(n: int | None) -> str:
    """A download or like count for a table: 1234567 -> "1.2M"."""
    if n is None:
        return ""
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    if n >= 1_000:
        return f"{n / 1e3:.1f}k"
    return str(n)


class DownloadDialog(QDialog):
    """Download a GGUF model from Hugging Face into the models folder.

    Args:
        parent: parent widget.
        models_dir: destination folder (default :func:`engine.paths.models_dir`).
        endpoint: hub URL (default ``HF_ENDPOINT`` or https://huggingface.co); tests point it at a local hub.
        n_ctx: context tokens per slot for the memory estimate (0 = the model's default, as the engine).
        n_parallel: slots (each keeps its own n_ctx of KV cache).

    Signals:
        downloaded(path): a model file was downloaded and verified; ``path`` is its location.
    """

    downloaded = Signal(str)
    _list_requested = Signal(str)
    _download_requested = Signal(str, str, str)
    _search_requested = Signal(int, str)

    def __init__(self, parent: QWidget | None = None, models_dir: str | Path | None = None,
                 endpoint: str | None = None, n_ctx: int = 0, n_parallel: int = 1):
        super().__init__(parent)
        self.setWindowTitle("Download model")
        self.resize(760, 620)
        self.models_dir = Path(models_dir) if models_dir is not None else default_models_dir()
        self.n_ctx, self.n_parallel = int(n_ctx), max(1, int(n_parallel))
        self._busy = False
        self._listed_repo: str | None = None
        self._searching = False
        self._search_generation = 0
        self._matches: dict[str, dl.RepoMatch] = {}  # repo id -> what the last search said about it
        self._wanted_file: tuple[str, str] | None = None  # (repo, file) picked in the search results

        self.search_box = QLineEdit()
        self.search_box.setPlaceholderText("Search Hugging Face for GGUF models, e.g. llama 1b instruct")
        self.search_button = QPushButton("Search")
        self.results = QTreeWidget()
        self.results.setHeaderLabels(list(RESULT_COLUMNS))
        self.results.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.results.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.results.setMaximumHeight(180)
        self.results.hide()  # until a search answers
        self.search_status = QLabel("")
        self.search_status.setWordWrap(True)

        self.repo = QComboBox(editable=True)
        self.repo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.repo.lineEdit().setPlaceholderText("owner/name, e.g. bartowski/Llama-3.2-1B-Instruct-GGUF")
        for m in dl.CURATED_MODELS:
            self.repo.addItem(m.repo_id, m.filename)
            self.repo.setItemData(self.repo.count() - 1, m.label, Qt.ItemDataRole.ToolTipRole)
        self.repo.setCurrentIndex(-1)
        self.list_button = QPushButton("List files")
        self.hint = QLabel("Suggested: small chat models that Fireside runs. Or type any repository id.")
        self.hint.setWordWrap(True)

        self.files = QTreeWidget()
        self.files.setHeaderLabels(list(FILE_COLUMNS))
        self.files.setRootIsDecorated(False)
        self.files.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.files.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.fit_label = QLabel("")
        self.fit_label.setWordWrap(True)

        self.progress = QProgressBar()
        self.progress.setRange(0, _PROGRESS_STEPS)
        self.progress.setValue(0)
        self.status = QLabel(f"Models folder: {self.models_dir}")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.download_button = QPushButton("Download")
        self.cancel_button = QPushButton("Cancel")
        self.close_button = QPushButton("Close")
        self.download_button.setDefault(True)

        search_row = QHBoxLayout()
        search_row.addWidget(QLabel("Search"))
        search_row.addWidget(self.search_box, 1)
        search_row.addWidget(self.search_button)
        top = QHBoxLayout()
        top.addWidget(QLabel("Repository"))
        top.addWidget(self.repo, 1)
        top.addWidget(self.list_button)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for b in (self.download_button, self.cancel_button, self.close_button):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addLayout(search_row)
        layout.addWidget(self.results)
        layout.addWidget(self.search_status)
        layout.addLayout(top)
        layout.addWidget(self.hint)
        layout.addWidget(self.files, 1)
        layout.addWidget(self.fit_label)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addLayout(buttons)

        self._thread = QThread()
        self._thread.setObjectName("fireside-download")
        self._worker = DownloadWorker(endpoint)
        self._worker.moveToThread(self._thread)
        self._thread.finished.connect(self._worker.deleteLater)
        self._list_requested.connect(self._worker.list_files)
        self._download_requested.connect(self._worker.download)
        self._worker.listed.connect(self._on_listed)
        self._worker.progress.connect(self._on_progress)
        self._worker.done.connect(self._on_done)
        self._worker.cancelled.connect(self._on_cancelled)
        self._worker.failed.connect(self._on_failed)
        self._thread.start()
        self._search_thread = QThread()
        self._search_thread.setObjectName("fireside-hub-search")
        self._searcher = SearchWorker(endpoint)
        self._searcher.moveToThread(self._search_thread)
        self._search_thread.finished.connect(self._searcher.deleteLater)
        self._search_requested.connect(self._searcher.search)
        self._searcher.found.connect(self._on_found)
        self._searcher.failed.connect(self._on_search_failed)
        self._search_thread.start()
        app = QCoreApplication.instance()
        if app is not None:  # the app quitting with the dialog open: stop the thread before Qt tears down
            app.aboutToQuit.connect(self._stop_worker)

        self.search_button.clicked.connect(self.search)
        self.search_box.returnPressed.connect(self.search)
        self.results.itemClicked.connect(self.choose_result)
        self.results.itemActivated.connect(self.choose_result)
        self.list_button.clicked.connect(self.list_files)
        self.repo.lineEdit().returnPressed.connect(self.list_files)
        self.repo.activated.connect(self._on_curated)
        self.files.itemSelectionChanged.connect(self._update_buttons)
        self.files.itemSelectionChanged.connect(self._update_fit)
        self.files.itemDoubleClicked.connect(lambda *_: self.start_download())
        self.download_button.clicked.connect(self.start_download)
        self.cancel_button.clicked.connect(self.cancel_download)
        self.close_button.clicked.connect(self.reject)
        self._update_buttons()

    # -- actions ---------------------------------------------------------------------------------------
    def repo_id(self) -> str:
        return self.repo.currentText().strip()

    @Slot()
    def list_files(self) -> None:
        """List the .gguf files of the repository in the field (in the worker thread)."""
        repo_id = self.repo_id()
        if not repo_id or self._busy:
            return
        self.files.clear()
        self._listed_repo = None
        self._set_busy(True, f"Listing the .gguf files of {repo_id}…")
        emit(self._list_requested, repo_id)

    @Slot()
    def search(self) -> None:
        """Search the Hub for GGUF repositories matching the search box (in the search thread)."""
        query = " ".join(self.search_box.text().split())
        if not query:
            self.search_status.setText('Type a few words to search for, e.g. "llama 1b instruct".')
            return
        if self._searching:
            return
        self._search_generation += 1
        self._searching = True
        self.search_button.setEnabled(False)
        self.search_status.setText(f"Searching Hugging Face for {query!r}…")
        emit(self._search_requested, self._search_generation, query)

    @Slot(QTreeWidgetItem, int)
    def choose_result(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        """A search result was picked: list that repository's files (selecting the file, if one was picked)."""
        repo_id, path = item.data(0, _MATCH_ROLE)
        if self._busy:
            self.status.setText("Wait for the current listing or download to end, or cancel it.")
            return
        self._wanted_file = (repo_id, path) if path else None
        self.repo.setEditText(repo_id)
        match = self._matches.get(repo_id)
        if match is not None and match.architecture:
            runs = match.architecture in supported_architectures()
            self.hint.setText(f"{repo_id}: {match.architecture} architecture"
                              + ("" if runs else ", which Fireside does not run"))
        self.list_files()

    @Slot()
    def start_download(self) -> None:
        """Download (or resume) the selected file."""
        f = self.selected_file()
        if f is None or self._busy or self._listed_repo is None:
            return
        self.progress.setValue(0)
        self._set_busy(True, f"Downloading {f.name} ({_size(f.size)})…")
        emit(self._download_requested, self._listed_repo, f.path, str(self.models_dir))

    @Slot()
    def cancel_download(self) -> None:
        """Stop the download; what arrived is kept for a resume."""
        self._worker.cancel()
        self.status.setText("Cancelling…")

    def selected_file(self) -> dl.RemoteFile | None:
        items = self.files.selectedItems()
        return items[0].data(0, _FILE_ROLE) if items else None

    # -- worker results ----------------------------------------------------------------------------------
    @Slot(int)
    def _on_curated(self, index: int) -> None:
        self.hint.setText(self.repo.itemData(index, Qt.ItemDataRole.ToolTipRole) or "")
        self.list_files()

    @Slot(int, str, object)
    def _on_found(self, generation: int, query: str, matches: list) -> None:
        if generation != self._search_generation:
            return
        self._searching = False
        self.search_button.setEnabled(True)
        self.results.clear()
        self._matches = {m.repo_id: m for m in matches}
        runs = set(supported_architectures())
        for m in matches:
            arch = m.architecture or "?"
            if m.architecture and m.architecture not in runs:
                arch += " (not supported)"
            top = QTreeWidgetItem([m.repo_id, arch, _count(m.downloads), _count(m.likes)])
            top.setData(0, _MATCH_ROLE, (m.repo_id, None))
            top.setToolTip(0, f"{len(m.gguf_files)} .gguf file(s): click to list them with their sizes")
            for name in m.gguf_files:
                child = QTreeWidgetItem([name, "", "", ""])
                child.setData(0, _MATCH_ROLE, (m.repo_id, name))
                top.addChild(child)
            self.results.addTopLevelItem(top)
        self.results.setVisible(bool(matches))
        if matches:
            self.search_status.setText(f"{len(matches)} repositor{'y' if len(matches) == 1 else 'ies'} "
                                       f"match {query!r}, most downloaded first: pick one (or one of its files) "
                                       f"to list its files with their sizes.")
        else:
            self.search_status.setText(f"No GGUF repository on Hugging Face matches {query!r}.")

    @Slot(int, str)
    def _on_search_failed(self, generation: int, message: str) -> None:
        if generation != self._search_generation:
            return
        self._searching = False
        self.search_button.setEnabled(True)
        self.search_status.setText(f"Search failed: {message}")

    def _estimate(self, repo_id: str | None, f: dl.RemoteFile, available: int | None = None) -> mf.MemoryEstimate:
        """The approximate memory a remote file needs at the dialog's context settings (from its size and
        quantization, and the parameter count / trained context the Hub reported, if any)."""
        match = self._matches.get(repo_id) if repo_id else None
        return mf.estimate_from_size(f.size, self.n_ctx, self.n_parallel, f.quant, available=available,
                                     n_params=match.n_params if match else None,
                                     n_ctx_train=match.context_length if match else None)

    @Slot()
    def _update_fit(self) -> None:
        f = self.selected_file()
        if f is None:
            self.fit_label.setText("")
            return
        est = self._estimate(self._listed_repo, f)
        self.fit_label.setText(f"Memory for {f.name} (approx., from the file size; the exact figure needs the "
                               f"file's header): {est.explanation}")

    @Slot(str, object)
    def _on_listed(self, repo_id: str, files: list) -> None:
        self._listed_repo = repo_id
        preferred = next((m.filename for m in dl.CURATED_MODELS if m.repo_id == repo_id), None)
        if self._wanted_file is not None and self._wanted_file[0] == repo_id:
            preferred = self._wanted_file[1]
        self._wanted_file = None
        default = dl.choose_default(files, preferred)
        available = mf.available_memory()
        for f in files:
            est = self._estimate(repo_id, f, available)
            item = QTreeWidgetItem([f.path, f.quant or "?", _size(f.size), est.short])
            item.setToolTip(3, est.explanation)
            item.setData(0, _FILE_ROLE, f)
            item.setTextAlignment(2, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.files.addTopLevelItem(item)
            if f is default:
                item.setSelected(True)
                self.files.scrollToItem(item)
        self._set_busy(False, f"{len(files)} file(s) in {repo_id}. Q4_K_M is a good balance of size and quality.")

    @Slot(object)
    def _on_progress(self, p: dl.Progress) -> None:
        if p.phase == "verify":  # the bar stays full while the sha256 is checked
            self.status.setText(f"Checking the file: {_size(p.done)} of {_size(p.total)}")
            return
        if p.total:
            self.progress.setValue(round(_PROGRESS_STEPS * p.done / p.total))
        self.status.setText(f"Downloading: {_size(p.done)} of {_size(p.total)}")

    @Slot(str)
    def _on_done(self, path: str) -> None:
        self.progress.setValue(_PROGRESS_STEPS)
        self._set_busy(False, f"Saved {Path(path).name} in {Path(path).parent}")
        emit(self.downloaded, path)

    @Slot()
    def _on_cancelled(self) -> None:
        f = self.selected_file()
        part = dl.partial_download(f.path, self.models_dir) if f else None
        kept = f"{_size(part[0])} kept; " if part else ""
        self._set_busy(False, f"Cancelled: {kept}Resume continues where it stopped.")

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self._set_busy(False, f"Error: {message}")

    # -- state -------------------------------------------------------------------------------------------
    def _set_busy(self, busy: bool, message: str) -> None:
        self._busy = busy
        self.status.setText(message)
        self._update_buttons()

    @Slot()
    def _update_buttons(self) -> None:
        f = self.selected_file()
        part = dl.partial_download(f.path, self.models_dir) if f is not None else None
        self.download_button.setText("Resume" if part else "Download")
        self.download_button.setEnabled(not self._busy and f is not None)
        self.cancel_button.setEnabled(self._busy)
        self.list_button.setEnabled(not self._busy)
        self.repo.setEnabled(not self._busy)

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt's name
        """Return in the search box searches (its returnPressed) and must not also press the default
        button, Download."""
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.search_box.hasFocus():
            event.accept()
            return
        super().keyPressEvent(event)

    def done(self, result: int) -> None:
        """Closing stops a running download (kept for a resume) and ends the worker thread."""
        self._stop_worker()
        super().done(result)

    @Slot()
    def _stop_worker(self) -> None:
        self._worker.cancel()
        for thread in (self._thread, self._search_thread):
            thread.quit()
            if not thread.wait(2000):
                # Still inside a network call (e.g. a listing retrying): let it finish on its own, referenced.
                _orphans.add(thread)
                thread.finished.connect(lambda t=thread: _orphans.discard(t))
