"""From the engine thread to the event loop, and from there to Server-Sent Events.

The scheduler calls a job's ``on_event`` on its engine thread; :class:`EventBridge` hands each event to
the server's asyncio loop with ``loop.call_soon_threadsafe`` (the only thread-safe way in), where a
request handler awaits them. Nothing here blocks the loop.

SSE framing follows the WHATWG HTML spec (``data: ...`` lines, a blank line per event) and OpenAI's
stream ends with the literal ``data: [DONE]``.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator

from starlette.requests import Request

from ..scheduler import Event, Job

DONE = "data: [DONE]\n\n"


class EventBridge:
    """A job's event callback that forwards events into an asyncio queue on ``loop``.

    Pass the bridge as ``on_event`` to :meth:`Scheduler.submit`, then ``async for`` over :meth:`events`.
    If the loop is gone (the server stopped), ``call_soon_threadsafe`` raises RuntimeError; the scheduler
    then cancels the job, which is what should happen to a generation nobody can receive.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._queue: asyncio.Queue[Event] = asyncio.Queue()

    def __call__(self, event: Event) -> None:
        """Engine thread: queue ``event`` for the loop (never blocks)."""
        self._loop.call_soon_threadsafe(self._queue.put_nowait, event)

    async def events(self) -> AsyncIterator[Event]:
        """Yield events until ``done`` or ``error`` (inclusive)."""
        while True:
            event = await self._queue.get()
            yield event
            if event[0] in ("done", "error"):
                return


def sse(data: dict[str, Any]) -> str:
    """One SSE event carrying ``data`` as compact JSON (NaN/inf are refused: they are not JSON)."""
    return "data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n\n"


async def cancel_on_disconnect(request: Request, job: Job) -> None:
    """Wait for the client to go away, then cancel ``job``; run as a task beside a non-streaming request.

    After the body is read, the server's ``receive`` only returns ``http.disconnect`` (when the client
    closes the connection). Cancel this task once the response is ready.
    """
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            job.cancel()
            return
