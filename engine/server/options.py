"""Command-line options of ``fireside serve`` (kept free of heavy imports: the CLI builds every parser)."""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from .limits import DEFAULT_IDLE_TIMEOUT_S, DEFAULT_REQUEST_TIMEOUT_S

DEFAULT_HOST = "127.0.0.1"
DEFAULT_N_PARALLEL = 4  # as llama-server (engine.scheduler.DEFAULT_N_PARALLEL; not imported: no heavy imports here)
DEFAULT_PORT = 8080
API_KEY_ENV = "FIRESIDE_API_KEY"


def add_serve_args(p: argparse.ArgumentParser) -> None:
    """Add the ``serve`` options to ``p``."""
    p.add_argument("-m", "--model", help="GGUF path, name in the models folder, or starter alias "
                                         "(default: the starter model)")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to listen on (default {DEFAULT_HOST}: this machine only; 0.0.0.0 exposes it)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT}; 0: any free)")
    p.add_argument("--api-key", default=os.environ.get(API_KEY_ENV) or None,
                   help=f"require 'Authorization: Bearer KEY' on /v1 routes (default: ${API_KEY_ENV}, else none)")
    p.add_argument("-c", "--ctx-size", dest="n_ctx", type=int, default=None,
                   help="context size in tokens, n_ctx (default: min(model context, 4096))")
    p.add_argument("-t", "--threads", dest="n_threads", type=int, default=None, help="threads (default: all cores)")
    p.add_argument("-np", "--parallel", dest="n_parallel", type=int, default=DEFAULT_N_PARALLEL,
                   help=f"slots: requests served at once with continuous batching, each with its own n_ctx "
                        f"tokens of KV cache (default {DEFAULT_N_PARALLEL})")
    p.add_argument("--context-shift", action="store_true",
                   help="when a reply fills its slot's context, drop the older half of it (after the BOS) and go "
                        "on, as llama-server's --context-shift (default: the reply ends, finish_reason length)")
    p.add_argument("--max-queue", type=int, default=16,
                   help="requests that may wait for a free slot; more get 503 with Retry-After (default 16)")
    p.add_argument("--cors-origin", dest="cors_origins", action="extend", nargs="+", default=[], metavar="ORIGIN",
                   help="allow browser pages from ORIGIN (e.g. http://localhost:3000) to call the API; "
                        "repeatable (default: CORS off)")
    p.add_argument("--max-body-mib", type=float, default=1.0, help="largest request body in MiB (default 1)")
    p.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT_S, metavar="SECONDS",
                   help=f"close a connection that sends nothing for this long (default {DEFAULT_IDLE_TIMEOUT_S:g})")
    p.add_argument("--request-timeout", type=float, default=DEFAULT_REQUEST_TIMEOUT_S, metavar="SECONDS",
                   help="answer 408 and close when a request's headers and body take longer than this to arrive "
                        f"(default {DEFAULT_REQUEST_TIMEOUT_S:g}; the reply itself is never limited)")
    p.add_argument("--max-connections", type=int, default=None,
                   help="open connections allowed; the idle longest is dropped for a new one (default: the "
                        "file-descriptor limit less 256)")


def _stop_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM (``kill``, ``docker stop``, systemd) stops the server as Ctrl+C does: cancel, close, exit 0."""
    raise KeyboardInterrupt


def cmd_serve(args: argparse.Namespace) -> int:
    """Load the model, serve until Ctrl+C or SIGTERM; returns the exit status.

    Raises:
        CLIError: the model cannot be found, or the server cannot listen (port taken...).
    """
    from engine.cli import CLIError, resolve_model
    from engine.model import load_model
    from engine.scheduler import Scheduler

    from .runner import InProcessServer

    if args.max_queue < 0:
        raise CLIError("--max-queue must be >= 0")
    if args.n_parallel < 1:
        raise CLIError(f"-np / --parallel must be >= 1, not {args.n_parallel}")
    if args.n_ctx is not None and args.n_ctx < 1:
        raise CLIError(f"-c / --ctx-size must be >= 1, not {args.n_ctx}")
    if args.n_threads is not None and args.n_threads < 1:
        raise CLIError(f"-t / --threads must be >= 1, not {args.n_threads}")
    if not 0 <= args.port <= 65535:
        raise CLIError(f"--port must be in 0..65535, not {args.port}")
    if not (args.idle_timeout > 0 and args.request_timeout > 0):
        raise CLIError("--idle-timeout and --request-timeout must be positive")
    if args.max_connections is not None and args.max_connections < 1:
        raise CLIError("--max-connections must be >= 1")
    path = resolve_model(args.model)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    t0 = time.perf_counter()
    model = load_model(path)
    scheduler = Scheduler(model, n_ctx=args.n_ctx, n_threads=args.n_threads, max_queue=args.max_queue,
                          n_parallel=args.n_parallel, context_shift=args.context_shift)
    print(f"fireside: loaded {path.name} ({model.info.architecture}, {model.info.quantization}) in "
          f"{(time.perf_counter() - t0) * 1e3:.0f} ms; n_ctx = {scheduler.n_ctx} per slot, n_parallel = "
          f"{scheduler.n_parallel}, n_threads = {scheduler.n_threads}, max_queue = {scheduler.max_queue}",
          file=sys.stderr)
    server = InProcessServer(lambda: (model, scheduler), host=args.host, port=args.port, api_key=args.api_key,
                             cors_origins=args.cors_origins, max_body_bytes=max(1, int(args.max_body_mib * 2**20)),
                             log_level="info", idle_timeout_s=args.idle_timeout,
                             request_timeout_s=args.request_timeout, max_connections=args.max_connections)
    try:
        try:
            server.start()
        except OSError as exc:
            raise CLIError(exc.strerror or str(exc)) from None
        print(f"fireside: serving {path.stem} at {server.url}/v1 (OpenAI-compatible"
              f"{', API key required' if args.api_key else ''}); Ctrl+C stops", file=sys.stderr)
        while server.running:
            time.sleep(0.5)
        return 1  # the server thread ended by itself
    except KeyboardInterrupt:
        print("\nfireside: stopping", file=sys.stderr)
        return 0
    finally:
        server.stop()
        scheduler.close()
