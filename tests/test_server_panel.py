"""The server panel and the request log behind it: real requests (httpx) against the in-process server with
the real SmolLM2 model and Scheduler, started by the window's ServerControl on a free port, appear in the
log (no keys, no bodies) and in the panel; the panel shows the API address (copy), and the slots."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is imported

import json  # noqa: E402

import httpx  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QGuiApplication  # noqa: E402

from engine.scheduler import Scheduler  # noqa: E402
from engine.server.request_log import RequestLog, RequestRecord  # noqa: E402
from gui.server_control import ServerControl  # noqa: E402
from gui.server_panel import REQUEST_COLUMNS, ServerPanel, format_duration  # noqa: E402

API_KEY = "panel-secret-key"
SECRET_TEXT = "my-private-words-42"
N_PARALLEL = 2
TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def control(smollm2):
    scheduler = Scheduler(smollm2, n_ctx=512, n_threads=2, max_queue=8, n_parallel=N_PARALLEL)
    holder = [(smollm2, scheduler)]
    ctl = ServerControl(lambda: holder[0])
    assert ctl.apply(True, "127.0.0.1", 0, API_KEY) is None
    ctl.scheduler, ctl.holder = scheduler, holder
    try:
        yield ctl
    finally:
        ctl.stop()
        scheduler.close()


@pytest.fixture()
def panel(qtbot, control):
    p = ServerPanel(control)
    qtbot.addWidget(p)
    return p


def _auth() -> dict:
    return {"Authorization": f"Bearer {API_KEY}"}


def _table_text(table) -> list[list[str]]:
    return [[table.item(r, c).text() for c in range(table.columnCount())] for r in range(table.rowCount())]


def _wait_logged(qtbot, log: RequestLog, total: int) -> None:
    # A response's last bytes can reach the client just before the middleware records it.
    qtbot.waitUntil(lambda: log.total >= total, timeout=TIMEOUT_MS)


def test_request_log_is_bounded_and_counts():
    log = RequestLog(max_records=3)
    v0 = log.version
    for i in range(5):
        log.add(RequestRecord(float(i), "GET", f"/p{i}", 200, 0.001, "127.0.0.1:1"))
    assert [r.path for r in log.recent()] == ["/p2", "/p3", "/p4"] and len(log) == 3 == log.max_records
    assert [r.path for r in log.recent(2)] == ["/p3", "/p4"] and log.recent(0) == []
    assert log.total == 5 and log.version == v0 + 5
    log.clear()
    assert log.recent() == [] and log.total == 5 and log.version == v0 + 6
    with pytest.raises(ValueError):
        RequestLog(0)


def test_requests_are_logged_without_keys_or_bodies_and_shown(qtbot, control, panel):
    log, url = control.request_log, control.url
    before = log.total
    with httpx.Client(base_url=url, timeout=120) as c:
        assert c.get("/health").status_code == 200
        assert c.get("/v1/models").status_code == 401
        assert c.get(f"/v1/models?api_key={API_KEY}", headers=_auth()).status_code == 200
        body = {"messages": [{"role": "user", "content": SECRET_TEXT}], "max_tokens": 3, "temperature": 0,
                "stream": True}
        with c.stream("POST", "/v1/chat/completions", json=body, headers=_auth()) as r:
            assert r.status_code == 200
            assert list(r.iter_lines())[-2:] == ["data: [DONE]", ""]
        big = json.dumps({"messages": [{"role": "user", "content": "x" * (2 << 20)}]})
        assert c.post("/v1/chat/completions", content=big, headers=_auth()).status_code == 413
        assert c.get("/nope").status_code == 404
    _wait_logged(qtbot, log, before + 6)
    got = log.recent()[-6:]
    assert [(r.method, r.path, r.status) for r in got] == [
        ("GET", "/health", 200), ("GET", "/v1/models", 401), ("GET", "/v1/models", 200),
        ("POST", "/v1/chat/completions", 200), ("POST", "/v1/chat/completions", 413), ("GET", "/nope", 404)]
    assert all(r.client.startswith("127.0.0.1:") and r.duration_s >= 0 for r in got)
    assert [r.time for r in got] == sorted(r.time for r in got)
    text = repr(log.recent())
    assert API_KEY not in text and SECRET_TEXT not in text and "xxxx" not in text

    panel.refresh()
    rows = _table_text(panel.requests_table)
    assert [panel.requests_table.horizontalHeaderItem(i).text() for i in range(len(REQUEST_COLUMNS))] == \
        list(REQUEST_COLUMNS)
    # newest first: time, method, path, status, duration, client
    assert [row[1:4] for row in rows[:6]] == [["GET", "/nope", "404"], ["POST", "/v1/chat/completions", "413"],
                                              ["POST", "/v1/chat/completions", "200"], ["GET", "/v1/models", "200"],
                                              ["GET", "/v1/models", "401"], ["GET", "/health", "200"]]
    assert rows[0][4] == format_duration(got[-1].duration_s) and rows[0][5] == got[-1].client
    assert all(API_KEY not in cell and SECRET_TEXT not in cell for row in rows for cell in row)


def test_a_shown_panel_refreshes_by_itself(qtbot, control, panel):
    panel.show()
    qtbot.waitExposed(panel)
    httpx.get(control.url + "/health/missing", timeout=30)
    qtbot.waitUntil(lambda: panel.requests_table.rowCount() > 0
                    and panel.requests_table.item(0, 2).text() == "/health/missing", timeout=TIMEOUT_MS)
    assert panel.requests_table.item(0, 3).text() == "404"


def test_panel_shows_the_url_and_copies_it(qtbot, control, panel):
    assert panel.url_label.text() == f"API: {control.url}/v1"
    QGuiApplication.clipboard().setText("")
    qtbot.mouseClick(panel.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == f"{control.url}/v1" and control.url.startswith("http://127.0.0.1:")


def test_panel_shows_the_slots_while_a_reply_streams(qtbot, control, panel):
    panel.refresh()
    rows = _table_text(panel.slots_table)
    assert [(row[0], row[1], row[3], row[4]) for row in rows] == [(str(i), "idle", "0", "0") for i in range(N_PARALLEL)]
    body = {"prompt": "Once upon a time, in a land far away,", "max_tokens": 300, "temperature": 0, "stream": True}
    with httpx.stream("POST", control.url + "/v1/completions", json=body, headers=_auth(), timeout=120) as r:
        chunks = 0
        for line in r.iter_lines():
            chunks += line.startswith("data: {")
            if chunks == 3:
                break
        panel.refresh()
        busy = [row for row in _table_text(panel.slots_table) if row[1] != "idle"]
        assert len(busy) == 1 and busy[0][1] == "generating" and int(busy[0][3]) > 0 and int(busy[0][4]) >= 2
    # leaving the stream cancels the job: the slot goes idle, keeping its cache
    qtbot.waitUntil(lambda: not control.scheduler.busy, timeout=TIMEOUT_MS)
    panel.refresh()
    assert all(row[1] == "idle" for row in _table_text(panel.slots_table))
    assert any(int(row[2]) > 0 for row in _table_text(panel.slots_table))


def test_panel_with_the_server_off_and_a_log_kept_across_restarts(qtbot, smollm2, control, panel):
    control.stop()
    try:
        panel.refresh()
        assert "server is off" in panel.url_label.text() and not panel.copy_button.isEnabled()
        assert panel.requests_table.rowCount() > 0  # the earlier requests stay listed
        control.holder[0] = None  # no model loaded: no slots
        panel.refresh()
        assert panel.slots_table.rowCount() == 0
    finally:
        control.holder[0] = (smollm2, control.scheduler)
        assert control.apply(True, "127.0.0.1", 0, API_KEY) is None
    n = control.request_log.total
    httpx.get(control.url + "/health", timeout=30)
    _wait_logged(qtbot, control.request_log, n + 1)
    panel.refresh()
    assert panel.copy_button.isEnabled() and panel.requests_table.item(0, 2).text() == "/health"
    assert panel.requests_table.rowCount() == len(control.request_log)
