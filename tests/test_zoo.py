"""Every supported architecture against llama.cpp, live: the conformance zoo (``tests/zoo.py``).

For each zoo file, llama.cpp (llama-cpp-python, the ``[test]`` extra) and Fireside score the same
token chunks the way ``llama-perplexity`` does (``engine/perplexity.py``: chunks of n_ctx tokens,
BOS first where the model adds one, the second half of each chunk scored), and Fireside's perplexity
must be within 1% of llama.cpp's. Then llama.cpp decodes greedily from a prompt, and at every step
where llama.cpp's top two logits are more than ``MARGIN`` apart, Fireside's argmax (fed the same
tokens) must be llama.cpp's token. No stored expected numbers: both engines run here.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import GEMMA3_FILE, SMOLLM2_FILE, model_path, reference_file
from llama_oracle import llama_cpp_logits
from zoo import CASES, build_case

N_CTX = 512
N_CHUNKS = 2
N_GREEDY = 16
MARGIN = 0.1  # logits; closer top-two pairs may flip on float rounding
MAX_LOGIT_ERROR = 0.02  # RMS logit difference / spread of the logits, for models that do not predict text
PROMPTS = ["The capital of France is", "def fibonacci(n):"]
SOURCES = {"smollm2": SMOLLM2_FILE, "gemma3": GEMMA3_FILE}


@pytest.fixture(scope="module")
def text() -> str:
    return reference_file("texts/apache-2.0.txt").read_text()


@pytest.fixture(scope="module", params=CASES, ids=[c.name for c in CASES])
def zoo_file(request):
    case = request.param
    return case, build_case(case, model_path(SOURCES[case.source]))


def _nll_ppl(rows: np.ndarray, targets: np.ndarray) -> tuple[float, int]:
    rows = rows.astype(np.float64)
    mx = rows.max(axis=1)
    lse = mx + np.log(np.exp(rows - mx[:, None]).sum(axis=1))
    return float((lse - rows[np.arange(len(targets)), targets]).sum()), len(targets)


def _chunks(tokens: list[int], tok) -> list[list[int]]:
    out = []
    for i in range(min(N_CHUNKS, len(tokens) // N_CTX)):
        chunk = tokens[i * N_CTX:(i + 1) * N_CTX]
        if tok.add_bos and tok.bos_id is not None:
            chunk[0] = tok.bos_id
        out.append(chunk)
    return out


def _greedy_agreement(case, ctx, ref, tok) -> tuple[int, int]:
    """Decode llama.cpp's greedy continuation with Fireside one token at a time (the path generation
    takes) and check the argmax at every step where llama.cpp's top two logits are MARGIN apart."""
    agreeing = checked = 0
    for prompt_text in PROMPTS:
        prompt = tok.encode(prompt_text, add_special=True)
        expected, margins = ref.greedy(prompt, N_GREEDY)
        ctx.reset()
        logits, _ = ctx.prefill(prompt)
        for i, (want, margin) in enumerate(zip(expected, margins)):
            have = int(np.argmax(logits))
            if margin > MARGIN:
                checked += 1
                assert have == want, (f"{case.name} {prompt_text!r}: step {i}: Fireside {have}, llama.cpp {want} "
                                      f"(margin {margin:.3f})")
                agreeing += 1
            logits = ctx.decode(want)
    return agreeing, checked


def test_zoo_matches_llama_cpp(zoo_file, text):
    from engine.context import Context
    from engine.model import load_model

    case, path = zoo_file
    model = load_model(path)
    ref = llama_cpp_logits(path, N_CTX)
    try:
        tok = model.tokenizer
        chunks = _chunks(tok.encode(text, add_special=True), tok)
        assert len(chunks) == N_CHUNKS
        ctx = Context(model, n_ctx=N_CTX, n_batch=N_CTX, n_threads=2)
        first = N_CTX // 2
        ours = theirs = 0.0
        count = 0
        worst = 0.0
        for chunk in chunks:
            targets = np.asarray(chunk[first + 1:])
            ctx.reset()
            mine = ctx.eval_logits(chunk, first)
            nll, k = _nll_ppl(mine[:-1], targets)
            ours += nll
            theirs_rows = ref.logits(chunk)[first:]
            nll_ref, _ = _nll_ppl(theirs_rows[:-1], targets)
            theirs += nll_ref
            count += k
            # logit error relative to the spread of llama.cpp's logits, per position
            err = np.sqrt(np.mean((mine - theirs_rows) ** 2, axis=1)) / theirs_rows.std(axis=1)
            worst = max(worst, float(err.max()))
        ppl, ppl_ref = math.exp(ours / count), math.exp(theirs / count)
        print(f"\n{case.name}: Fireside PPL {ppl:.4f}, llama.cpp PPL {ppl_ref:.4f}, worst relative logit error "
              f"{worst:.4f}")
        if case.predicts_text:
            assert ppl_ref < 1000, f"{case.name}: the zoo model no longer predicts text (llama.cpp PPL {ppl_ref:.1f})"
            assert abs(ppl / ppl_ref - 1) < 0.01, f"{case.name}: Fireside PPL {ppl:.4f} vs llama.cpp {ppl_ref:.4f}"
        else:
            assert worst < MAX_LOGIT_ERROR, f"{case.name}: logits differ from llama.cpp's by {worst:.4f} of their spread"

        agreeing, checked = _greedy_agreement(case, ctx, ref, tok)
        print(f"{case.name}: greedy tokens agreeing {agreeing}/{checked} (of {len(PROMPTS) * N_GREEDY})")
        assert checked >= N_GREEDY, f"{case.name}: too few decisive steps to compare ({checked})"
    finally:
        ref.close()
