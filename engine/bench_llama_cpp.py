"""llama.cpp as the reference engine of ``fireside bench --vs-llama-cpp``, timed the way llama-bench times it.

llama.cpp comes from ``llama-cpp-python`` (the optional extra: ``pip install '.[bench]'``, which builds
llama.cpp from source with its default flags: native CPU features, OpenMP). Only its low-level C API is
used, through ctypes, mirroring ``tools/llama-bench/llama-bench.cpp``:

- context: n_ctx to fit the tests, n_batch = n_ubatch = Fireside's n_batch, the same thread count
  for ``n_threads`` and ``n_threads_batch``, flash attention ``auto`` (llama-bench's default; on the
  CPU backend it resolves to on) where the version has ``flash_attn_type``, ``swa_full`` off;
- pp: random token ids, ``llama_decode`` of ``llama_batch_get_one`` batches of n_batch tokens, then
  ``llama_synchronize``;
- tg: one ``llama_decode`` of a one-token batch per token, each followed by ``llama_synchronize``,
  feeding random ids (no sampling);
- the KV cache is cleared before every run (``llama_memory_clear``, or ``llama_kv_self_clear`` /
  ``llama_kv_cache_clear`` on older versions).

The high-level ``Llama.eval`` is avoided on purpose: its per-call Python work would slow llama.cpp
down and flatter Fireside. Token arrays and batches are built before the clock starts.

:class:`LlamaCppProcess` runs the driver in a child process (``python -m engine.bench_llama_cpp``,
JSON lines over a pipe) so llama.cpp's memory (its own mapping of the file, compute buffers, KV cache)
does not count in Fireside's peak RSS, and a crash inside llama.cpp cannot take the bench down.
"""
from __future__ import annotations

import ctypes
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .errors import FiresideError

INSTALL_HINT = "make llama-cpp"


class LlamaCppError(FiresideError, RuntimeError):
    """llama.cpp is missing or failed; the message says what to do."""


def import_llama_cpp():
    """Import ``llama_cpp`` (llama-cpp-python) on demand.

    Raises:
        LlamaCppError: it is not installed (the message gives the install command).
    """
    try:
        import llama_cpp
    except ImportError as exc:
        raise LlamaCppError(
            f"--vs-llama-cpp needs llama-cpp-python, which is not installed ({exc}): run {INSTALL_HINT} "
            f"in the Fireside checkout (it builds llama.cpp from source, about ten minutes)") from None
    return llama_cpp


def _first(lib, *names: str):
    """The first of ``names`` the installed llama_cpp has (the C API renamed functions over time)."""
    for name in names:
        fn = getattr(lib, name, None)
        if fn is not None:
            return fn
    raise LlamaCppError(f"this llama-cpp-python ({getattr(lib, '__version__', '?')}) has none of {', '.join(names)}")


class LlamaCppBench:
    """llama.cpp on one GGUF file in this process, with llama-bench's pp and tg runs.

    Args:
        path: the ``.gguf`` file.
        n_ctx: context length (tokens); must hold the longest test.
        n_batch: tokens per ``llama_decode`` during pp (also n_ubatch).
        n_threads: threads for both single-token and batch evaluation.
        seed: seed of the random token ids.
        n_seq: sequences the context holds (``n_seq_max``; ``n_ctx`` is the total over them, as llama.cpp
            takes it), for batches that mix several (``bench/slots_step.py``).

    Attributes:
        info: ``{"version", "system_info", "flash_attn", "n_ctx"}`` of the loaded llama.cpp.

    Raises:
        LlamaCppError: not installed, or llama.cpp could not load the model / create the context.
    """

    def __init__(self, path: str | Path, n_ctx: int, n_batch: int, n_threads: int, seed: int = 0, n_seq: int = 1):
        import numpy as np

        self.lib = lib = import_llama_cpp()
        self._rng = np.random.default_rng(seed)
        self._log: list[str] = []
        # Keep llama.cpp's log (to report flash attention and to explain a failure), not on stderr.
        self._log_cb = lib.llama_log_callback(
            lambda level, text, user: self._log.append(text.decode("utf-8", "replace")))
        lib.llama_log_set(self._log_cb, ctypes.c_void_p(0))
        lib.llama_backend_init()

        mparams = lib.llama_model_default_params()
        load = _first(lib, "llama_model_load_from_file", "llama_load_model_from_file")
        self.model = load(str(path).encode(), mparams)
        if not self.model:
            raise LlamaCppError(f"llama.cpp could not load {path}: {self._log_tail()}")

        cparams = lib.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = n_batch
        cparams.n_ubatch = n_batch
        cparams.n_threads = n_threads
        cparams.n_threads_batch = n_threads
        cparams.n_seq_max = n_seq
        if hasattr(cparams, "flash_attn_type"):  # llama-bench's default since flash_attn became a type
            cparams.flash_attn_type = lib.LLAMA_FLASH_ATTN_TYPE_AUTO
        if hasattr(cparams, "swa_full"):
            cparams.swa_full = False  # llama-bench sets this
        new_ctx = _first(lib, "llama_init_from_model", "llama_new_context_with_model")
        self.ctx = new_ctx(self.model, cparams)
        if not self.ctx:
            _first(lib, "llama_model_free", "llama_free_model")(self.model)
            raise LlamaCppError(f"llama.cpp could not create a context (n_ctx {n_ctx}): {self._log_tail()}")
        lib.llama_set_n_threads(self.ctx, n_threads, n_threads)

        if hasattr(lib, "llama_model_get_vocab"):
            self.n_vocab = lib.llama_vocab_n_tokens(lib.llama_model_get_vocab(self.model))
        else:
            self.n_vocab = lib.llama_n_vocab(self.model)
        if hasattr(lib, "llama_memory_clear"):
            mem = lib.llama_get_memory(self.ctx)
            self._clear = lambda: lib.llama_memory_clear(mem, False)
        else:
            clear = _first(lib, "llama_kv_self_clear", "llama_kv_cache_clear")
            self._clear = lambda: clear(self.ctx)
        self.n_batch = n_batch
        self.info = {
            "version": getattr(lib, "__version__", "?"),
            "system_info": lib.llama_print_system_info().decode("utf-8", "replace").strip(),
            # The requested mode ("auto") and what it resolved to ("Flash Attention enabled"), from the log.
            "flash_attn": "; ".join(" ".join(line.split()) for line in "".join(self._log).splitlines()
                                    if re.search(r"flash_attn\s*=|Flash Attention", line)) or "?",
            "n_ctx": lib.llama_n_ctx(self.ctx),
        }

    def _log_tail(self, n: int = 5) -> str:
        lines = [line.strip() for line in "".join(self._log).splitlines() if line.strip()]
        return " | ".join(lines[-n:]) or "(no log)"

    def _tokens(self, n: int):
        ids = self._rng.integers(0, self.n_vocab, n)
        return (self.lib.llama_token * n)(*ids.tolist())

    def _decode(self, batch) -> None:
        rc = self.lib.llama_decode(self.ctx, batch)
        if rc != 0:
            raise LlamaCppError(f"llama_decode returned {rc}: {self._log_tail()}")

    def time_prefill(self, n_prompt: int) -> float:
        """Seconds to process n_prompt random tokens from an empty cache, in n_batch batches."""
        lib = self.lib
        arrays = [self._tokens(min(self.n_batch, n_prompt - i)) for i in range(0, n_prompt, self.n_batch)]
        batches = [lib.llama_batch_get_one(a, len(a)) for a in arrays]
        self._clear()
        t0 = time.perf_counter()
        for batch in batches:
            self._decode(batch)
        lib.llama_synchronize(self.ctx)
        return time.perf_counter() - t0

    def time_decode(self, n_gen: int) -> float:
        """Seconds to decode n_gen random tokens one at a time from an empty cache."""
        lib = self.lib
        tokens = self._tokens(n_gen)
        size = ctypes.sizeof(lib.llama_token)
        base = ctypes.addressof(tokens)
        ptr = ctypes.POINTER(lib.llama_token)
        batches = [lib.llama_batch_get_one(ctypes.cast(base + i * size, ptr), 1) for i in range(n_gen)]
        self._clear()
        t0 = time.perf_counter()
        for batch in batches:
            self._decode(batch)
            lib.llama_synchronize(self.ctx)
        elapsed = time.perf_counter() - t0
        del tokens  # the batches point into it
        return elapsed

    def close(self) -> None:
        """Free the context and the model, and give llama.cpp its default (stderr) logger back: the Python
        log callback dies with this object, and llama.cpp would otherwise call it afterwards."""
        if getattr(self, "_log_cb", None) is not None:
            self.lib.llama_log_set(self.lib.llama_log_callback(), ctypes.c_void_p(0))  # NULL: the default logger
            self._log_cb = None
        if getattr(self, "ctx", None):
            self.lib.llama_free(self.ctx)
            self.ctx = None
        if getattr(self, "model", None):
            _first(self.lib, "llama_model_free", "llama_free_model")(self.model)
            self.model = None


class LlamaCppProcess:
    """:class:`LlamaCppBench` in a child process, with the same ``time_prefill`` / ``time_decode``.

    Args: as :class:`LlamaCppBench`.

    Attributes:
        info: the child's :attr:`LlamaCppBench.info`.
        peak_rss: the child's peak resident set size in bytes, known after :meth:`close`.

    Raises:
        LlamaCppError: llama-cpp-python is not installed (checked here first, with the install hint), or
            the child failed (the message carries the end of its log).
    """

    def __init__(self, path: str | Path, n_ctx: int, n_batch: int, n_threads: int, seed: int = 0):
        import_llama_cpp()  # fail early, in this process, with the install hint
        root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        self._stderr = tempfile.TemporaryFile(mode="w+")
        self._proc = subprocess.Popen([sys.executable, "-m", "engine.bench_llama_cpp"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=env)
        self.peak_rss: int | None = None
        try:
            self.info = self._call(cmd="open", path=str(path), n_ctx=n_ctx, n_batch=n_batch, n_threads=n_threads,
                                   seed=seed)["info"]
        except BaseException:
            self.close()
            raise

    def _call(self, **request: Any) -> dict:
        try:
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            self._proc.wait()
            self._stderr.seek(0)
            tail = self._stderr.read()[-2000:].strip()
            raise LlamaCppError(f"the llama.cpp bench process exited with status {self._proc.returncode}: "
                                f"{tail or '(no output)'}")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise LlamaCppError(reply.get("error", "llama.cpp failed"))
        return reply

    def time_prefill(self, n_prompt: int) -> float:
        return self._call(cmd="pp", n=n_prompt)["seconds"]

    def time_decode(self, n_gen: int) -> float:
        return self._call(cmd="tg", n=n_gen)["seconds"]

    def close(self) -> None:
        """Stop the child (and record its peak RSS)."""
        if self._proc.poll() is None:
            try:
                self.peak_rss = self._call(cmd="quit")["peak_rss"]
            except LlamaCppError:
                pass
            self._proc.wait(timeout=30)
        self._stderr.close()

    def __enter__(self) -> "LlamaCppProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _own_peak_rss() -> int:
    """Peak RSS of this process in bytes: VmHWM on Linux (ru_maxrss of a child counts its parent's
    pages at fork), else ru_maxrss. Not engine.bench's: importing it would load Fireside's kernels here."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _serve() -> None:
    """The child's loop: one JSON request per stdin line, one JSON reply per line on the original stdout."""

    # Replies go to a private copy of stdout; anything C code prints to fd 1 lands on stderr instead.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    bench: LlamaCppBench | None = None
    for line in sys.stdin:
        req = json.loads(line)
        try:
            if req["cmd"] == "open":
                bench = LlamaCppBench(req["path"], req["n_ctx"], req["n_batch"], req["n_threads"], req["seed"])
                reply = {"info": bench.info}
            elif req["cmd"] == "pp":
                reply = {"seconds": bench.time_prefill(req["n"])}
            elif req["cmd"] == "tg":
                reply = {"seconds": bench.time_decode(req["n"])}
            elif req["cmd"] == "quit":
                reply = {"peak_rss": _own_peak_rss()}
            else:
                raise LlamaCppError(f"unknown request {req['cmd']!r}")
            reply["ok"] = True
        except LlamaCppError as exc:
            reply = {"ok": False, "error": str(exc)}
        out.write(json.dumps(reply) + "\n")
        out.flush()
        if req["cmd"] == "quit":
            break
    if bench is not None:
        bench.close()


if __name__ == "__main__":
    _serve()
