"""The main window: conversations on the left, the chat in the centre, model and speed in the status bar.

All engine work goes through :class:`~gui.engine_worker.EngineWorker` on its own QThread, or, once a
model of a remote server is chosen (File > Remote servers), a :class:`~gui.remote_engine.RemoteEngine`
(its own daemon thread); the chat's state (open conversation, replies, send / regenerate / edit / stop)
is the widget-free :class:`~gui.chat_controller.ChatController`. This class builds the widgets and wires
them to both, so the event loop stays free while a model loads or a reply streams.
"""
from __future__ import annotations

import gc

import atexit
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt, QThread, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence, QTextCursor
from PySide6.QtWidgets import (QApplication, QDialog, QFileDialog, QHBoxLayout, QInputDialog, QLabel, QMainWindow,
                               QProgressBar, QPushButton, QSplitter, QStackedWidget, QVBoxLayout, QWidget)

from .banner import Banner
from .chat_controller import ChatController, context_label
from .chat_export import suggested_filename
from .model_library import ModelLibraryPage
from .server_panel import ServerPanel
from .chat_file_task import ChatFileTask
from .conversation_model import is_remote_path, model_to_offer
from .conversation_search import ConversationSearch
from .system_prompt_dialog import SystemPromptDialog
from .chat_view import ChatView
from .conversations import ConversationStore
from .engine_worker import EngineWorker, LoadedModel
from .input_box import InputBox
from .model_card import ModelCard
from .remote_engine import RemoteEngine, RemoteModel
from .remote_settings import RemoteEndpoint, RemoteEndpoints, RemoteServersDialog
from .remote_source import RemoteModelSource
from .server_control import ServerControl
from .settings import AppSettings, Settings
from .signals import emit
from .sidebar import Sidebar
from .theme import apply_theme
from .welcome import WelcomePage

SERVER_NOTICE = "server"  # the banner's tag for the local server's errors
# Engine threads of windows not shut down yet. A QThread destroyed while running aborts the process, so
# the threads are not children of their window and are stopped at exit if a window was never closed.
_live_threads: dict[QThread, EngineWorker] = {}


@atexit.register
def _stop_engine_threads() -> None:
    for thread, worker in list(_live_threads.items()):
        worker.cancel_all()
        thread.quit()
        thread.wait()
        worker.shutdown()
    _live_threads.clear()


class MainWindow(QMainWindow):
    """Fireside's window.

    Args:
        model_path: a ``.gguf`` to load at once (else the model of the last session, if any).
        settings: the settings store (default: :class:`Settings` on QSettings).
        store: the conversations (default: SQLite in the data dir).

    Signals (for tests and embedding): ``model_ready(LoadedModel | RemoteModel)``, ``model_failed(message)``,
    ``reply_finished(GenerationStats)``, ``reply_failed(message)``.

    Attributes: ``loaded`` is the model the chat uses (a local :class:`LoadedModel` or a
    :class:`RemoteModel`), ``local_loaded`` the model the local worker holds (the one the local server
    serves, kept while a remote model is in use), ``remote_source`` the remote models
    (:class:`RemoteModelSource`), ``remote`` its :class:`RemoteEngine` in use (None: the local worker
    answers).
    """

    model_ready = Signal(object)
    model_failed = Signal(str)
    reply_finished = Signal(object)
    reply_failed = Signal(str)

    def __init__(self, model_path: str | None = None, settings: Settings | None = None,
                 store: ConversationStore | None = None):
        super().__init__()
        self.setWindowTitle("Fireside")
        self.setAcceptDrops(True)
        # Delete the widgets in the GUI thread when closed, not whenever (and on whichever thread)
        # Python's cycle collector gets to the wrapper.
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.settings = settings or Settings()
        self.app_settings = self.settings.load()
        self.store = store or ConversationStore()
        self.loaded: LoadedModel | RemoteModel | None = None  # the model the chat uses
        self.local_loaded: LoadedModel | None = None  # the local worker's model (the local server's)
        self.loading: str | None = None  # a file path, or a remote model's "<API root>#<model>"
        self.remote_source = RemoteModelSource(RemoteEndpoints(self.settings.q), self)  # File > Remote servers
        self.library_dialog = self.server_panel_dialog = None  # File > Model library / Local server panel
        self.library = self.server_panel = None
        self.download_dialog = None  # the open "Download model" dialog (gui.download_dialog), if any
        self.system_prompt_dialog = None  # the Chat > System prompt dialog while open

        self.worker = EngineWorker()
        self.engine_thread = QThread()
        self.engine_thread.setObjectName("fireside-gui-worker")
        self.worker.moveToThread(self.engine_thread)
        _live_threads[self.engine_thread] = self.worker
        self.engine_thread.start()
        self.server = ServerControl(self.worker.engine)
        self.chat = ChatController(self.worker, self.store, lambda: self.app_settings, self)
        self._connect_worker()
        self._build_ui()
        self._build_menus()
        self._connect_chat()
        self._restore_window()

        convs = self.store.list()
        self._refresh_sidebar()
        if convs:
            self.open_conversation(convs[0].id)
        self._update_page()
        path = model_path or self.settings.last_model()
        if path:
            self.open_model(path)
        if self.app_settings.server_enabled:
            QTimer.singleShot(0, self._apply_server)

    # Construction --------------------------------------------------------------------------------

    def _connect_worker(self) -> None:
        w = self.worker
        w.load_progress.connect(self._on_load_progress)
        w.model_loaded.connect(self._on_model_loaded)
        w.load_failed.connect(self._on_load_failed)
        r = self.remote_source
        r.model_chosen.connect(self.use_remote_model)
        r.progress.connect(self._on_remote_progress)
        r.loaded.connect(self._on_model_loaded)
        r.failed.connect(self._on_remote_failed)

    def _connect_chat(self) -> None:
        """The views follow the chat controller."""
        c, view = self.chat, self.chat_view
        c.conversation_shown.connect(self._on_conversation_shown)
        c.conversations_changed.connect(self._refresh_sidebar)
        c.message_added.connect(view.add_message)
        c.messages_removed.connect(view.truncate)
        c.reply_started.connect(view.begin_stream)
        c.reply_resumed.connect(view.resume_stream)
        c.reply_started.connect(lambda _position: self.banner.withdraw(""))  # an old load error is past
        c.reply_text.connect(view.append_stream)
        c.reply_ended.connect(self._on_reply_ended)
        c.reply_failed.connect(self.reply_failed)
        c.busy_changed.connect(self._set_generating)
        c.status_changed.connect(self.status_speed.setText)
        c.context_changed.connect(self._set_context)
        c.notice.connect(self._on_notice)
        c.notice_withdrawn.connect(self.banner.withdraw)
        c.input_returned.connect(self._on_input_returned)

    def _build_ui(self) -> None:
        self.sidebar = Sidebar(self)
        self.sidebar.new_requested.connect(self.new_chat)
        self.sidebar.selected.connect(self.open_conversation)
        self.sidebar.renamed.connect(self._rename)
        self.sidebar.delete_requested.connect(self.delete_conversation)
        self.search = ConversationSearch(self.store, self)
        self.search.conversation_chosen.connect(self.open_conversation)
        self.chat_files = ChatFileTask(self.store.path, self)  # export / import off the GUI thread
        self.chat_files.imported.connect(self._on_chats_imported)
        self.chat_files.exported.connect(self._on_chat_exported)
        self.chat_files.failed.connect(self._on_chat_file_failed)
        left = QWidget(self)
        left_box = QVBoxLayout(left)
        left_box.setContentsMargins(0, 0, 0, 0)
        left_box.setSpacing(0)
        left_box.addWidget(self.search)
        left_box.addWidget(self.sidebar, 1)

        self.banner = Banner(self)
        self.load_label = QLabel(self)
        self.load_bar = QProgressBar(self, maximumWidth=220, textVisible=False)
        self.load_bar.setRange(0, 0)  # busy: load_model reports no progress
        load_row = QHBoxLayout()
        load_row.setContentsMargins(12, 4, 12, 4)
        load_row.addWidget(self.load_label, 1)
        load_row.addWidget(self.load_bar)
        self.load_strip = QWidget(self)
        self.load_strip.setLayout(load_row)
        self.load_strip.hide()

        self.welcome = WelcomePage(self)
        self.welcome.open_requested.connect(self.choose_model_file)
        self.welcome.download_requested.connect(self.open_download_dialog)
        self.welcome.model_chosen.connect(self.open_model)
        self.model_card = ModelCard(self)
        self.chat_view = ChatView(self)
        self.chat_view.edit_submitted.connect(self.edit_and_resend)
        self.chat_view.regenerate_requested.connect(self.regenerate)
        self.chat_view.continue_requested.connect(self.chat.continue_reply)
        self.input = InputBox(self)
        self.input.submitted.connect(self.send_message)
        self.send_button = QPushButton("Send", self)
        self.send_button.setMinimumWidth(80)
        self.send_button.clicked.connect(self._send_or_stop)
        input_row = QHBoxLayout()
        input_row.setContentsMargins(16, 4, 16, 12)
        input_row.addWidget(self.input, 1)
        input_row.addWidget(self.send_button, 0, Qt.AlignmentFlag.AlignBottom)
        chat_page = QWidget(self)
        chat_box = QVBoxLayout(chat_page)
        chat_box.setContentsMargins(0, 0, 0, 0)
        chat_box.setSpacing(0)
        chat_box.addWidget(self.model_card)
        chat_box.addWidget(self.chat_view, 1)
        chat_box.addLayout(input_row)
        self.chat_page = chat_page
        self.pages = QStackedWidget(self)
        self.pages.addWidget(self.welcome)
        self.pages.addWidget(chat_page)

        centre = QWidget(self)
        centre_box = QVBoxLayout(centre)
        centre_box.setContentsMargins(0, 0, 0, 0)
        centre_box.setSpacing(0)
        banner_row = QHBoxLayout()  # all-hidden layouts take no space, margins included
        banner_row.setContentsMargins(8, 8, 8, 0)
        banner_row.addWidget(self.banner)
        centre_box.addLayout(banner_row)
        centre_box.addWidget(self.load_strip)
        centre_box.addWidget(self.pages, 1)

        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.addWidget(left)
        self.splitter.addWidget(centre)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([240, 860])
        self.setCentralWidget(self.splitter)

        self.status_model = QLabel("No model", self)
        self.status_speed = QLabel("", self)
        self.status_context = QLabel("", self)
        self.status_server = QLabel("", self)
        for lbl in (self.status_model, self.status_speed, self.status_context, self.status_server):
            lbl.setContentsMargins(8, 0, 8, 0)
            self.statusBar().addPermanentWidget(lbl)
        self.welcome.refresh(self.settings.models_folder())
        self._show_no_model_card()

    def _build_menus(self) -> None:
        def action(menu, text, slot, shortcut=None):
            a = QAction(text, self)
            if shortcut is not None:
                a.setShortcut(QKeySequence(shortcut))
            a.triggered.connect(slot)
            menu.addAction(a)
            self.addAction(a)  # shortcuts work even with the menu bar hidden
            return a

        m = self.menuBar().addMenu("&File")
        self.new_action = action(m, "&New chat", self.new_chat, "Ctrl+N")
        action(m, "&Open model…", self.choose_model_file, "Ctrl+O")
        self.download_action = action(m, "&Download model…", self.open_download_dialog)
        self.library_action = action(m, "Model &library…", self.open_model_library, "Ctrl+M")
        self.remote_action = action(m, "&Remote servers…", self.open_remote_servers)
        self.recent_menu = m.addMenu("Recent models")
        m.addSeparator()
        action(m, "&Import chats…", self.import_chats)
        self.export_action = action(m, "&Export this chat…", self.export_chat)
        action(m, "Export &all chats…", self.export_all_chats)
        m.addSeparator()
        self.settings_action = action(m, "&Settings…", self.open_settings, "Ctrl+,")
        self.server_panel_action = action(m, "Local &server panel…", self.open_server_panel)
        m.addSeparator()
        action(m, "&Quit", self.close, "Ctrl+Q")
        m = self.menuBar().addMenu("&Chat")
        action(m, "Focus the input", self.focus_input, "Ctrl+L")
        action(m, "&Find chat", lambda: self.search.edit.setFocus(), "Ctrl+Shift+F")
        self.stop_action = action(m, "&Stop", self.stop, "Esc")
        self.regenerate_action = action(m, "&Regenerate", self.regenerate, "Ctrl+R")
        action(m, "System &prompt for this chat…", self.edit_system_prompt)
        self.thinking_action = action(m, "&Thinking", self._set_thinking)
        self.thinking_action.setCheckable(True)
        self.thinking_action.setChecked(self.chat.thinking)
        self.thinking_action.setToolTip("Let the model reason before it answers (its chat template reads "
                                        "enable_thinking)")
        self.thinking_action.setVisible(False)  # shown for models whose template has the switch
        m.addSeparator()
        action(m, "Rename chat", self.sidebar.rename_current, "F2")
        action(m, "Delete chat", lambda: self.sidebar.delete_current())
        self._refresh_recent()
        self._set_generating(False)

    def _restore_window(self) -> None:
        state = self.settings.window_state()
        if "geometry" not in state or not self.restoreGeometry(state["geometry"]):
            self.resize(1100, 720)
        if "state" in state:
            self.restoreState(state["state"])
        if "splitter" in state:
            self.splitter.restoreState(state["splitter"])

    # Models --------------------------------------------------------------------------------------

    def choose_model_file(self) -> None:
        """File > Open model: pick a .gguf and load it."""
        path, _ = QFileDialog.getOpenFileName(self, "Open a GGUF model", str(self.settings.models_folder()),
                                              "GGUF models (*.gguf);;All files (*)")
        if path:
            self.open_model(path)

    def open_model_library(self) -> None:
        """File > Model library: the installed models (size, type, support, memory at n_ctx) in a window of
        its own; Load opens one here, Delete asks first and never removes the loaded model."""
        if self.library_dialog is None:
            s = self.app_settings
            dlg = QDialog(self)
            dlg.setWindowTitle("Model library")
            dlg.resize(900, 480)
            self.library = ModelLibraryPage(dlg, n_ctx=s.n_ctx, n_parallel=s.n_parallel, n_threads=s.n_threads)
            self.library.load_requested.connect(self.open_model)
            self.library.load_requested.connect(lambda _p: dlg.hide())
            self.library.model_deleted.connect(lambda _p: self.welcome.refresh(self.settings.models_folder()))
            QVBoxLayout(dlg).addWidget(self.library)
            self.library_dialog = dlg
        from engine.paths import bundled_model_dirs
        s = self.app_settings
        self.library.set_context(s.n_ctx, s.n_parallel, s.n_threads)
        self.library.set_loaded(self.local_loaded.path if self.local_loaded else None,
                                self.loading if self.loading and not is_remote_path(self.loading) else None)
        self.library.refresh([self.settings.models_folder(), *bundled_model_dirs()])
        self.library_dialog.show()
        self.library_dialog.raise_()

    def open_server_panel(self) -> None:
        """File > Local server panel: the API's URL, its slots and the recent requests."""
        if self.server_panel_dialog is None:
            dlg = QDialog(self)
            dlg.setWindowTitle("Local server")
            dlg.resize(640, 420)
            self.server_panel = ServerPanel(self.server, dlg)
            QVBoxLayout(dlg).addWidget(self.server_panel)
            self.server_panel_dialog = dlg
        self.server_panel_dialog.show()
        self.server_panel_dialog.raise_()

    def open_download_dialog(self) -> None:
        """File > Download model: the Hugging Face download dialog (non-modal) on the models folder.

        A downloaded file is loaded as File > Open would (and so joins Recent models). A second call
        while the dialog is open brings that one to the front.
        """
        from .download_dialog import DownloadDialog  # huggingface_hub is imported only when asked for

        if self.download_dialog is None:
            dlg = DownloadDialog(self, models_dir=self.settings.models_folder())
            dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dlg.downloaded.connect(self._on_downloaded)
            dlg.finished.connect(self._on_download_dialog_closed)
            self.download_dialog = dlg
        self.download_dialog.show()
        self.download_dialog.raise_()
        self.download_dialog.activateWindow()

    def _on_downloaded(self, path: str) -> None:
        if self.engine_thread is None:  # closed meanwhile
            return
        self.welcome.refresh(self.settings.models_folder())  # the new file is in the models folder now
        self.open_model(path)

    def _on_download_dialog_closed(self, _result: int) -> None:
        self.download_dialog = None

    def open_model(self, path: str | Path) -> None:
        """Check and load ``path`` in the engine thread; a running reply is stopped first."""
        self.stop()
        self.banner.hide()
        self.remote_source.prefer_local()  # the latest choice wins: a remote model still being checked is dropped
        self.loading = str(path)
        self.load_label.setText(f"Loading {Path(path).name}…")
        self.load_strip.show()
        s = self.app_settings
        self.worker.load(path, s.n_ctx, s.n_threads, s.n_parallel, s.context_shift)
        self._update_page()

    def _on_load_progress(self, stage: str, step: int, n_steps: int) -> None:
        if self.engine_thread is None:  # closed: late events from the engine are dropped
            return
        if self.loading and is_remote_path(self.loading):  # a local load's late progress: not shown
            return
        name = Path(self.loading).name if self.loading else "the model"
        self.load_label.setText(f"Loading {name}: {stage} ({step}/{n_steps})…")

    def _on_model_loaded(self, loaded: LoadedModel | RemoteModel) -> None:
        """A model is ready: a local one from the worker, or a remote one whose engine is ``self.remote``
        (the remote source shuts the remote engine used before down after this call).

        The chat uses it from now on (a local model switches the chat back from a remote one, whose engine
        is shut down), except a local load finishing after a remote model was chosen: the worker keeps it
        (the local server serves it) and the remote model stays in use. Only local files join Recent
        models and the model restored at start.
        """
        if self.engine_thread is None:
            return
        remote = isinstance(loaded, RemoteModel)
        if not remote:
            self.local_loaded = loaded
            # The model's Python objects are long-lived: move them out of the collector's generations, so
            # a full collection (tens of ms holding the GIL on the engine thread) does not stall the window.
            gc.collect()
            gc.freeze()
            self.settings.add_recent_model(loaded.path)
            self.settings.set_last_model(loaded.path)
            self._refresh_recent()
            if self.remote_source.preferred:
                return
        self.loaded = loaded
        self.banner.withdraw("model-offer")
        if self.loading is None or _same_model(self.loading, loaded.path):  # else a newer load is under way
            self.loading = None
            self.load_strip.hide()
        if remote:
            self.model_card.show_message(loaded.title, f"A model of the server at {loaded.base_url}: the server "
                                                       f"sets its context size and chat template.")
            self.status_model.setText(loaded.title)
        else:
            self.model_card.show_model(loaded.info, loaded.n_ctx, loaded.template, loaded.name)
            self.status_model.setText(f"{loaded.name} ({loaded.info.quantization})")
        self.status_model.setToolTip(loaded.path)
        self.setWindowTitle(f"{_model_title(loaded)} – Fireside")
        self.thinking_action.setVisible(bool(loaded.thinking))
        old = None if remote else self.remote_source.release()
        self.chat.set_engine(self.remote if remote else self.worker, loaded)  # and counts the tokens again
        if old is not None:
            old.shutdown()
        self.chat_view.set_can_continue(self.chat.can_continue)
        self._update_page()
        self.focus_input()  # type at once: focus would be left on "+ New chat" when the welcome page goes
        if remote:
            self.statusBar().showMessage(f"Using {loaded.title} (checked in {loaded.load_s:.1f} s)", 5000)
        else:
            self.statusBar().showMessage(f"Loaded {Path(loaded.path).name} in {loaded.load_s:.1f} s", 5000)
        emit(self.model_ready, loaded)

    # Remote models ---------------------------------------------------------------------------------

    @property
    def remote(self) -> RemoteEngine | None:
        """The engine of the remote model in use (None: the local worker answers)."""
        return self.remote_source.engine

    @property
    def remote_dialog(self) -> RemoteServersDialog | None:
        """File > Remote servers, once opened."""
        return self.remote_source.dialog

    def open_remote_servers(self) -> None:
        """File > Remote servers: saved OpenAI-compatible servers (add, check, remove); "Use model" on one
        of a server's models makes the chat use it (:meth:`use_remote_model`)."""
        self.remote_source.open_dialog()

    def use_remote_model(self, endpoint: RemoteEndpoint, model_id: str) -> None:
        """Use the model ``model_id`` of the server ``endpoint`` for the chats (the slot of the Remote
        servers dialog's ``model_chosen``).

        A :class:`RemoteEngine` for the endpoint checks that the server lists the model, shown in the load
        strip like a local load; then the chat uses it (``model_ready``). On failure the banner says why and
        the previous model stays in use (``model_failed``). A running reply is stopped first.
        """
        if self.engine_thread is None:
            return
        self.stop()
        self.banner.hide()
        self.loading = self.remote_source.use(endpoint, model_id)
        where = endpoint.name or self.remote_source.checking.base_url
        self.load_label.setText(f"Connecting to {model_id} @ {where}…")
        self.load_strip.show()
        self._update_page()

    def _on_remote_progress(self, stage: str, step: int, n_steps: int) -> None:
        if self.engine_thread is None:
            return
        self.load_label.setText(f"Connecting to {_loading_name(self.loading or '')}: {stage} "
                                f"({step}/{n_steps})…")

    def _on_remote_failed(self, model_id: str, message: str) -> None:
        """The remote model being checked failed (the source dropped its engine): say why."""
        if self.engine_thread is None:
            return
        if self.loading is not None and is_remote_path(self.loading):
            self.loading = None
            self.load_strip.hide()
        self._on_load_failed(model_id, message)

    def _on_load_failed(self, path: str, message: str) -> None:
        if self.engine_thread is None:
            return
        if self.loading is None or _same_model(self.loading, path):
            self.loading = None
            self.load_strip.hide()
        if self.loaded is not None:
            message += f"\n{_model_title(self.loaded)} is still {_in_use(self.loaded)}."
        self.banner.show_message(message, "error")
        self._update_page()
        emit(self.model_failed, message)

    def _refresh_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent_models()
        for p in recent:
            a = self.recent_menu.addAction(Path(p).name)
            a.setToolTip(p)
            a.triggered.connect(lambda _=False, path=p: self.open_model(path))
        self.recent_menu.setEnabled(bool(recent))

    def _show_no_model_card(self) -> None:
        self.model_card.show_message("No model loaded", "Drop a .gguf file onto the window, or use File > Open "
                                     "model (Ctrl+O) or File > Download model.")

    def _set_thinking(self, on: bool) -> None:
        """Chat > Thinking: passed to the template as ``enable_thinking`` from the next reply on."""
        self.chat.thinking = bool(on)

    # Conversations -------------------------------------------------------------------------------

    @property
    def conv_id(self) -> int | None:
        """The open conversation's id (None: a new chat not saved yet); kept by the controller."""
        return self.chat.conv_id

    @property
    def pending(self):
        """The reply being generated in the open conversation (a :class:`PendingReply`), or None."""
        return self.chat.pending

    def new_chat(self) -> None:
        """Start a new conversation (saved when its first message is sent)."""
        self.chat.new_chat()
        self._update_page()
        self.focus_input()

    def open_conversation(self, conv_id: int) -> None:
        """Show a saved conversation; a reply being generated elsewhere is stopped (and saved)."""
        if self.chat.open_conversation(conv_id):
            self._update_page()
            self.banner.withdraw("model-offer")
            self._offer_model(conv_id)

    def delete_conversation(self, conv_id: int) -> None:
        """Delete a conversation (the sidebar asked first)."""
        self.chat.delete_conversation(conv_id)
        self._update_page()

    def _rename(self, conv_id: int, title: str) -> None:
        kept = self.chat.rename(conv_id, title)
        if kept is not None:
            self.sidebar.set_title(conv_id, kept)  # what the store holds ("Untitled" for a blank name)

    def edit_system_prompt(self) -> None:
        """Chat > System prompt: override the default system prompt for this conversation (for a new chat,
        kept until its first message saves it; Cancel changes nothing)."""
        dlg = SystemPromptDialog(self.chat.system_prompt(), self.settings, self)
        self.system_prompt_dialog = dlg
        try:
            if dlg.exec() == QDialog.DialogCode.Accepted:
                self.chat.set_system_prompt(dlg.text())
        finally:
            self.system_prompt_dialog = None
            dlg.deleteLater()

    # Export, import, the model a chat remembers ---------------------------------------------------

    def export_chat(self) -> None:
        """File > Export this chat: Markdown (``.md``) or Fireside's JSON, written off the GUI thread."""
        conv = self.store.get(self.chat.conv_id) if self.chat.conv_id is not None else None
        if conv is None or self.chat_files.busy():
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export chat", suggested_filename(conv.title, ".md"),
                                              "Markdown (*.md);;Fireside JSON (*.json)")
        if path:
            self.chat_files.export_one(conv.id, path)

    def export_all_chats(self) -> None:
        """File > Export all chats: one Fireside JSON archive."""
        path, _ = QFileDialog.getSaveFileName(self, "Export all chats", "Fireside chats.json",
                                              "Fireside JSON (*.json)")
        if path and not self.chat_files.busy():
            self.chat_files.export_all(path)

    def import_chats(self) -> None:
        """File > Import chats: a Fireside JSON export (one chat or an archive), checked whole first."""
        path, _ = QFileDialog.getOpenFileName(self, "Import chats", "", "Fireside JSON (*.json)")
        if path and not self.chat_files.busy():
            self.chat_files.import_file(path)

    def _on_chats_imported(self, ids: list) -> None:
        self._refresh_sidebar()
        if ids:
            self.open_conversation(ids[0])
        self.statusBar().showMessage(f"Imported {len(ids)} chat{'s' if len(ids) != 1 else ''}", 5000)

    def _on_chat_exported(self, path: str) -> None:
        self.statusBar().showMessage(f"Exported to {path}", 5000)

    def _on_chat_file_failed(self, message: str) -> None:
        self.banner.show_message(message, "error")

    def _offer_model(self, conv_id: int) -> None:
        """A reopened chat whose model is not the loaded one: offer to load it."""
        conv = self.store.get(conv_id)
        loaded = self.loaded.path if self.loaded is not None else None
        offer = model_to_offer(conv, loaded, self.settings.models_folder()) if conv is not None else None
        if offer is None:
            return
        action = (offer.button(), lambda p=offer.path: self.open_model(p)) if offer.path else None
        self.banner.show_message(offer.message(), "info", action=action, tag="model-offer")

    def _refresh_sidebar(self) -> None:
        self.sidebar.set_conversations(self.store.list(), self.chat.conv_id)

    def _on_conversation_shown(self, conv_id: int | None, messages) -> None:
        if messages:
            self.chat_view.set_messages(messages)
        else:
            self.chat_view.clear()
        if conv_id is None or self.sidebar.current_id() != conv_id:
            self._refresh_sidebar()

    # Chat turns ----------------------------------------------------------------------------------

    def send_message(self, text: str) -> None:
        """Send a user message and start the reply (Enter in the input box)."""
        if self.chat.send(text):
            self.input.clear()

    def regenerate(self) -> None:
        """Replace the last reply with a new one."""
        self.chat.regenerate()

    def edit_and_resend(self, position: int, text: str) -> None:
        """Replace the user message at ``position``, drop what followed it, and reply again."""
        self.chat.edit_and_resend(position, text)

    def stop(self) -> None:
        """Stop the reply being generated (Esc); the text so far is kept."""
        self.chat.stop()

    def _send_or_stop(self) -> None:
        if self.chat.busy:
            self.stop()
        else:
            self.send_message(self.input.toPlainText())

    def _on_reply_ended(self, text: str | None, stats) -> None:
        if text is not None:
            self.chat_view.end_stream(text, stats)
        else:
            self.chat_view.remove_last()
        emit(self.reply_finished, stats)

    def _on_notice(self, text: str, kind: str, tag: str, action) -> None:
        if action is not None:
            label, path = action
            action = (label, lambda: self.open_model(path))
        self.banner.show_message(text, kind, action=action, tag=tag)

    def _on_input_returned(self, text: str) -> None:
        """A refused message's text comes back to the input, before anything typed since."""
        typed = self.input.toPlainText()
        self.input.setPlainText(f"{text}\n\n{typed}" if typed.strip() else text)
        self.input.moveCursor(QTextCursor.MoveOperation.End)

    def _set_generating(self, on: bool) -> None:
        self.send_button.setText("Stop" if on else "Send")
        self.send_button.setToolTip("Stop (Esc)" if on else "Send (Enter)")
        self.stop_action.setEnabled(on)
        self.regenerate_action.setEnabled(not on)
        self.chat_view.set_busy(on)

    def _set_context(self, n_used: int, n_ctx: int) -> None:
        self.status_context.setText(context_label(n_used, n_ctx))

    def focus_input(self) -> None:
        """Ctrl+L: put the keyboard focus in the message input (when the chat page is shown)."""
        if self.pages.currentWidget() is self.chat_page:
            self.input.setFocus(Qt.FocusReason.OtherFocusReason)

    def _update_page(self) -> None:
        has_messages = bool(self.chat_view.messages)
        show_chat = self.loaded is not None or self.loading is not None or has_messages
        self.pages.setCurrentWidget(self.chat_page if show_chat else self.welcome)
        if self.loaded is None:
            self._show_no_model_card()
            if self.loading:
                self.model_card.title.setText(f"Loading {_loading_name(self.loading)}…")

    # Settings and server -------------------------------------------------------------------------

    def open_settings(self) -> None:
        """Ctrl+,: edit the settings; they apply when the dialog is accepted."""
        from .settings_dialog import SettingsDialog

        dlg = SettingsDialog(self.app_settings, self)
        if dlg.exec():
            self.apply_settings(dlg.values())

    def apply_settings(self, new: AppSettings) -> None:
        """Save and apply settings: theme, models folder, server, and a context rebuilt if needed."""
        old, self.app_settings = self.app_settings, new
        self.settings.save(new)
        if new.theme != old.theme:
            apply_theme(QApplication.instance(), new.theme)
        if new.models_dir != old.models_dir:
            self.welcome.refresh(self.settings.models_folder())
        engine_keys = ("n_ctx", "n_threads", "n_parallel", "context_shift")
        if isinstance(self.loaded, LoadedModel) and any(getattr(new, k) != getattr(old, k) for k in engine_keys):
            self.open_model(self.loaded.path)  # same file: only the Scheduler/context is rebuilt
        server_keys = ("server_enabled", "server_host", "server_port", "server_api_key")
        if any(getattr(new, k) != getattr(old, k) for k in server_keys):
            self._apply_server()

    def _apply_server(self) -> None:
        s = self.app_settings
        error = self.server.apply(s.server_enabled, s.server_host, s.server_port, s.server_api_key)
        if error:
            self.banner.show_message(error, "error", tag=SERVER_NOTICE)
            self.app_settings = replace(s, server_enabled=False)
            self.settings.save(self.app_settings)
        else:
            self.banner.withdraw(SERVER_NOTICE)  # started (or stopped on purpose): an old error no longer holds
        url = self.server.url
        self.status_server.setText(f"API: {url}/v1" if url else "")

    # Qt events -----------------------------------------------------------------------------------

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt's name
        if _dropped_file(event.mimeData()) is not None and _copy_drop(event):
            event.accept()

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        if _dropped_file(event.mimeData()) is not None and _copy_drop(event):
            event.accept()

    def dropEvent(self, event) -> None:  # noqa: N802
        path = _dropped_file(event.mimeData())
        if path is None or not _copy_drop(event):
            return
        event.accept()
        if Path(path).suffix.lower() != ".gguf":
            self._refuse_file(path)
        else:
            self.open_model(path)

    def _refuse_file(self, path: str) -> None:
        """A dropped file that is not a model: say so, and leave the model (and any reply) as they are."""
        p = Path(path)
        what = "a folder" if p.is_dir() else f"a {p.suffix} file" if p.suffix else "a file without extension"
        message = (f"{p.name} is {what}, not a GGUF model file (.gguf). Drop a .gguf file, or use File > Open "
                   f"model or File > Download model.")
        if self.loaded is not None:
            message += f"\n{_model_title(self.loaded)} is still {_in_use(self.loaded)}."
        self.banner.show_message(message, "error")
        emit(self.model_failed, message)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.settings.save_window_state(geometry=self.saveGeometry(), state=self.saveState(),
                                        splitter=self.splitter.saveState())
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop the server, the reply and the engine; safe to call twice."""
        if self.engine_thread is None:
            return
        if self.download_dialog is not None:  # stops its download and its worker thread
            self.download_dialog.reject()
        if self.library is not None:
            self.library.shutdown()
        self.server.stop()
        self.chat.close()  # saves the partial replies, as switching chats does
        self.remote_source.shutdown()  # its dialog (and check), a remote model being checked, the one in use
        self.worker.cancel_all()
        self.engine_thread.quit()
        self.engine_thread.wait()
        _live_threads.pop(self.engine_thread, None)
        self.engine_thread = None
        self.worker.shutdown()
        self.chat_files.wait(10)  # an export or import in flight finishes on its own connection
        self.store.close()


def _same_file(a: str | Path, b: str | Path) -> bool:
    return Path(a).expanduser().absolute() == Path(b).expanduser().absolute()


def _same_model(a: str, b: str) -> bool:
    """Two model paths name the same model: the same file, or the same remote "<API root>#<model>"."""
    if is_remote_path(a) or is_remote_path(b):
        return a == b
    return _same_file(a, b)


def _model_title(model: LoadedModel | RemoteModel) -> str:
    """How the window names a model: a file's stem, or ``"<model> @ <endpoint>"``."""
    return model.title if isinstance(model, RemoteModel) else model.name


def _in_use(model: LoadedModel | RemoteModel) -> str:
    return "in use" if isinstance(model, RemoteModel) else "loaded"


def _loading_name(path: str) -> str:
    """A model being loaded, for the load strip and the card: a file's name, or a remote model's id."""
    return path.rpartition("#")[2] if is_remote_path(path) else Path(path).name


def _copy_drop(event) -> bool:
    """Make a drag or drop event a Copy (else Link) and say whether the source offers one of them.

    A drag that offers only Move is refused: accepting it would tell the source (a file manager) that the
    file was moved here, which it may take as leave to delete the model file.
    """
    offered = event.possibleActions()
    for action in (Qt.DropAction.CopyAction, Qt.DropAction.LinkAction):
        if offered & action:
            event.setDropAction(action)
            return True
    return False


def _dropped_file(mime) -> str | None:
    """The first local file among dropped URLs, or None."""
    if mime is None or not mime.hasUrls():
        return None
    for url in mime.urls():
        if url.isLocalFile():
            return url.toLocalFile()
    return None
