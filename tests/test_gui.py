"""The desktop app's real window (offscreen Qt) driven with the real SmolLM2 model: drop a file, chat,
stop, regenerate, edit, restart, bad files, a too-long prompt, event-loop latency, the local server, File >
Download model, and models placed next to a packaged app on the welcome page.

Every test uses a temporary data dir (conversations and an INI settings file there), so nothing touches
the user's own settings or chats.
"""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is imported

import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import shiboken6  # noqa: E402
from PySide6.QtCore import QEvent, QMimeData, QPointF, Qt, QTimer, QUrl  # noqa: E402
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QPalette, QTextCursor  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from conftest import MODELS_DIR  # noqa: E402
from gui.main_window import MainWindow  # noqa: E402
from gui.settings import AppSettings, Settings  # noqa: E402
from qt_helpers import Recorder, window_data_dir  # noqa: E402

LOAD_TIMEOUT_MS = 60_000
REPLY_TIMEOUT_MS = 120_000
# Small and greedy: fast and the same each run.
TEST_SETTINGS = AppSettings(temperature=0.0, seed=1, max_tokens=24, n_ctx=512, n_threads=2)


@pytest.fixture()
def data_dir(tmp_path, monkeypatch) -> Path:
    return window_data_dir(tmp_path, monkeypatch, TEST_SETTINGS)


@pytest.fixture()
def open_window(qtbot, data_dir):
    """Opens main windows on the test's data dir; closes them (stopping their engine) at teardown."""
    windows: list[MainWindow] = []

    def open_() -> MainWindow:
        w = MainWindow()
        windows.append(w)
        w.show()
        qtbot.waitExposed(w)
        return w

    yield open_
    for w in windows:
        if shiboken6.isValid(w):
            w.close()  # deletes it (WA_DeleteOnClose) once the event loop runs
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def drop_file(window: MainWindow, path: Path) -> None:
    """A real drag-enter + drop of a file URL, delivered to the window as Qt would."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    centre = window.rect().center()
    args = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    try:  # QPoint up to PySide6 6.11, QPointF from 6.12
        enter = QDragEnterEvent(centre, *args)
    except TypeError:
        enter = QDragEnterEvent(QPointF(centre), *args)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(centre), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)


def load_by_drop(qtbot, window: MainWindow, path: Path):
    with qtbot.waitSignal(window.model_ready, timeout=LOAD_TIMEOUT_MS) as blocker:
        drop_file(window, path)
    return blocker.args[0]


def type_and_send(qtbot, window: MainWindow, text: str):
    """Type into the input box and press Enter; returns (stats, token signals before finished)."""
    tokens = Recorder(window.worker.token)
    window.input.setPlainText(text)
    with qtbot.waitSignal(window.reply_finished, timeout=REPLY_TIMEOUT_MS) as blocker:
        qtbot.keyClick(window.input, Qt.Key.Key_Return)
    tokens.stop()
    return blocker.args[0], [piece for _rid, piece in tokens.calls]


def stored(window: MainWindow) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in window.store.messages(window.conv_id)]


def test_drop_chat_stop_regenerate_edit_restart(qtbot, open_window, smollm2_path):
    w = open_window()
    # First run, no model: the welcome page, offering the starter model from the models folder.
    assert w.pages.currentWidget() is w.welcome
    assert any(b.property("modelPath") == str(smollm2_path) for b in w.welcome.model_buttons)

    loaded = load_by_drop(qtbot, w, smollm2_path)
    assert loaded.n_ctx == 512 and loaded.n_threads == 2
    assert w.worker.engine()[1].n_parallel == 4  # the default: the window and 3 API clients at once
    card = w.model_card.text()
    for want in ("llama", "135M", "Q4_1", "94 MiB", "8,192", "present"):
        assert want in card, card
    assert w.pages.currentWidget() is w.chat_page
    assert "Q4_1" in w.status_model.text()

    # Shift+Enter adds a line; Enter sends.
    w.input.setPlainText("Hello")
    w.input.moveCursor(QTextCursor.MoveOperation.End)
    qtbot.keyClick(w.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert w.input.toPlainText() == "Hello\n" and w.pending is None
    stats, tokens = type_and_send(qtbot, w, "What is the capital of France? Answer in one sentence.")
    assert len(tokens) > 1 and stats.n_generated >= len(tokens)
    assert w.input.toPlainText() == ""
    reply = "".join(tokens)
    assert reply.strip() and w.chat_view.messages[-1].text == reply
    assert stored(w) == [("user", "What is the capital of France? Answer in one sentence."), ("assistant", reply)]
    assert "tokens/s" in w.status_speed.text()
    assert w.status_context.text() == f"Context {stats.n_prompt + stats.n_generated} / 512"
    assert w.sidebar.ids() == [w.conv_id]

    # Stop mid-reply with Esc after a few tokens: the partial reply is kept.
    w.apply_settings(replace(w.app_settings, max_tokens=200))
    def press_esc_at_third_token(calls):
        if len(calls) == 3:
            qtbot.keyClick(w, Qt.Key.Key_Escape)

    seen = Recorder(w.worker.token, press_esc_at_third_token)
    w.input.setPlainText("Tell me a long story about a fox.")
    with qtbot.waitSignal(w.reply_finished, timeout=REPLY_TIMEOUT_MS) as blocker:
        qtbot.keyClick(w.input, Qt.Key.Key_Return)
    seen.stop()
    stopped = blocker.args[0]
    assert stopped.finish_reason == "cancelled" and 3 <= stopped.n_generated < 200
    assert stored(w)[-1] == ("assistant", "".join(piece for _rid, piece in seen.calls))
    assert w.send_button.text() == "Send"

    # Regenerate the last reply: it is replaced, not appended.
    w.apply_settings(replace(w.app_settings, max_tokens=24))
    last = w.chat_view.messages[-1]
    assert last.regenerate_button.isVisible()
    with qtbot.waitSignal(w.reply_finished, timeout=REPLY_TIMEOUT_MS) as blocker:
        qtbot.mouseClick(last.regenerate_button, Qt.MouseButton.LeftButton)
    regen = blocker.args[0]
    assert regen.finish_reason in ("stop", "length") and regen.n_generated > 0
    msgs = stored(w)
    assert len(msgs) == 4 and msgs[-1] == ("assistant", regen.text) and len(w.chat_view.messages) == 4

    # Edit the second user message and resend: what followed it is replaced by the new reply.
    user2 = w.chat_view.messages[2]
    user2.edit_button.click()
    user2.editor.setPlainText("Name one colour.")
    with qtbot.waitSignal(w.reply_finished, timeout=REPLY_TIMEOUT_MS) as blocker:
        qtbot.mouseClick(user2.save_button, Qt.MouseButton.LeftButton)
    msgs = stored(w)
    assert msgs[2] == ("user", "Name one colour.") and msgs[3] == ("assistant", blocker.args[0].text)
    assert len(msgs) == 4

    # Restart: a new window on the same data dir restores the conversation, the model and the size.
    conv_id, before = w.conv_id, stored(w)
    w.resize(720, 520)  # inside the offscreen screen (800x600)
    w.close()
    w2 = open_window()
    qtbot.waitUntil(lambda: w2.loaded is not None, timeout=LOAD_TIMEOUT_MS)  # the last session's model
    assert w2.sidebar.ids() == [conv_id] and w2.conv_id == conv_id
    assert [(m.role, m.text) for m in w2.chat_view.messages] == before
    assert (w2.width(), w2.height()) == (720, 520)


def test_bad_files_keep_the_old_model(qtbot, open_window, smollm2_path, tmp_path):
    w = open_window()
    load_by_drop(qtbot, w, smollm2_path)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(smollm2_path.read_bytes()[: 20 * 2**20])
    text_file = tmp_path / "notes.txt"
    text_file.write_text("not a model")
    bert = tmp_path / "bert.gguf"
    _write_gguf(bert, "bert")
    for path, why in ((truncated, "truncated"), (text_file, "not a GGUF"), (bert, "unsupported architecture")):
        with qtbot.waitSignal(w.model_failed, timeout=LOAD_TIMEOUT_MS) as blocker:
            drop_file(w, path)
        message = blocker.args[0]
        assert path.name in message and why in message
        assert w.banner.text() == message and "still loaded" in message
        assert Path(w.loaded.path) == smollm2_path and "Q4_1" in w.status_model.text()
    # The old model still answers.
    stats, tokens = type_and_send(qtbot, w, "Say hello.")
    assert stats.n_generated > 0 and tokens


def test_prompt_longer_than_context_is_refused(qtbot, open_window, smollm2_path):
    w = open_window()
    starter = [b for b in w.welcome.model_buttons if b.property("modelPath") == str(smollm2_path)][0]
    with qtbot.waitSignal(w.model_ready, timeout=LOAD_TIMEOUT_MS):
        qtbot.mouseClick(starter, Qt.MouseButton.LeftButton)  # the welcome page's starter model
    assert [a.toolTip() for a in w.recent_menu.actions()] == [str(smollm2_path)]
    with qtbot.waitSignal(w.reply_failed, timeout=REPLY_TIMEOUT_MS) as blocker:
        w.send_message("lorem ipsum dolor " * 300)
    assert "does not fit the context window (512 tokens" in blocker.args[0]
    assert w.banner.text() == blocker.args[0]
    assert w.pending is None and w.send_button.text() == "Send" and w.chat_view.messages[-1].role == "user"
    # A new context size rebuilds the context on the same mapped model.
    model_before = w.worker.engine()[0]
    with qtbot.waitSignal(w.model_ready, timeout=LOAD_TIMEOUT_MS) as blocker:
        w.apply_settings(replace(w.app_settings, n_ctx=1024, n_parallel=2))
    assert blocker.args[0].n_ctx == 1024 and w.worker.engine()[0] is model_before
    assert w.worker.engine()[1].n_parallel == 2
    assert "using 1,024" in w.model_card.text()


def test_event_loop_stays_responsive_while_generating(qtbot, open_window, smollm2_path):
    """No stall a person would notice (a quarter of a second) while a reply of a second or more streams:
    generating on the GUI thread would leave one gap as long as the reply. (Not a speed target: 2 busy
    cores may delay a 10 ms timer by tens of ms, which is why the bound is not tighter.)"""
    w = open_window()
    w.apply_settings(replace(w.app_settings, max_tokens=200))
    load_by_drop(qtbot, w, smollm2_path)
    gaps: list[float] = []
    last = [0.0]

    def tick():
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer(w, interval=10)
    timer.timeout.connect(tick)
    tokens = Recorder(w.worker.token)
    w.input.setPlainText("Tell me a long story about a fox.")  # 200 tokens at temperature 0
    with qtbot.waitSignal(w.reply_finished, timeout=REPLY_TIMEOUT_MS) as blocker:
        qtbot.keyClick(w.input, Qt.Key.Key_Return)  # handled at once: the message is saved and submitted
        last[0] = start = time.perf_counter()  # measure from here, while the engine thread generates
        timer.start()
    timer.stop()
    wall_s = time.perf_counter() - start
    stats = blocker.args[0]
    worst_ms = max(gaps) * 1e3
    print(f"\nevent loop during a {stats.n_generated}-token reply ({wall_s:.2f} s): {len(gaps)} ticks, max gap "
          f"{worst_ms:.1f} ms")
    assert stats.n_generated > 100 and len(tokens.calls) > 100
    assert wall_s > 0.5, "the reply was too short to tell a stalled event loop from a free one"
    assert worst_ms < 250, f"the GUI event loop stalled for {worst_ms:.1f} ms while generating"


def test_switching_while_generating_stops_and_saves(qtbot, open_window, smollm2_path):
    w = open_window()
    # Greedy: a random seed could end the reply after a token or two, before the switch below.
    w.apply_settings(replace(w.app_settings, max_tokens=200, temperature=0.0, seed=1))
    load_by_drop(qtbot, w, smollm2_path)
    failed = Recorder(w.reply_failed)
    done = Recorder(w.reply_finished)
    w.send_message("Tell me a long story about a fox.")
    first_conv, req = w.conv_id, w.pending.req_id

    def streaming() -> bool:
        assert w.pending is not None, f"the reply ended early: failed {failed.calls}, finished {done.calls}"
        return len(w.pending.parts) >= 2
    qtbot.waitUntil(streaming, timeout=REPLY_TIMEOUT_MS)
    finished = Recorder(w.worker.finished)
    qtbot.keyClick(w, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)  # New chat
    assert w.conv_id is None and w.chat_view.messages == [] and w.pending is None
    qtbot.waitUntil(lambda: any(rid == req for rid, _ in finished.calls), timeout=REPLY_TIMEOUT_MS)
    stats = [st for rid, st in finished.calls if rid == req][0]
    assert stats.finish_reason == "cancelled"
    saved = w.store.messages(first_conv)
    assert saved[-1].role == "assistant" and saved[-1].content == stats.text != ""

    # Switching the model while a reply runs stops it cleanly first.
    w.open_conversation(first_conv)
    w.send_message("And now backwards.")
    qtbot.waitUntil(lambda: w.pending is not None and len(w.pending.parts) >= 1, timeout=REPLY_TIMEOUT_MS)
    events = []
    w.reply_finished.connect(lambda stats: events.append(("finished", stats.finish_reason)))
    w.model_ready.connect(lambda _loaded: events.append(("loaded", None)))
    with qtbot.waitSignal(w.model_ready, timeout=LOAD_TIMEOUT_MS):
        w.open_model(smollm2_path)
    assert events == [("finished", "cancelled"), ("loaded", None)]
    assert w.store.messages(first_conv)[-1].role == "assistant"

    # Rename in place, then delete, from the sidebar.
    item = w.sidebar.list.currentItem()
    item.setText("Counting")
    assert w.store.get(first_conv).title == "Counting"
    w.sidebar.delete_current(confirm=False)
    assert w.store.get(first_conv) is None and w.sidebar.ids() == [] and w.chat_view.messages == []


def test_theme_and_shortcuts(qtbot, open_window):
    w = open_window()
    app = QApplication.instance()
    w.apply_settings(replace(w.app_settings, theme="dark"))
    assert app.palette().color(QPalette.ColorRole.Window).lightness() < 80
    w.apply_settings(replace(w.app_settings, theme="light"))
    assert app.palette().color(QPalette.ColorRole.Window).lightness() > 180
    assert Settings().load().theme == "light"
    from gui.settings_dialog import SettingsDialog

    dlg = SettingsDialog(w.app_settings, w)
    dlg.temperature.setValue(0.3)
    dlg.seed.setValue(-1)
    dlg.server_port.setValue(9123)
    dlg.system_prompt.setPlainText("Be terse.")
    got = dlg.values()
    assert (got.temperature, got.seed, got.server_port, got.system_prompt) == (0.3, -1, 9123, "Be terse.")
    assert got.sampler_params().seed is None and got.n_ctx == 512
    shortcuts = {a.text(): a.shortcut().toString() for a in w.actions()}
    assert shortcuts["&New chat"] == "Ctrl+N" and shortcuts["&Settings…"] == "Ctrl+,"
    assert shortcuts["Focus the input"] == "Ctrl+L" and shortcuts["&Stop"] == "Esc"


def test_local_server_toggle_shares_the_window_model(qtbot, open_window, smollm2_path):
    import httpx

    w = open_window()
    load_by_drop(qtbot, w, smollm2_path)
    with socket.socket() as s:  # a free port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    w.apply_settings(replace(w.app_settings, server_enabled=True, server_port=port, server_api_key="k"))
    assert w.banner.text() == "" and w.status_server.text() == f"API: http://127.0.0.1:{port}/v1"
    r = httpx.get(f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": "Bearer k"}, timeout=30)
    assert r.status_code == 200 and r.json()["data"][0]["id"] == smollm2_path.stem
    body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "temperature": 0}
    r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body,
                   headers={"Authorization": "Bearer k"}, timeout=60)
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] > 0

    # A busy port is reported in the window and the toggle goes back off.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        w.apply_settings(replace(w.app_settings, server_port=busy.getsockname()[1]))
        assert "could not start" in w.banner.text() and not w.app_settings.server_enabled
    assert w.status_server.text() == ""
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5)


def _write_gguf(path: Path, arch: str) -> None:
    """A tiny, valid GGUF of an architecture Fireside does not run."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _file_action(window: MainWindow, text: str):
    """The File menu's action named ``text`` (as shown, without the & mnemonic)."""
    file_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&File")
    return next(a for a in file_menu.actions() if a.text().replace("&", "") == text)


def test_download_model_menu_opens_the_dialog_and_loads_its_file(qtbot, open_window, smollm2_path):
    from gui.download_dialog import DownloadDialog
    from gui.signals import emit

    w = open_window()
    assert w.findChild(DownloadDialog) is None
    _file_action(w, "Download model…").trigger()
    dlg = w.findChild(DownloadDialog)
    assert dlg is not None and dlg is w.download_dialog
    assert dlg.isVisible() and not dlg.isModal()
    assert dlg.models_dir == w.settings.models_folder() == MODELS_DIR
    # The welcome page's link brings the same dialog back rather than opening a second one.
    assert w.pages.currentWidget() is w.welcome
    qtbot.mouseClick(w.welcome.download_button, Qt.MouseButton.LeftButton)
    assert w.findChildren(DownloadDialog) == [dlg]

    # A finished download is loaded like File > Open, and joins Recent models.
    with qtbot.waitSignal(w.model_ready, timeout=LOAD_TIMEOUT_MS) as blocker:
        emit(dlg.downloaded, str(smollm2_path))
    assert Path(blocker.args[0].path) == smollm2_path and Path(w.loaded.path) == smollm2_path
    assert w.pages.currentWidget() is w.chat_page and "Q4_1" in w.status_model.text()
    assert [a.toolTip() for a in w.recent_menu.actions()] == [str(smollm2_path)]

    dlg.reject()  # closing it forgets it; the menu opens a fresh one
    assert w.download_dialog is None
    _file_action(w, "Download model…").trigger()
    assert w.download_dialog is not None and w.download_dialog is not dlg


def test_welcome_lists_models_next_to_the_packaged_app(qtbot, open_window, smollm2_path, tmp_path, monkeypatch):
    # A fake packaged app (what PyInstaller sets: sys.frozen, sys.executable) with two models beside it;
    # one has the name of a model in the models folder, which hides it.
    app = tmp_path / "Fireside"
    app.mkdir()
    beside = app / "Beside.gguf"
    beside.symlink_to(smollm2_path)
    (app / smollm2_path.name).symlink_to(smollm2_path)
    own = tmp_path / "own-models"
    own.mkdir()
    (own / smollm2_path.name).symlink_to(smollm2_path)
    Settings().save(replace(TEST_SETTINGS, models_dir=str(own)))
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(app / "Fireside"))

    w = open_window()
    listed = [b.property("modelPath") for b in w.welcome.model_buttons if b.property("modelPath")]
    assert listed == [str(own / smollm2_path.name), str(beside)]
    labels = [b.text() for b in w.welcome.model_buttons if b.property("modelPath") is None]
    assert labels == [f"Or load a model from {own}:", f"Models next to the app, in {app}:"]
    button = next(b for b in w.welcome.model_buttons if b.property("modelPath") == str(beside))
    with qtbot.waitSignal(w.model_ready, timeout=LOAD_TIMEOUT_MS) as blocker:
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert Path(blocker.args[0].path) == beside


def test_model_file_changed_on_disk_offers_reload(qtbot, open_window, smollm2_path, tmp_path):
    """A model file rewritten while loaded: the next reply is refused with one message, and the banner's
    Reload button maps the file again, after which replies work."""
    import shutil

    copy = tmp_path / "model.gguf"
    shutil.copyfile(smollm2_path, copy)
    w = open_window()
    load_by_drop(qtbot, w, copy)
    st = copy.stat()
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # as a copy over it would leave it
    with qtbot.waitSignal(w.reply_failed, timeout=REPLY_TIMEOUT_MS) as blocker:
        w.send_message("Say hello.")
    assert "changed on disk; reload it" in blocker.args[0]
    assert "changed on disk" in w.banner.text() and w.banner.action.isVisible()
    assert w.banner.action.text() == "Reload"
    model_before = w.worker.engine()[0]
    with qtbot.waitSignal(w.model_ready, timeout=LOAD_TIMEOUT_MS):
        qtbot.mouseClick(w.banner.action, Qt.MouseButton.LeftButton)
    assert w.worker.engine()[0] is not model_before  # mapped again, not the stale mapping reused
    stats, tokens = type_and_send(qtbot, w, "Say hello.")
    assert stats.n_generated > 0 and tokens


# Issue 15 (part A): focus, stale status, records, drops, model naming, a queued reply --------------------------


def _drag_enter(window: MainWindow, path: Path, actions) -> QDragEnterEvent:
    """A drag-enter of a file URL offering ``actions`` (a real drag from a file manager offers Move too)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    centre = window.rect().center()
    args = (actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    try:
        event = QDragEnterEvent(centre, *args)
    except TypeError:
        event = QDragEnterEvent(QPointF(centre), *args)
    QApplication.sendEvent(window, event)
    return event


def test_focus_is_in_the_input_after_a_model_loads(qtbot, open_window, smollm2_path):
    w = open_window()
    starter = next(b for b in w.welcome.model_buttons if b.property("modelPath") == str(smollm2_path))
    starter.setFocus()
    with qtbot.waitSignal(w.model_ready, timeout=LOAD_TIMEOUT_MS):
        qtbot.mouseClick(starter, Qt.MouseButton.LeftButton)  # a model on the welcome page
    assert w.focusWidget() is w.input
    qtbot.keyClicks(w.focusWidget(), "hello there")  # the first words typed land in the input...
    assert w.input.toPlainText() == "hello there" and w.store.list() == []  # ...and space starts no chat

    w.sidebar.new_button.setFocus()
    with qtbot.waitSignal(w.model_ready, timeout=LOAD_TIMEOUT_MS):
        w.open_model(smollm2_path)  # what File > Open does with the chosen file
    assert w.focusWidget() is w.input
    w.close()
    w2 = open_window()  # start-up with the last session's model
    qtbot.waitUntil(lambda: w2.loaded is not None, timeout=LOAD_TIMEOUT_MS)
    assert w2.focusWidget() is w2.input


def test_status_follows_the_open_chat(qtbot, open_window, smollm2_path):
    w = open_window()
    load_by_drop(qtbot, w, smollm2_path)
    stats, _ = type_and_send(qtbot, w, "Say hello.")
    first, used = w.conv_id, f"Context {stats.n_prompt + stats.n_generated} / 512"
    assert w.status_context.text() == used and "tokens/s" in w.status_speed.text()
    qtbot.keyClick(w, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert w.status_context.text() == "Context 0 / 512" and w.status_speed.text() == ""
    w.open_conversation(first)  # counted again in the worker thread
    qtbot.waitUntil(lambda: w.status_context.text() != "Context 0 / 512", timeout=REPLY_TIMEOUT_MS)
    n_saved = int(w.status_context.text().split()[1])
    assert 0 < n_saved <= stats.n_prompt + stats.n_generated + 2
    w.close()
    w2 = open_window()  # after a restart the saved chat's length is shown, not 0
    qtbot.waitUntil(lambda: w2.loaded is not None, timeout=LOAD_TIMEOUT_MS)
    qtbot.waitUntil(lambda: w2.status_context.text() == f"Context {n_saved} / 512", timeout=REPLY_TIMEOUT_MS)


def test_context_full_is_clamped_and_its_banner_goes_with_a_new_chat(qtbot, open_window, smollm2_path):
    Settings().save(replace(TEST_SETTINGS, n_ctx=128, max_tokens=-1))
    w = open_window()
    load_by_drop(qtbot, w, smollm2_path)
    stats, _ = type_and_send(qtbot, w, "Write a long story about a dragon.")
    assert stats.context_full and stats.n_prompt + stats.n_generated > 128  # the last token is never stored
    assert w.status_context.text() == "Context 128 / 128"
    assert "context window is full" in w.banner.text()
    qtbot.keyClick(w, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert w.banner.text() == ""


def test_server_error_banner_goes_once_the_server_starts(qtbot, open_window, smollm2_path):
    w = open_window()
    load_by_drop(qtbot, w, smollm2_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        w.apply_settings(replace(w.app_settings, server_enabled=True, server_port=busy.getsockname()[1]))
        assert "could not start" in w.banner.text()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    w.apply_settings(replace(w.app_settings, server_enabled=True, server_port=port))
    assert w.status_server.text() == f"API: http://127.0.0.1:{port}/v1" and w.banner.text() == ""


def test_records_system_prompt_rename_close_and_refused(qtbot, open_window, smollm2_path):
    from gui.conversations import ConversationStore

    w = open_window()
    load_by_drop(qtbot, w, smollm2_path)
    # Chat > System prompt on a new chat: Cancel saves nothing; OK is kept until the first message.
    QTimer.singleShot(0, lambda: w.system_prompt_dialog.reject())
    w.edit_system_prompt()
    assert w.store.list() == []
    def accept():
        w.system_prompt_dialog.editor.setPlainText("Answer in French.")
        w.system_prompt_dialog.accept()
    QTimer.singleShot(0, accept)
    w.edit_system_prompt()
    assert w.store.list() == []
    type_and_send(qtbot, w, "Say hello.")
    assert w.store.get(w.conv_id).system_prompt == "Answer in French."

    # A blank name: the row shows what the store holds.
    w.sidebar.list.currentItem().setText("   ")
    assert w.store.get(w.conv_id).title == "Untitled" and w.sidebar.list.currentItem().text() == "Untitled"

    # A message too long for the context is not saved, and its text goes back to the input.
    w.new_chat()
    long_text = "lorem ipsum dolor " * 300
    w.input.setPlainText(long_text)
    with qtbot.waitSignal(w.reply_failed, timeout=REPLY_TIMEOUT_MS):
        qtbot.keyClick(w.input, Qt.Key.Key_Return)
    assert len(w.store.list()) == 1 and w.conv_id is None
    assert w.input.toPlainText() == long_text.strip()

    # Closing the window (Ctrl+Q) during a reply saves the reply so far.
    w.apply_settings(replace(w.app_settings, max_tokens=200))
    w.input.setPlainText("Tell me a long story about a fox.")
    qtbot.keyClick(w.input, Qt.Key.Key_Return)
    conv = w.conv_id
    qtbot.waitUntil(lambda: w.pending is not None and len(w.pending.parts) >= 3, timeout=REPLY_TIMEOUT_MS)
    partial = w.pending.text
    _file_action(w, "Quit").trigger()  # File > Quit, Ctrl+Q
    assert w.engine_thread is None  # closed
    store = ConversationStore()
    saved = [(m.role, m.content) for m in store.messages(conv)]
    store.close()
    assert saved[0] == ("user", "Tell me a long story about a fox.")
    assert len(saved) == 2 and saved[1][0] == "assistant" and saved[1][1].startswith(partial) and partial.strip()


def test_drops_copy_never_move_and_refuse_other_files(qtbot, open_window, smollm2_path, tmp_path):
    w = open_window()
    assert not _drag_enter(w, smollm2_path, Qt.DropAction.MoveAction).isAccepted()
    enter = _drag_enter(w, smollm2_path, Qt.DropAction.MoveAction | Qt.DropAction.CopyAction)
    assert enter.isAccepted() and enter.dropAction() == Qt.DropAction.CopyAction
    link = _drag_enter(w, smollm2_path, Qt.DropAction.MoveAction | Qt.DropAction.LinkAction)
    assert link.isAccepted() and link.dropAction() == Qt.DropAction.LinkAction
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(smollm2_path))])
    move_only = QDropEvent(QPointF(w.rect().center()), Qt.DropAction.MoveAction, mime, Qt.MouseButton.LeftButton,
                           Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(w, move_only)
    assert not move_only.isAccepted() and w.loading is None

    load_by_drop(qtbot, w, smollm2_path)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    with qtbot.waitSignal(w.model_failed, timeout=1000) as blocker:
        drop_file(w, notes)
    assert w.loading is None and w.load_strip.isHidden()  # no load was tried
    assert "notes.txt is a .txt file, not a GGUF model file" in blocker.args[0]
    assert w.banner.text() == blocker.args[0] and "still loaded" in blocker.args[0]


def test_model_named_by_file_and_its_template_told(qtbot, open_window, smollm2_path, gemma3_path):
    w = open_window()
    load_by_drop(qtbot, w, smollm2_path)
    assert w.status_model.text() == f"{smollm2_path.stem} (Q4_1)"
    assert w.windowTitle() == f"{smollm2_path.stem} – Fireside" and w.model_card.title.text() == smollm2_path.stem
    assert "base model" not in w.model_card.text()
    load_by_drop(qtbot, w, gemma3_path)
    card = w.model_card.text()
    assert w.model_card.title.text() == gemma3_path.stem
    assert "built-in Gemma template" in card and "no chat template" not in card
    assert "probably a base model" in card and w.model_card.hint.isVisible()


def test_reply_queued_behind_an_api_request_says_so(qtbot, open_window, smollm2_path):
    from engine.sampling import SamplerParams
    from engine.scheduler import GenerationRequest

    Settings().save(replace(TEST_SETTINGS, n_parallel=1))
    w = open_window()
    load_by_drop(qtbot, w, smollm2_path)
    model, sched = w.worker.engine()
    # What a local server's client does: a request on the shared scheduler, holding its one slot.
    prompt = model.chat_template.encode(model.chat_template.render([{"role": "user", "content": "Count to 100."}]))
    holder = sched.submit(GenerationRequest(prompt, SamplerParams(temperature=0.0), max_tokens=400))
    qtbot.waitUntil(lambda: sched.n_running == 1, timeout=REPLY_TIMEOUT_MS)
    w.send_message("Say hello.")
    qtbot.waitUntil(lambda: w.status_speed.text().startswith("Waiting for a free slot"), timeout=REPLY_TIMEOUT_MS)
    with qtbot.waitSignal(w.reply_finished, timeout=REPLY_TIMEOUT_MS) as blocker:
        holder.cancel()
    assert blocker.args[0].n_generated > 0 and "tokens/s" in w.status_speed.text()


def test_thinking_toggle_only_for_templates_that_read_it(qtbot, open_window, smollm2_path):
    from gui.signals import emit

    w = open_window()
    loaded = load_by_drop(qtbot, w, smollm2_path)
    assert not loaded.thinking and not w.thinking_action.isVisible() and w.chat.template_variables() == {}
    # SmolLM2's template has no enable_thinking; the worker reports a template that has it this way
    # (gui/prompt.py's supports_thinking, tested on a real template in tests/test_chat_controller.py).
    with qtbot.waitSignal(w.model_ready, timeout=LOAD_TIMEOUT_MS):
        emit(w.worker.model_loaded, replace(loaded, thinking=True))
    assert w.thinking_action.isVisible() and w.thinking_action.isChecked()
    assert w.chat.template_variables() == {"enable_thinking": True}
    w.thinking_action.trigger()  # Chat > Thinking off
    assert w.chat.template_variables() == {"enable_thinking": False}
    stats, tokens = type_and_send(qtbot, w, "Say hello.")  # SmolLM2's template ignores the variable
    assert stats.n_generated > 0 and tokens


def test_search_export_import_and_the_model_a_chat_remembers(qtbot, open_window, smollm2_path, gemma3_path,
                                                            tmp_path):
    import json

    w = open_window()
    load_by_drop(qtbot, w, smollm2_path)
    type_and_send(qtbot, w, "Tell me about lighthouses.")
    first = w.conv_id
    assert w.store.get(first).model_path == str(smollm2_path)  # the chat remembers its model
    w.new_chat()
    type_and_send(qtbot, w, "Say hello.")
    # Search (Chat > Find chat): Enter opens the best match.
    w.search.edit.setText("lighthouses")
    qtbot.keyClick(w.search.edit, Qt.Key.Key_Return)
    assert w.conv_id == first
    # Export this chat as JSON and import it back: a new chat with the same messages, shown.
    out = tmp_path / "chat.json"
    with qtbot.waitSignal(w.chat_files.exported, timeout=10_000):
        w.chat_files.export_one(first, out)
    assert json.loads(out.read_text())["format"] == "fireside-chat"
    before = {c.id for c in w.store.list()}
    with qtbot.waitSignal(w.chat_files.imported, timeout=10_000):
        w.chat_files.import_file(out)
    qtbot.waitUntil(lambda: w.conv_id not in before)
    assert [(m.role, m.content) for m in w.store.messages(w.conv_id)] == \
        [(m.role, m.content) for m in w.store.messages(first)]
    # A bad file: a banner, nothing added.
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "fireside-chat", "version": 1, "messages": 3}')
    n = len(w.store.list())
    with qtbot.waitSignal(w.chat_files.failed, timeout=10_000):
        w.chat_files.import_file(bad)
    assert len(w.store.list()) == n and w.banner.text()
    # A chat made with another model offers to load it when reopened; the offer goes once it loads.
    w.store.set_model(first, str(gemma3_path))
    w.new_chat()
    w.open_conversation(first)
    assert gemma3_path.stem in w.banner.text() and w.banner.action.isVisible()
    with qtbot.waitSignal(w.model_ready, timeout=LOAD_TIMEOUT_MS):
        w.banner.action.click()
    assert Path(w.loaded.path) == gemma3_path and w.banner.text() == ""


def test_system_prompt_presets_from_the_chat_menu(qtbot, open_window, smollm2_path):
    w = open_window()
    load_by_drop(qtbot, w, smollm2_path)

    def pick_and_accept():
        d = w.system_prompt_dialog
        d.presets.setCurrentIndex(1)
        d.presets.activated.emit(1)
        assert d.text().strip()
        d.accept()
    QTimer.singleShot(0, pick_and_accept)
    w.edit_system_prompt()
    assert w.chat.system_prompt().strip()
    type_and_send(qtbot, w, "Hi.")
    assert w.store.get(w.conv_id).system_prompt == w.chat.system_prompt()


def test_model_library_and_server_panel_windows(qtbot, open_window, smollm2_path):
    w = open_window()
    load_by_drop(qtbot, w, smollm2_path)
    w.open_model_library()
    lib = w.library
    qtbot.waitUntil(lambda: any(smollm2_path.name in " ".join(r) for r in lib.rows()), timeout=30_000)
    with socket.socket() as s:  # a free port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    w.apply_settings(replace(w.app_settings, server_enabled=True, server_port=port))
    w.open_server_panel()
    assert w.server_panel_dialog.isVisible()
    qtbot.waitUntil(lambda: f"127.0.0.1:{port}" in w.server_panel.url_label.text(), timeout=10_000)
