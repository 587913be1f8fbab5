"""Export or import chat files off the GUI thread, so a big archive never freezes the window.

Each job opens its own :class:`gui.conversations.ConversationStore` on the same database file in a worker
thread (SQLite's WAL mode lets it read and write beside the window's connection) and reports back with
Qt signals. Connect them to methods of a QObject living in the GUI thread (the window's own slots, or
qtbot's blockers): those calls are queued to the GUI thread; a plain function would run in the worker.
"""
from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from . import chat_export
from .conversations import ConversationStore
from .signals import emit


class ChatFileTask(QObject):
    """Runs one export or import at a time in a worker thread.

    Args:
        db_path: the conversations database (``ConversationStore.path`` of the window's store).
        parent: the QObject that owns the task.

    Signals:
        exported(path): an export was written to ``path``.
        imported(ids): an import added the conversations with these ids (a list of int).
        failed(message): the job did nothing; ``message`` says why, for the user (a bad import file, an
            unwritable folder, a full disk).
    """

    exported = Signal(str)
    imported = Signal(list)
    failed = Signal(str)

    def __init__(self, db_path: str | Path, parent: QObject | None = None):
        super().__init__(parent)
        self.db_path = Path(db_path)
        self._thread: threading.Thread | None = None
        self._running = False

    def busy(self) -> bool:
        """Whether a job is running (False again by the time its result signal is emitted)."""
        return self._running

    def export_all(self, path: str | Path) -> None:
        """Write every conversation to ``path`` as one ``fireside-chats`` JSON file (see chat_export).

        Raises:
            RuntimeError: a job is already running.
        """
        self._start(self._export_all, Path(path))

    def export_one(self, conv_id: int, path: str | Path) -> None:
        """Write one conversation to ``path``: Markdown for a ``.md`` / ``.markdown`` name, else JSON.

        Raises:
            RuntimeError: a job is already running.
        """
        self._start(self._export_one, conv_id, Path(path))

    def import_file(self, path: str | Path) -> None:
        """Add the conversations of a Fireside JSON export at ``path`` as new conversations (all or none).

        Raises:
            RuntimeError: a job is already running.
        """
        self._start(self._import, Path(path))

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for the worker thread to end (for shutdown); True if it has."""
        if self._thread is not None:
            self._thread.join(timeout_s)
            return not self._thread.is_alive()
        return True

    def _start(self, target, *args) -> None:
        if self._running:
            raise RuntimeError("a chat export or import is already running")
        self._running = True
        self._thread = threading.Thread(target=self._run, args=(target, *args), name="fireside-chat-file",
                                        daemon=True)
        self._thread.start()

    def _run(self, target, *args) -> None:
        """In the worker: run ``target(store, *args)`` -> (signal, value), then report it once done."""
        store = None
        try:
            store = ConversationStore(self.db_path)
            signal, value = target(store, *args)
        except chat_export.ChatImportError as e:
            signal, value = self.failed, f"Nothing was imported: {e}"
        except LookupError as e:
            signal, value = self.failed, f"Nothing was exported: {e}"
        except OSError as e:
            signal, value = self.failed, f"Cannot write {args[-1].name}: {e.strerror or e}"
        except Exception as e:  # noqa: BLE001 - reported to the user (e.g. a locked database), never a traceback
            signal, value = self.failed, f"The chat file could not be handled: {e}"
        finally:
            if store is not None:
                store.close()
        self._running = False  # before the signal, so its receiver can start the next job
        emit(signal, value)

    def _export_all(self, store: ConversationStore, path: Path):
        chat_export.write_export(path, chat_export.archive_json(store))
        return self.exported, str(path)

    def _export_one(self, store: ConversationStore, conv_id: int, path: Path):
        if path.suffix.lower() in (".md", ".markdown"):
            text = chat_export.conversation_markdown(store, conv_id)
        else:
            text = chat_export.conversation_json(store, conv_id)
        chat_export.write_export(path, text)
        return self.exported, str(path)

    def _import(self, store: ConversationStore, path: Path):
        return self.imported, chat_export.import_file(store, path)
