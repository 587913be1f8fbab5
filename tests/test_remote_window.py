"""Remote models in the real window (offscreen Qt): Fireside's own OpenAI-compatible server, started
in-process on a free port with the real SmolLM2 model, is picked through File > Remote servers' signal; a
reply streams into the chat and is saved, the status bar names the model and the endpoint, Stop keeps the
partial reply, Continue is not offered, a server that is down gives a banner and keeps the model in use,
opening the local SmolLM2 file switches the chat back to the local worker (token counts again), the
conversation's remote model is never offered as a file, and closing the window leaves no remote thread.
"""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is imported

import socket  # noqa: E402
import threading  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import shiboken6  # noqa: E402
from PySide6.QtCore import QEvent, Qt  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from conftest import recording_scheduler, serving  # noqa: E402
from gui.engine_worker import LoadedModel  # noqa: E402
from gui.main_window import MainWindow  # noqa: E402
from gui.remote_engine import RemoteModel, RemoteStats  # noqa: E402
from gui.remote_settings import RemoteEndpoint  # noqa: E402
from gui.settings import AppSettings  # noqa: E402
from qt_helpers import Recorder, window_data_dir  # noqa: E402

API_KEY = "remote-window-key"
TIMEOUT_MS = 120_000
# Small and greedy: fast and the same each run.
TEST_SETTINGS = AppSettings(temperature=0.0, seed=1, max_tokens=12, n_ctx=512, n_threads=2)


@pytest.fixture()
def data_dir(tmp_path, monkeypatch) -> Path:
    return window_data_dir(tmp_path, monkeypatch, TEST_SETTINGS)


@pytest.fixture()
def window(qtbot, data_dir):
    """A main window on the test's data dir, closed (stopping its engines) at teardown."""
    w = MainWindow()
    w.show()
    qtbot.waitExposed(w)
    yield w
    if shiboken6.isValid(w):
        w.close()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


@pytest.fixture()
def served(smollm2):
    """``fireside serve`` in-process on a free port, with the real SmolLM2 model."""
    scheduler = recording_scheduler(smollm2, n_ctx=512, n_threads=2, max_queue=8, n_parallel=1)
    with serving(smollm2, scheduler, api_key=API_KEY) as server:
        server.scheduler = scheduler
        yield server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _choose(qtbot, w: MainWindow, endpoint: RemoteEndpoint, model_id: str, ok: bool = True):
    """"Use model" in File > Remote servers: the dialog's model_chosen, connected to the window's slot."""
    w.remote_action.trigger()
    assert w.remote_dialog.isVisible()
    with qtbot.waitSignal(w.model_ready if ok else w.model_failed, timeout=TIMEOUT_MS) as blocker:
        w.remote_dialog.model_chosen.emit(endpoint, model_id)
    assert not w.remote_dialog.isVisible()  # hidden once a model is chosen
    return blocker.args[0]


def _send(qtbot, w: MainWindow, text: str):
    """Type a message and press Enter; returns the reply's stats."""
    w.input.setPlainText(text)
    with qtbot.waitSignal(w.reply_finished, timeout=TIMEOUT_MS) as blocker:
        qtbot.keyClick(w.input, Qt.Key.Key_Return)
    return blocker.args[0]


def _stored(w: MainWindow) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in w.store.messages(w.conv_id)]


def _remote_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "fireside-remote" and t.is_alive()]


def test_remote_model_chat_stop_down_server_back_to_local(qtbot, window, served, smollm2_path):
    w = window
    model_id = smollm2_path.stem
    endpoint = RemoteEndpoint("Test server", served.url, API_KEY)

    # Pick the server's model: the chat uses a RemoteEngine; nothing is stored as a model file.
    model = _choose(qtbot, w, endpoint, model_id)
    assert isinstance(model, RemoteModel) and model.path == f"{served.url}/v1#{model_id}"
    assert w.loaded is model and w.chat.worker is w.remote and w.remote is not None
    assert w.status_model.text() == f"{model_id} @ Test server"
    assert w.windowTitle() == f"{model_id} @ Test server – Fireside"
    assert w.model_card.title.text() == f"{model_id} @ Test server" and served.url in w.model_card.text()
    assert not w.thinking_action.isVisible() and w.load_strip.isHidden()
    assert w.settings.recent_models() == [] and w.settings.last_model() is None
    assert w.pages.currentWidget() is w.chat_page

    # A reply streams from the server into the chat and is saved; no token count for a remote model.
    tokens = Recorder(w.remote.token)
    stats = _send(qtbot, w, "Say hello in one short sentence.")
    assert isinstance(stats, RemoteStats) and stats.model == model_id and stats.n_generated > 0
    reply = "".join(piece for _rid, piece in tokens.calls)
    assert reply and _stored(w) == [("user", "Say hello in one short sentence."), ("assistant", reply)]
    assert w.chat_view.messages[-1].text == reply
    assert w.store.get(w.conv_id).model_path == model.path
    assert w.status_context.text() == ""
    last = w.chat_view.messages[-1]
    assert last.footer.can_continue  # cut at max_tokens (12)...
    assert last.continue_button.isHidden()  # ...but Continue is for local models only
    n_stored = len(_stored(w))
    w.chat.continue_reply()  # refused, with a notice
    assert not w.chat.busy and "local models only" in w.banner.text() and len(_stored(w)) == n_stored

    # Stop mid-reply: the partial text is kept and saved.
    w.app_settings = replace(w.app_settings, max_tokens=300)
    w.input.setPlainText("Write a very long story about a dragon and a knight.")
    stop = Recorder(w.remote.token, lambda calls: len(calls) == 3 and w.stop())
    with qtbot.waitSignal(w.reply_finished, timeout=TIMEOUT_MS) as blocker:
        qtbot.keyClick(w.input, Qt.Key.Key_Return)
    stats = blocker.args[0]
    partial = "".join(piece for _rid, piece in stop.calls)
    assert stats.finish_reason == "cancelled" and partial.strip()
    assert _stored(w)[-1] == ("assistant", partial) and stats.n_generated < 300
    assert not w.chat.busy and w.send_button.text() == "Send"
    w.app_settings = replace(w.app_settings, max_tokens=12)

    # A server that is down: a banner, and the model in use stays (same engine, same status).
    engine = w.remote
    down = RemoteEndpoint("Down", f"http://127.0.0.1:{_free_port()}", "")
    message = _choose(qtbot, w, down, "some-model", ok=False)
    assert "Could not reach" in message and f"{model_id} @ Test server is still in use" in message
    assert w.banner.text() == message and w.load_strip.isHidden()
    assert w.loaded is model and w.remote is engine and w.chat.worker is engine
    assert w.status_model.text() == f"{model_id} @ Test server"
    stats = _send(qtbot, w, "And goodbye?")
    assert isinstance(stats, RemoteStats) and _stored(w)[-1][0] == "assistant"
    remote_conv = w.conv_id

    # Open the local file: the chat goes back to the local worker, the remote engine is shut down.
    with qtbot.waitSignal(w.model_ready, timeout=TIMEOUT_MS) as blocker:
        w.open_model(smollm2_path)
    local = blocker.args[0]
    assert isinstance(local, LoadedModel) and w.loaded is local and w.local_loaded is local
    assert w.remote is None and w.chat.worker is w.worker and engine._thread is None
    assert "Q4_1" in w.status_model.text() and w.windowTitle() == f"{model_id} – Fireside"
    (recent,) = w.settings.recent_models()
    assert Path(recent).samefile(smollm2_path)
    w.new_chat()
    stats = _send(qtbot, w, "Hello")
    assert not isinstance(stats, RemoteStats) and stats.n_prompt > 0
    assert w.status_context.text().startswith("Context ") and w.status_context.text().endswith("/ 512")
    assert w.chat.can_continue and w.chat_view._can_continue

    # The remote chat, reopened with the local model loaded: its model is not offered as a file to load.
    w.open_conversation(remote_conv)
    assert "This chat was with" not in w.banner.text()
    assert len(_stored(w)) == 6

    # A server that is down while the local model is in use: the local model stays.
    message = _choose(qtbot, w, down, "some-model", ok=False)
    assert f"{model_id} is still loaded" in message and w.loaded is local and w.chat.worker is w.worker

    # The latest choice wins: a local load that ends after a remote model was chosen is kept by the
    # worker (the local server's model) while the chat uses the remote model.
    worker_loaded = Recorder(w.worker.model_loaded)
    ready = Recorder(w.model_ready)
    w.open_model(smollm2_path)
    _choose(qtbot, w, endpoint, model_id)
    qtbot.waitUntil(lambda: bool(worker_loaded.calls), timeout=TIMEOUT_MS)
    qtbot.wait(100)
    assert [type(m) for (m,) in ready.calls] == [RemoteModel] and isinstance(w.loaded, RemoteModel)
    assert w.chat.worker is w.remote and w.local_loaded is worker_loaded.calls[0][0] and w.load_strip.isHidden()
    assert w.status_model.text() == f"{model_id} @ Test server" and w.status_context.text() == ""

    # Close the window while the remote model is in use: no remote engine thread is left.
    assert _remote_threads()
    w.close()
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert not _remote_threads()
