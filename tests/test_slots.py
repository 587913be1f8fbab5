"""Parallel slots: several sequences in one KV cache, batched forward passes (continuous batching), and the
scheduler that serves n_parallel requests at once, on the real SmolLM2 model.

SmolLM2's Q4_1 / Q8_0 matmuls give every row the same bits whatever the batch size; the types llama.cpp
repacks (gemm for groups of 4 rows, gemv for the rest) are split per sequence, so on every file a reply
computed beside others must equal the reply computed alone, exactly.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from engine.context import Context, ContextFullError
from engine.generate import generate
from engine.sampling import Sampler, SamplerParams
from conftest import collect_job
from engine.scheduler import GenerationRequest, QueueFullError, Scheduler

GREEDY = SamplerParams(temperature=0.0)
PROMPTS = ["The capital of France is", "Once upon a time, in a land far away there lived",
           "def fibonacci(n):", "1, 2, 3, 4,"]


def _ids(model, text):
    return model.tokenizer.encode(text, add_special=True)


def _alone(model, prompt, n, n_batch=512):
    gen = generate(Context(model, n_ctx=256, n_batch=n_batch, n_threads=2), _ids(model, prompt),
                   sampler=Sampler(GREEDY), max_tokens=n)
    return gen.text()


def _hold_engine(s: Scheduler):
    """Submit a one-token job whose event callback keeps the engine thread until the returned gate is
    set, so that the jobs submitted meanwhile all wait and start together. Returns (job, gate)."""
    gate, started = threading.Event(), threading.Event()

    def hold(ev):
        started.set()
        gate.wait(30)

    first = s.submit(GenerationRequest([1], GREEDY, max_tokens=1), on_event=hold)
    assert started.wait(30)
    return first, gate


def test_batch_of_sequences_equals_each_alone(smollm2):
    prompts = [_ids(smollm2, p) for p in PROMPTS]
    ref = []
    for p in prompts:
        c = Context(smollm2, n_ctx=128, n_batch=32, n_threads=2)
        rows = [c.prefill(p)[0].copy()]
        rows += [c.decode(t).copy() for t in (5, 17)]
        ref.append(rows)
    c = Context(smollm2, n_ctx=128, n_batch=32, n_threads=2, n_seq=4)
    got = {s: [] for s in range(4)}
    for step in ([(0, prompts[0], True), (1, prompts[1], True)],
                 [(0, [5], True), (2, prompts[2], True), (1, [5], True)],
                 [(3, prompts[3], True), (0, [17], True), (1, [17], True), (2, [5], True)],
                 [(2, [17], True), (3, [5], True)], [(3, [17], True)]):
        for (seq, _, _), row in zip(step, c.eval_batch(step)):
            got[seq].append(row.copy())
    for seq in range(4):
        assert len(got[seq]) == 3
        for a, b in zip(got[seq], ref[seq]):
            np.testing.assert_array_equal(a, b)
    assert c.seq_tokens[0] == prompts[0] + [5, 17]
    # the sequences' caches are apart: sequence 3's rows hold its own prompt's keys
    k3, _ = c._fwd.kv_cache(3)
    k_alone = Context(smollm2, n_ctx=128, n_threads=2)
    k_alone.prefill(prompts[3] + [5])
    np.testing.assert_array_equal(k3[:, : len(prompts[3]) + 1], k_alone._fwd.kv_cache()[0][:, : len(prompts[3]) + 1])


# Quant-zoo files whose matrices llama.cpp repacks (rows a multiple of 8): IQ4_NL (every 576-wide
# matrix), Q4_K (ffn_down of Q3_K_M) and MXFP4 experts (gpt-oss as MXFP4_MOE, the mixture-of-experts path).
# Only Q4_K's gemm and gemv round differently on these files (a batch without the per-sequence split fails
# the Q3_K_M case, checked); the other two check that the split costs nothing in exactness there.
REPACKED_CASES = ("smollm2-IQ4_NL", "smollm2-Q3_K_M", "gpt-oss-MXFP4_MOE")


@pytest.fixture(scope="module", params=REPACKED_CASES)
def repacked_model(request):
    from conftest import model_path
    from cython_kernels import vecdot
    from engine.gguf_file import GGUFFile
    from engine.model import load_model
    from test_zoo import SOURCES
    from zoo_quants import CASES, build_quant_case

    case = next(c for c in CASES if c.name == request.param)
    path = build_quant_case(case, model_path(SOURCES[case.source]))
    gf = GGUFFile(path)
    try:  # the point of the case: matrices the gemm/gemv split applies to
        assert any(vecdot.repacked(int(t.ggml_type), t.shape[-2]) for n, t in gf.tensors.items()
                   if n.startswith("blk.") and len(t.shape) >= 2), request.param  # rows of one (expert's) matrix
    finally:
        gf.close()
    return load_model(path)


def test_batch_equals_each_alone_on_repacked_types(repacked_model):
    """On the types llama.cpp multiplies with a gemm for groups of 4 rows and a gemv for the rest, a part
    of a batch gets the rows it gets alone: a decode step of 4 sequences equals 4 decodes of one token
    (all gemv), and a prompt of 5 tokens (SmolLM2's tokenizer) beside decoding sequences gets the gemm for 4
    and the gemv for 1, as alone. ``ForwardContext.eval_batch``'s promise, which SmolLM2's Q4_1 keeps whatever the batch."""
    model = repacked_model
    prompts = [_ids(model, p) for p in PROMPTS]
    extra = _ids(model, "Six tokens or so here")  # 5 tokens: not a multiple of 4
    steps = (5, 17, 9)
    ref = []
    for p in prompts:
        c = Context(model, n_ctx=64, n_batch=32, n_threads=2)
        ref.append([c.prefill(p)[0].copy()] + [c.decode(t).copy() for t in steps])
    c = Context(model, n_ctx=64, n_batch=32, n_threads=2)
    ref_extra = c.prefill(extra)[0].copy()
    c = Context(model, n_ctx=64, n_batch=32, n_threads=2, n_seq=5)
    got = {s: [r.copy() for r in c.eval_batch([(s, prompts[s], True)])] for s in range(4)}
    for step, tok in enumerate(steps):
        parts = [(s, [tok], True) for s in range(4)]
        if step == 1:
            parts.insert(2, (4, extra, True))
        rows = c.eval_batch(parts)
        for (seq, _, _), row in zip(parts, rows):
            if seq == 4:
                np.testing.assert_array_equal(row, ref_extra)
            else:
                got[seq].append(row.copy())
    for seq in range(4):
        for a, b in zip(got[seq], ref[seq], strict=True):
            np.testing.assert_array_equal(a, b)


def test_long_prefill_beside_decoding_sequences(smollm2):
    """A prompt of 64 tokens or more takes the tiled attention (llama.cpp's float path) while the other
    segments of the same batch take the one-token path: all the segments' attention items are shared out
    together, and each must still get exactly what it gets alone, with 1 and 2 threads."""
    long_prompt = _ids(smollm2, " ".join(["the quick brown fox jumps over the lazy dog"] * 9))
    assert len(long_prompt) >= 64
    short = [_ids(smollm2, p) for p in PROMPTS[:2]]
    for n_threads in (1, 2):
        ref = []
        for p in short:
            c = Context(smollm2, n_ctx=256, n_batch=128, n_threads=n_threads)
            c.prefill(p)
            ref.append(c.decode(7).copy())
        c = Context(smollm2, n_ctx=256, n_batch=128, n_threads=n_threads)
        ref_long = c.prefill(long_prompt)[0].copy()
        c = Context(smollm2, n_ctx=256, n_batch=128, n_threads=n_threads, n_seq=3)
        c.eval_batch([(0, short[0], False), (1, short[1], False)])
        rows = c.eval_batch([(0, [7], True), (2, long_prompt, True), (1, [7], True)])
        np.testing.assert_array_equal(rows[0], ref[0])
        np.testing.assert_array_equal(rows[1], ref_long)
        np.testing.assert_array_equal(rows[2], ref[1])


def test_batch_errors_are_clear(smollm2):
    c = Context(smollm2, n_ctx=16, n_batch=8, n_threads=2, n_seq=2)
    with pytest.raises(ValueError, match="repeated"):
        c.eval_batch([(0, [1], True), (0, [2], True)])
    with pytest.raises(ValueError, match="at most 9"):
        c.eval_batch([(0, list(range(1, 9)), False), (1, [1, 2], True)])
    c.eval_batch([(1, list(range(1, 9)), False)])
    c.eval_batch([(1, list(range(1, 9)), False)])
    with pytest.raises(ContextFullError):
        c.eval_batch([(0, [3], True), (1, [3], True)])
    assert len(c.seq_tokens[1]) == 16 and c.seq_tokens[0] == []


def test_parallel_slots_give_the_replies_of_single_runs(smollm2):
    n = 24
    want = [_alone(smollm2, p, n) for p in PROMPTS]
    s = Scheduler(smollm2, n_ctx=256, n_threads=2, n_parallel=4)
    try:
        first, gate = _hold_engine(s)
        jobs = [s.submit(GenerationRequest(_ids(smollm2, p), GREEDY, max_tokens=n)) for p in PROMPTS]
        gate.set()
        assert first.wait(30)
        got = [collect_job(j) for j in jobs]
    finally:
        s.close()
    for (text, stats, kinds), w in zip(got, want):
        assert text == w
        assert stats.n_generated == n and stats.finish_reason == "length"
        assert kinds[0] == "start" and kinds[-1] == "done"


def test_jobs_share_forward_passes(smollm2):
    # Four jobs started together are decoded in the same steps: every one has its first token before any
    # finishes (one slot would finish the first before starting the second).
    s = Scheduler(smollm2, n_ctx=256, n_threads=2, n_parallel=4)
    order = []
    lock = threading.Lock()

    def recorder(i):
        def on_event(ev):
            with lock:
                order.append((ev[0], i))
        return on_event

    try:
        first, gate = _hold_engine(s)
        jobs = [s.submit(GenerationRequest(_ids(smollm2, p), GREEDY, max_tokens=12), on_event=recorder(i))
                for i, p in enumerate(PROMPTS)]
        assert s.n_waiting == 4 and s.busy and s.n_running == 1
        gate.set()
        for j in jobs:
            assert j.wait(60)
        assert first.finished
        assert not s.busy and s.n_running == 0
        assert [x.state for x in s.slots()] == ["idle"] * 4
    finally:
        s.close()
    first_done = next(k for k, (kind, _) in enumerate(order) if kind == "done")
    seen = {i for kind, i in order[:first_done] if kind == "token"}
    assert seen == {0, 1, 2, 3}


def test_slot_choice_reuses_the_longest_prefix(smollm2):
    s = Scheduler(smollm2, n_ctx=256, n_threads=2, n_parallel=2)
    try:
        a = _ids(smollm2, "The history of the printing press begins in")
        b = _ids(smollm2, "A recipe for bread: mix flour and")
        collect_job(s.submit(GenerationRequest(a, GREEDY, max_tokens=4)))
        collect_job(s.submit(GenerationRequest(b, GREEDY, max_tokens=4)))
        slots = {x.id: x.n_cached for x in s.slots()}
        assert sorted(slots.values()) == sorted([len(a) + 3, len(b) + 3])  # LRU: the second went to the free slot
        # a continuation of a goes back to a's slot and reuses its prompt, whichever slot was used last
        _, stats, _ = collect_job(s.submit(GenerationRequest(a + smollm2.tokenizer.encode(" Germany and", add_special=False), GREEDY, max_tokens=4)))
        assert stats.n_reused == len(a)
        _, stats, _ = collect_job(s.submit(GenerationRequest(b, GREEDY, max_tokens=4)))
        assert stats.n_reused == len(b) - 1
        # a prompt that shares only a short prefix with both takes the least recently used slot (a's)
        c = a[:3] + smollm2.tokenizer.encode(" a long way from any of the other prompts here", add_special=False)
        collect_job(s.submit(GenerationRequest(c, GREEDY, max_tokens=4)))
        assert sorted(x.n_cached for x in s.slots()) == sorted([len(c) + 3, len(b) + 3])
    finally:
        s.close()


def test_a_slot_copies_the_prefix_another_slot_holds(smollm2):
    # Two conversations with one system prompt: the second slot takes the first's cache rows for the common
    # prefix instead of evaluating it, and its logits are exactly those of a run alone.
    system = _ids(smollm2, "You are a careful assistant who answers in one short sentence. Question:")
    a = system + smollm2.tokenizer.encode(" where is Paris?", add_special=False)
    b = system + smollm2.tokenizer.encode(" what is rain?", add_special=False)
    c = Context(smollm2, n_ctx=128, n_threads=2, n_seq=3)
    c.prefill(a, seq=0)
    assert c.keep_prefix(b, 1) == 0
    n = c.share_prefix(b, 1)
    assert n == c.common_prefix(b, 0) >= len(system) and c.seq_tokens[1] == b[:n]
    np.testing.assert_array_equal(c._fwd.kv_cache(1)[0][:, :n], c._fwd.kv_cache(0)[0][:, :n])
    np.testing.assert_array_equal(c._fwd.kv_cache(1)[1][:, :n], c._fwd.kv_cache(0)[1][:, :n])
    logits, reused = c.prefill(b, seq=1)
    assert reused == n
    alone = Context(smollm2, n_ctx=128, n_threads=2)
    np.testing.assert_array_equal(logits, alone.prefill(b)[0])
    # the whole prompt held elsewhere: its last token is still evaluated (its logits are the output)
    c.keep_prefix(a, 2)
    assert c.share_prefix(a, 2) == len(a) - 1
    assert c.share_prefix(_ids(smollm2, "Unrelated"), 2) == len(a) - 1  # nothing longer to take: kept as is


def test_concurrent_requests_share_a_system_prompt(smollm2):
    system = _ids(smollm2, "You are a careful assistant. Question:")
    questions = (" where is the old city of Paris, and who lives there now?",
                 " what makes the rain fall from the clouds in the sky over the sea?")
    prompts = [system + smollm2.tokenizer.encode(q, add_special=False) for q in questions]
    want = []
    for p in prompts:
        gen = generate(Context(smollm2, n_ctx=256, n_threads=2), p, sampler=Sampler(GREEDY), max_tokens=12)
        want.append(gen.text())
    s = Scheduler(smollm2, n_ctx=256, n_threads=2, n_parallel=2)
    try:
        first = collect_job(s.submit(GenerationRequest(prompts[0], GREEDY, max_tokens=12)))
        second = collect_job(s.submit(GenerationRequest(prompts[1], GREEDY, max_tokens=12)))
        cached = [x.n_cached for x in s.slots()]
    finally:
        s.close()
    # the second went to the other slot (the common prefix is under half its prompt: LRU) and copied the prefix
    assert all(cached) and first[1].n_reused == 0 and second[1].n_reused >= len(system)
    assert [first[0], second[0]] == want


def test_cancel_and_errors_touch_only_their_slot(smollm2):
    n = 40
    want = _alone(smollm2, PROMPTS[0], n)
    s = Scheduler(smollm2, n_ctx=64, n_threads=2, n_parallel=3, max_queue=1)
    try:
        first, gate = _hold_engine(s)
        keep = s.submit(GenerationRequest(_ids(smollm2, PROMPTS[0]), GREEDY, max_tokens=n))
        short = [s.submit(GenerationRequest([1, 2], GREEDY, max_tokens=1)) for _ in range(2)]
        with pytest.raises(QueueFullError):  # `first` holds a slot: two free slots and max_queue 1 are taken
            s.submit(GenerationRequest([1, 2], GREEDY, max_tokens=1))
        gate.set()
        assert first.wait(30)
        assert all(j.wait(30) and j.stats.n_generated == 1 for j in short)
        stopped = s.submit(GenerationRequest(_ids(smollm2, PROMPTS[1]), GREEDY, max_tokens=200))
        too_long = s.submit(GenerationRequest(list(range(1, 100)), GREEDY, max_tokens=4))
        for kind, payload in stopped:
            if kind == "token":
                stopped.cancel()
        text, stats, _ = collect_job(keep)
        assert text == want and stats.finish_reason == "length"
        assert stopped.stats.finish_reason == "cancelled"
        assert too_long.wait(30) and isinstance(too_long.error, ContextFullError)
    finally:
        s.close()


def test_context_shift_rotates_the_kept_keys(smollm2, gemma3):
    # Layer 0's keys depend only on the token and its position, so after a shift they must equal the keys
    # a fresh prefill of the remaining tokens computes (to f16 rounding); the values move unchanged.
    for model in (smollm2, gemma3):
        ids = _ids(model, "One two three four five six seven eight nine ten eleven twelve thirteen fourteen")
        c = Context(model, n_ctx=64, n_threads=2, n_seq=2)
        c.prefill(ids, seq=1)
        v_before = c._fwd.kv_cache(1)[1][0, : len(ids)].copy()
        c.shift(1, 5, seq=1)
        assert c.seq_tokens[1] == ids[:1] + ids[6:]
        fresh = Context(model, n_ctx=64, n_threads=2)
        fresh.prefill(c.seq_tokens[1] + [c.seq_tokens[1][-1]])
        n = len(c.seq_tokens[1])
        k, v = c._fwd.kv_cache(1)
        k_want, v_want = fresh._fwd.kv_cache()
        np.testing.assert_array_equal(v[0, :n], np.concatenate([v_before[:1], v_before[6:]]))
        np.testing.assert_array_equal(v[0, :n], v_want[0, :n])
        np.testing.assert_allclose(k[0, :n].astype(np.float32), k_want[0, :n].astype(np.float32),
                                   rtol=2e-3, atol=2e-3 * float(np.abs(k_want[0, :n]).max()))


class _NoEnd:
    """A logits constraint that forbids the end-of-generation tokens, so a reply runs to max_tokens
    whatever the model would say (the test is about lengths, not a particular text)."""

    def __init__(self, eog_ids):
        self.eog = np.array(sorted(eog_ids), np.int64)

    def mask(self, logits):
        logits[self.eog] = -np.inf

    def accept(self, token):
        return False


def test_context_shift_lets_a_reply_outgrow_n_ctx(smollm2):
    prompt = _ids(smollm2, "Once upon a time")
    for shift in (False, True):
        s = Scheduler(smollm2, n_ctx=48, n_threads=2, n_parallel=2, context_shift=shift)
        try:
            text, stats, _ = collect_job(s.submit(GenerationRequest(prompt, SamplerParams(temperature=0.7, seed=3),
                                                                 max_tokens=120, n_keep=len(prompt),
                                                                 constraint=_NoEnd(smollm2.tokenizer.eog_ids))))
            cached = s._ctx.seq_tokens[s.slots()[0].id if s.slots()[0].n_cached else 1]
        finally:
            s.close()
        if shift:
            assert stats.n_generated == 120 and stats.finish_reason == "length" and not stats.context_full
            assert cached[: len(prompt)] == prompt and len(cached) <= 48  # the prompt was kept
        else:
            assert stats.context_full and stats.n_generated == 48 - len(prompt) + 1


def test_an_idle_engine_waits_for_requests_being_prepared(smollm2):
    # A burst: B is still being prepared (Scheduler.arriving) when A is queued, so the idle engine holds A
    # until B is submitted and starts both in one step: B has started before A's first token.
    s = Scheduler(smollm2, n_ctx=256, n_threads=2, n_parallel=2, arrival_wait_s=60)
    order = []
    lock = threading.Lock()

    def recorder(name):
        def on_event(ev):
            with lock:
                order.append((ev[0], name))
        return on_event

    try:
        with s.arriving():
            a = s.submit(GenerationRequest(_ids(smollm2, PROMPTS[0]), GREEDY, max_tokens=4), on_event=recorder("a"))
            time.sleep(0.3)
            with lock:
                assert order == []  # not started while B is on its way
            b = s.submit(GenerationRequest(_ids(smollm2, PROMPTS[1]), GREEDY, max_tokens=4), on_event=recorder("b"))
        assert a.wait(60) and b.wait(60)
        assert order.index(("start", "b")) < order.index(("token", "a"))
        # the wait is bounded: a request that never comes holds the engine for arrival_wait_s at most
        s.arrival_wait_s = 0.2
        with s.arriving():
            t0 = time.monotonic()
            assert s.submit(GenerationRequest(_ids(smollm2, PROMPTS[2]), GREEDY, max_tokens=2)).wait(60)
            assert time.monotonic() - t0 >= 0.2
        # a request that fails while being prepared is no longer waited for
        with pytest.raises(ValueError), s.arriving():
            raise ValueError("bad request")
        assert s._arriving == 0
    finally:
        s.close()
