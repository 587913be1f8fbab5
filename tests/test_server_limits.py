"""The server sheds idle, slow and lying connections, and keeps answering with a small descriptor limit.

A real ``fireside serve`` process on the starter model, started with ``RLIMIT_NOFILE`` 1024 (a common
desktop default), and raw sockets from this process: 1,100 idle connections must not stop a real request;
a ``Content-Length`` larger than the body, headers sent a byte at a time, and a connection that sends
nothing are each closed within their timeout (``engine/server/protocol.py``).
"""
from __future__ import annotations

import json
import os
import re
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT

NOFILE = 1024
N_IDLE = 1100
IDLE_TIMEOUT_S = 3.0
REQUEST_TIMEOUT_S = 2.0


def _limit_nofile() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


@pytest.fixture(scope="module")
def server(smollm2_path: Path, tmp_path_factory):
    """``fireside serve`` in a subprocess with 1024 descriptors; yields (host, port, process, stderr path)."""
    log = tmp_path_factory.mktemp("serve") / "stderr.txt"
    env = dict(os.environ, FIRESIDE_LOG_DIR=str(log.parent))
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine", "serve", "-m", str(smollm2_path), "--port", "0", "-t", "1",
             "-c", "256", "--idle-timeout", str(IDLE_TIMEOUT_S), "--request-timeout", str(REQUEST_TIMEOUT_S)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err, preexec_fn=_limit_nofile)
    try:
        deadline = time.monotonic() + 60
        port = None
        while port is None and time.monotonic() < deadline:
            m = re.search(r"serving .* at http://127\.0\.0\.1:(\d+)/v1", log.read_text(errors="replace"))
            if m:
                port = int(m.group(1))
            elif proc.poll() is not None:
                pytest.fail(f"fireside serve exited: {log.read_text(errors='replace')}")
            else:
                time.sleep(0.1)
        assert port is not None, log.read_text(errors="replace")
        yield "127.0.0.1", port, proc, log
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _request(host: str, port: int, method: str, path: str, body: dict | None = None, timeout: float = 30.0):
    """One HTTP/1.1 request on a fresh socket: (status, parsed JSON body)."""
    data = json.dumps(body).encode() if body is not None else b""
    head = (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode()
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(head + data)
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    status = int(raw.split(b" ", 2)[1])
    return status, json.loads(raw.split(b"\r\n\r\n", 1)[1] or b"null")


def _read_until_closed(s: socket.socket, limit_s: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and the seconds that took."""
    t0 = time.monotonic()
    s.settimeout(limit_s)
    raw = b""
    try:
        while chunk := s.recv(65536):
            raw += chunk
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for more than {limit_s} s")
    except ConnectionResetError:
        pass
    return raw, time.monotonic() - t0


def test_idle_connections_beyond_the_descriptor_limit(server):
    host, port, proc, log = server
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = N_IDLE + 64
    if hard != resource.RLIM_INFINITY and hard < need:
        pytest.fail(f"this test needs {need} descriptors in the test process; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    socks = []
    try:
        for _ in range(N_IDLE):
            socks.append(socket.create_connection((host, port), timeout=10))
        time.sleep(0.5)  # let the server accept them all
        lines_before = len(log.read_text(errors="replace").splitlines())
        t0 = time.monotonic()
        status, body = _request(host, port, "POST", "/v1/completions",
                                {"prompt": "Once upon a time", "max_tokens": 4, "temperature": 0})
        elapsed = time.monotonic() - t0
        assert status == 200, body
        assert body["usage"]["completion_tokens"] == 4
        print(f"completion with {N_IDLE} idle connections open: {elapsed * 1e3:.0f} ms")
        assert elapsed < 1.0, f"the request took {elapsed:.2f} s with {N_IDLE} idle connections open"
        status, body = _request(host, port, "GET", "/health")
        assert status == 200
        assert proc.poll() is None
        # The server dropped the oldest idle sockets to stay below its limit, and said little about it.
        lines = log.read_text(errors="replace").splitlines()
        assert len(lines) - lines_before < 50, "\n".join(lines[-20:])
        assert not any("Too many open files" in line for line in lines), "\n".join(lines[-20:])
    finally:
        for s in socks:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_content_length_lie_gets_408_within_the_timeout(server):
    host, port, _, _ = server
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{\"prompt\": ")
        raw, took = _read_until_closed(s, REQUEST_TIMEOUT_S + 5)
    assert raw.startswith(b"HTTP/1.1 408"), raw[:200]
    assert REQUEST_TIMEOUT_S - 0.5 <= took <= REQUEST_TIMEOUT_S + 2


def test_slow_headers_are_cut_off(server):
    host, port, _, _ = server
    with socket.create_connection((host, port), timeout=10) as s:
        t0 = time.monotonic()
        closed = False
        for ch in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            try:
                s.sendall(bytes([ch]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.1)
            if time.monotonic() - t0 > REQUEST_TIMEOUT_S + 0.5:
                break
        raw, _ = _read_until_closed(s, 5) if not closed else (b"", 0)
    assert closed or raw.startswith(b"HTTP/1.1 408") or raw == b"", raw[:200]
    assert time.monotonic() - t0 <= REQUEST_TIMEOUT_S + 5


def test_silent_connection_is_closed(server):
    host, port, _, _ = server
    with socket.create_connection((host, port), timeout=10) as s:
        raw, took = _read_until_closed(s, IDLE_TIMEOUT_S + 5)
    assert raw == b""
    assert IDLE_TIMEOUT_S - 0.5 <= took <= IDLE_TIMEOUT_S + 2


def test_keep_alive_still_works(server):
    """Two requests on one connection: the deadlines do not cut a well-behaved client."""
    host, port, _, _ = server
    with socket.create_connection((host, port), timeout=10) as s:
        for _ in range(2):
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            raw = b""
            while b"\r\n\r\n" not in raw:
                raw += s.recv(65536)
            head, rest = raw.split(b"\r\n\r\n", 1)
            n = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))
            while len(rest) < n:
                rest += s.recv(65536)
            assert head.startswith(b"HTTP/1.1 200"), head
            time.sleep(0.5)
