"""Starts and stops the OpenAI-compatible server inside the app (``engine.server.runner.InProcessServer``),
sharing the window's model and Scheduler, as the "Local server" settings say; keeps the request log and
reads the slots the server panel (:mod:`gui.server_panel`) shows."""
from __future__ import annotations

from typing import Callable

from engine.server.request_log import RequestLog


class ServerControl:
    """Keeps at most one in-process server running with the wanted host, port and API key.

    Args:
        get_engine: returns ``(model, scheduler)`` of the loaded model or None; called by the server
            for each request (so a model switched in the window is used at once).

    Attributes:
        request_log: the :class:`~engine.server.request_log.RequestLog` every server it starts records
            into (one log across restarts; no bodies or keys in it).
    """

    def __init__(self, get_engine: Callable[[], object]):
        self._get_engine = get_engine
        self._server = None
        self._config: tuple | None = None
        self.request_log = RequestLog()

    @property
    def url(self) -> str | None:
        """The base URL while running, else None."""
        return self._server.url if self._server is not None and self._server.running else None

    def apply(self, enabled: bool, host: str, port: int, api_key: str) -> str | None:
        """Start, restart or stop the server to match the settings.

        Returns:
            None on success, else a message for the user (port busy, server module unavailable); the
            server is then stopped.
        """
        config = (host, int(port), api_key or None)
        if self._server is not None and (not enabled or config != self._config):
            self.stop()
        if not enabled or self._server is not None:
            return None
        try:
            from engine.server.runner import InProcessServer  # imported late: FastAPI/uvicorn are heavy
        except ImportError as exc:
            return f"The local server is not available in this build: {exc}"
        server = InProcessServer(self._get_engine, host=host, port=int(port), api_key=api_key or None,
                                 request_log=self.request_log)
        try:
            server.start()
        except OSError as exc:
            return f"The local server could not start on {host}:{port}: {exc.strerror or exc}"
        self._server, self._config = server, config
        return None

    def slots(self) -> list:
        """The loaded model's slots (:class:`engine.scheduler.SlotInfo` list; empty with no model), whether
        or not the server runs: they are the Scheduler's, shared with the window's chat."""
        engine = self._get_engine()
        return list(engine[1].slots()) if engine is not None else []

    def stop(self) -> None:
        """Stop the server if it runs."""
        server, self._server, self._config = self._server, None, None
        if server is not None:
            server.stop()
