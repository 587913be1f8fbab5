"""Run the API server in a background thread of this process (the desktop app's toggle, ``fireside serve``).

uvicorn's :class:`uvicorn.Server` runs its own asyncio loop in a daemon thread; the listening socket is
bound here first, so a taken port is reported at once as an :class:`OSError` with a clear message, and
port 0 picks a free port (its number is in :attr:`InProcessServer.url`). uvicorn installs no signal
handlers off the main thread, so the host process keeps its own Ctrl+C handling.
"""
from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import sys
import threading
import time
from typing import Iterable

import uvicorn

from ..logs import RateLimitFilter
from .app import GetEngine, create_app
from .middleware import DEFAULT_MAX_BODY_BYTES, RequestLogger
from .limits import ACCEPT_BACKLOG, DEFAULT_IDLE_TIMEOUT_S, DEFAULT_REQUEST_TIMEOUT_S
from .protocol import guarded_protocol
from .request_log import RequestLog

START_TIMEOUT_S = 30.0
# How long stop() lets open responses finish (they are cancelled first, so this is rarely reached).
GRACEFUL_S = 5.0


def bind_warning(host: str) -> str | None:
    """A warning to show when ``host`` exposes the server beyond this machine, else None.

    Loopback names and addresses are private; ``0.0.0.0``, ``::``, an empty host and any other address
    or name reachable from the network are not.
    """
    if host in ("localhost",):
        return None
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        addr = None
    if addr is not None and addr.is_loopback:
        return None
    where = "every network interface" if host in ("", "0.0.0.0", "::", "[::]") else f"{host}"
    return (f"warning: the server listens on {where}: other machines on the network can reach it"
            " (use --api-key, or --host 127.0.0.1 to keep it private)")


def _display_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host in ("::", "[::]"):
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on ``host:port``. Raises OSError with a readable message."""
    try:
        infos = socket.getaddrinfo(host.strip("[]") or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise OSError(errno.EADDRNOTAVAIL, f"cannot resolve the host {host!r}: {exc.strerror}") from None
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        if sys.platform == "win32":  # SO_REUSEADDR on Windows would let two servers share the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
        else:  # rebind at once after a restart (sockets in TIME_WAIT), still refused while one listens
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if host in ("::", "[::]") else 1)
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", -1)):
            raise OSError(exc.errno, f"port {port} on {host} is already in use (is another server running?); "
                                     "choose another port") from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise OSError(exc.errno, f"not allowed to listen on {host}:{port} (ports below 1024 need "
                                     "administrator rights); choose another port") from None
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


_log_filter = RateLimitFilter()


def _rate_limit_server_logs() -> None:
    """At most a few identical records per 10 s from uvicorn and asyncio (an EMFILE storm logs one
    traceback per failed ``accept``)."""
    for name in ("uvicorn.error", "uvicorn.access", "asyncio"):
        logger = logging.getLogger(name)
        if _log_filter not in logger.filters:
            logger.addFilter(_log_filter)


class InProcessServer:
    """The OpenAI-compatible server, running in a daemon thread of this process.

    Args:
        get_engine: returns the loaded ``(Model, Scheduler)`` or None (see :func:`create_app`).
        host, port: where to listen (port 0: any free port).
        api_key, cors_origins, max_body_bytes: see :func:`create_app`.
        log_level: None keeps uvicorn quiet and leaves the process's logging configuration alone (the
            desktop app); a level name such as ``"info"`` installs uvicorn's console logging with an access
            log (``fireside serve``).
        idle_timeout_s, request_timeout_s, max_connections: the connection limits of
            :func:`~engine.server.protocol.guarded_protocol` (seconds; None = below the descriptor limit).
        request_log: where every request is recorded (:class:`~engine.server.request_log.RequestLog`; pass
            one to keep the log across restarts); a new one when None. It is :attr:`request_log`.

    Use :meth:`start` and :meth:`stop`; a stopped server can be started again.
    """

    def __init__(self, get_engine: GetEngine, *, host: str = "127.0.0.1", port: int = 8080,
                 api_key: str | None = None, cors_origins: Iterable[str] = (),
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, log_level: str | None = None,
                 idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S, request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
                 max_connections: int | None = None, request_log: RequestLog | None = None):
        self.host = host
        self.idle_timeout_s = idle_timeout_s
        self.request_timeout_s = request_timeout_s
        self.max_connections = max_connections
        self.port = int(port)
        self.app = create_app(get_engine, api_key=api_key, cors_origins=tuple(cors_origins),
                              max_body_bytes=max_body_bytes)
        self.request_log = request_log if request_log is not None else RequestLog()
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._bound_port: int | None = None

    @property
    def url(self) -> str:
        """Base URL of the API root, e.g. ``http://127.0.0.1:8080`` (clients add ``/v1``)."""
        return f"http://{_display_host(self.host)}:{self._bound_port or self.port}"

    @property
    def running(self) -> bool:
        """True while the server is up and accepting requests."""
        s = self._server
        return bool(s and s.started and not s.should_exit and self._thread and self._thread.is_alive())

    def start(self) -> None:
        """Bind the port and serve in a daemon thread; returns once the server is listening.

        Prints :func:`bind_warning` to stderr when the host is reachable from the network.

        Raises:
            OSError: the port is taken, not permitted, or the host cannot be resolved.
            RuntimeError: already running, or the server failed to start.
        """
        if self.running:
            raise RuntimeError(f"the server is already running at {self.url}")
        warning = bind_warning(self.host)
        if warning:
            print(warning, file=sys.stderr)
        sock = _bind(self.host, self.port)
        self._bound_port = sock.getsockname()[1]
        quiet = self._log_level is None
        # The request logger wraps the whole app (outermost), so refused requests are logged too.
        config = uvicorn.Config(RequestLogger(self.app, self.request_log),
                                log_level="warning" if quiet else self._log_level,
                                log_config=None if quiet else uvicorn.config.LOGGING_CONFIG,
                                access_log=not quiet, lifespan="off", timeout_graceful_shutdown=GRACEFUL_S,
                                backlog=ACCEPT_BACKLOG,
                                http=guarded_protocol(idle_timeout_s=self.idle_timeout_s,
                                                      request_timeout_s=self.request_timeout_s,
                                                      max_connections=self.max_connections))
        server = uvicorn.Server(config)
        _rate_limit_server_logs()
        self._server, self._error = server, None
        self._thread = threading.Thread(target=self._serve, args=(server, sock), name="fireside-server",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                sock.close()
                raise RuntimeError(f"the server did not start: {self._error!r}")
            time.sleep(0.01)

    def _serve(self, server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # noqa: BLE001 - reported by start(); SystemExit from uvicorn included
            self._error = exc
        finally:
            sock.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting connections, cancel this server's running generations, and join the thread
        (seconds). The model and its scheduler stay as they are (the window keeps using them)."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        self.app.state.jobs.cancel_all()
        thread.join(timeout)
        if thread.is_alive():  # a response that would not end: drop the connections
            server.force_exit = True
            thread.join(timeout)
        self._server = self._thread = None
