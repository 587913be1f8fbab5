"""A small bounded in-memory log of the server's recent requests, for the app's server panel.

Each record is what an access log line holds: when, method, path, status, duration and client address.
Never the query string, headers or body: API keys (``Authorization``, a ``?api_key=`` in a URL) and what
users sent stay out of it. Filled by :class:`engine.server.middleware.RequestLogger`; thread-safe (the
server's thread writes, the GUI thread reads).
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

DEFAULT_MAX_RECORDS = 200


@dataclass(frozen=True)
class RequestRecord:
    """One finished (or abandoned) HTTP request.

    Attributes:
        time: when it arrived, seconds since the epoch (``time.time()``).
        method: ``GET``, ``POST``...; path: the URL path without the query string.
        status: the HTTP status sent, or None if the client left (or the app failed) before any answer.
        duration_s: seconds from arrival to the end of the response (a stream: its last byte).
        client: ``host:port`` of the client, or "" when the server does not know it.
    """

    time: float
    method: str
    path: str
    status: int | None
    duration_s: float
    client: str


class RequestLog:
    """The last ``max_records`` requests, oldest first.

    Args:
        max_records: how many records are kept (older ones are dropped); at least 1.

    Raises:
        ValueError: ``max_records`` < 1.
    """

    def __init__(self, max_records: int = DEFAULT_MAX_RECORDS):
        if max_records < 1:
            raise ValueError("max_records must be >= 1")
        self._lock = threading.Lock()
        self._records: deque[RequestRecord] = deque(maxlen=int(max_records))
        self._total = 0
        self._version = 0

    @property
    def max_records(self) -> int:
        """How many records are kept."""
        return self._records.maxlen or 0

    @property
    def total(self) -> int:
        """Records added since creation (dropped ones included): changes whenever a request is logged."""
        with self._lock:
            return self._total

    @property
    def version(self) -> int:
        """A number that changes whenever the kept records change (an add or a clear)."""
        with self._lock:
            return self._version

    def add(self, record: RequestRecord) -> None:
        """Append ``record``, dropping the oldest one when full."""
        with self._lock:
            self._records.append(record)
            self._total += 1
            self._version += 1

    def recent(self, n: int | None = None) -> list[RequestRecord]:
        """The kept records, oldest first; only the newest ``n`` when given."""
        with self._lock:
            items = list(self._records)
        return items if n is None else items[-n:] if n > 0 else []

    def clear(self) -> None:
        """Forget every record (``total`` keeps counting)."""
        with self._lock:
            self._records.clear()
            self._version += 1

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)
