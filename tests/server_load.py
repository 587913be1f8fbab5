"""Load check of the local server (a script, not a test): time to first token and tokens per second for
one client, then for several concurrent clients, through the official ``openai`` client with streaming.

    .venv/bin/python tests/server_load.py                       # starts its own server on the starter model
    .venv/bin/python tests/server_load.py --url http://127.0.0.1:8080 --api-key KEY   # an existing server

The server runs ``--parallel`` slots (default 4) with continuous batching: N <= slots clients are decoded
together in one forward pass per token, so the aggregate rate grows with N while each stream slows a
little; beyond the slots, requests wait in the queue. Every reply of the concurrent run is compared with
the reply the same prompt got alone (greedy: they must be equal).

Issue 14's targets: with 4 clients, aggregate tokens/s >= 2.5x one client's, and the slowest time to
first token <= 2x the fastest.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import openai  # noqa: E402

PROMPTS = ["Write a short story about a lighthouse keeper.", "Explain how rain forms.",
           "Describe a busy market in the morning.", "Give advice to a new gardener.",
           "Tell me about the history of bread.", "Describe the planet Mars.",
           "Write a letter to a friend about a trip.", "Explain why the sky is blue."]


@dataclass
class Result:
    ttft_s: float  # request sent -> first content token
    total_s: float  # request sent -> stream finished
    n_tokens: int  # completion tokens (from the usage chunk)
    text: str = ""  # the reply

    @property
    def decode_tps(self) -> float:
        """Tokens per second after the first token (the stream's own generation rate)."""
        span = self.total_s - self.ttft_s
        return (self.n_tokens - 1) / span if span > 0 and self.n_tokens > 1 else 0.0


def one_request(client: openai.OpenAI, model: str, prompt: str, max_tokens: int) -> Result:
    """One streamed greedy chat completion, timed."""
    t0 = time.perf_counter()
    ttft = None
    n = 0
    parts = []
    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                            max_tokens=max_tokens, temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            if ttft is None:
                ttft = time.perf_counter() - t0
            parts.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            n = chunk.usage.completion_tokens
    total = time.perf_counter() - t0
    return Result(ttft if ttft is not None else total, total, n, "".join(parts))


def run_clients(client: openai.OpenAI, model: str, n_clients: int, max_tokens: int) -> tuple[list[Result], float]:
    """``n_clients`` threads each send one request at the same moment; returns results and wall time."""
    results: list[Result | None] = [None] * n_clients
    barrier = threading.Barrier(n_clients)

    def worker(i: int) -> None:
        barrier.wait()
        results[i] = one_request(client, model, PROMPTS[i % len(PROMPTS)], max_tokens)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [r for r in results if r is not None], time.perf_counter() - t0


def report(label: str, results: list[Result], wall_s: float) -> None:
    ttft = [r.ttft_s * 1e3 for r in results]
    tokens = sum(r.n_tokens for r in results)
    print(f"{label:>10} | {len(results):7d} | {statistics.median(ttft):11.0f} | {max(ttft):8.0f} | "
          f"{statistics.median(r.decode_tps for r in results):14.1f} | {tokens / wall_s:15.1f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", help="base URL of a running server (default: start `fireside serve` on the starter model)")
    p.add_argument("--api-key", default="none")
    p.add_argument("-m", "--model", default=None, help="model for the started server (default: starter)")
    p.add_argument("-c", "--ctx-size", type=int, default=1024)
    p.add_argument("-t", "--threads", type=int, default=None)
    p.add_argument("-n", "--max-tokens", type=int, default=64)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--parallel", type=int, default=4, help="slots of the started server (default 4)")
    args = p.parse_args(argv)

    proc = None
    url = args.url
    if url is None:  # `fireside serve` in its own process, as a user runs it: the clients' SSE parsing
        # (threads here) must not share the server's GIL
        cmd = [sys.executable, "-m", "engine", "serve", "--port", "0", "-c", str(args.ctx_size),
               "-np", str(args.parallel), "--max-queue", str(max(16, args.clients))]
        cmd += ["-m", args.model] if args.model else []
        cmd += ["-t", str(args.threads)] if args.threads else []
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        for line in proc.stderr:
            if line.startswith("fireside: loaded"):
                print(line.strip().removeprefix("fireside: "))
            m = re.search(r"serving .* at (http://\S+)/v1", line)
            if m:
                url = m.group(1)
                break
        if url is None:
            print("fireside serve did not start", file=sys.stderr)
            return 1
        threading.Thread(target=proc.stderr.read, daemon=True).start()  # drain its access log
    try:
        client = openai.OpenAI(base_url=url + "/v1", api_key=args.api_key, max_retries=0, timeout=600)
        model_id = client.models.list().data[0].id
        one_request(client, model_id, "Hello", 4)  # warm-up: first-touch of the weights, thread pools
        print(f"model {model_id}, max_tokens {args.max_tokens}, greedy, streamed\n")
        print("   clients | requests | TTFT med ms | max ms | decode tok/s med | aggregate tok/s")
        print("---------- | -------- | ----------- | ------ | --------------- | ---------------")
        # The concurrent run first, on cold slots (no cached prefix helps any client's first token); then
        # each prompt alone, one after another (their prefixes are cached by then: that only flatters the
        # single-client rate the ratio divides by).
        results, wall = run_clients(client, model_id, args.clients, args.max_tokens)
        seq: list[Result] = []
        t0 = time.perf_counter()
        for i in range(args.clients):
            seq.append(one_request(client, model_id, PROMPTS[i % len(PROMPTS)], args.max_tokens))
        wall1 = time.perf_counter() - t0
        report("1", seq, wall1)
        report(str(args.clients), results, wall)
        agg1 = sum(r.n_tokens for r in seq) / wall1
        aggn = sum(r.n_tokens for r in results) / wall
        ttft = sorted(r.ttft_s for r in results)
        same = sum(a.text == b.text for a, b in zip(seq, results))
        print(f"\naggregate {aggn / agg1:.2f}x one client's (target >= 2.5x with 4 clients); slowest TTFT "
              f"{ttft[-1] / ttft[0]:.2f}x the fastest (target <= 2x); replies equal to the single-client ones: "
              f"{same} of {len(results)}")
    finally:
        if proc is not None:
            proc.terminate()  # SIGTERM: fireside serve stops as on Ctrl+C
            proc.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
