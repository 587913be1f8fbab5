"""The FIFO engine scheduler shared by the window and the server, on the real SmolLM2 model."""
from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from engine.context import Context, ContextFullError
from engine.generate import generate
from engine.sampling import Sampler, SamplerParams
from conftest import collect_job
from engine.scheduler import GenerationRequest, QueueFullError, Scheduler

GREEDY = SamplerParams(temperature=0.0)


def _request(model, prompt: str, n: int = 8, **kw) -> GenerationRequest:
    return GenerationRequest(model.tokenizer.encode(prompt, add_special=True), GREEDY, max_tokens=n, **kw)


@pytest.fixture()
def scheduler(smollm2):
    s = Scheduler(smollm2, n_ctx=256, n_threads=2, max_queue=4)
    yield s
    s.close()


def test_jobs_run_in_order_and_match_direct_generation(smollm2, scheduler):
    prompts = ["The capital of France is", "Once upon a time", "def fibonacci(n):"]
    jobs = [scheduler.submit(_request(smollm2, p)) for p in prompts[:3]]
    got = [collect_job(j)[:2] for j in jobs]
    ctx = Context(smollm2, n_ctx=256, n_threads=2)
    for p, (text, stats) in zip(prompts, got):
        want = generate(ctx, smollm2.tokenizer.encode(p, add_special=True), sampler=Sampler(GREEDY), max_tokens=8).text()
        assert text == want and stats.n_generated == 8 and stats.finish_reason == "length"


def test_queue_overflow_raises(smollm2, scheduler):
    gate, started = threading.Event(), threading.Event()

    def hold(ev):
        started.set()
        gate.wait(30)

    first = scheduler.submit(_request(smollm2, "Hello", 4), on_event=hold)
    assert started.wait(30)
    queued = [scheduler.submit(_request(smollm2, "Hi", 2)) for _ in range(4)]
    with pytest.raises(QueueFullError):
        scheduler.submit(_request(smollm2, "Hey", 2))
    gate.set()
    assert first.wait(30)
    for j in queued:
        assert collect_job(j)[1].finish_reason == "length"


def test_cancel_running_and_queued_jobs(smollm2, scheduler):
    seen = threading.Event()

    def on_event(ev):
        if ev[0] == "token":
            seen.set()

    running = scheduler.submit(_request(smollm2, "Once upon a time, in a land far away,", 200), on_event=on_event)
    queued = scheduler.submit(_request(smollm2, "Hi", 4))
    assert seen.wait(30)
    queued.cancel()
    running.cancel()
    assert running.wait(30) and running.stats.finish_reason == "cancelled"
    assert running.stats.n_generated < 200
    assert collect_job(queued)[1].finish_reason == "cancelled"


def test_errors_are_events_and_the_engine_keeps_going(smollm2, scheduler):
    too_long = GenerationRequest(list(range(1, 300)), GREEDY, max_tokens=4)
    job = scheduler.submit(too_long)
    events = list(job)
    assert events[-1][0] == "error" and isinstance(events[-1][1], ContextFullError)
    assert collect_job(scheduler.submit(_request(smollm2, "Hello", 3)))[1].n_generated == 3


def test_logprobs_are_the_log_softmax_of_the_logits(smollm2, scheduler):
    req = _request(smollm2, "The capital of France is", 3, logprobs=5)
    toks = [p for k, p in scheduler.submit(req) if k == "token"]
    ctx = Context(smollm2, n_ctx=256, n_threads=2)
    logits, _ = ctx.prefill(req.prompt_tokens)
    x = logits.astype(np.float64)
    lse = x.max() + math.log(np.exp(x - x.max()).sum())
    first = toks[0]
    assert first.id == int(np.argmax(x))
    assert first.logprob == pytest.approx(x[first.id] - lse, abs=1e-9)
    assert [i for i, _ in first.top_logprobs] == list(np.argsort(-x, kind="stable")[:5])
    assert first.top_logprobs[0][1] == pytest.approx(first.logprob)
    assert all(len(t.top_logprobs) == 5 and t.logprob <= 0 for t in toks)
