"""gui.remote_engine / gui.remote_api against Fireside's own OpenAI-compatible server, started in-process
on a free port with the real SmolLM2 model and Scheduler: model list, a streamed reply equal to the
server's non-streamed one, a wrong key, an unknown model, no model loaded (503), an unreachable host,
Stop mid-stream (the server's job is cancelled), and malformed streams from a small real HTTP server."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is imported

import asyncio  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from pathlib import Path  # noqa: E402

import httpx  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from engine.sampling import SamplerParams  # noqa: E402
from conftest import recording_scheduler, serving  # noqa: E402
from gui import events, remote_api  # noqa: E402
from gui.events import ReplyFailure  # noqa: E402
from gui.remote_api import RemoteError, normalize_base_url  # noqa: E402
from gui.remote_engine import RemoteEngine, RemoteModel, RemoteStats  # noqa: E402
from qt_helpers import Recorder  # noqa: E402

API_KEY = "remote-test-key"
N_CTX = 512
TIMEOUT_MS = 120_000
GREEDY = SamplerParams(temperature=0.0, seed=1)
HELLO = [{"role": "user", "content": "Say hello in one short sentence."}]


class Events:
    """Recorders for every signal of one RemoteEngine."""

    def __init__(self, engine: RemoteEngine):
        for name in ("load_started", "model_loaded", "load_failed", "reply_started", "token", "finished",
                     "failed", "models_listed", "models_failed"):
            setattr(self, name, Recorder(getattr(engine, name)))

    def text(self, req_id: int) -> str:
        return "".join(piece for rid, piece in self.token.calls if rid == req_id)


@pytest.fixture(scope="module")
def served(smollm2):
    scheduler = recording_scheduler(smollm2, n_ctx=N_CTX, n_threads=2, max_queue=8, n_parallel=2)
    holder = [(smollm2, scheduler)]
    with serving(smollm2, scheduler, lambda: holder[0], api_key=API_KEY) as server:
        server.scheduler, server.holder = scheduler, holder
        yield server


@pytest.fixture(scope="module")
def model_id(smollm2) -> str:
    return Path(smollm2.path).stem


@pytest.fixture()
def make_engine():
    engines: list[RemoteEngine] = []

    def make(url: str, key: str = API_KEY) -> tuple[RemoteEngine, Events]:
        e = RemoteEngine(url, key, name="test")
        engines.append(e)
        return e, Events(e)

    yield make
    for e in engines:
        e.shutdown()


def _load(qtbot, engine: RemoteEngine, ev: Events, model: str) -> RemoteModel:
    engine.load(model, 0, 0, 1)
    qtbot.waitUntil(lambda: bool(ev.model_loaded.calls or ev.load_failed.calls), timeout=TIMEOUT_MS)
    assert not ev.load_failed.calls, ev.load_failed.calls
    return ev.model_loaded.calls[-1][0]


def _wait_end(qtbot, ev: Events, req_id: int) -> None:
    qtbot.waitUntil(lambda: bool(any(c[0] == req_id for c in ev.finished.calls + ev.failed.calls)), timeout=TIMEOUT_MS)


def _failure(ev: Events, req_id: int) -> str:
    """The message of the request's ``failed`` signal (a ReplyFailure, as EngineWorker's)."""
    assert not [c for c in ev.finished.calls if c[0] == req_id], "the reply finished instead of failing"
    failure = next(f for rid, f in ev.failed.calls if rid == req_id)
    assert isinstance(failure, ReplyFailure) and failure.reason == events.ERROR, failure
    return failure.message


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- addresses


@pytest.mark.parametrize("typed, root", [
    ("localhost:8080", "http://localhost:8080/v1"),
    ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/v1"),
    (" HTTP://127.0.0.1:8080/v1/ ", "http://127.0.0.1:8080/v1"),
    ("https://api.example.test/openai/v1", "https://api.example.test/openai/v1"),
])
def test_base_url_is_the_api_root(typed, root):
    assert normalize_base_url(typed) == root


@pytest.mark.parametrize("typed, says", [("", "Enter the server's address"), ("ftp://host", "not an http"),
                                          ("http://host:99999", "invalid port"), ("http://:80", "no host")])
def test_bad_base_url_is_refused_with_a_message(typed, says):
    with pytest.raises(RemoteError, match=says):
        normalize_base_url(typed)


def test_a_bad_address_fails_every_call_with_its_message(qtbot, make_engine):
    engine, ev = make_engine("ftp://nowhere")
    engine.load("some-model")
    engine.list_models()
    qtbot.waitUntil(lambda: bool(ev.load_failed.calls and ev.models_failed.calls), timeout=TIMEOUT_MS)
    assert ev.load_failed.calls[0][0] == "some-model" and "not an http" in ev.load_failed.calls[0][1]
    assert "not an http" in ev.models_failed.calls[0][0]


# ----------------------------------------------------------------------------- against fireside serve


def test_lists_the_served_model(qtbot, served, make_engine, model_id):
    engine, ev = make_engine(served.url)  # no /v1: added
    engine.list_models()
    qtbot.waitUntil(lambda: bool(ev.models_listed.calls or ev.models_failed.calls), timeout=TIMEOUT_MS)
    assert ev.models_listed.calls == [([model_id],)]
    loaded = _load(qtbot, engine, ev, model_id)
    assert (loaded.base_url, loaded.model, loaded.path) == (served.url + "/v1", model_id,
                                                             f"{served.url}/v1#{model_id}")
    assert engine.model == model_id and engine.engine() is None
    port = served.url.rsplit(":", 1)[1]
    assert loaded.title == f"{model_id} @ test" and loaded.n_ctx == 0 and not loaded.thinking
    assert replace(loaded, name="").title == f"{model_id} @ 127.0.0.1:{port}"  # no name: the host


def test_streamed_reply_equals_the_servers_own_answer(qtbot, served, make_engine, model_id):
    engine, ev = make_engine(served.url + "/v1/")
    _load(qtbot, engine, ev, model_id)
    # the window's arguments: template variables are the server's business (ignored)
    req = engine.generate(HELLO, GREEDY, 24, {"enable_thinking": True}, resume_last=False)
    _wait_end(qtbot, ev, req)
    assert not ev.failed.calls, ev.failed.calls
    (rid, stats), = ev.finished.calls
    assert rid == req and ev.reply_started.calls == [(req,)]
    body = remote_api.chat_body(model_id, HELLO, GREEDY, 24)
    body.update(stream=False)
    body.pop("stream_options")
    ref = httpx.post(served.url + "/v1/chat/completions", json=body, timeout=120,
                     headers={"Authorization": f"Bearer {API_KEY}"}).json()
    assert ev.text(req) == ref["choices"][0]["message"]["content"] != ""
    assert isinstance(stats, RemoteStats) and stats.text == ev.text(req)
    assert stats.finish_reason == ref["choices"][0]["finish_reason"]
    assert (stats.n_prompt, stats.n_generated) == (ref["usage"]["prompt_tokens"], ref["usage"]["completion_tokens"])
    assert stats.ttft_s == stats.prefill_s and stats.model == model_id


def test_wrong_key_is_a_clear_message(qtbot, served, make_engine, model_id):
    engine, ev = make_engine(served.url, key="not-the-key")
    engine.load(model_id)
    qtbot.waitUntil(lambda: bool(ev.load_failed.calls or ev.model_loaded.calls), timeout=TIMEOUT_MS)
    (name, msg), = ev.load_failed.calls
    assert name == model_id and "refused the API key (HTTP 401)" in msg and "not-the-key" not in msg
    engine.list_models()
    qtbot.waitUntil(lambda: bool(ev.models_failed.calls), timeout=TIMEOUT_MS)
    assert "refused the API key" in ev.models_failed.calls[0][0]
    # no key at all: the same
    nokey, ev2 = make_engine(served.url, key="")
    nokey.list_models()
    qtbot.waitUntil(lambda: bool(ev2.models_failed.calls), timeout=TIMEOUT_MS)
    assert "HTTP 401" in ev2.models_failed.calls[0][0]


def test_unknown_model_is_a_clear_message(qtbot, served, make_engine, model_id):
    engine, ev = make_engine(served.url)
    engine.load("no-such-model")
    qtbot.waitUntil(lambda: bool(ev.load_failed.calls), timeout=TIMEOUT_MS)
    msg = ev.load_failed.calls[0][1]
    assert "no model named 'no-such-model'" in msg and model_id in msg and engine.model is None
    req = engine.generate(HELLO, GREEDY, 8)  # nothing chosen yet
    _wait_end(qtbot, ev, req)
    assert "No remote model is chosen" in _failure(ev, req)

    # A model the server stopped serving after it was chosen: its 404 on the chat request.
    async def ask():
        async with remote_api.new_client() as client:
            body = remote_api.chat_body("no-such-model", HELLO, GREEDY, 8)
            return [x async for x in remote_api.stream_chat(client, served.url + "/v1", API_KEY, body)]

    with pytest.raises(RemoteError, match="has no model named 'no-such-model'") as info:
        asyncio.run(ask())
    assert info.value.status == 404 and info.value.code == "model_not_found"


def test_continue_is_refused_with_a_message(qtbot, served, make_engine, model_id):
    engine, ev = make_engine(served.url)
    _load(qtbot, engine, ev, model_id)
    assert engine.can_continue is False
    n_jobs = len(served.scheduler.jobs)
    req = engine.generate(HELLO + [{"role": "assistant", "content": "Hello"}], GREEDY, 8, resume_last=True)
    _wait_end(qtbot, ev, req)
    assert "Continue works with local models only" in _failure(ev, req)
    assert len(served.scheduler.jobs) == n_jobs and not ev.reply_started.calls  # nothing was sent


def test_no_model_loaded_is_503_busy(qtbot, served, make_engine, model_id):
    engine, ev = make_engine(served.url)
    _load(qtbot, engine, ev, model_id)
    saved = served.holder[0]
    served.holder[0] = None  # as when the window has no model open
    try:
        req = engine.generate(HELLO, GREEDY, 8)
        _wait_end(qtbot, ev, req)
    finally:
        served.holder[0] = saved
    msg = _failure(ev, req)
    assert "busy or has no model loaded (HTTP 503)" in msg and "No model is loaded" in msg


def test_unreachable_host_is_a_clear_message(qtbot, make_engine):
    engine, ev = make_engine(f"http://127.0.0.1:{_free_port()}")
    engine.list_models()
    qtbot.waitUntil(lambda: bool(ev.models_failed.calls), timeout=TIMEOUT_MS)
    assert ev.models_failed.calls[0][0].startswith("Could not reach http://127.0.0.1:")
    engine.load("x")
    qtbot.waitUntil(lambda: bool(ev.load_failed.calls), timeout=TIMEOUT_MS)
    assert "Could not reach" in ev.load_failed.calls[0][1]

    async def ask():  # a chat request to a server that went away
        async with remote_api.new_client() as client:
            body = remote_api.chat_body("x", HELLO, GREEDY, 8)
            return [x async for x in remote_api.stream_chat(client, engine.base_url, "", body)]

    with pytest.raises(RemoteError, match="^Could not reach http://127.0.0.1:") as info:
        asyncio.run(ask())
    assert info.value.status is None


def test_stop_mid_stream_closes_it_and_the_server_cancels(qtbot, served, make_engine, model_id):
    engine, ev = make_engine(served.url)
    _load(qtbot, engine, ev, model_id)
    n_jobs = len(served.scheduler.jobs)
    long_ask = [{"role": "user", "content": "Write a very long story about a dragon and a knight."}]
    req = engine.generate(long_ask, GREEDY, 400)
    qtbot.waitUntil(lambda: bool(len([c for c in ev.token.calls if c[0] == req]) >= 3), timeout=TIMEOUT_MS)
    engine.cancel(req)
    _wait_end(qtbot, ev, req)
    (rid, stats), = ev.finished.calls
    assert rid == req and stats.finish_reason == "cancelled" and stats.text.startswith(ev.text(req)[:10])
    job = served.scheduler.jobs[n_jobs]
    assert job.wait(30), "the server kept generating after the stream was closed"
    assert job.stats.finish_reason == "cancelled" and job.stats.n_generated < 400
    # The engine goes on: the next reply runs to its end.
    req2 = engine.generate(HELLO, GREEDY, 4)
    _wait_end(qtbot, ev, req2)
    assert [c[1].finish_reason for c in ev.finished.calls if c[0] == req2] == ["length"]


def test_cancel_before_it_starts(qtbot, served, make_engine, model_id):
    engine, ev = make_engine(served.url)
    _load(qtbot, engine, ev, model_id)
    req = engine.generate(HELLO, GREEDY, 400)
    engine.cancel(req)
    _wait_end(qtbot, ev, req)
    assert [c[1].finish_reason for c in ev.finished.calls] == ["cancelled"] and ev.text(req) == ""


# ----------------------------------------------------------------------------- broken servers


class _Broken(BaseHTTPRequestHandler):
    """A real HTTP server that answers /v1/chat/completions with a broken stream (chosen by the model id)."""

    STREAMS = {
        "bad-json": ("text/event-stream", b'data: {"choices": [{"delta": {"content": "Hi"}}]}\n\ndata: {oops\n\n'),
        "no-choices": ("text/event-stream", b'data: {"id": 1}\n\n'),
        "cut-short": ("text/event-stream", b'data: {"choices": [{"delta": {"content": "Hi"}}]}\n\n'),
        "error-event": ("text/event-stream",
                        b'data: {"choices": [{"delta": {"content": "Hi"}}]}\n\n'
                        b'data: {"error": {"message": "the engine fell over", "code": "x"}}\n\n'),
        "html": ("text/html", b"<html>a web page</html>"),
        "ok": ("text/event-stream", b': comment\n\nevent: x\ndata: {"choices": [{"delta": {"content": "A"}}]}\n\n'
                                    b'data:{"choices": [{"delta": {"content": "B"}, "finish_reason": "stop"}]}\n\n'
                                    b"data: [DONE]\n\n"),
    }

    def do_POST(self):  # noqa: N802 - http.server's name
        import json

        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        kind, payload = self.STREAMS[body["model"]]
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):  # noqa: N802
        payload = b'{"object": "list", "data": [' + b", ".join(
            b'{"id": "%s"}' % k.encode() for k in self.STREAMS) + b"]}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def broken_server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Broken)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("model, says", [
    ("bad-json", "malformed stream event (not JSON)"),
    ("no-choices", "malformed stream event (no choices)"),
    ("cut-short", "ended before it was complete"),
    ("error-event", "stopped the reply: the engine fell over"),
    ("html", "did not stream the reply"),
])
def test_malformed_streams_fail_with_a_message(qtbot, broken_server, make_engine, model, says):
    engine, ev = make_engine(broken_server, key="")
    _load(qtbot, engine, ev, model)
    req = engine.generate(HELLO, GREEDY, 8)
    _wait_end(qtbot, ev, req)
    assert says in _failure(ev, req)


def test_sse_comments_fields_and_no_space_after_colon(qtbot, broken_server, make_engine):
    engine, ev = make_engine(broken_server, key="")
    _load(qtbot, engine, ev, "ok")
    req = engine.generate(HELLO, GREEDY, 8)
    _wait_end(qtbot, ev, req)
    assert ev.text(req) == "AB" and ev.finished.calls[0][1].finish_reason == "stop"
    assert ev.finished.calls[0][1].n_generated == 2  # no usage chunk: the pieces counted


def test_shutdown_stops_the_thread(qtbot, make_engine):
    engine, ev = make_engine(f"http://127.0.0.1:{_free_port()}")
    engine.list_models()
    qtbot.waitUntil(lambda: bool(ev.models_failed.calls), timeout=TIMEOUT_MS)
    thread = engine._thread
    engine.shutdown()
    assert thread is not None and not thread.is_alive()


# ----------------------------------------------------------------------------- saved servers and their dialog


@pytest.fixture()
def data_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "data"
    monkeypatch.setenv("FIRESIDE_DATA_DIR", str(d))
    return d


def test_endpoints_live_in_the_app_settings_file(data_dir):
    from gui.remote_settings import RemoteEndpoint, RemoteEndpoints
    from gui.settings import AppSettings, Settings

    Settings().save(AppSettings(max_tokens=77))
    store = RemoteEndpoints()
    store.save(RemoteEndpoint("box", "http://10.0.0.2:8080", "k1"))
    store.save(RemoteEndpoint("lab", "lab.example.test:8000/v1"))
    store.save(RemoteEndpoint("box", "http://10.0.0.3:8080", "k2"))  # same name: replaced in place
    again = RemoteEndpoints()  # a fresh QSettings on the same file
    assert again.list() == [RemoteEndpoint("box", "http://10.0.0.3:8080", "k2"),
                            RemoteEndpoint("lab", "lab.example.test:8000/v1", "")]
    text = (data_dir / "settings.ini").read_text()
    assert "[remote]" in text and "[app]" in text
    assert Settings().load().max_tokens == 77  # the app's own settings are untouched
    assert again.remove("box") and not again.remove("box")
    assert [e.name for e in RemoteEndpoints().list()] == ["lab"]
    with pytest.raises(ValueError, match="not an http"):
        again.save(RemoteEndpoint("bad", "ftp://x"))
    with pytest.raises(ValueError, match="name"):
        again.save(RemoteEndpoint(" ", "http://x"))


def _dialog(qtbot):
    from gui.remote_settings import RemoteServersDialog

    dlg = RemoteServersDialog()
    qtbot.addWidget(dlg)
    dlg.show()
    return dlg


def _fill(qtbot, dlg, name: str, url: str, key: str) -> None:
    for field, text in ((dlg.name, name), (dlg.url, url), (dlg.api_key, key)):
        field.clear()
        qtbot.keyClicks(field, text)


def test_dialog_adds_checks_uses_and_removes_a_server(qtbot, data_dir, served, model_id):
    from gui.remote_settings import RemoteEndpoint, RemoteEndpoints

    dlg = _dialog(qtbot)
    assert dlg.servers.count() == 0
    _fill(qtbot, dlg, "local", served.url, API_KEY)
    qtbot.mouseClick(dlg.save_button, Qt.MouseButton.LeftButton)
    assert RemoteEndpoints().list() == [RemoteEndpoint("local", served.url, API_KEY)]
    assert [dlg.servers.item(i).text() for i in range(dlg.servers.count())] == ["local"]
    assert dlg.api_key.echoMode() == dlg.api_key.EchoMode.Password

    qtbot.mouseClick(dlg.check_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dlg.models.count() > 0 or "key" in dlg.status.text(), timeout=TIMEOUT_MS)
    assert [dlg.models.item(i).text() for i in range(dlg.models.count())] == [model_id]
    assert dlg.status.text() == "1 model on this server."
    with qtbot.waitSignal(dlg.model_chosen) as chosen:
        qtbot.mouseClick(dlg.use_button, Qt.MouseButton.LeftButton)
    assert chosen.args == [RemoteEndpoint("local", served.url, API_KEY), model_id]

    # A new dialog shows the saved server; selecting it fills the form; Remove forgets it.
    dlg2 = _dialog(qtbot)
    dlg2.servers.setCurrentRow(0)
    assert (dlg2.name.text(), dlg2.url.text(), dlg2.api_key.text()) == ("local", served.url, API_KEY)
    qtbot.mouseClick(dlg2.remove_button, Qt.MouseButton.LeftButton)
    assert dlg2.servers.count() == 0 and RemoteEndpoints().list() == [] and dlg2.status.text() == "Removed local."
    assert dlg2.url.text() == served.url  # what was typed stays, to save again after a slip


def test_dialog_check_with_a_wrong_key_and_bad_input_says_why(qtbot, data_dir, served):
    from gui.remote_settings import RemoteEndpoints

    dlg = _dialog(qtbot)
    _fill(qtbot, dlg, "local", served.url, "wrong")
    qtbot.mouseClick(dlg.check_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "API key" in dlg.status.text(), timeout=TIMEOUT_MS)
    assert "refused the API key (HTTP 401)" in dlg.status.text() and dlg.models.count() == 0
    assert dlg.check_button.isEnabled()

    _fill(qtbot, dlg, "", "http://127.0.0.1:8080", "")
    qtbot.mouseClick(dlg.save_button, Qt.MouseButton.LeftButton)
    assert dlg.status.text() == "Give the server a name" and RemoteEndpoints().list() == []
    _fill(qtbot, dlg, "x", "ftp://host", "")
    qtbot.mouseClick(dlg.save_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(dlg.check_button, Qt.MouseButton.LeftButton)
    assert "not an http" in dlg.status.text() and RemoteEndpoints().list() == []
    assert (dlg.name.text(), dlg.url.text()) == ("x", "ftp://host")  # nothing typed is lost
