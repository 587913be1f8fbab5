"""The OpenAI-compatible server, on a real uvicorn server on 127.0.0.1 and the real SmolLM2 model,
driven with the official ``openai`` client and raw ``httpx`` requests."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from engine.context import Context
from engine.generate import generate
from engine.sampling import Sampler, SamplerParams
from conftest import recording_scheduler, serving
from engine.server.runner import InProcessServer, bind_warning

API_KEY = "test-key-123"
N_CTX = 512
ROOT = Path(__file__).resolve().parent.parent
SYSTEM = {"role": "system", "content": "You are a concise assistant."}


class Served:
    def __init__(self, model, scheduler, server):
        self.model, self.scheduler, self.server = model, scheduler, server
        self.url = server.url

    def client(self, api_key: str = API_KEY) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=api_key, max_retries=0, timeout=120)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while self.scheduler.busy:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True


@pytest.fixture(scope="module")
def served(smollm2):
    """One server (with an API key) shared by most tests."""
    scheduler = recording_scheduler(smollm2, n_ctx=N_CTX, n_threads=2, max_queue=16, n_parallel=4)
    with serving(smollm2, scheduler, api_key=API_KEY) as server:
        yield Served(smollm2, scheduler, server)
    assert not server.running


@pytest.fixture(scope="module")
def small_queue(smollm2):
    """A server without API key whose scheduler queues only one request, with CORS for one origin and a
    switchable engine (None = no model loaded, as when the window has none open)."""
    scheduler = recording_scheduler(smollm2, n_ctx=N_CTX, n_threads=2, max_queue=1)
    holder = [(smollm2, scheduler)]
    with serving(smollm2, scheduler, lambda: holder[0], cors_origins=["http://example.test"]) as server:
        s = Served(smollm2, scheduler, server)
        s.holder = holder
        yield s


@pytest.fixture(scope="module")
def model_id(smollm2) -> str:
    return Path(smollm2.path).stem


def _auth() -> dict:
    return {"Authorization": f"Bearer {API_KEY}"}


def _direct(model, tokens: list[int], n: int, stop=()) -> str:
    """Greedy generation straight on the engine (a context of its own), the reference for the server."""
    ctx = Context(model, n_ctx=N_CTX, n_threads=2)
    return generate(ctx, tokens, sampler=Sampler(SamplerParams(temperature=0.0)), max_tokens=n, stop=stop).text()


def _chat_tokens(model, messages) -> list[int]:
    return model.chat_template.encode(model.chat_template.render(messages, add_generation_prompt=True))


def _sse_events(lines) -> list:
    """Parse SSE ``data:`` lines; returns decoded JSON objects and the literal "[DONE]"."""
    out = []
    for line in lines:
        if line.startswith("data: "):
            data = line[len("data: "):]
            out.append(data if data == "[DONE]" else json.loads(data))
        else:
            assert line == "", f"unexpected SSE line {line!r}"
    return out


# ----------------------------------------------------------------------------- endpoints


def test_models_and_health(served, model_id):
    client = served.client()
    assert [m.id for m in client.models.list().data] == [model_id]
    assert client.models.retrieve(model_id).id == model_id
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")
    r = httpx.get(served.url + "/health")  # no key needed
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and r.json()["model"] == model_id and r.json()["n_ctx"] == N_CTX
    assert r.json()["n_parallel"] == 4
    assert httpx.get(served.url + "/slots").status_code == 401  # the slots page needs the key
    slots = httpx.get(served.url + "/slots", headers=_auth()).json()
    assert [x["id"] for x in slots] == [0, 1, 2, 3] and all(x["n_ctx"] == N_CTX for x in slots)


def test_chat_matches_engine_and_counts_tokens(served, smollm2, model_id):
    messages = [SYSTEM, {"role": "user", "content": "What is the capital of France?"}]
    r = served.client().chat.completions.create(model=model_id, messages=messages, max_tokens=10, temperature=0)
    tokens = _chat_tokens(smollm2, messages)
    choice = r.choices[0]
    assert r.object == "chat.completion" and r.model == model_id
    assert choice.message.role == "assistant"
    assert choice.message.content == _direct(smollm2, tokens, 10)
    assert r.usage.prompt_tokens == len(tokens)
    if choice.finish_reason == "length":
        assert r.usage.completion_tokens == 10
    else:
        assert choice.finish_reason == "stop" and r.usage.completion_tokens <= 10
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_content_parts_are_joined_text(served, model_id):
    client = served.client()
    plain = client.chat.completions.create(
        model=model_id, max_tokens=6, temperature=0,
        messages=[{"role": "user", "content": "Name a color.\nJust one word."}])
    parts = client.chat.completions.create(
        model=model_id, max_tokens=6, temperature=0,
        messages=[{"role": "user", "content": [{"type": "text", "text": "Name a color."},
                                               {"type": "text", "text": "Just one word."}]}])
    assert parts.usage.prompt_tokens == plain.usage.prompt_tokens
    assert parts.choices[0].message.content == plain.choices[0].message.content


def test_chat_streaming_matches_non_streaming(served, model_id):
    client = served.client()
    messages = [{"role": "user", "content": "Write one sentence about the sea."}]
    whole = client.chat.completions.create(model=model_id, messages=messages, max_tokens=12, temperature=0)
    chunks = list(client.chat.completions.create(model=model_id, messages=messages, max_tokens=12, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == whole.choices[0].message.content
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == whole.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage

    # Raw SSE: one JSON object per data line, and the stream ends with [DONE].
    body = {"model": model_id, "messages": messages, "max_tokens": 4, "temperature": 0, "stream": True}
    with httpx.stream("POST", served.url + "/v1/chat/completions", json=body, headers=_auth(), timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = _sse_events(list(r.iter_lines()))
    assert events[-1] == "[DONE]" and "[DONE]" not in events[:-1]
    assert all("usage" not in e for e in events[:-1])  # no usage chunk unless asked


def test_chat_logprobs(served, model_id):
    r = served.client().chat.completions.create(
        model=model_id, messages=[{"role": "user", "content": "Count: one, two,"}], max_tokens=6, temperature=0,
        logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert r.choices[0].finish_reason == "length" and len(content) == r.usage.completion_tokens == 6
    for entry in content:
        tops = [t.logprob for t in entry.top_logprobs]
        assert len(tops) == 3 and tops == sorted(tops, reverse=True) and tops[0] <= 0.0
        assert entry.token == entry.top_logprobs[0].token and entry.logprob == pytest.approx(tops[0])  # greedy
        assert bytes(entry.bytes).decode("utf-8", errors="replace") == entry.token
    assert "".join(e.token for e in content) == r.choices[0].message.content


def test_completions(served, smollm2, model_id):
    client = served.client()
    prompt = "The capital of France is"
    tokens = smollm2.tokenizer.encode(prompt, add_special=True)
    r = client.completions.create(model=model_id, prompt=prompt, max_tokens=8, temperature=0)
    assert r.object == "text_completion"
    assert r.choices[0].text == _direct(smollm2, tokens, 8)
    assert r.usage.prompt_tokens == len(tokens) and r.usage.completion_tokens == 8
    assert r.choices[0].finish_reason == "length"

    echoed = client.completions.create(model=model_id, prompt=[prompt], max_tokens=8, temperature=0, echo=True)
    assert echoed.choices[0].text == prompt + r.choices[0].text

    streamed = list(client.completions.create(model=model_id, prompt=prompt, max_tokens=8, temperature=0,
                                              stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in streamed if c.choices) == r.choices[0].text
    assert streamed[-1].usage.completion_tokens == 8

    lp = client.completions.create(model=model_id, prompt=prompt, max_tokens=8, temperature=0, logprobs=2).choices[0]
    legacy = lp.logprobs
    assert len(legacy.tokens) == len(legacy.token_logprobs) == len(legacy.top_logprobs) == 8
    assert "".join(legacy.tokens) == lp.text
    assert legacy.text_offset == sorted(legacy.text_offset) and legacy.text_offset[0] == 0
    for chosen, top in zip(legacy.token_logprobs, legacy.top_logprobs):
        assert len(top) <= 2 and chosen == pytest.approx(max(top.values()))  # greedy picks the top one


def test_seed_reproducibility(served, model_id):
    client = served.client()

    def sample(seed: int) -> str:
        r = client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Tell me a story."}],
                                           max_tokens=16, temperature=1.0, top_p=1.0, seed=seed)
        return r.choices[0].message.content

    first = sample(1234)
    assert sample(1234) == first
    assert len({first, sample(1), sample(2), sample(3)}) > 1  # temperature 1 really samples


def test_stop_strings(served, model_id):
    client = served.client()
    messages = [{"role": "user", "content": "List three fruits, separated by commas."}]
    full = client.chat.completions.create(model=model_id, messages=messages, max_tokens=24, temperature=0)
    text = full.choices[0].message.content
    assert len(text) > 8, text
    stop = text[len(text) // 2: len(text) // 2 + 3]
    expected = text[: text.find(stop)]
    for stops in (stop, [stop, "never-appears-xyz"]):
        r = client.chat.completions.create(model=model_id, messages=messages, max_tokens=24, temperature=0,
                                           stop=stops)
        assert r.choices[0].message.content == expected
        assert r.choices[0].finish_reason == "stop"


# ----------------------------------------------------------------------------- load


def test_concurrent_clients_get_complete_answers(served, model_id):
    client = served.client()
    questions = ["What is 2 + 2?", "Name a planet.", "What color is the sky?", "Say hello in French.",
                 "What is the opposite of hot?", "Name a fruit.", "How many legs does a cat have?", "What is water?"]

    def ask(q: str):
        r = client.chat.completions.create(model=model_id, messages=[{"role": "user", "content": q}],
                                           max_tokens=10, temperature=0)
        return r.choices[0].message.content, r.choices[0].finish_reason, r.usage.completion_tokens

    alone = [ask(q) for q in questions]
    with ThreadPoolExecutor(len(questions)) as pool:
        together = list(pool.map(ask, questions))
    assert together == alone
    assert served.wait_idle()


def test_32_concurrent_streams_complete_or_get_503(served, model_id):
    # 4 slots and a queue of 16: every client gets a whole reply or a 503 at once; none hangs, and
    # afterwards every slot is idle.
    client = served.client()
    client = client.with_options(timeout=120)

    def ask(i: int):
        try:
            stream = client.chat.completions.create(
                model=model_id, messages=[{"role": "user", "content": f"Count to {i + 3}."}], max_tokens=8,
                temperature=0, stream=True, stream_options={"include_usage": True})
            usage = [c.usage for c in stream if c.usage is not None]
            return "ok", usage[0].completion_tokens
        except openai.APIStatusError as e:
            return e.status_code, e.response.headers.get("retry-after")

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(ask, range(32)))
    done = [n for kind, n in results if kind == "ok"]
    refused = [r for kind, r in results if kind != "ok"]
    assert len(done) + len(refused) == 32 and len(done) >= 4
    assert all(n >= 1 for n in done)
    assert all(kind == 503 for kind, _ in results if kind != "ok") and all(int(r) > 0 for r in refused)
    assert served.wait_idle()
    assert all(x["state"] == "idle" for x in httpx.get(served.url + "/slots", headers=_auth()).json())


def test_disconnect_mid_stream_frees_the_slot(served, model_id):
    body = {"model": model_id, "prompt": "Once upon a time, in a land far away,", "max_tokens": 400,
            "temperature": 0.0, "stream": True}
    n_jobs = len(served.scheduler.jobs)
    with httpx.stream("POST", served.url + "/v1/completions", json=body, headers=_auth(), timeout=60) as r:
        assert r.status_code == 200
        seen = 0
        for line in r.iter_lines():
            if line.startswith("data: {"):
                seen += 1
                if seen == 3:
                    break  # leave: the with-block closes the connection
    assert served.wait_idle(30), "the disconnected generation kept running"
    job = served.scheduler.jobs[n_jobs]
    assert job.stats.finish_reason == "cancelled" and job.stats.n_generated < 400
    # The slot is free: the next request runs to completion.
    r = served.client().completions.create(model=model_id, prompt="Hello", max_tokens=4, temperature=0)
    assert r.choices[0].finish_reason in ("length", "stop") and r.usage.completion_tokens >= 1

    # A non-streaming client that gives up (read timeout: httpx closes the connection) cancels too.
    n_jobs = len(served.scheduler.jobs)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(served.url + "/v1/completions", json={**body, "stream": False}, headers=_auth(),
                   timeout=httpx.Timeout(30, read=0.5))
    assert served.wait_idle(30), "the abandoned generation kept running"
    job = served.scheduler.jobs[n_jobs]
    assert job.stats.finish_reason == "cancelled" and job.stats.n_generated < 400


def test_queue_overflow_gets_503_with_retry_after(small_queue, model_id):
    s = small_queue
    long_body = {"model": model_id, "prompt": "Once upon a time,", "max_tokens": 400, "temperature": 0.0,
                 "stream": True}
    short_body = {"model": model_id, "prompt": "Hi", "max_tokens": 2}
    queued_result = {}

    def queued():
        queued_result["r"] = httpx.post(s.url + "/v1/completions", json=short_body, timeout=120)

    with httpx.stream("POST", s.url + "/v1/completions", json=long_body, timeout=60) as running:
        lines = running.iter_lines()
        assert next(line for line in lines if line.startswith("data: {"))  # the long job is generating
        waiter = threading.Thread(target=queued)
        waiter.start()
        deadline = time.monotonic() + 30
        while s.scheduler.n_waiting < 1:
            assert time.monotonic() < deadline, "the second request never queued"
            time.sleep(0.01)
        over = httpx.post(s.url + "/v1/completions", json=short_body, timeout=30)
        assert over.status_code == 503
        assert int(over.headers["retry-after"]) > 0
        assert over.json()["error"]["code"] == "queue_full" and over.json()["error"]["type"] == "server_error"
    waiter.join(60)  # leaving the stream cancelled the long job, so the queued one runs
    assert queued_result["r"].status_code == 200
    assert queued_result["r"].json()["usage"]["completion_tokens"] == 2
    assert s.wait_idle()


def test_no_model_loaded_is_503(small_queue, model_id):
    s = small_queue
    saved, s.holder[0] = s.holder[0], None
    try:
        r = httpx.post(s.url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "Hi"}]})
        assert r.status_code == 503 and r.json()["error"]["code"] == "no_model_loaded"
        assert httpx.get(s.url + "/health").status_code == 503
        assert httpx.get(s.url + "/v1/models").json()["data"] == []
    finally:
        s.holder[0] = saved
    assert httpx.get(s.url + "/health").status_code == 200


def test_cors_only_for_configured_origins(served, small_queue):
    preflight = {"Origin": "http://example.test", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    r = httpx.options(small_queue.url + "/v1/chat/completions", headers=preflight)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://example.test"
    r = httpx.get(small_queue.url + "/v1/models", headers={"Origin": "http://other.test"})
    assert "access-control-allow-origin" not in r.headers
    r = httpx.get(served.url + "/health", headers={"Origin": "http://example.test"})
    assert "access-control-allow-origin" not in r.headers  # CORS is off by default


# ----------------------------------------------------------------------------- errors and security


def _error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    return err


def test_bad_requests_get_openai_errors(served, smollm2, model_id):
    url = served.url + "/v1/chat/completions"
    hi = [{"role": "user", "content": "Hi"}]

    def post(body, **kw):
        return httpx.post(url, headers={**_auth(), "Content-Type": "application/json"},
                          content=body if isinstance(body, (str, bytes)) else json.dumps(body), timeout=60, **kw)

    assert _error(post('{"messages": [}'), 400)["code"] == "invalid_json"
    assert _error(post(""), 400)["code"] == "invalid_json"
    assert _error(post({"messages": "hi"}), 400)["param"] == "messages"
    assert _error(post({"messages": hi, "temperature": "hot"}), 400)["param"] == "temperature"
    assert _error(post({"messages": hi, "max_tokens": 0}), 400)["param"] == "max_tokens"
    assert _error(post({"messages": [{"role": "robot", "content": "x"}]}), 400)["param"] == "messages.0.role"
    assert _error(post({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}),
                  400)["param"] == "messages.0.content"
    assert _error(post({"messages": hi, "n": 2}), 400)["param"] == "n"
    assert _error(post({"messages": hi, "stream": 1}), 400)["param"] == "stream"
    assert _error(post({"messages": hi, "tools": [{"type": "function"}]}), 400)["param"] == "tools.0.function"
    assert _error(post({"messages": hi, "functions": [{"name": "f"}]}), 400)["code"] == "unsupported"
    err = _error(post({"messages": hi, "model": "gpt-4o"}), 404)
    assert err["code"] == "model_not_found" and err["param"] == "model"

    long_messages = [{"role": "user", "content": "hello " * 700}]
    n_tokens = len(_chat_tokens(smollm2, long_messages))
    assert n_tokens > N_CTX
    err = _error(post({"messages": long_messages, "max_tokens": 4}), 400)
    assert err["code"] == "context_length_exceeded"
    assert str(n_tokens) in err["message"] and str(N_CTX) in err["message"]

    assert _error(post(b'{"messages": "' + b"x" * (2 << 20) + b'"}'), 413)["code"] == "request_too_large"
    assert _error(httpx.get(served.url + "/v1/nowhere", headers=_auth()), 404)["code"] == "not_found"
    assert _error(httpx.get(url, headers=_auth()), 405)["code"] == "method_not_allowed"

    # The same through the official client, and the accepted spellings of the model id.
    client = served.client()
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=model_id, messages=hi, n=2)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=hi, max_tokens=2)
    assert client.chat.completions.create(model=model_id + ".gguf", messages=hi, max_tokens=2).choices
    assert post({"messages": hi, "max_tokens": 2}).status_code == 200  # model absent: the loaded one
    assert _error(httpx.post(served.url + "/v1/completions", headers=_auth(),
                             json={"prompt": "x " * 700, "max_tokens": 2}), 400)["code"] == "context_length_exceeded"
    assert served.wait_idle()


def test_api_key_is_enforced(served, model_id):
    models = served.url + "/v1/models"
    err = _error(httpx.get(models), 401)
    assert err["type"] == "authentication_error"
    _error(httpx.get(models, headers={"Authorization": "Bearer wrong"}), 401)
    _error(httpx.post(served.url + "/v1/chat/completions", content="{not json"), 401)  # auth comes first
    assert httpx.get(models, headers=_auth()).status_code == 200
    assert httpx.get(served.url + "/health").status_code == 200
    with pytest.raises(openai.AuthenticationError):
        served.client(api_key="wrong").chat.completions.create(model=model_id, messages=[{"role": "user", "content": "Hi"}])


def test_port_taken_and_bind_warning(served):
    port = int(served.url.rsplit(":", 1)[1])
    other = InProcessServer(lambda: None, port=port)
    with pytest.raises(OSError, match="already in use"):
        other.start()
    assert not other.running and served.server.running
    # The GUI toggle stops and starts the same object; with no model loaded it answers 503.
    other = InProcessServer(lambda: None, port=0)
    for _ in range(2):
        other.start()
        assert other.running and httpx.get(other.url + "/health").status_code == 503
        other.stop()
        assert not other.running
        with pytest.raises(httpx.ConnectError):
            httpx.get(other.url + "/health")
    assert bind_warning("127.0.0.1") is None and bind_warning("localhost") is None and bind_warning("::1") is None
    assert "every network interface" in bind_warning("0.0.0.0") and bind_warning("::")


def _default_sigint() -> None:
    """In the child before exec: Ctrl+C's default action. A job started with ``&`` by a non-interactive shell
    (CI scripts, nohup) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_fireside_serve_command(smollm2_path, stop_signal):
    """`fireside serve` (what `make serve` runs): starts, answers, prints the bind warning, and stops with
    exit status 0 on Ctrl+C or SIGTERM (``docker stop``, systemd)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "engine", "serve", "-m", str(smollm2_path), "--port", "0",
                             "--host", "0.0.0.0", "-c", "256", "-t", "1", "--api-key", "k"],
                            cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line, "fireside serve exited early:\n" + "".join(lines)
            lines.append(line)
            m = re.search(r"serving .* at (http://\S+)/v1", line)
            if m:
                break
        assert m, "".join(lines)
        assert any("warning" in ln and "every network interface" in ln for ln in lines)
        url = m.group(1)
        assert httpx.get(url + "/health").json()["n_ctx"] == 256
        r = httpx.post(url + "/v1/completions", headers={"Authorization": "Bearer k"},
                       json={"prompt": "Hello", "max_tokens": 2}, timeout=60)
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 2
        proc.send_signal(stop_signal)
        assert proc.wait(30) == 0
        assert "fireside: stopping" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
