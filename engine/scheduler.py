"""One worker thread that owns the model's :class:`~engine.context.Context` and runs generations in order.

The desktop window and the local server share one loaded model and one KV cache, so every request
(a chat turn from the window, an API call) goes through this FIFO scheduler: a bounded queue in front
of a single engine thread, as llama.cpp's ``llama-server`` does with one slot. Callers get a
:class:`Job` whose events they either iterate (blocking) or receive through a callback on the engine
thread (the server forwards them to its event loop, the GUI's worker to Qt signals).

Events, in order, for a job that runs:
    ``("start", None)`` when the engine thread picks it up,
    ``("progress", (done, total))`` after each prefill batch (tokens),
    ``("token", GeneratedToken)`` for each generated token,
    then exactly one of ``("done", GenerationStats)`` or ``("error", Exception)``.
A job cancelled while still queued gets only ``("done", stats)`` with finish_reason "cancelled".
"""
from __future__ import annotations

import dataclasses
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from .context import Context
from .errors import FiresideError
from . import reasoning
from .generate import GeneratedToken, GenerationStats, LogitsConstraint, generate
from .model import Model
from .sampling import Sampler, SamplerParams

Event = tuple[str, Any]

DEFAULT_MAX_QUEUE = 16


class QueueFullError(FiresideError, RuntimeError):
    """The scheduler's queue already holds ``max_queue`` waiting jobs (the server answers 503)."""


class SchedulerClosedError(RuntimeError):
    """The scheduler was closed; no more jobs are accepted."""


@dataclass
class GenerationRequest:
    """What to generate.

    Attributes:
        prompt_tokens: prompt ids, BOS included when the model wants one.
        params: sampling parameters (temperature, top_k, top_p, min_p, penalties, seed).
        max_tokens: most tokens to generate (< 0: until the context is full).
        stop: stop strings.
        logprobs: None, or how many top alternatives to attach to each token (see ``generate``).
        reply_format: None (plain text), or ``engine.reasoning.HARMONY``: the tokens' ``text`` then holds the
            answer and their ``reasoning`` the reasoning (gpt-oss's channels), as do the final stats.
        constraint: None, or a fresh :class:`~engine.generate.LogitsConstraint` for this request alone
            (constrained decoding: JSON schema, grammar).
    """

    prompt_tokens: list[int]
    params: SamplerParams = field(default_factory=SamplerParams)
    max_tokens: int = 256
    stop: Sequence[str] = ()
    logprobs: int | None = None
    reply_format: str | None = None
    constraint: LogitsConstraint | None = None


class Job:
    """A queued or running generation. Iterate it for events, or pass ``on_event`` to ``submit``.

    Attributes:
        request: the :class:`GenerationRequest`.
        stats: the final :class:`GenerationStats` once done (None before).
        error: the exception if the job failed.
    """

    def __init__(self, request: GenerationRequest, on_event: Callable[[Event], None] | None):
        self.request = request
        self._on_event = on_event
        self._events: queue.Queue[Event] = queue.Queue()
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self.stats: GenerationStats | None = None
        self.error: BaseException | None = None

    def cancel(self) -> None:
        """Ask the job to stop: a queued job is dropped, a running one stops before its next token."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._cancel.is_set()

    @property
    def finished(self) -> bool:
        """True once the final ``done`` or ``error`` event was sent."""
        return self._finished.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job finishes; returns False on timeout (seconds)."""
        return self._finished.wait(timeout)

    def _emit(self, kind: str, payload: Any) -> None:
        if kind == "done":
            self.stats = payload
        elif kind == "error":
            self.error = payload
        if self._on_event is not None:
            try:
                self._on_event((kind, payload))
            except Exception:  # a broken listener must not kill the engine thread
                self._cancel.set()
        else:
            self._events.put((kind, payload))
        if kind in ("done", "error"):
            self._finished.set()

    def __iter__(self) -> Iterator[Event]:
        """Yield events until ``done`` or ``error`` (inclusive). Only without ``on_event``."""
        if self._on_event is not None:
            raise RuntimeError("this job delivers its events to its on_event callback")
        while True:
            ev = self._events.get()
            yield ev
            if ev[0] in ("done", "error"):
                return


class Scheduler:
    """Runs jobs one at a time, in submission order, on one engine thread.

    Args:
        model: the loaded model.
        n_ctx, n_threads, n_batch: passed to :class:`~engine.context.Context`.
        max_queue: most jobs waiting (the running one not counted); more raise :class:`QueueFullError`.

    The Context is created on the engine thread, and only that thread touches it.
    """

    def __init__(self, model: Model, *, n_ctx: int | None = None, n_threads: int | None = None,
                 n_batch: int = 512, max_queue: int = DEFAULT_MAX_QUEUE):
        self.model = model
        self.max_queue = max(0, int(max_queue))
        self._ctx_args = dict(n_ctx=n_ctx, n_threads=n_threads, n_batch=n_batch)
        self._ctx: Context | None = None
        self._lock = threading.Lock()
        self._waiting: list[Job] = []
        self._wake = threading.Condition(self._lock)
        self._running: Job | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="fireside-engine", daemon=True)
        self._ready = threading.Event()
        self._init_error: BaseException | None = None
        self._thread.start()
        self._ready.wait()
        if self._init_error is not None:
            raise self._init_error

    @property
    def n_ctx(self) -> int:
        """Context length in tokens."""
        assert self._ctx is not None
        return self._ctx.n_ctx

    @property
    def n_threads(self) -> int:
        """Kernel threads per forward pass."""
        assert self._ctx is not None
        return self._ctx.n_threads

    @property
    def n_cached(self) -> int:
        """Tokens currently in the KV cache (approximate while a job runs)."""
        return len(self._ctx.tokens) if self._ctx is not None else 0

    @property
    def n_waiting(self) -> int:
        """Jobs queued, not yet running."""
        with self._lock:
            return len(self._waiting)

    @property
    def busy(self) -> bool:
        """True while a job runs or waits."""
        with self._lock:
            return self._running is not None or bool(self._waiting)

    def submit(self, request: GenerationRequest, on_event: Callable[[Event], None] | None = None) -> Job:
        """Queue a generation and return its :class:`Job` at once.

        Args:
            request: what to generate.
            on_event: if given, called on the engine thread with each event instead of queueing it for
                iteration; it must be quick and must not raise (an exception cancels the job).

        Raises:
            QueueFullError: ``max_queue`` jobs are already waiting.
            SchedulerClosedError: after :meth:`close`.
        """
        job = Job(request, on_event)
        with self._lock:
            if self._closed:
                raise SchedulerClosedError("the engine is shutting down")
            busy = self._running is not None or self._waiting
            if busy and len(self._waiting) >= self.max_queue:
                raise QueueFullError(f"{len(self._waiting)} requests are already waiting (max_queue = {self.max_queue})")
            self._waiting.append(job)
            self._wake.notify()
        return job

    def cancel_all(self) -> None:
        """Cancel the running job and every queued one (used before switching models)."""
        with self._lock:
            jobs = list(self._waiting) + ([self._running] if self._running else [])
        for j in jobs:
            j.cancel()

    def close(self, timeout: float | None = 30.0) -> None:
        """Cancel everything, stop the engine thread and wait for it (seconds)."""
        self.cancel_all()
        with self._lock:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout)

    def _loop(self) -> None:
        try:
            self._ctx = Context(self.model, **self._ctx_args)
        except BaseException as e:  # noqa: BLE001 - reported to the constructor's caller
            self._init_error = e
            self._ready.set()
            return
        self._ready.set()
        while True:
            with self._lock:
                while not self._waiting and not self._closed:
                    self._wake.wait()
                if not self._waiting:  # closed and drained
                    return
                job = self._waiting.pop(0)
                self._running = job
            try:
                self._run(job)
            finally:
                with self._lock:
                    self._running = None

    def _run(self, job: Job) -> None:
        req = job.request
        if job.cancelled:
            job._emit("done", GenerationStats(n_prompt=len(req.prompt_tokens), finish_reason="cancelled"))
            return
        job._emit("start", None)
        gen = generate(self._ctx, req.prompt_tokens, sampler=Sampler(req.params), max_tokens=req.max_tokens,
                       stop=req.stop, progress=lambda d, t: job._emit("progress", (d, t)),
                       should_stop=lambda: job.cancelled, logprobs=req.logprobs,
                       constraint=req.constraint)
        split = reasoning.splitter(req.reply_format)
        answer: list[str] = []
        thought: list[str] = []
        try:
            for tok in gen:
                if split is not None:
                    text, reasoned = split.push(tok.text)
                    answer.append(text)
                    thought.append(reasoned)
                    tok = dataclasses.replace(tok, text=text, reasoning=reasoned)
                job._emit("token", tok)
            if split is not None:
                text, reasoned = split.flush()
                if text or reasoned:
                    answer.append(text)
                    thought.append(reasoned)
                    job._emit("token", GeneratedToken(-1, text, reasoning=reasoned))
                gen.stats.text, gen.stats.reasoning = "".join(answer), "".join(thought)
        except Exception as e:  # noqa: BLE001 - delivered to the caller as an event
            job._emit("error", e)
            return
        job._emit("done", gen.stats)
