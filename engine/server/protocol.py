"""uvicorn's h11 HTTP protocol with the limits a server on a desktop needs: idle and slow-request timeouts,
and a cap on open connections below the process's file-descriptor limit.

uvicorn (0.3x-0.5x, ``uvicorn/protocols/http/h11_impl.py``) arms its keep-alive timer only after a response,
so a connection that never sends a byte, sends its headers a byte at a time (slowloris), or announces a
``Content-Length`` it never delivers is held forever; with a 1024-descriptor limit (a common desktop default)
about a thousand such sockets make ``accept()`` fail with EMFILE and the server stops answering. This
protocol adds, per connection:

- an *idle* deadline: a connection that has sent nothing ``idle_timeout_s`` after it opened (or after its
  last response, where uvicorn's own ``timeout_keep_alive`` usually closes it first) is closed;
- a *request* deadline: headers and body must have fully arrived ``request_timeout_s`` after the first
  byte; otherwise the client gets ``408 Request Timeout`` and the connection is closed (nginx's
  ``client_header_timeout`` / ``client_body_timeout``, as one budget);
- a connection cap: when ``max_connections`` are open, a new one first evicts the connection that has
  been idle longest (no request in flight); if every connection is busy, the new one is closed.

Generation time is never limited: once a request is complete its deadline is off, however long the reply
streams.
"""
from __future__ import annotations

import time

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from .limits import DEFAULT_IDLE_TIMEOUT_S, DEFAULT_REQUEST_TIMEOUT_S, MAX_CONNECTIONS_CEILING, RESERVED_FDS

_TIMEOUT_BODY = (b'{"error":{"message":"The request was not received in time","type":"invalid_request_error",'
                 b'"param":null,"code":"request_timeout"}}')
_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                     b"content-length: %d\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY))


def default_max_connections() -> int:
    """Open connections allowed: the soft RLIMIT_NOFILE less :data:`RESERVED_FDS` (at least 16, at most
    :data:`MAX_CONNECTIONS_CEILING`); the ceiling where the limit is unknown (Windows)."""
    try:
        import resource
    except ImportError:
        return MAX_CONNECTIONS_CEILING
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS_CEILING
    return max(16, min(MAX_CONNECTIONS_CEILING, soft - RESERVED_FDS))


class GuardedH11Protocol(H11Protocol):
    """:class:`uvicorn.protocols.http.h11_impl.H11Protocol` with idle / request deadlines and a connection
    cap (see the module docstring). Configure a subclass with :func:`guarded_protocol`."""

    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    max_connections: int = MAX_CONNECTIONS_CEILING

    _deadline = None
    _got_bytes = False
    _idle_since = 0.0

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections and not self._evict_idle():
            transport.abort()  # every connection is busy: refuse this one rather than run out of descriptors
            return
        self._start_idle()

    def _evict_idle(self) -> bool:
        """Close the connection idle longest (other than this one); False if none is idle."""
        idle = [c for c in self.connections if c is not self and isinstance(c, GuardedH11Protocol) and c._is_idle()]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c._idle_since)
        oldest._close()
        self.connections.discard(oldest)
        return True

    def _is_idle(self) -> bool:
        return (not self._got_bytes and self.conn.their_state is h11.IDLE
                and (self.cycle is None or self.cycle.response_complete))

    def _arm(self, seconds: float, callback) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _start_idle(self) -> None:
        self._got_bytes = False
        self._idle_since = time.monotonic()
        self._arm(self.idle_timeout_s, self._on_idle_timeout)

    def _close(self) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.transport.close()

    def _on_idle_timeout(self) -> None:
        self._deadline = None
        if self._is_idle():
            self._close()

    def _on_request_timeout(self) -> None:
        self._deadline = None
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
            if self.cycle is None or not self.cycle.response_started:
                self.transport.write(_TIMEOUT_RESPONSE)
            self._close()

    def data_received(self, data: bytes) -> None:
        if not self._got_bytes and data:
            self._got_bytes = True
            self._arm(self.request_timeout_s, self._on_request_timeout)
        super().data_received(data)
        if self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
            self._disarm()  # the request is complete: the reply may take as long as it takes

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._start_idle()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)


def guarded_protocol(*, idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
                     request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
                     max_connections: int | None = None) -> type[GuardedH11Protocol]:
    """A :class:`GuardedH11Protocol` subclass with these limits, for ``uvicorn.Config(http=...)``.

    Args:
        idle_timeout_s: seconds a connection may stay open without sending a byte.
        request_timeout_s: seconds from a request's first byte to its last (headers and body).
        max_connections: open connections allowed (default :func:`default_max_connections`).

    Raises:
        ValueError: a limit that is not positive.
    """
    if idle_timeout_s <= 0 or request_timeout_s <= 0 or (max_connections is not None and max_connections < 1):
        raise ValueError("timeouts and max_connections must be positive")
    limits = dict(idle_timeout_s=float(idle_timeout_s), request_timeout_s=float(request_timeout_s),
                  max_connections=int(max_connections or default_max_connections()))
    return type("FiresideH11Protocol", (GuardedH11Protocol,), limits)
