"""One worker thread that owns the model's :class:`~engine.context.Context` and runs generations in
``n_parallel`` slots with continuous batching.

The desktop window and the local server share one loaded model, so every request (a chat turn from
the window, an API call) goes through this scheduler: a bounded FIFO queue in front of a single engine
thread that serves up to ``n_parallel`` requests at once, as llama.cpp's ``llama-server`` does
(``tools/server/server-context.cpp``, ``update_slots``). Each slot is a sequence of its own in the KV
cache (``n_ctx`` tokens per slot). Each engine step is one forward pass holding the next token of
every generating slot plus prefill chunks of newly started prompts (up to n_batch prompt tokens), so
decoding four replies costs little more than decoding one (decode is memory-bound: the weights are
read once per step). A new request takes the free slot whose cached tokens share the longest prefix
with its prompt when that prefix is more than half the prompt (the window's conversation keeps its
slot, a returning API client reuses its prefix: llama-server's ``--slot-prompt-similarity`` 0.5), else
the least recently used one, so a new conversation does not evict another's cache only because both
begin with the same system prompt. What another slot holds of the prompt beyond the chosen slot's own
cache (that shared system prompt, an agent's tool list) is copied from its cache rows rather than
evaluated again (``Context.share_prefix``; llama.cpp's ``llama_memory_seq_cp``), so clients that arrive
together each prefill only their own part.

Callers get a :class:`Job` whose events they either iterate (blocking) or receive through a callback
on the engine thread (the server forwards them to its event loop, the GUI's worker to Qt signals).

Events, in order, for a job that runs:
    ``("start", None)`` when the engine thread picks it up,
    ``("progress", (done, total))`` after each prefill batch (tokens),
    ``("token", GeneratedToken)`` for each generated token,
    then exactly one of ``("done", GenerationStats)`` or ``("error", Exception)``.
A job cancelled while still queued gets only ``("done", stats)`` with finish_reason "cancelled".
"""
from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from .context import Context
from .errors import FiresideError
from . import reasoning
from .generate import Continuation, GeneratedToken, GenerationStats, LogitsConstraint
from .model import Model
from .sampling import Sampler, SamplerParams

Event = tuple[str, Any]

DEFAULT_MAX_QUEUE = 16
DEFAULT_N_PARALLEL = 4  # llama-server's default number of slots
SLOT_PROMPT_SIMILARITY = 0.5  # llama-server's default: reuse a slot whose cache covers more of the prompt
ARRIVAL_WAIT_S = 0.025  # most an idle engine waits for requests being prepared (see Scheduler.arriving)


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
        n_keep: with the scheduler's context shift on, prompt tokens always kept at the start (e.g. the
            system prompt; llama-server's ``n_keep``); a BOS token is kept in any case.
    """

    prompt_tokens: list[int]
    params: SamplerParams = field(default_factory=SamplerParams)
    max_tokens: int = 256
    stop: Sequence[str] = ()
    logprobs: int | None = None
    reply_format: str | None = None
    constraint: LogitsConstraint | None = None
    n_keep: int = 0


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


@dataclass
class SlotInfo:
    """A slot's state, for status pages (``/slots``, the app's server panel).

    Attributes:
        id: the slot (its sequence in the KV cache). state: ``"idle"``, ``"prefill"`` or ``"generating"``.
        n_cached: tokens its cache holds (its prompt cache while idle).
        n_prompt, n_generated: the running request's prompt tokens and tokens generated so far.
    """

    id: int
    state: str
    n_cached: int
    n_prompt: int = 0
    n_generated: int = 0


class _Slot:
    """One sequence of the KV cache and the request it serves (engine thread only)."""

    def __init__(self, seq: int):
        self.seq = seq
        self.last_used = 0.0          # time.monotonic() when its last request ended or started
        self.job: Job | None = None
        self.todo: list[int] = []     # prompt tokens still to evaluate
        self.n_todo = 0               # prompt tokens to evaluate in all (progress)
        self.cont: Continuation | None = None
        self.next_token: int | None = None
        self.split = None
        self.answer: list[str] = []
        self.thought: list[str] = []
        self.stats: GenerationStats | None = None
        self.t0 = self.t1 = 0.0       # start of the prefill, of the decode

    @property
    def state(self) -> str:
        if self.job is None:
            return "idle"
        return "prefill" if self.cont is None else "generating"


class Scheduler:
    """Runs jobs in ``n_parallel`` slots with continuous batching, in submission order, on one engine thread.

    Args:
        model: the loaded model.
        n_ctx, n_threads, n_batch: passed to :class:`~engine.context.Context` (n_ctx per slot).
        max_queue: most jobs waiting for a slot (running ones not counted); more raise :class:`QueueFullError`.
        n_parallel: slots, i.e. requests served at once (1: strictly one at a time).
        context_shift: when a slot's cache fills while generating, drop the older half of what follows its
            request's ``n_keep`` tokens and go on (llama-server's ``--context-shift``: n_discard =
            (n_cached - n_keep) / 2), instead of ending with finish_reason "length".
        arrival_wait_s: most seconds an idle engine holds a queued job while other requests are still
            being prepared (:meth:`arriving`), so that a burst is prefilled in one step.

    Replies do not depend on what else runs: each slot's tokens get the bits a run alone gives them
    (``ForwardContext.eval_batch``: on the types llama.cpp multiplies with a gemm for groups of 4 rows and
    a gemv for the rest, Q4_0, Q4_K, IQ4_NL and MXFP4, that choice is made per slot, not per batch).

    The Context is created on the engine thread, and only that thread touches it.
    """

    def __init__(self, model: Model, *, n_ctx: int | None = None, n_threads: int | None = None,
                 n_batch: int = 512, max_queue: int = DEFAULT_MAX_QUEUE, n_parallel: int = 1,
                 context_shift: bool = False, arrival_wait_s: float = ARRIVAL_WAIT_S):
        self.model = model
        self.arrival_wait_s = max(0.0, float(arrival_wait_s))
        self._arriving = 0
        self.max_queue = max(0, int(max_queue))
        self.n_parallel = int(n_parallel)
        self.context_shift = bool(context_shift)
        if self.n_parallel < 1:
            raise ValueError(f"n_parallel must be at least 1, not {n_parallel}")
        self._ctx_args = dict(n_ctx=n_ctx, n_threads=n_threads, n_batch=n_batch, n_seq=self.n_parallel)
        self._ctx: Context | None = None
        self._lock = threading.Lock()
        self._waiting: list[Job] = []
        self._wake = threading.Condition(self._lock)
        self._slots = [_Slot(i) for i in range(self.n_parallel)]
        self._n_running = 0
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
        """Context length in tokens, per slot."""
        assert self._ctx is not None
        return self._ctx.n_ctx

    @property
    def n_threads(self) -> int:
        """Kernel threads per forward pass."""
        assert self._ctx is not None
        return self._ctx.n_threads

    @property
    def n_cached(self) -> int:
        """Tokens in the KV cache of the most recently used slot (approximate while jobs run)."""
        if self._ctx is None:
            return 0
        slot = max(self._slots, key=lambda s: s.last_used)
        return len(self._ctx.seq_tokens[slot.seq])

    @property
    def n_waiting(self) -> int:
        """Jobs queued, not yet in a slot."""
        with self._lock:
            return len(self._waiting)

    @property
    def n_running(self) -> int:
        """Jobs in a slot now."""
        with self._lock:
            return self._n_running

    @property
    def busy(self) -> bool:
        """True while a job runs or waits."""
        with self._lock:
            return self._n_running > 0 or bool(self._waiting)

    def slots(self) -> list[SlotInfo]:
        """Each slot's state (a snapshot; approximate while jobs run)."""
        out = []
        for s in self._slots:
            job, cont = s.job, s.cont
            n_cached = len(self._ctx.seq_tokens[s.seq]) if self._ctx is not None else 0
            out.append(SlotInfo(s.seq, s.state, n_cached, len(job.request.prompt_tokens) if job is not None else 0,
                                cont.stats.n_generated if cont is not None else 0))
        return out

    def submit(self, request: GenerationRequest, on_event: Callable[[Event], None] | None = None) -> Job:
        """Queue a generation and return its :class:`Job` at once.

        Args:
            request: what to generate.
            on_event: if given, called on the engine thread with each event instead of queueing it for
                iteration; it must be quick and must not raise (an exception cancels the job).

        Raises:
            QueueFullError: ``max_queue`` jobs already wait beyond the free slots.
            SchedulerClosedError: after :meth:`close`.
        """
        job = Job(request, on_event)
        with self._lock:
            if self._closed:
                raise SchedulerClosedError("the engine is shutting down")
            free = max(0, self.n_parallel - self._n_running)   # slots the engine thread is about to fill
            if len(self._waiting) >= free + self.max_queue:
                raise QueueFullError(f"{len(self._waiting) - free} requests are already waiting for a slot "
                                     f"(max_queue = {self.max_queue})")
            self._waiting.append(job)
            self._wake.notify()
        return job

    @contextlib.contextmanager
    def arriving(self) -> Iterator[None]:
        """Mark a request that is being prepared (parsed, its template rendered, tokenized) and will be
        submitted inside this block.

        An idle engine that finds a job queued while others are still arriving waits for them, at most
        ``arrival_wait_s``, and starts them all in one step: requests sent together then share one
        prefill pass (the weights read once) and get their first tokens together, where the first would
        otherwise be prefilled alone and the rest wait for it. (The server prepares requests one at a
        time under Python's GIL, so a burst reaches :meth:`submit` over a few milliseconds; llama-server's
        HTTP threads tokenize in parallel.) A running engine never waits: newcomers join its next step.
        """
        with self._lock:
            self._arriving += 1
        try:
            yield
        finally:
            with self._lock:
                self._arriving -= 1
                self._wake.notify()

    def cancel_all(self) -> None:
        """Cancel the running jobs and every queued one (used before switching models)."""
        with self._lock:
            jobs = list(self._waiting) + [s.job for s in self._slots if s.job is not None]
        for j in jobs:
            j.cancel()

    def close(self, timeout: float | None = 30.0) -> None:
        """Cancel everything, stop the engine thread and wait for it (seconds)."""
        self.cancel_all()
        with self._lock:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout)

    # -- the engine thread --

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
                while not self._waiting and not self._n_running and not self._closed:
                    self._wake.wait()
                if not self._waiting and not self._n_running:  # closed and drained
                    return
                if not self._n_running and self._arriving:  # idle, and a burst is still being prepared
                    deadline = time.monotonic() + self.arrival_wait_s
                    while self._arriving and not self._closed and (left := deadline - time.monotonic()) > 0:
                        self._wake.wait(left)
                started = self._assign()
            for slot in started:
                self._start(slot)
            if any(s.job is not None for s in self._slots):
                self._step()

    def _assign(self) -> list[_Slot]:
        """Move waiting jobs into free slots, in order (lock held). Returns the slots given a job."""
        started = []
        while self._waiting:
            free = [s for s in self._slots if s.job is None]
            if not free:
                break
            job = self._waiting.pop(0)
            prompt = job.request.prompt_tokens
            # the longest common prefix with a slot's cache if it covers enough of the prompt, else the
            # least recently used slot
            lcp = {s.seq: self._ctx.common_prefix(prompt, s.seq) for s in free}
            slot = max(free, key=lambda s: (lcp[s.seq], -s.last_used))
            if lcp[slot.seq] <= SLOT_PROMPT_SIMILARITY * len(prompt):
                slot = min(free, key=lambda s: s.last_used)
            slot.job = job
            self._n_running += 1
            started.append(slot)
        return started

    def _release(self, slot: _Slot) -> None:
        with self._lock:
            slot.job, slot.cont, slot.next_token, slot.split = None, None, None, None
            slot.todo = []
            slot.last_used = time.monotonic()
            self._n_running -= 1

    def _finish(self, slot: _Slot, kind: str, payload: Any) -> None:
        """End the slot's job with a ``done`` or ``error`` event and free the slot."""
        job = slot.job   # the slot's cached tokens stay right: a failed evaluation keeps none of its tokens
        self._release(slot)
        job._emit(kind, payload)

    def _start(self, slot: _Slot) -> None:
        """Begin the slot's job: check it, then set up its prefill (what its cache already holds is kept)."""
        job = slot.job
        req = job.request
        stats = GenerationStats(n_prompt=len(req.prompt_tokens))
        if job.cancelled:
            stats.finish_reason = "cancelled"
            self._release(slot)
            job._emit("done", stats)
            return
        job._emit("start", None)
        slot.stats = stats
        slot.t0 = time.perf_counter()
        ctx = self._ctx
        try:
            ctx.check_prompt(req.prompt_tokens)
            ctx.check_tokens(req.prompt_tokens)
            self.model.check_file()
        except Exception as e:  # noqa: BLE001 - delivered to the caller as an event
            self._finish(slot, "error", e)
            return
        ctx.keep_prefix(req.prompt_tokens, slot.seq)
        stats.n_reused = ctx.share_prefix(req.prompt_tokens, slot.seq)  # e.g. a system prompt another slot holds
        slot.todo = list(req.prompt_tokens[stats.n_reused:])
        slot.n_todo = len(slot.todo)
        slot.split = reasoning.splitter(req.reply_format)
        slot.answer, slot.thought = [], []

    def _step(self) -> None:
        """One forward pass: the next token of every generating slot, and prefill chunks up to n_batch."""
        ctx = self._ctx
        parts: list[tuple[int, list[int], bool]] = []
        owners: list[tuple[_Slot, int]] = []   # (slot, tokens of the prompt this part evaluates; 0 = decode)
        for slot in self._slots:
            if slot.job is not None and slot.job.cancelled:
                self._cancel(slot)
        budget = ctx.n_batch
        for slot in self._slots:
            if slot.job is None:
                continue
            if slot.cont is not None:
                if len(ctx.seq_tokens[slot.seq]) >= ctx.n_ctx:
                    self._shift(slot)
                parts.append((slot.seq, [slot.next_token], True))
                owners.append((slot, 0))
            elif slot.todo:
                # whole n_batch chunks from where the prompt cache ends, as a run alone would take them
                chunk = min(len(slot.todo), ctx.n_batch)
                if chunk <= budget:
                    budget -= chunk
                    parts.append((slot.seq, slot.todo[:chunk], chunk == len(slot.todo)))
                    owners.append((slot, chunk))
        if not parts:
            return
        try:
            self.model.check_file()  # a stat call, microseconds: stop before reading a rewritten file
            results = ctx.eval_batch(parts)
        except Exception as e:  # noqa: BLE001 - every job of this step learns of it
            for slot, _ in owners:
                self._finish(slot, "error", e)
            return
        for (slot, n_prompt), logits in zip(owners, results):
            if isinstance(logits, Exception):
                self._finish(slot, "error", logits)
                continue
            if n_prompt:
                del slot.todo[:n_prompt]
                slot.job._emit("progress", (slot.n_todo - len(slot.todo), slot.n_todo))
                if slot.todo:
                    continue
                self._begin_decode(slot)
            self._advance(slot, logits)

    def _shift(self, slot: _Slot) -> None:
        """Make room in a full slot (context shift, llama-server ``update_slots``)."""
        ctx = self._ctx
        req = slot.job.request
        cached = ctx.seq_tokens[slot.seq]
        bos = self.model.tokenizer.bos_id
        n_keep = max(0, min(req.n_keep, len(cached) - 2))
        if n_keep == 0 and bos is not None and cached and cached[0] == bos:
            n_keep = 1
        n_discard = (len(cached) - n_keep) // 2
        ctx.shift(n_keep, n_discard, slot.seq)

    def _begin_decode(self, slot: _Slot) -> None:
        req = slot.job.request
        now = time.perf_counter()
        slot.stats.prefill_s = now - slot.t0
        slot.t1 = now
        slot.cont = Continuation(self.model.tokenizer, req.prompt_tokens, sampler=Sampler(req.params),
                                 max_tokens=req.max_tokens, stop=req.stop, logprobs=req.logprobs,
                                 constraint=req.constraint, n_ctx=self._ctx.n_ctx, stats=slot.stats,
                                 context_shift=self.context_shift)

    def _emit_tokens(self, slot: _Slot, tokens: list[GeneratedToken]) -> None:
        for tok in tokens:
            if slot.split is not None:
                text, reasoned = slot.split.push(tok.text)
                slot.answer.append(text)
                slot.thought.append(reasoned)
                tok = dataclasses.replace(tok, text=text, reasoning=reasoned)
            slot.job._emit("token", tok)

    def _advance(self, slot: _Slot, logits) -> None:
        """Sample the slot's next token from its logits, emit what it completes, end the job if it is over."""
        try:
            tokens, nxt = slot.cont.step(logits, len(self._ctx.seq_tokens[slot.seq]))
            self._emit_tokens(slot, tokens)
        except Exception as e:  # noqa: BLE001 - a broken constraint or splitter ends this job only
            self._finish(slot, "error", e)
            return
        if nxt is None:
            self._done(slot)
        else:
            slot.next_token = nxt

    def _cancel(self, slot: _Slot) -> None:
        if slot.cont is None:  # still in its prefill
            slot.stats.finish_reason = "cancelled"
            slot.stats.prefill_s = time.perf_counter() - slot.t0
            self._finish(slot, "done", slot.stats)
            return
        self._emit_tokens(slot, slot.cont.cancel())
        self._done(slot)

    def _done(self, slot: _Slot) -> None:
        stats = slot.stats
        stats.decode_s = time.perf_counter() - slot.t1
        if slot.split is not None:
            text, reasoned = slot.split.flush()
            if text or reasoned:
                slot.answer.append(text)
                slot.thought.append(reasoned)
                slot.job._emit("token", GeneratedToken(-1, text, reasoning=reasoned))
            stats.text, stats.reasoning = "".join(slot.answer), "".join(slot.thought)
        self._finish(slot, "done", stats)
