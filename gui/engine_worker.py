"""The engine side of the window: a QObject on its own QThread that loads models and runs chat turns.

The window talks to it only through signals. Loading (``load_model`` + a new
:class:`~engine.scheduler.Scheduler`) and prompt building run in the worker's thread; the tokens come
from the Scheduler's engine thread, the same one the in-process server submits to, and are relayed
with Qt signals (queued into the GUI thread, so the window never blocks on the engine).

Request ids tie the events to the chat turn that asked for them: the window ignores ids it no
longer waits for.
"""
from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from engine.context import ContextFullError
from engine.errors import FiresideError, ModelFileChangedError
from engine.generate import GenerationStats
from engine.gguf_file import GGUFError
from engine.logs import log_exception
from engine.model import FileIdentity, load_model
from engine.reasoning import model_reply_format
from engine.sampling import SamplerParams
from engine.scheduler import GenerationRequest, Scheduler
from . import events
from .events import QueueState, ReplyFailure
from .prompt import encode_continuation, encode_prompt, fit_history, supports_thinking
from .signals import emit

LOAD_STAGES = ("Checking the file", "Reading the weights", "Creating the context")


@dataclass(frozen=True)
class LoadedModel:
    """What the window learns about a model once it is ready.

    Attributes:
        path: the ``.gguf`` file; info: its :class:`engine.model.ModelInfo`;
        n_ctx, n_threads: of the new Scheduler; load_s: seconds the load took.
        template: which chat template formats the prompts: ``"model"`` (the file's own), ``"gemma"`` or
            ``"chatml"`` (built-in ones, for files without a template; see engine/chat_template.py).
        thinking: whether the template reads ``enable_thinking`` (a Thinking toggle applies).
    """

    path: str
    info: object
    n_ctx: int
    n_threads: int
    load_s: float
    template: str = "model"
    thinking: bool = False

    @property
    def name(self) -> str:
        """The name the window shows: the file's name without ``.gguf`` (``general.name`` is often vague)."""
        return Path(self.path).stem


def template_kind(chat_template) -> str:
    """``"model"``, ``"gemma"`` or ``"chatml"``: the :class:`~engine.chat_template.ChatTemplate` in use."""
    from engine.chat_template import GEMMA_TEMPLATE

    if not chat_template.is_fallback:
        return "model"
    return "gemma" if chat_template.source == GEMMA_TEMPLATE else "chatml"


def context_overflow_message(n_prompt: int, n_ctx: int) -> str:
    """The message shown when a conversation no longer fits the context window."""
    return (f"This conversation is {n_prompt} tokens long, which does not fit the context window "
            f"({n_ctx} tokens, with room for the reply). Start a new chat, delete or edit earlier messages, "
            f"or raise the context size in Settings.")


class EngineWorker(QObject):
    """Owns the loaded model and its Scheduler. Create it, ``moveToThread``, start the thread.

    Public methods are safe to call from the GUI thread; they either queue work into the worker's
    thread (``load``, ``generate``) or touch only thread-safe objects (``cancel``, ``engine``).
    """

    load_started = Signal(str)                   # path
    load_progress = Signal(str, int, int)        # stage text, stage index (1..), number of stages
    model_loaded = Signal(object)                # LoadedModel
    load_failed = Signal(str, str)               # path, message for the user
    reply_started = Signal(int)                  # request id: prefill begins
    queued = Signal(int, object)                 # request id, events.QueueState: waiting for a free slot
    prompt_progress = Signal(int, int, int)      # request id, prompt tokens done, total
    token = Signal(int, str)                     # request id, text piece (non-empty)
    finished = Signal(int, object)               # request id, GenerationStats
    failed = Signal(int, object)                 # request id, events.ReplyFailure
    counted = Signal(int, int)                   # ticket of count_tokens, tokens (-1: no model loaded)

    _load_requested = Signal(str, int, int, int, bool)
    _generate_requested = Signal(int, object, object, int, object, bool)
    _count_requested = Signal(int, object, object)

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()
        self._model = None
        self._scheduler = None
        self._jobs: dict[int, object] = {}
        self._cancelled: set[int] = set()
        self._ids = itertools.count(1)
        self._started: set[int] = set()
        self._ahead: dict[int, int] = {}
        self._load_requested.connect(self._do_load)
        self._generate_requested.connect(self._do_generate)
        self._count_requested.connect(self._do_count)

    # Called from the GUI thread ------------------------------------------------------------------

    def load(self, path: str | Path, n_ctx: int = 0, n_threads: int = 0, n_parallel: int = 1,
             context_shift: bool = False) -> None:
        """Load ``path`` in the worker thread (``context_shift``: a chat that outgrows n_ctx keeps its system
        prompt and drops its oldest turns, see :func:`fit_history`) (0 = default n_ctx / all cores; n_parallel slots, each with
        n_ctx tokens of KV cache); stops running replies first.

        Emits ``load_started``, ``load_progress``..., then ``model_loaded`` or ``load_failed`` (the
        previous model stays loaded on failure).
        """
        self.cancel_all()
        emit(self._load_requested, str(path), int(n_ctx), int(n_threads), max(1, int(n_parallel)),
             bool(context_shift))

    def generate(self, messages: list[dict], params: SamplerParams, max_tokens: int,
                 variables: dict | None = None, *, resume_last: bool = False) -> int:
        """Queue a chat turn; returns its request id.

        Args:
            messages: ``{"role", "content"}`` dicts, the system prompt first if any (see
                :func:`gui.prompt.chat_messages`).
            params: sampling parameters; max_tokens: most tokens in the reply.
            variables: extra chat-template variables (``enable_thinking``).
            resume_last: the last message is an assistant reply to continue: the prompt ends inside it
                (:func:`gui.prompt.encode_continuation`) and the tokens are the rest of that reply.

        Events arrive as ``queued`` (only when every slot is busy), ``reply_started``, ``token``..., then
        ``finished`` or ``failed``.
        """
        req_id = next(self._ids)
        emit(self._generate_requested, req_id, list(messages), params, int(max_tokens), dict(variables or {}),
             bool(resume_last))
        return req_id

    def count_tokens(self, messages: list[dict], variables: dict | None = None) -> int:
        """Count, in the worker thread, the tokens ``messages`` take in the context (rendered without a
        generation prompt); returns a ticket, answered by ``counted(ticket, n)`` (-1 when no model is
        loaded or the template fails on them)."""
        ticket = next(self._ids)
        emit(self._count_requested, ticket, list(messages), dict(variables or {}))
        return ticket

    def queue_position(self, req_id: int) -> QueueState | None:
        """Where a submitted chat turn waits, or None once it runs (or is unknown).

        ``ahead`` is the number of requests queued before it when it was submitted, lowered as the queue
        shrinks (the Scheduler serves its queue in order, but exposes only its length, so requests queued
        later are counted while no earlier one has left).
        """
        with self._lock:
            if req_id in self._started or req_id not in self._jobs:
                return None
            sched = self._scheduler
            ahead = self._ahead.get(req_id, 0)
        if sched is None:
            return None
        ahead = max(0, min(ahead, sched.n_waiting - 1))
        with self._lock:
            if req_id in self._ahead:
                self._ahead[req_id] = ahead
        return QueueState(ahead, sched.n_parallel)

    def cancel(self, req_id: int) -> None:
        """Stop a chat turn, queued or running (it finishes with finish_reason "cancelled")."""
        with self._lock:
            self._cancelled.add(req_id)
            job = self._jobs.get(req_id)
        if job is not None:
            job.cancel()

    def cancel_all(self) -> None:
        """Stop every chat turn of the window and anything queued on the scheduler."""
        with self._lock:
            jobs = list(self._jobs.values())
            sched = self._scheduler
        for job in jobs:
            job.cancel()
        if sched is not None:
            sched.cancel_all()

    def engine(self):
        """``(model, scheduler)`` of the loaded model, or None (the in-process server's ``get_engine``)."""
        with self._lock:
            return (self._model, self._scheduler) if self._scheduler is not None else None

    def shutdown(self) -> None:
        """Close the scheduler (after the worker's thread has stopped)."""
        with self._lock:
            sched, self._scheduler, self._model = self._scheduler, None, None
        if sched is not None:
            sched.close()

    # Worker thread -------------------------------------------------------------------------------

    @Slot(str, int, int, int)
    def _do_load(self, path: str, n_ctx: int, n_threads: int, n_parallel: int, context_shift: bool) -> None:
        emit(self.load_started, path)
        t0 = time.perf_counter()
        p = Path(path).expanduser().absolute()
        try:
            emit(self.load_progress, LOAD_STAGES[0], 1, len(LOAD_STAGES))
            _check_file(p)
            with self._lock:
                current = self._model
            if (current is not None and Path(current.path).resolve() == p.resolve()
                    and current.identity == FileIdentity.of(p)):
                model = current  # same file, unchanged, new context settings: no need to map it again
            else:
                emit(self.load_progress, LOAD_STAGES[1], 2, len(LOAD_STAGES))
                model = load_model(p)
            emit(self.load_progress, LOAD_STAGES[2], 3, len(LOAD_STAGES))
            scheduler = Scheduler(model, n_ctx=n_ctx or None, n_threads=n_threads or None, n_parallel=n_parallel,
                                  context_shift=context_shift)
        except Exception as exc:  # noqa: BLE001 - any failure is reported and the old model stays
            emit(self.load_failed, path, _load_error_message(p, exc))
            return
        with self._lock:
            old, self._model, self._scheduler = self._scheduler, model, scheduler
        if old is not None:
            old.close()
        emit(self.model_loaded, LoadedModel(str(p), model.info, scheduler.n_ctx, scheduler.n_threads,
                                           time.perf_counter() - t0, template_kind(model.chat_template),
                                           supports_thinking(model.chat_template)))

    @Slot(int, object, object, int, object, bool)
    def _do_generate(self, req_id: int, messages: list, params: SamplerParams, max_tokens: int,
                     variables: dict, resume_last: bool = False) -> None:
        with self._lock:
            model, sched = self._model, self._scheduler
            cancelled = req_id in self._cancelled
        if cancelled:
            emit(self.finished, req_id, GenerationStats(finish_reason="cancelled"))
            return
        if sched is None:
            emit(self.failed, req_id, ReplyFailure("No model is loaded: drop a .gguf file here or use File > Open "
                                                   "model."))
            return
        try:
            n_keep = 0
            if sched.context_shift:
                messages, tokens, n_keep = fit_history(model.chat_template, messages, variables, sched.n_ctx,
                                                       max_tokens, resume_last=resume_last)
            elif resume_last:
                tokens = encode_continuation(model.chat_template, messages, variables)
            else:
                tokens = encode_prompt(model.chat_template, messages, variables)
        except FiresideError as exc:  # template or tokenizer errors are the model file's
            emit(self.failed, req_id, ReplyFailure(f"The model's chat template could not format this conversation: "
                                                   f"{exc}", events.TEMPLATE))
            return
        except Exception as exc:  # noqa: BLE001 - a bug: logged, and the window goes on
            emit(self.failed, req_id, ReplyFailure(_internal_error("Formatting the conversation", exc)))
            return
        if len(tokens) >= sched.n_ctx:
            emit(self.failed, req_id, ReplyFailure(context_overflow_message(len(tokens), sched.n_ctx),
                                                   events.TOO_LONG, len(tokens)))
            return
        # gpt-oss replies come as harmony channels: the window shows the answer (the reasoning is split off);
        # a continued reply goes on inside its channel, so its tokens are answer text
        reply_format = None if resume_last else model_reply_format(model)
        request = GenerationRequest(tokens, params, max_tokens=max_tokens, reply_format=reply_format, n_keep=n_keep)
        try:
            with self._lock:
                all_busy = sched.n_running >= sched.n_parallel
                ahead = sched.n_waiting
                job = sched.submit(request, on_event=lambda ev: self._relay(req_id, ev))
                self._jobs[req_id] = job
                self._ahead[req_id] = ahead
                if req_id in self._cancelled:
                    job.cancel()
        except Exception as exc:  # noqa: BLE001 - queue full or shutting down
            emit(self.failed, req_id, ReplyFailure(f"The engine could not take this request: {exc}"))
            return
        if all_busy or ahead:
            state = self.queue_position(req_id)
            if state is not None:
                emit(self.queued, req_id, state)

    @Slot(int, object, object)
    def _do_count(self, ticket: int, messages: list, variables: dict) -> None:
        with self._lock:
            model = self._model
        n = -1
        if model is not None:
            try:
                n = len(encode_prompt(model.chat_template, messages, variables, add_generation_prompt=False)) \
                    if messages else 0
            except FiresideError:
                n = -1
        emit(self.counted, ticket, n)

    def _relay(self, req_id: int, event) -> None:
        """Runs on the Scheduler's engine thread: turn a job's ``(kind, payload)`` event (the Scheduler's
        format, engine/scheduler.py) into the worker's typed signals."""
        kind, payload = event
        if kind == "token":
            if payload.text:
                emit(self.token, req_id, payload.text)
        elif kind == "progress":
            emit(self.prompt_progress, req_id, *payload)
        elif kind == "start":
            with self._lock:
                self._started.add(req_id)
            emit(self.reply_started, req_id)
        elif kind in ("done", "error"):
            with self._lock:
                self._jobs.pop(req_id, None)
                self._cancelled.discard(req_id)
                self._started.discard(req_id)
                self._ahead.pop(req_id, None)
            if kind == "done":
                emit(self.finished, req_id, payload)
            else:
                emit(self.failed, req_id, _failure(payload))


def _failure(exc: BaseException) -> ReplyFailure:
    """The :class:`ReplyFailure` of an exception a running job ended with."""
    if isinstance(exc, ContextFullError):
        return ReplyFailure(f"The context window is full: {exc}. Start a new chat or raise the context size in "
                            f"Settings.", events.CONTEXT_FULL)
    if isinstance(exc, ModelFileChangedError):
        return ReplyFailure(f"{str(exc)[:1].upper()}{str(exc)[1:]}.", events.FILE_CHANGED)
    if isinstance(exc, FiresideError):
        return ReplyFailure(f"Generation failed: {exc}")
    return ReplyFailure(_internal_error("Generation", exc))


def _check_file(p: Path) -> None:
    """Quick checks before mapping the file: exists, is a file, starts with the GGUF magic.

    Raises:
        FileNotFoundError, IsADirectoryError, ValueError: with a message for the user.
    """
    if not p.exists():
        raise FileNotFoundError(f"{p} does not exist")
    if p.is_dir():
        raise IsADirectoryError(f"{p} is a folder, not a .gguf model file")
    with open(p, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":  # GGUF spec: every file starts with the 4 bytes "GGUF"
        raise ValueError(f"{p.name} is not a GGUF model file (a GGUF file starts with 'GGUF'). "
                         f"Download models in the .gguf format.")


def _internal_error(what: str, exc: BaseException) -> str:
    """The message for an exception that is a Fireside bug; its traceback goes to the log file."""
    path = log_exception(exc, f"app: {what.lower()}")
    return f"{what} failed with an internal error ({type(exc).__name__}: {exc}). Details are in {path}."


def _load_error_message(p: Path, exc: Exception) -> str:
    if isinstance(exc, GGUFError):
        return f"Could not load {p.name}: {exc.problem}"
    if isinstance(exc, MemoryError):
        return f"Could not load {p.name}: not enough memory for this model and context size."
    if isinstance(exc, (FiresideError, OSError, ValueError)):
        return f"Could not load {p.name}: {exc}"
    return f"Could not load {p.name}: " + _internal_error("Loading the model", exc)
