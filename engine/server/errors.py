"""Errors in OpenAI's JSON shape, and the handlers that give every failure that shape.

OpenAI's API answers errors as ``{"error": {"message", "type", "param", "code"}}``
(https://platform.openai.com/docs/guides/error-codes); the official clients read ``message`` and
``code`` from it, so every non-2xx answer of this server has that body.

Status policy (one rule everywhere): anything wrong with the request body (malformed JSON, a wrong
type, a value out of range, an unsupported feature such as ``n > 1``) is **400**
``invalid_request_error``, as OpenAI's API does; FastAPI's default 422 is never used. 401 missing or
wrong API key, 404 unknown model or route, 405 wrong method, 413 body too large, 503 no model loaded or
the queue is full (with ``Retry-After``), 500 an engine failure.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import FiresideError
from ..logs import log_exception

INVALID_REQUEST = "invalid_request_error"
AUTHENTICATION = "authentication_error"
SERVER_ERROR = "server_error"


class APIError(Exception):
    """An error answered to the client as OpenAI-style JSON.

    Args:
        status: HTTP status code.
        message: human-readable explanation (shown by the clients).
        type: OpenAI error type (``invalid_request_error``, ``authentication_error``, ``server_error``).
        param: the request field at fault (dotted path such as ``messages.0.content``), or None.
        code: a short machine-readable code (``model_not_found``, ``context_length_exceeded``...), or None.
        headers: extra response headers (``Retry-After``, ``WWW-Authenticate``).
    """

    def __init__(self, status: int, message: str, *, type: str = INVALID_REQUEST, param: str | None = None,
                 code: str | None = None, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        """The JSON response for this error."""
        return error_response(self.status, self.message, type=self.type, param=self.param, code=self.code,
                              headers=self.headers)


def error_body(message: str, *, type: str = INVALID_REQUEST, param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """``{"error": {...}}`` as OpenAI sends it (also used inside an event stream)."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def error_response(status: int, message: str, *, type: str = INVALID_REQUEST, param: str | None = None,
                   code: str | None = None, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """A JSON error response with ``status``."""
    return JSONResponse(error_body(message, type=type, param=param, code=code), status_code=status,
                        headers=dict(headers or {}))


def param_path(loc: Iterable[Any]) -> str | None:
    """A pydantic error location as a dotted field path (``("messages", 0, "role")`` -> ``messages.0.role``)."""
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or None


_STATUS_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


def install_error_handlers(app: FastAPI) -> None:
    """Make :class:`APIError`, routing errors (404/405) and unexpected exceptions answer OpenAI-style JSON."""

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message = f"Unknown endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"Method {request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        kind = SERVER_ERROR if exc.status_code >= 500 else INVALID_REQUEST
        return error_response(exc.status_code, message, type=kind, code=_STATUS_CODES.get(exc.status_code),
                              headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Request bodies are validated by the handlers themselves; this covers path/query parameters.
        errors = exc.errors()
        first = errors[0] if errors else {}
        return error_response(400, f"Invalid request: {first.get('msg', 'invalid value')}",
                              param=param_path(first.get("loc", ())))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, FiresideError):
            return error_response(500, str(exc), type=SERVER_ERROR)
        path = log_exception(exc, f"server {request.method} {request.url.path}")
        return error_response(500, f"Internal server error: {type(exc).__name__}: {exc} (traceback in {path})",
                              type=SERVER_ERROR)
