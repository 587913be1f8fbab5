"""The OpenAI-compatible HTTP API (FastAPI): ``/v1/models``, ``/v1/chat/completions``, ``/v1/completions``,
``/health``.

Every generation goes through the loaded model's :class:`~engine.scheduler.Scheduler`, the same FIFO
queue the desktop window uses, so window and API requests run one at a time in arrival order. The
handlers never block the event loop: prompt rendering and tokenization run in the thread pool, and
engine events arrive through :class:`~engine.server.streaming.EventBridge`.

Model ids: the loaded model's id is its GGUF file name without ``.gguf``
(``SmolLM2-135M-Instruct.Q4_1``). A request's ``model`` may be that id, the file name with ``.gguf``
(both compared case-insensitively), or empty / absent (the loaded model); any other name is a 404
``model_not_found``, so a client that asks for a model it does not get finds out.

Error policy: see :mod:`engine.server.errors` (bad bodies are 400, never 422).
"""
from __future__ import annotations

import asyncio
import hmac
import threading
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator, Callable, Iterable

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..context import ContextFullError
from ..errors import FiresideError, ModelFileChangedError, ModelOutputError, PromptError
from ..logs import log_exception
from ..reasoning import model_reply_format
from ..generate import GeneratedToken, GenerationStats
from ..scheduler import GenerationRequest, Job, QueueFullError, SchedulerClosedError
from ..tokenizer import TokenizerError
from . import payloads as P
from .errors import AUTHENTICATION, SERVER_ERROR, APIError, error_body, error_response, install_error_handlers
from .middleware import DEFAULT_MAX_BODY_BYTES, BodySizeLimit
from .schemas import ChatCompletionRequest, CompletionRequest, parse_body
from .streaming import DONE, EventBridge, cancel_on_disconnect, sse
from .structured import completion_constraint, plan_chat, tool_reply
from ..tool_calls import StreamParser

if TYPE_CHECKING:
    from ..model import Model
    from ..scheduler import Scheduler

GetEngine = Callable[[], "tuple[Model, Scheduler] | None"]

# Seconds a client is told to wait (Retry-After) when the queue is full or no model is loaded yet.
RETRY_AFTER_S = 5

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class ActiveJobs:
    """The jobs this app has submitted and not yet seen finish (thread-safe), so a stopping server can
    cancel them instead of waiting for long generations."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: set[Job] = set()

    def add(self, job: Job) -> None:
        with self._lock:
            self._jobs.add(job)

    def discard(self, job: Job) -> None:
        with self._lock:
            self._jobs.discard(job)

    def cancel_all(self) -> int:
        """Cancel every active job; returns how many."""
        with self._lock:
            jobs = list(self._jobs)
        for job in jobs:
            job.cancel()
        return len(jobs)

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)


# ----------------------------------------------------------------------------- helpers


def _require_engine(get_engine: GetEngine) -> "tuple[Model, Scheduler]":
    engine = get_engine()
    if engine is None:
        raise APIError(503, "No model is loaded: open one in Fireside (or start `fireside serve -m MODEL`)",
                       type=SERVER_ERROR, code="no_model_loaded", headers={"Retry-After": str(RETRY_AFTER_S)})
    return engine


def _check_model(requested: str | None, model: "Model") -> str:
    """Return the loaded model's id, or raise 404 if ``requested`` names another model."""
    mid = P.model_id(model)
    if requested and requested.casefold() not in (mid.casefold(), Path(model.path).name.casefold()):
        raise APIError(404, f"The model {requested!r} does not exist: this server serves {mid!r}",
                       param="model", code="model_not_found")
    return mid


def _check_fits(tokens: list[int], n_ctx: int, param: str) -> None:
    if not tokens:
        raise APIError(400, "The prompt is empty (0 tokens)", param=param)
    if len(tokens) > n_ctx:
        raise APIError(400, f"The prompt is {len(tokens)} tokens, longer than the model's context of "
                            f"{n_ctx} tokens: shorten it (or start the server with a larger -c)",
                       param=param, code="context_length_exceeded")


def _completion_tokens(model: "Model", req: CompletionRequest) -> tuple[list[int], str]:
    """Thread pool: the prompt's token ids and its text (for ``echo``)."""
    tok = model.tokenizer
    if isinstance(req.prompt, str):
        try:
            return tok.encode(req.prompt, add_special=True), req.prompt
        except TokenizerError as exc:
            raise APIError(400, str(exc), param="prompt") from None
    bad = [t for t in req.prompt if not 0 <= t < tok.n_vocab]
    if bad:
        raise APIError(400, f"Token id {bad[0]} is outside the vocabulary (0..{tok.n_vocab - 1})", param="prompt")
    return list(req.prompt), tok.decode(req.prompt)


def _submit(scheduler: "Scheduler", request: GenerationRequest, jobs: ActiveJobs) -> tuple[Job, EventBridge]:
    bridge = EventBridge(asyncio.get_running_loop())
    try:
        job = scheduler.submit(request, on_event=bridge)
    except QueueFullError as exc:
        raise APIError(503, f"The server is busy ({exc}); retry later", type=SERVER_ERROR, code="queue_full",
                       headers={"Retry-After": str(RETRY_AFTER_S)}) from None
    except SchedulerClosedError:
        raise APIError(503, "The model is being unloaded; retry later", type=SERVER_ERROR, code="no_model_loaded",
                       headers={"Retry-After": str(RETRY_AFTER_S)}) from None
    jobs.add(job)
    return job, bridge


def _engine_failure(exc: BaseException, param: str) -> APIError:
    """The OpenAI error for a generation that failed on the engine thread."""
    if isinstance(exc, ContextFullError):
        return APIError(400, str(exc), param=param, code="context_length_exceeded")
    if isinstance(exc, PromptError):
        return APIError(400, str(exc), param=param)
    if isinstance(exc, ModelFileChangedError):
        return APIError(500, f"Generation failed: {exc}", type=SERVER_ERROR, code="model_file_changed")
    if isinstance(exc, ModelOutputError):
        return APIError(500, f"Generation failed: {exc}", type=SERVER_ERROR, code="model_output_invalid")
    if isinstance(exc, FiresideError):
        return APIError(500, f"Generation failed: {exc}", type=SERVER_ERROR)
    path = log_exception(exc, "server generation")
    return APIError(500, f"Generation failed: internal error ({type(exc).__name__}: {exc}); the traceback is in "
                         f"{path}", type=SERVER_ERROR)


CANCELLED = ("The generation was cancelled before it finished (the model was unloaded or switched, "
             "or the server is stopping)")


async def _collect(request: Request, job: Job, bridge: EventBridge, jobs: ActiveJobs,
                   param: str) -> tuple[list[GeneratedToken], GenerationStats]:
    """Wait for a whole generation; a client that disconnects meanwhile cancels it."""
    watcher = asyncio.create_task(cancel_on_disconnect(request, job))
    tokens: list[GeneratedToken] = []
    stats: GenerationStats | None = None
    try:
        async for kind, payload in bridge.events():
            if kind == "token":
                tokens.append(payload)
            elif kind == "done":
                stats = payload
            elif kind == "error":
                raise _engine_failure(payload, param)
    finally:
        watcher.cancel()
        if stats is None:
            job.cancel()  # this handler was cancelled (server stopping): stop the engine too
        jobs.discard(job)
    if stats.finish_reason == "cancelled":
        raise APIError(503, CANCELLED, type=SERVER_ERROR, code="cancelled")
    return tokens, stats


def _stream_error(exc: BaseException) -> str:
    err = _engine_failure(exc, "")
    return sse(error_body(err.message, type=err.type, code=err.code))


def _tool_deltas(cid: str, created: int, mid: str, events: list, parser: StreamParser) -> list[str]:
    """SSE chunks for a :class:`StreamParser`'s events: content deltas, and each whole call as one
    ``tool_calls`` delta (id, name and all its arguments)."""
    out = []
    index = parser.n_calls - sum(kind == "tool_call" for kind, _ in events)  # the first new call's index
    for kind, value in events:
        if kind == "content":
            out.append(sse(P.chat_chunk(cid, created, mid, {"content": value})))
        else:
            out.append(sse(P.chat_chunk(cid, created, mid, {"tool_calls": [value.openai(index)]})))
            index += 1
    return out


async def _chat_stream(job: Job, bridge: EventBridge, jobs: ActiveJobs, model: "Model", mid: str,
                       req: ChatCompletionRequest, tool_format: str | None = None) -> AsyncIterator[str]:
    """SSE for a chat completion: role chunk, content (or ``tool_calls``) chunks, finish chunk, usage chunk,
    ``[DONE]``. Starlette cancels this generator when the client disconnects; ``finally`` then cancels the job."""
    cid, created, tok = P.new_id("chatcmpl"), P.now(), model.tokenizer
    want_logprobs = req.n_top_logprobs is not None
    parser = StreamParser(tool_format) if tool_format else None
    try:
        yield sse(P.chat_chunk(cid, created, mid, {"role": "assistant", "content": ""}))
        async for kind, payload in bridge.events():
            if kind == "token":
                lp = [P.chat_logprob(tok, payload)] if want_logprobs and payload.id >= 0 else None
                if payload.reasoning:  # llama-server's field for a reasoning model's thinking
                    yield sse(P.chat_chunk(cid, created, mid, {"reasoning_content": payload.reasoning}))
                if parser is not None:
                    for chunk in _tool_deltas(cid, created, mid, parser.feed(payload.text), parser):
                        yield chunk
                    if lp:
                        yield sse(P.chat_chunk(cid, created, mid, {"content": ""}, logprobs=lp))
                elif payload.text or lp:
                    yield sse(P.chat_chunk(cid, created, mid, {"content": payload.text}, logprobs=lp))
            elif kind == "error":
                yield _stream_error(payload)
            elif kind != "done":
                continue  # "start" and prefill "progress"
            elif payload.finish_reason == "cancelled":
                yield sse(error_body(CANCELLED, type=SERVER_ERROR, code="cancelled"))
            else:
                finish = payload.finish_reason
                if parser is not None:
                    for chunk in _tool_deltas(cid, created, mid, parser.finish(), parser):
                        yield chunk
                    if parser.n_calls and finish == "stop":
                        finish = "tool_calls"
                yield sse(P.chat_chunk(cid, created, mid, {}, finish_reason=finish))
                if req.include_usage:
                    yield sse(P.usage_chunk("chat.completion.chunk", cid, created, mid, payload))
        yield DONE
    finally:
        job.cancel()  # no-op when it finished; stops it when the client went away
        jobs.discard(job)


async def _completion_stream(job: Job, bridge: EventBridge, jobs: ActiveJobs, model: "Model", mid: str,
                             req: CompletionRequest, prompt_text: str) -> AsyncIterator[str]:
    """SSE for a legacy completion: an echo chunk (if asked), text chunks, finish chunk, usage, ``[DONE]``."""
    cid, created, tok = P.new_id("cmpl"), P.now(), model.tokenizer
    offset = 0
    try:
        if req.echo:
            yield sse(P.completion_chunk(cid, created, mid, prompt_text))
            offset = len(prompt_text)
        async for kind, payload in bridge.events():
            if kind == "token":
                lp = None
                if req.logprobs is not None:
                    lp = P.legacy_logprobs(tok, [payload], offset)
                offset += len(payload.text)
                if payload.text or (lp and lp["tokens"]):
                    yield sse(P.completion_chunk(cid, created, mid, payload.text, logprobs=lp))
            elif kind == "error":
                yield _stream_error(payload)
            elif kind != "done":
                continue  # "start" and prefill "progress"
            elif payload.finish_reason == "cancelled":
                yield sse(error_body(CANCELLED, type=SERVER_ERROR, code="cancelled"))
            else:
                yield sse(P.completion_chunk(cid, created, mid, "", finish_reason=payload.finish_reason))
                if req.include_usage:
                    yield sse(P.usage_chunk("text_completion", cid, created, mid, payload))
        yield DONE
    finally:
        job.cancel()
        jobs.discard(job)


# ----------------------------------------------------------------------------- the app


def create_app(get_engine: GetEngine, *, api_key: str | None = None, cors_origins: Iterable[str] = (),
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> FastAPI:
    """Build the server's ASGI app.

    Args:
        get_engine: called on each request; returns the loaded ``(Model, Scheduler)``, or None when no
            model is loaded (the API then answers 503). The desktop app passes one that follows the
            window's current model.
        api_key: when set, every ``/v1`` route needs ``Authorization: Bearer <api_key>`` (401 otherwise);
            ``/health`` stays open.
        cors_origins: origins allowed to call the API from a browser (CORS is off when empty).
        max_body_bytes: request body cap; larger bodies get 413.

    Returns:
        The FastAPI app; ``app.state.jobs`` is its :class:`ActiveJobs`.
    """
    app = FastAPI(title="Fireside", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    jobs = ActiveJobs()
    app.state.jobs = jobs
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    origins = [o for o in cors_origins if o]
    if origins:  # added last, so outermost: errors (401, 413) carry the CORS headers too
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "OPTIONS"],
                           allow_headers=["*"], max_age=600)

    async def require_key(request: Request) -> None:
        if api_key is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise APIError(401, "Missing API key: send the header 'Authorization: Bearer <key>'",
                           type=AUTHENTICATION, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            raise APIError(401, "Incorrect API key provided", type=AUTHENTICATION, code="invalid_api_key",
                           headers={"WWW-Authenticate": "Bearer"})

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_key)])

    @app.get("/health")
    async def health() -> JSONResponse:
        engine = get_engine()
        if engine is None:
            return error_response(503, "No model is loaded", type=SERVER_ERROR, code="no_model_loaded")
        model, scheduler = engine
        return JSONResponse({"status": "ok", "model": P.model_id(model), "n_ctx": scheduler.n_ctx,
                             "busy": scheduler.busy, "waiting": scheduler.n_waiting,
                             "max_queue": scheduler.max_queue, "n_parallel": scheduler.n_parallel,
                             "slots_processing": scheduler.n_running})

    @app.get("/slots", dependencies=[Depends(require_key)])
    async def slots() -> JSONResponse:
        """Each slot's state (llama-server's ``GET /slots``, reduced to what Fireside tracks)."""
        engine = get_engine()
        if engine is None:
            return error_response(503, "No model is loaded", type=SERVER_ERROR, code="no_model_loaded")
        _, scheduler = engine
        return JSONResponse([{"id": x.id, "state": x.state, "is_processing": x.state != "idle",
                              "n_ctx": scheduler.n_ctx, "n_cached": x.n_cached, "n_prompt_tokens": x.n_prompt,
                              "n_decoded": x.n_generated} for x in scheduler.slots()])

    @v1.get("/models")
    async def list_models() -> JSONResponse:
        engine = get_engine()  # no model loaded: an empty list, which is the truthful answer here
        return JSONResponse({"object": "list", "data": [P.model_card(engine[0])] if engine else []})

    @v1.get("/models/{name}")
    async def get_model(name: str) -> JSONResponse:
        model, _ = _require_engine(get_engine)
        _check_model(name, model)
        return JSONResponse(P.model_card(model))

    @v1.post("/chat/completions")
    async def chat_completions(request: Request):
        req: ChatCompletionRequest = parse_body(ChatCompletionRequest, await request.body())
        model, scheduler = _require_engine(get_engine)
        with scheduler.arriving():  # a burst of requests starts in one step (Scheduler.arriving)
            mid = _check_model(req.model, model)
            plan = await run_in_threadpool(plan_chat, model, req)
            tokens = plan.tokens
            _check_fits(tokens, scheduler.n_ctx, "messages")
            gen = GenerationRequest(tokens, req.sampler_params(), max_tokens=req.token_limit, stop=req.stop_strings,
                                    logprobs=req.n_top_logprobs, reply_format=model_reply_format(model),
                                    constraint=plan.constraint)
            job, bridge = _submit(scheduler, gen, jobs)
        if req.stream:
            return StreamingResponse(_chat_stream(job, bridge, jobs, model, mid, req, plan.tool_format),
                                     media_type="text/event-stream", headers=SSE_HEADERS)
        generated, stats = await _collect(request, job, bridge, jobs, "messages")
        logprobs = None
        if req.n_top_logprobs is not None:
            logprobs = [P.chat_logprob(model.tokenizer, t) for t in generated if t.id >= 0]
        text = "".join(t.text for t in generated)
        reasoned = "".join(t.reasoning for t in generated)
        content, calls, finish = tool_reply(text, plan.tool_format, stats.finish_reason)
        return JSONResponse(P.chat_completion(P.new_id("chatcmpl"), P.now(), mid, content, stats, logprobs,
                                              reasoning=reasoned, tool_calls=calls, finish_reason=finish))

    @v1.post("/completions")
    async def completions(request: Request):
        req: CompletionRequest = parse_body(CompletionRequest, await request.body())
        model, scheduler = _require_engine(get_engine)
        with scheduler.arriving():
            mid = _check_model(req.model, model)
            tokens, prompt_text = await run_in_threadpool(_completion_tokens, model, req)
            _check_fits(tokens, scheduler.n_ctx, "prompt")
            constraint = await run_in_threadpool(completion_constraint, model, req)
            gen = GenerationRequest(tokens, req.sampler_params(), max_tokens=req.token_limit, stop=req.stop_strings,
                                    logprobs=req.logprobs, constraint=constraint)
            job, bridge = _submit(scheduler, gen, jobs)
        if req.stream:
            return StreamingResponse(_completion_stream(job, bridge, jobs, model, mid, req, prompt_text),
                                     media_type="text/event-stream", headers=SSE_HEADERS)
        generated, stats = await _collect(request, job, bridge, jobs, "prompt")
        text = "".join(t.text for t in generated)
        logprobs = None
        if req.logprobs is not None:
            logprobs = P.legacy_logprobs(model.tokenizer, generated)
        if req.echo:
            text = prompt_text + text
        return JSONResponse(P.completion(P.new_id("cmpl"), P.now(), mid, text, stats, logprobs))

    app.include_router(v1)
    return app
