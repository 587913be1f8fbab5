"""ASGI middleware: :class:`BodySizeLimit` caps the request body size (413 above the cap);
:class:`RequestLogger` records each request in a :class:`~engine.server.request_log.RequestLog`.

Written as plain ASGI (not Starlette's ``BaseHTTPMiddleware``, which buffers and breaks streaming
responses and disconnect detection): the body is read up to ``max_bytes``, then replayed to the app in
one message; after that, the app's ``receive`` goes straight to the server again, so the handlers still
see ``http.disconnect`` when a client leaves.
"""
from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_response
from .request_log import RequestLog, RequestRecord

DEFAULT_MAX_BODY_BYTES = 1 << 20  # 1 MiB: thousands of chat turns' worth of text


class BodySizeLimit:
    """Refuse HTTP requests whose body exceeds ``max_bytes`` with a 413 OpenAI-style error.

    A ``Content-Length`` above the cap is refused before reading; a chunked body is counted as it
    arrives. The rest of an oversized body is read and dropped (bounded by ``drain_bytes``) so the client
    gets the 413 instead of a connection reset while it is still sending.
    """

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES, drain_bytes: int = 64 << 20):
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        self.app = app
        self.max_bytes = int(max_bytes)
        self.drain_bytes = int(drain_bytes)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, more_body: bool, seen: int) -> None:
        while more_body and seen <= self.drain_bytes:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: nobody to answer
            seen += len(message.get("body", b""))
            more_body = message.get("more_body", False)
        response = error_response(413, f"The request body is larger than the server's limit of "
                                       f"{self.max_bytes} bytes", code="request_too_large")
        await response(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    await error_response(400, "Invalid Content-Length header")(scope, receive, send)
                    return
        if length is not None and length > self.max_bytes:
            await self._refuse(scope, receive, send, True, 0)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # disconnected before the body was complete
            body = message.get("body", b"")
            size += len(body)
            more = message.get("more_body", False)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send, more, size)
                return
            chunks.append(body)
            if not more:
                break

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class RequestLogger:
    """Record every HTTP request in ``log``: time, method, path (no query), status, duration, client.

    Plain ASGI, outermost, so refused requests (401, 413) are logged too. Only ``scope`` fields and the
    response's status are read: no headers, no query string, no body, so no API key or user text lands
    in the log. The duration runs to the response's last body message (a stream: until it ends). A
    request the app fails on before answering is logged with status 500 and the error propagates; one
    whose client leaves before any answer is logged with status None.
    """

    def __init__(self, app: ASGIApp, log: RequestLog):
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t_wall, t0 = time.time(), time.perf_counter()
        status: int | None = None
        logged = False

        def record(code: int | None) -> None:
            nonlocal logged
            if not logged:
                logged = True
                client = scope.get("client")
                self.log.add(RequestRecord(t_wall, str(scope.get("method", "")), str(scope.get("path", "")), code,
                                           time.perf_counter() - t0, f"{client[0]}:{client[1]}" if client else ""))

        async def send_logged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                record(status)

        try:
            await self.app(scope, receive, send_logged)
        except Exception:
            record(status if status is not None else 500)
            raise
        except BaseException:  # cancelled: the client left, or the server is stopping
            record(status)
            raise
        record(status)
