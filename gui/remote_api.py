"""A small async client for OpenAI-compatible servers (llama-server, vLLM, LM Studio, ``fireside serve``).

No Qt here: :mod:`gui.remote_engine` runs these coroutines on its own asyncio thread. The wire format is
OpenAI's Chat Completions API (https://platform.openai.com/docs/api-reference/chat): ``GET /v1/models``
lists models, ``POST /v1/chat/completions`` with ``"stream": true`` answers with Server-Sent Events
(WHATWG HTML, "Server-sent events": ``data:`` lines, a blank line ends an event) whose data are
``chat.completion.chunk`` JSON objects, then the literal ``[DONE]``. Errors are ``{"error": {"message",
"type", "code"}}`` bodies, also as a stream event once the stream began.

Every failure becomes a :class:`RemoteError` whose text is meant for the user (unreachable host, wrong
key, unknown model, busy server, malformed stream), never a traceback. API keys are sent only in the
``Authorization`` header and never appear in messages.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, AsyncIterator
from urllib.parse import urlsplit, urlunsplit

# Seconds: connecting to a remote host; waiting for the next piece of a reply (a long prompt on a slow
# server can take a while before the first token).
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 300.0
# The longest error body we read (bytes): enough for any JSON error, bounded for a hostile server.
MAX_ERROR_BYTES = 64 * 1024


class RemoteError(Exception):
    """A request to a remote server failed; ``str(exc)`` is a message for the user.

    Attributes:
        status: the HTTP status, or None (no answer, or a broken one).
        code: the OpenAI error ``code`` when the server sent one (``invalid_api_key``, ``model_not_found``).
    """

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


def normalize_base_url(url: str) -> str:
    """The API root (ending in ``/v1`` unless another path was given) for what a user typed.

    ``localhost:8080``, ``http://localhost:8080/`` and ``http://localhost:8080/v1`` all give
    ``http://localhost:8080/v1``; an explicit other path (``https://host/openai/v1``) is kept as written.

    Raises:
        RemoteError: empty, not http(s), or no host.
    """
    text = (url or "").strip()
    if not text:
        raise RemoteError("Enter the server's address, for example http://127.0.0.1:8080")
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https"):
        raise RemoteError(f"{url!r} is not an http:// or https:// address")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise RemoteError(f"{url!r} has an invalid port number") from None
    if not parts.hostname:
        raise RemoteError(f"{url!r} has no host name")
    path = parts.path.rstrip("/")
    if not path:
        path = "/v1"
    return urlunsplit((parts.scheme.lower(), parts.netloc, path, "", ""))


def host_of(base_url: str) -> str:
    """``host:port`` of an address (``http://10.0.0.2:8080/v1`` -> ``10.0.0.2:8080``; the address as given
    when it has no host)."""
    text = (base_url or "").strip()
    netloc = urlsplit(text if "://" in text else "http://" + text).netloc
    return netloc.rpartition("@")[2] or text


def auth_headers(api_key: str | None) -> dict[str, str]:
    """``Authorization: Bearer <key>`` when a key is set (OpenAI's scheme), else no header."""
    key = (api_key or "").strip()
    return {"Authorization": f"Bearer {key}"} if key else {}


def _error_detail(body: bytes) -> tuple[str, str | None]:
    """``(message, code)`` from an OpenAI-style error body; raw text (shortened) when it is not one."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:300], None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or "").strip(), (str(err["code"]) if err.get("code") else None)
    if isinstance(err, str):  # some servers send {"error": "text"}
        return err, None
    if isinstance(data, dict) and isinstance(data.get("detail"), str):  # FastAPI's default shape (vLLM)
        return data["detail"], None
    return text[:300], None


def status_error(status: int, body: bytes, base_url: str, model: str | None = None) -> RemoteError:
    """The :class:`RemoteError` for a non-2xx answer.

    Args:
        status: the HTTP status; body: the response body (OpenAI error JSON or anything else);
        base_url: the API root asked; model: the model asked for, if any.
    """
    detail, code = _error_detail(body)
    said = f" The server said: {detail}" if detail else ""
    if status == 401 or status == 403:
        msg = (f"The server at {base_url} refused the API key (HTTP {status}). Check the key in the "
               f"remote server's settings.{said}")
    elif status == 404:
        if model and (code == "model_not_found" or "model" in detail.lower()):
            msg = f"The server at {base_url} has no model named {model!r}. Pick one of its models again.{said}"
        else:
            msg = (f"Nothing answers at {base_url} (HTTP 404): is this the API address (it usually ends "
                   f"in /v1)?{said}")
    elif status == 503:
        msg = f"The server at {base_url} is busy or has no model loaded (HTTP 503); try again in a moment.{said}"
    elif status == 429:
        msg = f"The server at {base_url} is rate limiting requests (HTTP 429); try again later.{said}"
    elif 400 <= status < 500:
        msg = f"The server at {base_url} refused the request (HTTP {status}).{said}"
    else:
        msg = f"The server at {base_url} failed (HTTP {status}).{said}"
    return RemoteError(msg, status, code)


def transport_error(exc: Exception, base_url: str) -> RemoteError:
    """The :class:`RemoteError` for an httpx transport failure (no answer, timeout, broken connection)."""
    import httpx

    if isinstance(exc, httpx.ConnectTimeout):
        return RemoteError(f"Could not reach {base_url}: the connection timed out. Is the address right and "
                           f"the server running?")
    if isinstance(exc, httpx.ConnectError):
        return RemoteError(f"Could not reach {base_url}: {exc or 'connection refused'}. Is the server running "
                           f"and the address right?")
    if isinstance(exc, httpx.ReadTimeout):
        return RemoteError(f"The server at {base_url} stopped answering (no data for {READ_TIMEOUT_S:.0f} s).")
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return RemoteError(f"{base_url} is not a valid server address: {exc}")
    if isinstance(exc, httpx.RemoteProtocolError):
        return RemoteError(f"The server at {base_url} broke the connection: {exc}")
    return RemoteError(f"The request to {base_url} failed: {type(exc).__name__}: {exc}")


def new_client():
    """An ``httpx.AsyncClient`` with this module's timeouts (create it on the loop that uses it).

    Raises:
        RemoteError: httpx is not installed.
    """
    try:
        import httpx
    except ImportError:
        raise RemoteError("Remote servers need the httpx package, which is not installed") from None
    return httpx.AsyncClient(timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S), follow_redirects=True)


async def list_models(client, base_url: str, api_key: str | None = None) -> list[str]:
    """The model ids ``GET {base_url}/models`` lists, in the server's order.

    Raises:
        RemoteError: no answer, an error status, or a body that is not a model list.
    """
    import httpx

    try:
        r = await client.get(base_url + "/models", headers=auth_headers(api_key))
    except httpx.HTTPError as exc:
        raise transport_error(exc, base_url) from None
    if r.status_code != 200:
        raise status_error(r.status_code, r.content[:MAX_ERROR_BYTES], base_url)
    try:
        data = r.json()["data"]
        return [str(m["id"]) for m in data]
    except (ValueError, KeyError, TypeError):
        raise RemoteError(f"The server at {base_url} did not answer /models with a model list: is this an "
                          f"OpenAI-compatible API address?", r.status_code) from None


async def sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The ``data`` of each Server-Sent Event in ``lines`` (the stream's lines without line ends).

    Follows the WHATWG rules that matter here: ``data:`` lines of one event are joined with newlines,
    one space after the colon is dropped, ``:`` comment lines and other fields (``event``, ``id``,
    ``retry``) are ignored, and a blank line ends the event.
    """
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            data.append(value)
    if data:
        yield "\n".join(data)


@dataclass
class StreamEnd:
    """How a streamed reply ended.

    Attributes:
        finish_reason: the server's (``"stop"``, ``"length"``...), or ``""`` if it sent none.
        prompt_tokens, completion_tokens: from the usage chunk, None when the server sent none.
    """

    finish_reason: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def chat_body(model: str, messages: list[dict], params, max_tokens: int) -> dict[str, Any]:
    """The JSON body of a streamed chat completion.

    Args:
        model: the server's model id; messages: ``{"role", "content"}`` dicts;
        params: an :class:`engine.sampling.SamplerParams` (top_k, min_p and repeat_penalty are sent as
            llama-server's extra fields, which vLLM and LM Studio read too); max_tokens: most tokens.
    """
    body: dict[str, Any] = {
        "model": model, "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        "stream": True, "stream_options": {"include_usage": True}, "max_tokens": int(max_tokens),
        "temperature": params.temperature, "top_p": params.top_p, "top_k": params.top_k,
        "min_p": params.min_p, "repeat_penalty": params.repeat_penalty,
    }
    if params.seed is not None:
        body["seed"] = params.seed
    return body


async def stream_chat(client, base_url: str, api_key: str | None, body: dict) -> AsyncIterator[Any]:
    """Stream a chat completion: yields each text piece (``str``), then one :class:`StreamEnd`.

    Cancelling the task that iterates it closes the connection (the server then stops generating).

    Raises:
        RemoteError: no answer, an error status, an error event in the stream, or a malformed stream
            (not SSE, bad JSON, no ``[DONE]`` and no finish reason).
    """
    import httpx

    end = StreamEnd()
    model = body.get("model")
    try:
        async with client.stream("POST", base_url + "/chat/completions", json=body,
                                  headers=auth_headers(api_key)) as r:
            if r.status_code != 200:
                raw = b""
                async for chunk in r.aiter_bytes():
                    raw += chunk
                    if len(raw) >= MAX_ERROR_BYTES:
                        break
                raise status_error(r.status_code, raw[:MAX_ERROR_BYTES], base_url, model)
            kind = r.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "text/event-stream":
                raise RemoteError(f"The server at {base_url} did not stream the reply (it sent {kind or 'no'} "
                                  f"content type instead of text/event-stream): is this an OpenAI-compatible "
                                  f"API address?", r.status_code)
            done = False
            async for data in sse_data(r.aiter_lines()):
                if data.strip() == "[DONE]":
                    done = True
                    break
                for piece in _chunk_pieces(data, end, base_url):
                    yield piece
    except httpx.HTTPError as exc:
        raise transport_error(exc, base_url) from None
    if not done and not end.finish_reason:
        raise RemoteError(f"The reply from {base_url} ended before it was complete (the stream stopped "
                          f"without a finish reason or [DONE]).")
    yield end


def _chunk_pieces(data: str, end: StreamEnd, base_url: str) -> list[str]:
    """The text pieces of one ``chat.completion.chunk``; records finish reason and usage in ``end``.

    Raises:
        RemoteError: the event is an error, or not a chunk.
    """
    try:
        chunk = json.loads(data)
    except ValueError:
        raise RemoteError(f"The server at {base_url} sent a malformed stream event (not JSON): "
                          f"{data[:120]!r}") from None
    if not isinstance(chunk, dict):
        raise RemoteError(f"The server at {base_url} sent a malformed stream event: {data[:120]!r}")
    if "error" in chunk:
        detail, code = _error_detail(data.encode())
        raise RemoteError(f"The server at {base_url} stopped the reply: {detail or 'an error'}", None, code)
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        end.prompt_tokens = _int_or_none(usage.get("prompt_tokens"))
        end.completion_tokens = _int_or_none(usage.get("completion_tokens"))
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        raise RemoteError(f"The server at {base_url} sent a malformed stream event (no choices): {data[:120]!r}")
    out = []
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta") or {}
        text = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(text, str) and text:
            out.append(text)
        if choice.get("finish_reason"):
            end.finish_reason = str(choice["finish_reason"])
    return out


def _int_or_none(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
