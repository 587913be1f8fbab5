"""End to end on the real starter models: greedy continuations and perplexity match llama.cpp
(tests/reference/README.md), sampling is reproducible, the KV cache is reused, context limits
are enforced, and the forward pass gives the same logits batched or token by token."""
from __future__ import annotations

import re

import numpy as np
import pytest

from conftest import GEMMA3_FILE, SMOLLM2_FILE, loaded_model, reference_file
from engine.context import Context, ContextFullError
from engine.generate import generate
from engine.perplexity import perplexity, token_nll
from engine.sampling import Sampler, SamplerParams

MODEL_LABELS = {"SmolLM2": SMOLLM2_FILE, "Gemma 3": GEMMA3_FILE}


def reference_continuations() -> list[tuple[str, str, str]]:
    """(model file, prompt, continuation) rows of the reference table; `|` in a cell is a newline."""
    rows = []
    for line in reference_file("README.md").read_text().splitlines():
        m = re.match(r"^\| (SmolLM2|Gemma 3) \| `(.+?)` \| `(.*)`(?: \(\d+ tokens\))? \|$", line)
        if m:
            rows.append((MODEL_LABELS[m.group(1)], m.group(2), m.group(3).replace("|", "\n")))
    assert len(rows) == 6, "reference table changed shape"
    return rows


def reference_perplexity() -> dict[str, tuple[list[float], float]]:
    out = {}
    for line in reference_file("README.md").read_text().splitlines():
        m = re.match(r"^\| (SmolLM2-135M Q4_1|Gemma 3 270M Q4_K_M) \| (\d+) \| ([\d., ]+) \| ([\d.]+) ±", line)
        if m:
            name = SMOLLM2_FILE if m.group(1).startswith("SmolLM2") else GEMMA3_FILE
            out[name] = ([float(x) for x in m.group(3).split(",")], float(m.group(4)))
    assert len(out) == 2, "reference perplexity table changed shape"
    return out


def matching_tokens(model, prompt: str, expected: str, n: int) -> int:
    """Greedy-generate n tokens and count how many, from the first, keep the text a prefix of
    llama.cpp's continuation."""
    ctx = Context(model, n_ctx=256)
    tokens = model.tokenizer.encode(prompt, add_special=True)
    text, count = "", 0
    for piece in generate(ctx, tokens, sampler=Sampler(SamplerParams(temperature=0)), max_tokens=n):
        text += piece.text
        if not expected.startswith(text):
            break
        count += piece.id >= 0
    return count


# The acceptance: "The capital of France is" agrees with llama.cpp for at least 12 tokens on
# both models. The other reference prompts must agree from the start too; Gemma's "Once upon a
# time" has a near-tie at its 5th token (the top four logits lie within 0.25), where llama.cpp's
# rounding and ours part ways, so it is held to 4 tokens.
MIN_AGREEMENT = {(GEMMA3_FILE, "Once upon a time"): 4}


@pytest.mark.parametrize("filename,prompt,expected", reference_continuations(),
                         ids=lambda v: v[:16] if isinstance(v, str) else None)
def test_greedy_continuation_matches_llama_cpp(filename, prompt, expected):
    want = MIN_AGREEMENT.get((filename, prompt), 12)
    got = matching_tokens(loaded_model(filename), prompt, expected, 24)
    assert got >= want, f"only the first {got} greedy tokens agree with llama.cpp ({expected!r})"


@pytest.mark.parametrize("filename", [SMOLLM2_FILE, GEMMA3_FILE], ids=["smollm2", "gemma3"])
def test_perplexity_within_one_percent_of_llama_cpp(filename):
    running_ref, final_ref = reference_perplexity()[filename]
    model = loaded_model(filename)
    text = reference_file("texts/apache-2.0.txt").read_text()
    result = perplexity(Context(model, n_ctx=512, n_batch=512), text)
    assert len(result.running) == len(running_ref)
    assert abs(result.ppl / final_ref - 1) < 0.01, (result.ppl, final_ref)
    for mine, ref in zip(result.running, running_ref):
        assert abs(mine / ref - 1) < 0.02, (result.running, running_ref)


def test_token_nll_is_the_float64_log_softmax():
    """token_nll (float32 exp, float64 sum, in row blocks) against -log_softmax in float64 over whole rows,
    for a vocabulary that takes several blocks and one that fits in one; bad shapes and targets are refused."""
    rng = np.random.default_rng(7)
    for n, n_vocab in [(40, 262144), (9, 50)]:
        rows = (rng.standard_normal((n, n_vocab)) * 6).astype(np.float32)
        rows[0, :] = 0.0
        rows[1, 3] = 100.0  # one near-certain token (exp overflows float32 without the max)
        targets = rng.integers(0, n_vocab, n)
        targets[1] = 3
        r64 = rows.astype(np.float64)
        mx = r64.max(axis=1)
        want = mx + np.log(np.exp(r64 - mx[:, None]).sum(axis=1)) - r64[np.arange(n), targets]
        got = token_nll(rows, targets)
        assert got.dtype == np.float64 and got.shape == (n,)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
        assert abs(got[0] - np.log(n_vocab)) < 1e-6
    with pytest.raises(ValueError, match="do not match"):
        token_nll(np.zeros((3, 5), np.float32), np.zeros(2, int))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        token_nll(np.zeros((2, 5), np.float32), np.array([0, 5]))


def test_batched_prefill_equals_token_by_token(smollm2, gemma3):
    """One decode step equals the matching row of a batched prefill. SmolLM2 (Q4_1, Q8_0) runs the
    same kernels either way, so the logits are identical. Gemma's Q4_K matrices use llama.cpp's
    4-row GEMM arithmetic in a batch and its GEMV arithmetic alone; the last-bit differences can
    flip an 8-bit activation rounding in a later layer, so there the logits agree closely, not
    bit for bit (as in llama.cpp)."""
    for model, exact in ((smollm2, True), (gemma3, False)):
        tokens = model.tokenizer.encode("The quick brown fox jumps over the lazy dog. It was", add_special=True)
        batched = Context(model, n_ctx=64).eval_logits(tokens, 0)
        one = Context(model, n_ctx=64, n_batch=1)
        for i, t in enumerate(tokens):
            logits = one.decode(t)
            if exact:
                np.testing.assert_array_equal(logits, batched[i])
            else:
                assert np.corrcoef(logits, batched[i])[0, 1] > 0.998
                assert np.argmax(logits) == np.argmax(batched[i])


def test_thread_count_does_not_change_logits(smollm2):
    tokens = smollm2.tokenizer.encode("Threads should not matter.", add_special=True)
    a = Context(smollm2, n_ctx=64, n_threads=1).eval_logits(tokens, 0)
    b = Context(smollm2, n_ctx=64, n_threads=2).eval_logits(tokens, 0)
    np.testing.assert_array_equal(a, b)


def test_same_seed_same_output(smollm2):
    prompt = smollm2.tokenizer.encode("Write a short poem about the sea.", add_special=True)
    params = dict(temperature=1.0, top_k=40, top_p=0.95, min_p=0.05, seed=1234)

    def sample_once(seed):
        ctx = Context(smollm2, n_ctx=256)
        return generate(ctx, prompt, sampler=Sampler(SamplerParams(**{**params, "seed": seed})), max_tokens=24).text()

    first, again, other = sample_once(1234), sample_once(1234), sample_once(99)
    assert first == again
    assert first != other


def test_second_chat_turn_reuses_the_cache(smollm2):
    ctx = Context(smollm2, n_ctx=512)
    greedy = Sampler(SamplerParams(temperature=0))
    tmpl = smollm2.chat_template
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    first_prompt = tmpl.encode(tmpl.render(messages))
    gen = generate(ctx, first_prompt, sampler=greedy, max_tokens=16)
    reply = gen.text()
    assert gen.stats.n_reused == 0
    messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": "And of Italy?"}]
    second_prompt = tmpl.encode(tmpl.render(messages))
    gen2 = generate(ctx, second_prompt, sampler=greedy, max_tokens=8)
    gen2.text()
    assert gen2.stats.n_reused >= len(first_prompt)
    # The reused cache gives the same continuation as a fresh context.
    fresh = generate(Context(smollm2, n_ctx=512), second_prompt, sampler=greedy, max_tokens=8)
    assert fresh.text() == gen2.stats.text


def test_stop_on_eos_and_stop_strings(smollm2):
    tmpl = smollm2.chat_template
    prompt = tmpl.encode(tmpl.render([{"role": "system", "content": "You are a helpful assistant."},
                                      {"role": "user", "content": "What is the capital of France?"}]))
    gen = generate(Context(smollm2, n_ctx=512), prompt, sampler=Sampler(SamplerParams(temperature=0)),
                   max_tokens=200)
    text = gen.text()
    assert gen.stats.finish_reason == "stop" and gen.stats.n_generated < 200
    assert "<|im_end|>" not in text
    # A stop string ends the text before it, and is not emitted.
    prompt = smollm2.tokenizer.encode("The capital of France is", add_special=True)
    gen = generate(Context(smollm2, n_ctx=256), prompt, sampler=Sampler(SamplerParams(temperature=0)),
                   max_tokens=24, stop=["United"])
    assert gen.text() == " Paris.\n\nThe "
    assert gen.stats.finish_reason == "stop"


class _ForcedTokens:
    """A LogitsConstraint that allows exactly one token sequence, then reports completion."""

    def __init__(self, ids: list[int]):
        self.ids, self.i, self.seen_finite = list(ids), 0, []

    def mask(self, logits):
        self.seen_finite.append(int(np.isfinite(logits).sum()))
        keep = logits[self.ids[self.i]]
        logits[:] = -np.inf
        logits[self.ids[self.i]] = keep

    def accept(self, token):
        assert token == self.ids[self.i]
        self.i += 1
        return self.i == len(self.ids)


def test_constraint_masks_the_logits_and_ends_the_reply(smollm2):
    # Greedy alone continues "The capital of France is" with " Paris."; the constraint forces other text,
    # every held-back byte is flushed when it completes, and logprobs still describe the raw model.
    tok = smollm2.tokenizer
    forced = tok.encode(' {"city": "Lyon"}', add_special=False)
    c = _ForcedTokens(forced)
    gen = generate(Context(smollm2, n_ctx=256), tok.encode("The capital of France is", add_special=True),
                   sampler=Sampler(SamplerParams(temperature=0)), max_tokens=50, stop=["\n\n"],
                   logprobs=1, constraint=c)
    toks = list(gen)
    assert "".join(t.text for t in toks) == ' {"city": "Lyon"}'
    assert gen.stats.finish_reason == "stop" and gen.stats.n_generated == len(forced)
    assert c.seen_finite == [smollm2.hparams.n_vocab] * len(forced)  # mask saw the unmasked logits
    assert toks[0].top_logprobs[0][0] != forced[0]  # the raw distribution prefers something else


def test_prompt_longer_than_context_is_refused(smollm2):
    ctx = Context(smollm2, n_ctx=16)
    tokens = smollm2.tokenizer.encode("word " * 40, add_special=True)
    with pytest.raises(ContextFullError, match="n_ctx = 16"):
        generate(ctx, tokens, sampler=Sampler(SamplerParams(temperature=0))).text()


def test_generation_stops_when_context_fills(smollm2):
    ctx = Context(smollm2, n_ctx=24)
    tokens = smollm2.tokenizer.encode("Once upon a time", add_special=True)
    gen = generate(ctx, tokens, sampler=Sampler(SamplerParams(temperature=0)), max_tokens=100)
    gen.text()
    assert gen.stats.context_full and gen.stats.finish_reason == "length"
    assert len(ctx.tokens) == 24


def test_generation_leaves_python_threads_at_full_speed(smollm2):
    """The GUI and the server need the GIL released: while a generation runs on one kernel thread,
    a pure-Python thread keeps at least 80% of its solo speed (issue "Fast CPU kernels"). The same
    counting loop is timed alone and beside the generation; the forward pass runs in C without the
    GIL, so only the Python work between tokens (sampling, detokenizing) competes."""
    import threading
    import time

    prompt = smollm2.tokenizer.encode("The history of the city goes back a long way.", add_special=True)
    ctx = Context(smollm2, n_ctx=512, n_threads=1)
    sampler = Sampler(SamplerParams(temperature=0.0))

    def spin(stop: threading.Event, seconds: float) -> float:
        """Iterations per second of a pure-Python loop until `stop` is set or `seconds` pass."""
        n, t0 = 0, time.perf_counter()
        end = t0 + seconds
        while not stop.is_set() and time.perf_counter() < end:
            n += 1
        return n / (time.perf_counter() - t0)

    def attempt() -> float:
        solo_before = spin(threading.Event(), 0.3)
        done = threading.Event()
        took = {}

        def work():
            t0 = time.perf_counter()
            for _ in generate(ctx, prompt, sampler=sampler, max_tokens=64):
                pass
            took["s"] = time.perf_counter() - t0
            done.set()

        worker = threading.Thread(target=work)
        worker.start()
        shared = spin(done, 60.0)
        worker.join()
        solo_after = spin(threading.Event(), 0.3)
        assert took["s"] > 0.2, "the generation was too short to measure"
        return shared / max(solo_before, solo_after)

    # Other programs on a small machine can steal a core for a moment, so the best of three
    # attempts counts; a forward pass that held the GIL would stop the loop in every attempt.
    ratios = []
    for _ in range(3):
        ratios.append(attempt())
        if ratios[-1] >= 0.8:
            break
    assert max(ratios) >= 0.8, f"a Python thread ran at {[f'{r:.0%}' for r in ratios]} of its solo speed"


def test_forward_pass_releases_the_gil(smollm2):
    """While the model evaluates a long batch on one kernel thread, a pure-Python thread keeps
    running. If the forward pass held the GIL, the counter would stand still for the whole call."""
    import threading
    import time

    tokens = smollm2.tokenizer.encode("The history of the city goes back a long way. " * 12, add_special=True)
    ctx = Context(smollm2, n_ctx=1024, n_batch=512, n_threads=1)

    def count_for(seconds: float) -> int:
        n, end = 0, time.perf_counter() + seconds
        while time.perf_counter() < end:
            n += 1
        return n

    solo = count_for(0.3) / 0.3
    done = threading.Event()
    worker = threading.Thread(target=lambda: (ctx.eval_logits(tokens, len(tokens) - 1), done.set()))
    t0 = time.perf_counter()
    worker.start()
    n = 0
    while not done.is_set():
        n += 1
    elapsed = time.perf_counter() - t0
    worker.join()
    assert elapsed > 0.2, "the batch was too short to measure"
    assert n / elapsed > 0.3 * solo, f"Python thread ran at {n / elapsed / solo:.0%} of its solo speed"
