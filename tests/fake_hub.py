"""A stand-in for the Hugging Face Hub on 127.0.0.1, for testing the real huggingface_hub code path.

It implements the HTTP endpoints huggingface_hub 2.x calls for a model repository (read from its
source: ``hf_api.py`` ``_iter_repo_tree_pages``, ``file_download.py`` ``get_hf_file_metadata``,
``utils/_http.py`` ``hf_raise_for_status``, ``utils/_pagination.py``), the way huggingface.co answers:

* ``GET /api/models/{owner}/{name}/tree/{revision}?recursive=..&expand=..``: the file list as JSON
  (``type``, ``path``, ``size``, ``oid``, and ``lfs: {oid, size, pointerSize}`` for LFS files), paged
  with a ``Link: <...>; rel="next"`` header when ``page_size`` is set.
* ``HEAD``/``GET /{owner}/{name}/resolve/{revision}/{path}``: LFS files answer ``302`` to a second
  server standing for the CDN (another origin, like cas-bridge.xethub.hf.co), with ``X-Repo-Commit``,
  ``X-Linked-Etag`` (the sha256) and ``X-Linked-Size``; small files answer ``200`` directly.
* The CDN serves the bytes with ``ETag``, ``Accept-Ranges`` and ``Range`` requests (``206`` with
  ``Content-Range``; ``416`` past the end).
* ``GET /api/models?search=..&filter=gguf&sort=downloads&limit=..&expand=..`` (``HfApi.list_models``):
  the search is a case-insensitive substring of the repository id, ``filter=gguf`` keeps repositories
  with ``.gguf`` files, ``sort=downloads`` puts the most downloaded first; ``expand`` adds ``downloads``
  and ``gguf`` (from the hub's ``downloads`` and ``gguf_info`` dicts), ``likes`` and ``siblings``. Each
  search's query parameters are recorded in ``searches``.
* Errors carry the Hub's ``X-Error-Code`` header: ``RepoNotFound`` (401, as the Hub answers for
  missing and private repos), ``RevisionNotFound`` and ``EntryNotFound`` (404).

Fault injection for the CDN's file ``GET``s: ``drops`` (send the headers and N bytes, then close the
connection: one entry per request), ``outage`` (close every connection without an answer),
``outage_after_drop``, ``ignore_range`` (answer ``200`` to a ``Range``) and ``chunk_delay`` (seconds
per 64 KiB, to keep a download in flight). Every request is recorded in ``requests``.

``make_small_gguf`` writes a small but real GGUF (about 2.2 MB) from the SmolLM2 starter model's
metadata and first block, with the ``gguf`` package's ``GGUFWriter``.
"""
from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

import gguf
import numpy as np

from engine.gguf_file import GGUFFile

COMMIT = "0123456789abcdef0123456789abcdef01234567"  # 40 hex digits, like a git commit id


@dataclass
class HubFile:
    """A file in a fake repository."""

    path: str
    data: bytes
    lfs: bool = True

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def git_oid(self) -> str:
        # git's blob id: sha1 of "blob <size>\0" + content
        return hashlib.sha1(b"blob %d\0" % len(self.data) + self.data).hexdigest()


@dataclass
class RecordedRequest:
    server: str  # "hub" or "cdn"
    method: str
    path: str
    headers: dict = field(default_factory=dict)


class FakeHub:
    """Two local HTTP servers (hub and CDN) serving in-memory repositories. Use as a context manager."""

    def __init__(self, page_size: int | None = None):
        self.repos: dict[str, dict[str, HubFile]] = {}
        self.page_size = page_size
        self.requests: list[RecordedRequest] = []
        self.searches: list[dict] = []
        self.downloads: dict[str, int] = {}   # repo id -> downloads, for the search's order and expand
        self.gguf_info: dict[str, dict] = {}  # repo id -> the search's ``gguf`` field
        self.drops: list[int] = []
        self.outage = False
        self.outage_after_drop = False
        self.ignore_range = False
        self.chunk_delay = 0.0
        self._lock = threading.Lock()
        self._servers: list[ThreadingHTTPServer] = []

    # -- content ---------------------------------------------------------------------------------
    def add_file(self, repo_id: str, path: str, data: bytes, lfs: bool = True) -> HubFile:
        f = HubFile(path, data, lfs)
        self.repos.setdefault(repo_id, {})[path] = f
        return f

    def by_sha256(self, sha: str) -> HubFile | None:
        for files in self.repos.values():
            for f in files.values():
                if f.sha256 == sha:
                    return f
        return None

    def file_gets(self) -> list[RecordedRequest]:
        """The CDN GETs made so far (the requests that carry file bytes)."""
        return [r for r in self.requests if r.server == "cdn" and r.method == "GET"]

    # -- servers ---------------------------------------------------------------------------------
    def __enter__(self) -> "FakeHub":
        for role in ("hub", "cdn"):
            handler = type(f"{role.title()}Handler", (_Handler,), {"hub": self, "role": role})
            server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
            self._servers.append(server)
        return self

    def __exit__(self, *exc) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    @property
    def url(self) -> str:
        """The hub endpoint, e.g. ``http://127.0.0.1:41234``."""
        return f"http://127.0.0.1:{self._servers[0].server_address[1]}"

    @property
    def cdn_url(self) -> str:
        return f"http://127.0.0.1:{self._servers[1].server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real Hub; every answer has a Content-Length
    hub: FakeHub
    role: str

    def log_message(self, *args) -> None:  # quiet test output
        pass

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_GET(self) -> None:
        self._dispatch("GET")

    # -- helpers ---------------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        hub = self.hub
        with hub._lock:
            hub.requests.append(RecordedRequest(self.role, method, self.path, dict(self.headers)))
        if self.role == "cdn":
            if hub.outage:
                self._abort()
                return
            self._serve_cdn(method)
        else:
            self._serve_hub(method)

    def _abort(self) -> None:
        """Close the connection without an answer (or mid-body): a dropped connection for the client."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"", method: str = "GET"):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method != "HEAD" and body:
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, method: str, extra: dict | None = None) -> None:
        body = json.dumps({"error": message}).encode()
        headers = {"Content-Type": "application/json", "X-Error-Code": code, "X-Error-Message": message}
        headers.update(extra or {})
        self._send(status, headers, body, method)

    # -- hub ---------------------------------------------------------------------------------------
    def _serve_hub(self, method: str) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/")[1:]]
        if url.path == "/api/models" and method == "GET":
            self._search(parse_qs(url.query))
        elif len(parts) >= 6 and parts[:2] == ["api", "models"] and parts[4] == "tree" and method == "GET":
            self._tree("/".join(parts[2:4]), parts[5], "/".join(parts[6:]), parse_qs(url.query))
        elif len(parts) >= 5 and parts[2] == "resolve":
            self._resolve("/".join(parts[:2]), parts[3], "/".join(parts[4:]), method)
        else:
            self._error(404, "NotFound", "Not Found", method)

    def _search(self, q: dict) -> None:
        hub = self.hub
        hub.searches.append(q)
        words = q.get("search", [""])[0].lower()
        repos = [r for r in hub.repos if words in r.lower()]
        if "gguf" in q.get("filter", []):
            repos = [r for r in repos if any(p.endswith(".gguf") for p in hub.repos[r])]
        if q.get("sort") == ["downloads"]:
            repos.sort(key=lambda r: -hub.downloads.get(r, 0))
        repos = repos[: int(q.get("limit", ["1000"])[0])]
        expand = q.get("expand", [])
        out = []
        for r in repos:
            item = {"_id": r, "id": r, "modelId": r}
            if "downloads" in expand:
                item["downloads"] = hub.downloads.get(r, 0)
            if "likes" in expand:
                item["likes"] = 7
            if "siblings" in expand:
                item["siblings"] = [{"rfilename": p} for p in sorted(hub.repos[r])]
            if "gguf" in expand and r in hub.gguf_info:
                item["gguf"] = hub.gguf_info[r]
            out.append(item)
        self._send(200, {"Content-Type": "application/json"}, json.dumps(out).encode())

    def _repo(self, repo_id: str, revision: str, method: str) -> dict[str, HubFile] | None:
        files = self.hub.repos.get(repo_id)
        if files is None:
            self._error(401, "RepoNotFound", "Repository not found", method)
            return None
        if revision not in ("main", COMMIT):
            self._error(404, "RevisionNotFound", "Invalid rev id: " + revision, method)
            return None
        return files

    def _tree(self, repo_id: str, revision: str, prefix: str, query: dict) -> None:
        files = self._repo(repo_id, revision, "GET")
        if files is None:
            return
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        entries, dirs = [], set()
        for f in sorted(files.values(), key=lambda f: f.path):
            rel = f.path[len(prefix) + 1:] if prefix else f.path
            if prefix and not f.path.startswith(prefix + "/"):
                continue
            *folders, _ = rel.split("/")
            for i in range(len(folders)):
                d = "/".join(([prefix] if prefix else []) + folders[: i + 1])
                if d not in dirs and (recursive or i == 0):
                    dirs.add(d)
                    entries.append({"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0,
                                    "path": d})
            if folders and not recursive:
                continue
            entry = {"type": "file", "oid": f.git_oid, "size": len(f.data), "path": f.path}
            if f.lfs:
                entry["lfs"] = {"oid": f.sha256, "size": len(f.data), "pointerSize": 134}
            entries.append(entry)
        start = int(query.get("cursor", ["0"])[0])
        size = self.hub.page_size or len(entries) or 1
        page = entries[start:start + size]
        headers = {"Content-Type": "application/json"}
        if start + size < len(entries):
            path = urlsplit(self.path).path
            headers["Link"] = (f'<{self.hub.url}{path}?recursive={str(recursive).lower()}&expand=false'
                               f'&cursor={start + size}>; rel="next"')
        self._send(200, headers, json.dumps(page).encode())

    def _resolve(self, repo_id: str, revision: str, path: str, method: str) -> None:
        files = self._repo(repo_id, revision, method)
        if files is None:
            return
        f = files.get(path)
        if f is None:
            self._error(404, "EntryNotFound", f"{path} does not exist on \"{revision}\"", method,
                        {"X-Repo-Commit": COMMIT})
            return
        common = {"X-Repo-Commit": COMMIT, "Accept-Ranges": "bytes"}
        if f.lfs:
            # The Hub redirects LFS files to a signed CDN URL and names the content in X-Linked-* headers.
            location = f"{self.hub.cdn_url}/{f.sha256}?filename={quote(path.rsplit('/', 1)[-1])}"
            self._send(302, {**common, "Location": location, "ETag": f'"{f.git_oid}"',
                             "X-Linked-Etag": f'"{f.sha256}"', "X-Linked-Size": str(len(f.data))}, b"", method)
        else:
            self._send_bytes(f.data, f'"{f.git_oid}"', method, common)

    # -- cdn ---------------------------------------------------------------------------------------
    def _serve_cdn(self, method: str) -> None:
        sha = urlsplit(self.path).path.strip("/")
        f = self.hub.by_sha256(sha)
        if f is None:
            self._send(404, {"Content-Type": "text/plain"}, b"NoSuchKey", method)
            return
        self._send_bytes(f.data, f'"{f.sha256}"', method, {})

    def _send_bytes(self, data: bytes, etag: str, method: str, extra: dict) -> None:
        hub = self.hub
        start, status = 0, 200
        rng = self.headers.get("Range")
        headers = {**extra, "ETag": etag, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        if rng and not hub.ignore_range:
            # Only the form clients send for a resume: bytes=START- (RFC 9110 14.1.2).
            start = int(rng.strip().removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self._send(416, {"Content-Range": f"bytes */{len(data)}"}, b"", method)
                return
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method == "HEAD":
            return
        with hub._lock:
            drop = hub.drops.pop(0) if (hub.drops and self.role == "cdn") else None
        limit = len(body) if drop is None else min(drop, len(body))
        step = 64 << 10
        try:
            for i in range(0, limit, step):
                self.wfile.write(body[i:min(i + step, limit)])
                if hub.chunk_delay:
                    self.wfile.flush()
                    time.sleep(hub.chunk_delay)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return
        if drop is not None:
            if hub.outage_after_drop:
                hub.outage = True
            self._abort()


def make_small_gguf(src: Path, dst: Path, n_blocks: int = 1) -> Path:
    """Write a small real GGUF: ``src``'s scalar metadata and its first ``n_blocks`` blocks' tensors.

    The big tokenizer arrays are left out, so the file is a valid GGUF (our parser and
    ``gguf.GGUFReader`` read it) but not a runnable model. Returns ``dst``.
    """
    with GGUFFile(src) as g:
        arch = g.require("general.architecture")
        writer = gguf.GGUFWriter(dst, arch)
        for key, value in g.metadata.items():
            if key in ("general.architecture", "GGUF.version") or not np.isscalar(value) and not isinstance(value, str):
                continue  # the writer adds the architecture; arrays (the vocabulary) are left out
            if isinstance(value, bool):
                writer.add_bool(key, value)
            elif isinstance(value, int):
                writer.add_uint32(key, value) if 0 <= value < 2**32 else writer.add_int64(key, value)
            elif isinstance(value, float):
                writer.add_float32(key, value)
            else:
                writer.add_string(key, value)
        for name, t in g.tensors.items():
            if not any(name.startswith(f"blk.{i}.") for i in range(n_blocks)):
                continue
            qtype = gguf.GGMLQuantizationType(t.ggml_type)
            if qtype == gguf.GGMLQuantizationType.F32:
                writer.add_tensor(name, np.array(t.data).view(np.float32).reshape(t.shape))
            else:
                writer.add_tensor(name, np.array(t.data), raw_dtype=qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    return dst
