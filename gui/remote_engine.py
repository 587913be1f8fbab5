"""A remote model source: an OpenAI-compatible server (llama-server, vLLM, LM Studio, ``fireside serve``)
behind the same signals and methods as :class:`gui.engine_worker.EngineWorker`, so the window can use either.

The HTTP work (:mod:`gui.remote_api`, httpx) runs as asyncio tasks on the engine's own daemon thread,
never on the GUI thread; results come back as Qt signals (queued into the receivers' threads). Stop
cancels the request's task, which closes its connection, and the server stops generating. Every
failure is a ``failed`` / ``load_failed`` signal with a message for the user.
"""
from __future__ import annotations

import asyncio
import itertools
import threading
import time
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal

from engine.generate import GenerationStats
from engine.logs import log_exception
from engine.sampling import SamplerParams

from . import remote_api
from .events import ReplyFailure
from .remote_api import RemoteError
from .signals import emit

LOAD_STAGES = ("Asking the server for its models",)


@dataclass(frozen=True)
class RemoteModel:
    """What the window learns about a remote model once the server has confirmed it.

    Attributes:
        base_url: the API root (``http://host:port/v1``); model: the server's model id;
        name: the endpoint's name for display ("" = the host); load_s: seconds the check took;
        n_ctx: the context size (0: the OpenAI API does not tell it).
        path: ``"<base_url>#<model>"``, an identity like EngineWorker's model path.
    """

    base_url: str
    model: str
    name: str = ""
    load_s: float = 0.0
    n_ctx: int = 0

    thinking: bool = False  # no Thinking switch: the server renders the template

    @property
    def path(self) -> str:
        """``"<base_url>#<model>"``: identifies the remote model as a file path identifies a local one."""
        return f"{self.base_url}#{self.model}"

    @property
    def where(self) -> str:
        """The endpoint's name, or the server's host (and port) when it has none."""
        return self.name or remote_api.host_of(self.base_url)

    @property
    def title(self) -> str:
        """``"<model> @ <endpoint name or host>"``: how the window names the remote model."""
        return f"{self.model} @ {self.where}"


@dataclass
class RemoteStats(GenerationStats):
    """:class:`GenerationStats` of a remote reply.

    ``n_prompt`` / ``n_generated`` are the server's usage counts when it sent them (else 0 and the number
    of text pieces); ``prefill_s`` is the time to the first token (request sent to first text, seconds),
    ``decode_s`` the time from the first token to the end. ``ttft_s`` repeats ``prefill_s`` by its usual
    name; ``model`` is the model id asked for.
    """

    ttft_s: float = 0.0
    model: str = ""


class RemoteEngine(QObject):
    """Chat turns against one OpenAI-compatible endpoint.

    Args:
        base_url: the server's address (``http://127.0.0.1:8080`` or ``.../v1``; see
            :func:`gui.remote_api.normalize_base_url`; a bad one makes every call fail with a message).
        api_key: sent as ``Authorization: Bearer``; "" for none.
        name: the endpoint's display name.

    Signals are EngineWorker's (``load_started`` ... ``file_changed``, which is never emitted here; no
    ``queued`` / ``counted``: there is no :meth:`count_tokens` or queue position) plus
    ``models_listed(list)`` / ``models_failed(str)`` for :meth:`list_models`. ``failed`` carries an
    :class:`gui.events.ReplyFailure` (reason ``error``), as EngineWorker's does. Methods are safe to call from
    the GUI thread; the object may stay there or be moved to a QThread (its work runs on its own thread
    either way). Call :meth:`shutdown` when done.
    """

    load_started = Signal(str)                   # model id
    load_progress = Signal(str, int, int)        # stage text, stage index (1..), number of stages
    model_loaded = Signal(object)                # RemoteModel
    load_failed = Signal(str, str)               # model id, message for the user
    reply_started = Signal(int)                  # request id: the request is being sent
    prompt_progress = Signal(int, int, int)      # never emitted (servers do not report prefill progress)
    token = Signal(int, str)                     # request id, text piece (non-empty)
    finished = Signal(int, object)               # request id, RemoteStats
    failed = Signal(int, object)                 # request id, events.ReplyFailure
    file_changed = Signal(int, str)              # never emitted (no local file)
    models_listed = Signal(list)                 # model ids, the server's order
    models_failed = Signal(str)                  # message for the user

    #: Continue (a reply resumed inside the prompt) needs the local template: not for a remote model.
    can_continue = False

    def __init__(self, base_url: str, api_key: str = "", name: str = ""):
        super().__init__()
        self.name = name
        self.api_key = api_key or ""
        try:
            self.base_url = remote_api.normalize_base_url(base_url)
            self._url_error = None
        except RemoteError as exc:
            self.base_url, self._url_error = (base_url or "").strip(), str(exc)
        self._lock = threading.Lock()
        self._model: str | None = None
        self._ids = itertools.count(1)
        self._tasks: dict[int, asyncio.Task] = {}
        self._cancelled: set[int] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client = None

    # Called from the GUI thread ------------------------------------------------------------------

    @property
    def model(self) -> str | None:
        """The model id replies use (set by a successful :meth:`load`), or None."""
        with self._lock:
            return self._model

    def list_models(self) -> None:
        """Ask ``GET /v1/models``; emits ``models_listed`` or ``models_failed``."""
        self._spawn(self._do_list())

    def load(self, model: str, *_ignored) -> None:
        """Use ``model`` for the next replies once the server lists it (EngineWorker's n_ctx, n_threads
        and n_parallel arguments are accepted and ignored: the server decides those).

        Emits ``load_started``, ``load_progress``, then ``model_loaded`` (a :class:`RemoteModel`) or
        ``load_failed`` (the previous model stays in use).
        """
        self._spawn(self._do_load(str(model)))

    def generate(self, messages: list[dict], params: SamplerParams, max_tokens: int,
                 variables: dict | None = None, *, resume_last: bool = False) -> int:
        """Queue a chat turn; returns its request id. Events: ``reply_started``, ``token``..., then
        ``finished`` (finish_reason ``"cancelled"`` after :meth:`cancel`) or ``failed``.

        ``variables`` (EngineWorker's chat-template variables) are ignored: the server renders its own
        template. ``resume_last`` (Continue) cannot be done through the chat API: such a turn fails at
        once with a message.
        """
        req_id = next(self._ids)
        if resume_last:
            emit(self.failed, req_id, ReplyFailure("Continue works with local models only: a remote server "
                                                   "starts every reply afresh. Use Regenerate instead."))
            return req_id
        self._spawn(self._do_generate(req_id, list(messages), params, int(max_tokens)), req_id)
        return req_id

    def cancel(self, req_id: int) -> None:
        """Stop a chat turn: its connection is closed and it finishes with finish_reason "cancelled"."""
        with self._lock:
            self._cancelled.add(req_id)
            task = self._tasks.get(req_id)
            loop = self._loop
        if task is not None and loop is not None:
            loop.call_soon_threadsafe(task.cancel)

    def cancel_all(self) -> None:
        """Stop every chat turn of this engine."""
        with self._lock:
            ids = list(self._tasks)
        for req_id in ids:
            self.cancel(req_id)

    def engine(self):
        """Always None: a remote model has no local Scheduler (the in-process server cannot share it)."""
        return None

    def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel running replies, close the connections and stop the engine's thread (seconds)."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None:
            return

        async def close() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._client is not None:
                await self._client.aclose()
                self._client = None

        try:
            asyncio.run_coroutine_threadsafe(close(), loop).result(timeout)
        except Exception as exc:  # noqa: BLE001 - closing is best effort; the thread is a daemon
            log_exception(exc, "remote engine shutdown")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)

    # The engine's thread -------------------------------------------------------------------------

    def _spawn(self, coro, req_id: int | None = None) -> None:
        loop = self._ensure_loop()

        def start() -> None:
            if req_id is None:
                loop.create_task(coro)
                return
            with self._lock:
                cancelled = req_id in self._cancelled
                self._cancelled.discard(req_id)
                if not cancelled:  # a task cancelled before its first step would never run its own code
                    self._tasks[req_id] = loop.create_task(coro)
            if cancelled:
                coro.close()
                emit(self.finished, req_id, RemoteStats(finish_reason="cancelled", model=self.model or ""))

        loop.call_soon_threadsafe(start)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name="fireside-remote",
                                                daemon=True)
                self._thread.start()
            return self._loop

    def _http(self):
        if self._url_error:
            raise RemoteError(self._url_error)
        if self._client is None:
            self._client = remote_api.new_client()
        return self._client

    async def _do_list(self) -> None:
        try:
            models = await remote_api.list_models(self._http(), self.base_url, self.api_key)
        except RemoteError as exc:
            emit(self.models_failed, str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug: logged, reported, the window goes on
            emit(self.models_failed, _internal_error("Listing the server's models", exc))
        else:
            emit(self.models_listed, models)

    async def _do_load(self, model: str) -> None:
        emit(self.load_started, model)
        t0 = time.perf_counter()
        emit(self.load_progress, LOAD_STAGES[0], 1, len(LOAD_STAGES))
        try:
            models = await remote_api.list_models(self._http(), self.base_url, self.api_key)
        except RemoteError as exc:
            emit(self.load_failed, model, str(exc))
            return
        except Exception as exc:  # noqa: BLE001
            emit(self.load_failed, model, _internal_error("Checking the remote model", exc))
            return
        if model not in models:
            offered = ", ".join(models[:8]) + (" …" if len(models) > 8 else "") if models else "none"
            emit(self.load_failed, model, f"The server at {self.base_url} has no model named {model!r} "
                                          f"(it offers: {offered}).")
            return
        with self._lock:
            self._model = model
        emit(self.model_loaded, RemoteModel(self.base_url, model, self.name, time.perf_counter() - t0))

    async def _do_generate(self, req_id: int, messages: list, params: SamplerParams, max_tokens: int) -> None:
        model = self.model
        stats = RemoteStats(model=model or "")
        pieces: list[str] = []
        t0 = time.perf_counter()
        t_first = None
        try:
            if model is None:
                emit(self.failed, req_id, ReplyFailure("No remote model is chosen: pick one of the server's "
                                                         "models first."))
                return
            emit(self.reply_started, req_id)
            body = remote_api.chat_body(model, messages, params, max_tokens)
            async for item in remote_api.stream_chat(self._http(), self.base_url, self.api_key, body):
                if isinstance(item, str):
                    if t_first is None:
                        t_first = time.perf_counter()
                    pieces.append(item)
                    emit(self.token, req_id, item)
                else:
                    _fill(stats, item, pieces, t0, t_first)
            emit(self.finished, req_id, stats)
        except asyncio.CancelledError:
            stats.finish_reason = "cancelled"
            stats.n_generated = len(pieces)
            _times(stats, t0, t_first)
            stats.text = "".join(pieces)
            emit(self.finished, req_id, stats)
        except RemoteError as exc:
            emit(self.failed, req_id, ReplyFailure(str(exc)))
        except Exception as exc:  # noqa: BLE001 - a bug: logged, reported, the window goes on
            emit(self.failed, req_id, ReplyFailure(_internal_error("The remote reply", exc)))
        finally:
            with self._lock:
                self._tasks.pop(req_id, None)
                self._cancelled.discard(req_id)


def _times(stats: RemoteStats, t0: float, t_first: float | None) -> None:
    now = time.perf_counter()
    first = t_first if t_first is not None else now
    stats.prefill_s = stats.ttft_s = first - t0
    stats.decode_s = now - first


def _fill(stats: RemoteStats, end: remote_api.StreamEnd, pieces: list[str], t0: float, t_first: float | None) -> None:
    stats.finish_reason = end.finish_reason or "stop"
    stats.n_prompt = end.prompt_tokens or 0
    stats.n_generated = end.completion_tokens if end.completion_tokens is not None else len(pieces)
    stats.text = "".join(pieces)
    _times(stats, t0, t_first)


def _internal_error(what: str, exc: BaseException) -> str:
    """The message for an exception that is a Fireside bug; its traceback goes to the log file."""
    path = log_exception(exc, f"app: {what.lower()}")
    return f"{what} failed with an internal error ({type(exc).__name__}: {exc}). Details are in {path}."
