"""Fireside's log file, and a filter that keeps a flood of identical messages out of it.

User-facing problems are :class:`~engine.errors.FiresideError` and are shown as one line; anything else
that escapes to the CLI, the app or the server is a bug, and its traceback goes to
``<user data dir>/logs/fireside.log`` (``~/.local/share/fireside/logs`` on Linux, from platformdirs;
``$FIRESIDE_LOG_DIR`` overrides it), rotated at 1 MiB with three old files kept (stdlib
``logging.handlers.RotatingFileHandler``).
"""
from __future__ import annotations

import logging
import logging.handlers
import os
import threading
import time
import traceback
from pathlib import Path

import platformdirs

from .paths import APP_NAME

LOG_NAME = "fireside.log"
_lock = threading.Lock()
_handler: logging.Handler | None = None


def log_dir() -> Path:
    """The folder of Fireside's log files: ``$FIRESIDE_LOG_DIR``, else ``<user data dir>/logs``."""
    env = os.environ.get("FIRESIDE_LOG_DIR")
    return Path(env).expanduser() if env else Path(platformdirs.user_data_dir(APP_NAME)) / "logs"


def log_file() -> Path:
    """The current log file's path (it may not exist yet)."""
    return log_dir() / LOG_NAME


def file_logger() -> logging.Logger:
    """The ``fireside`` logger, writing to :func:`log_file` (the handler is installed once per process).

    If the folder cannot be created the logger still works, with no file behind it.
    """
    global _handler
    logger = logging.getLogger("fireside")
    with _lock:
        if _handler is None:
            try:
                log_dir().mkdir(parents=True, exist_ok=True)
                _handler = logging.handlers.RotatingFileHandler(log_file(), maxBytes=1 << 20, backupCount=3,
                                                                encoding="utf-8", delay=True)
            except OSError:
                _handler = logging.NullHandler()
            _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            logger.addHandler(_handler)
            logger.setLevel(logging.INFO)
    return logger


def log_exception(exc: BaseException, where: str) -> Path:
    """Write ``exc``'s traceback to the log file, saying ``where`` it happened; returns the file's path."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    file_logger().error("%s: unexpected %s\n%s", where, type(exc).__name__, text.rstrip())
    return log_file()


class RateLimitFilter(logging.Filter):
    """Let at most ``burst`` records with the same logger and message template through per ``period_s``
    seconds; the next one let through after a quiet spell says how many were dropped.

    For the server's loggers (``uvicorn.error``, ``asyncio``): a client that opens a thousand sockets must
    not fill the disk with the same "Too many open files" traceback.
    """

    def __init__(self, burst: int = 5, period_s: float = 10.0):
        super().__init__()
        self.burst = burst
        self.period_s = period_s
        self._seen: dict[tuple[str, str], list] = {}  # key -> [window start, count in window, dropped]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        with self._lock:
            state = self._seen.get(key)
            if state is None or now - state[0] >= self.period_s:
                dropped = state[2] if state is not None else 0
                self._seen[key] = [now, 1, 0]
                if len(self._seen) > 1000:  # forget old keys: a bounded table
                    for k in [k for k, s in self._seen.items() if now - s[0] >= self.period_s]:
                        del self._seen[k]
                if dropped:
                    record.msg = f"{record.msg} ({dropped} similar messages suppressed)"
                return True
            state[1] += 1
            if state[1] <= self.burst:
                return True
            state[2] += 1
            return False
