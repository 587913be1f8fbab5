"""Seeded mutation fuzzing of GGUF model files: hostile or damaged files must never crash Fireside.

A *base* model is built once from the SmolLM2 starter file: its real metadata and tokenizer (49,152
tokens, 48,900 merges, the chat template) with a 2-block llama of seeded random weights (n_embd 64, a
mix of F32, F16, Q8_0, Q4_0, Q4_1 and Q4_K tensors), about 4 MB, so hundreds of mutants cost seconds to
write. Each *mutant* is the base file changed in one way (GGUF spec, ggml ``docs/gguf.md``, says what
each byte is):

- ``flip``: bit flips in the header bytes (magic, counts, keys, value types, values, tensor infos);
- ``flip_data``: bit flips in the tensor data (NaN / inf scales in the quantized blocks);
- ``truncate``: the file cut at some byte;
- ``scalar``: one numeric metadata value set to an edge value (0, -1, 2^31 - 1, 2^64 - 1, NaN, ...);
- ``key``: one of the hyper-parameter keys a model reads set to an edge value;
- ``retype``: one metadata value re-encoded with another type (a scalar as an array, a number as a
  string, an array as a scalar);
- ``count``: an array length, string length, or the header's tensor / metadata counts set wrong;
- ``drop``: one metadata key removed;
- ``vocab``: the token list cut short or grown (tokenizer size against the embedding rows);
- ``tensor``: one tensor info's dimension, type or offset set wrong.

:func:`run_mutants` checks each mutant the way a user meets it (load, a chat turn's prompt, four
sampled tokens) in its own forked child process with an address-space cap and a timeout, from a warm
worker process started for the purpose. A child ends one of four ways: ``ok`` (it generated),
``error`` (one :class:`engine.errors.FiresideError`, the clean refusal), ``traceback`` (any other
exception: a defect) or ``crash`` (a signal, or killed at the timeout: a defect).

``python -m tests.gguf_fuzz --count 10000`` (``make fuzz``) runs a long campaign and prints the counts.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FUZZ_DIR = ROOT / ".cache" / "fuzz"
SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"

# GGUF value types (GGUF spec): id -> struct format of a scalar.
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY, T_UINT64, \
    T_INT64, T_FLOAT64 = range(13)
SCALAR_FMT = {T_UINT8: "<B", T_INT8: "<b", T_UINT16: "<H", T_INT16: "<h", T_UINT32: "<I", T_INT32: "<i",
              T_FLOAT32: "<f", T_BOOL: "<B", T_UINT64: "<Q", T_INT64: "<q", T_FLOAT64: "<d"}

#: Keys a llama model reads, the targets of the ``key`` mutation.
HPARAM_KEYS = (
    "llama.block_count", "llama.context_length", "llama.embedding_length", "llama.feed_forward_length",
    "llama.attention.head_count", "llama.attention.head_count_kv", "llama.attention.key_length",
    "llama.attention.value_length", "llama.rope.dimension_count", "llama.rope.freq_base",
    "llama.attention.layer_norm_rms_epsilon", "llama.rope.scaling.factor", "llama.vocab_size",
    "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id",
    "tokenizer.ggml.unknown_token_id", "general.alignment", "general.file_type",
)
INT_EDGES = (0, 1, 2, 3, -1, -2, 7, 63, 65, 127, 4097, 65536, 2**31 - 1, -(2**31), 2**32 - 1, 2**32, 2**63 - 1,
             -(2**63), 2**64 - 1, 4_000_000_000, 49151, 49152, 49153)
FLOAT_EDGES = (0.0, -0.0, -1.0, 1e-30, 1e30, 3.4e38, float("nan"), float("inf"), float("-inf"), 1e-45)


# ---- a GGUF file as editable parts ---------------------------------------------------------------------

@dataclass
class KV:
    """One metadata pair: key, value type, element type (arrays), and the Python value."""

    key: str
    vtype: int
    value: object
    etype: int | None = None


@dataclass
class TI:
    """One tensor info: name, dims (ne, innermost first), GGML type id, offset in the data section."""

    name: str
    ne: list[int]
    ggml_type: int
    offset: int


@dataclass
class GGUFParts:
    version: int
    kvs: list[KV]
    tis: list[TI]
    data: bytes
    alignment: int = 32
    n_tensors: int | None = None  # header counts when they should lie; None = the real counts
    n_kv: int | None = None
    lies: dict = field(default_factory=dict)  # (kind, index) -> value written instead of a length

    def copy(self) -> "GGUFParts":
        return GGUFParts(self.version, [KV(k.key, k.vtype, k.value, k.etype) for k in self.kvs],
                         [TI(t.name, list(t.ne), t.ggml_type, t.offset) for t in self.tis], self.data,
                         self.alignment, self.n_tensors, self.n_kv, dict(self.lies))

    def kv(self, key: str) -> KV | None:
        return next((k for k in self.kvs if k.key == key), None)


def _u64(n: int) -> bytes:
    return struct.pack("<Q", n & (2**64 - 1))


def _string(s: str | bytes, lie: int | None = None) -> bytes:
    raw = s.encode("utf-8") if isinstance(s, str) else s
    return _u64(len(raw) if lie is None else lie) + raw


def _scalar(vtype: int, value) -> bytes:
    fmt = SCALAR_FMT[vtype]
    if fmt in ("<f", "<d"):
        return struct.pack(fmt, float(value))
    size = struct.calcsize(fmt)  # integers wrap to the field's width, as a hostile writer would store them
    return (int(value) & ((1 << (8 * size)) - 1)).to_bytes(size, "little")


def _value(vtype: int, value, etype: int | None, lie: int | None = None) -> bytes:
    if vtype == T_STRING:
        return _string(value, lie)
    if vtype == T_ARRAY:
        items = list(value)
        out = [struct.pack("<I", etype), _u64(len(items) if lie is None else lie)]
        if etype == T_STRING:
            out += [_string(x) for x in items]
        elif etype in SCALAR_FMT:
            out += [_scalar(etype, x) for x in items]
        return b"".join(out)
    return _scalar(vtype, value)


def serialize(p: GGUFParts) -> bytes:
    """The file's bytes: header, metadata, tensor infos, padding to the alignment, data."""
    out = [b"GGUF", struct.pack("<I", p.version),
           _u64(len(p.tis) if p.n_tensors is None else p.n_tensors),
           _u64(len(p.kvs) if p.n_kv is None else p.n_kv)]
    for i, k in enumerate(p.kvs):
        out += [_string(k.key, p.lies.get(("key", i))), struct.pack("<I", k.vtype),
                _value(k.vtype, k.value, k.etype, p.lies.get(("value", i)))]
    for t in p.tis:
        out += [_string(t.name), struct.pack("<I", len(t.ne)), *(_u64(d) for d in t.ne),
                struct.pack("<I", t.ggml_type & 0xFFFFFFFF), _u64(t.offset)]
    head = b"".join(out)
    pad = -len(head) % p.alignment
    return head + b"\0" * pad + p.data


# ---- the base model --------------------------------------------------------------------------------------

N_EMBD, N_HEAD, N_HEAD_KV, N_FF, N_LAYER = 64, 4, 2, 256, 2
_TYPES = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 8, "Q4_K": 12}


def _quantize(values: np.ndarray, type_name: str) -> bytes:
    from gguf import GGMLQuantizationType
    from gguf.quants import quantize

    if type_name == "F32":
        return values.astype(np.float32).tobytes()
    if type_name == "F16":
        return values.astype(np.float16).tobytes()
    if type_name == "Q4_K":  # gguf-py has no Q4_K quantizer: seeded blocks of sane scale (d, dmin, scales, qs)
        n_blocks = values.size // 256
        rng = np.random.default_rng(n_blocks)
        blocks = rng.integers(0, 256, (n_blocks, 144), dtype=np.uint8)
        blocks[:, 0:2] = np.frombuffer(np.float16(0.002).tobytes(), np.uint8)
        blocks[:, 2:4] = np.frombuffer(np.float16(0.01).tobytes(), np.uint8)
        return blocks.tobytes()
    return quantize(values.astype(np.float32), GGMLQuantizationType[type_name]).tobytes()


def build_base(smollm2: Path, seed: int = 0) -> GGUFParts:
    """The base model: SmolLM2's metadata and tokenizer, a 2-block llama of seeded random weights."""
    from gguf import GGUFReader

    r = GGUFReader(smollm2)
    kvs: list[KV] = []
    over = {"llama.block_count": N_LAYER, "llama.embedding_length": N_EMBD, "llama.feed_forward_length": N_FF,
            "llama.attention.head_count": N_HEAD, "llama.attention.head_count_kv": N_HEAD_KV,
            "llama.rope.dimension_count": N_EMBD // N_HEAD, "llama.context_length": 512}
    for name, f in r.fields.items():
        if name.startswith("GGUF."):
            continue
        vtype = int(f.types[0])
        etype = int(f.types[1]) if vtype == T_ARRAY else None
        value = over.get(name, f.contents())
        kvs.append(KV(name, vtype, value, etype))
    rng = np.random.default_rng(seed)
    n_vocab, hd = 49152, N_EMBD // N_HEAD
    layout = [("token_embd.weight", (n_vocab, N_EMBD), "Q8_0"), ("output_norm.weight", (N_EMBD,), "F32")]
    for i in range(N_LAYER):
        layout += [(f"blk.{i}.attn_norm.weight", (N_EMBD,), "F32"),
                   (f"blk.{i}.attn_q.weight", (N_HEAD * hd, N_EMBD), "Q4_0"),
                   (f"blk.{i}.attn_k.weight", (N_HEAD_KV * hd, N_EMBD), "Q4_1"),
                   (f"blk.{i}.attn_v.weight", (N_HEAD_KV * hd, N_EMBD), "Q8_0"),
                   (f"blk.{i}.attn_output.weight", (N_EMBD, N_HEAD * hd), "F16"),
                   (f"blk.{i}.ffn_norm.weight", (N_EMBD,), "F32"),
                   (f"blk.{i}.ffn_gate.weight", (N_FF, N_EMBD), "Q4_0"),
                   (f"blk.{i}.ffn_up.weight", (N_FF, N_EMBD), "Q8_0"),
                   (f"blk.{i}.ffn_down.weight", (N_EMBD, N_FF), "Q4_K")]
    tis, chunks, offset = [], [], 0
    for name, shape, tname in layout:
        if len(shape) == 1:
            values = 1.0 + 0.1 * rng.standard_normal(shape)
        else:
            values = rng.standard_normal(shape) * (1.0 / np.sqrt(shape[1]))
        raw = _quantize(values, tname)
        tis.append(TI(name, list(reversed(shape)), _TYPES[tname], offset))
        pad = -len(raw) % 32
        chunks.append(raw + b"\0" * pad)
        offset += len(raw) + pad
    for k in kvs:
        if k.key == "general.file_type":
            k.value = 7  # MOSTLY_Q8_0, near enough
    return GGUFParts(3, kvs, tis, b"".join(chunks))


def base_file(smollm2: Path) -> tuple[Path, GGUFParts]:
    """The base model's file in ``.cache/fuzz`` (built once; named by a hash of this module) and parts."""
    tag = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
    FUZZ_DIR.mkdir(parents=True, exist_ok=True)
    parts = build_base(smollm2)
    path = FUZZ_DIR / f"base-{tag}.gguf"
    if not path.is_file():
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(serialize(parts))
        tmp.replace(path)
    return path, parts


# ---- mutations ---------------------------------------------------------------------------------------------

KINDS = ("flip", "flip_data", "truncate", "scalar", "key", "retype", "count", "drop", "vocab", "tensor")


def _header_len(p: GGUFParts) -> int:
    return len(serialize(p)) - len(p.data)


def mutate(base: GGUFParts, kind: str, rng: random.Random) -> tuple[bytes, str]:
    """One mutant of ``base`` of the given kind: (file bytes, a description)."""
    p = base.copy()
    if kind == "flip":
        raw = bytearray(serialize(p))
        end = _header_len(p)
        # Half the flips land in the first 4 KB (magic, counts, hparams), half anywhere in the header.
        flips = []
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(min(4096, end)) if rng.random() < 0.5 else rng.randrange(end)
            bit = rng.randrange(8)
            raw[pos] ^= 1 << bit
            flips.append(f"{pos}:{bit}")
        return bytes(raw), f"flip header bits {' '.join(flips)}"
    if kind == "flip_data":
        raw = bytearray(serialize(p))
        start = len(raw) - len(p.data)
        if rng.random() < 0.5:  # NaN / inf halves (0x7fff, 0x7c00): a damaged block scale or F16 weight
            spots = [start + 2 * rng.randrange(len(p.data) // 2) for _ in range(rng.randint(1, 16))]
            for pos in spots:
                raw[pos:pos + 2] = rng.choice((b"\xff\x7f", b"\x00\x7c", b"\x00\xfc"))
            return bytes(raw), f"NaN/inf halves at {len(spots)} places in the data"
        flips = []
        for _ in range(rng.randint(1, 64)):
            pos = start + rng.randrange(len(p.data))
            raw[pos] ^= 1 << rng.randrange(8)
            flips.append(str(pos))
        return bytes(raw), f"flip {len(flips)} data bits"
    if kind == "truncate":
        raw = serialize(p)
        end = _header_len(p)
        cut = rng.randrange(end) if rng.random() < 0.6 else rng.randrange(end, len(raw))
        return raw[:cut], f"truncate at {cut} of {len(raw)}"
    if kind == "scalar":
        numeric = [k for k in p.kvs if k.vtype in SCALAR_FMT and k.vtype != T_BOOL]
        k = rng.choice(numeric)
        k.value = rng.choice(FLOAT_EDGES if k.vtype in (T_FLOAT32, T_FLOAT64) else INT_EDGES)
        return serialize(p), f"{k.key} = {k.value!r}"
    if kind == "key":
        name = rng.choice(HPARAM_KEYS)
        k = p.kv(name)
        is_float = name.endswith(("freq_base", "epsilon", "factor"))
        value = rng.choice(FLOAT_EDGES if is_float else INT_EDGES)
        vtype = T_FLOAT32 if is_float else rng.choice((T_UINT32, T_INT32, T_UINT64, T_INT64))
        if k is None:
            p.kvs.append(KV(name, vtype, value))
        else:
            k.vtype, k.value = (k.vtype if is_float else vtype), value
        return serialize(p), f"{name} = {value!r}"
    if kind == "retype":
        k = rng.choice([k for k in p.kvs if k.key.startswith(("llama.", "tokenizer.ggml.", "general."))])
        choice = rng.randrange(4)
        if k.vtype == T_ARRAY:
            k.vtype, k.value, k.etype = T_UINT32, 7, None
            what = "an array as uint32 7"
        elif choice == 0:
            k.vtype, k.etype, k.value = T_ARRAY, k.vtype, [k.value]
            what = "a scalar as a one-element array"
        elif choice == 1:
            k.vtype, k.value = T_STRING, str(k.value)[:50]
            what = "as a string"
        elif choice == 2:
            k.vtype, k.value = T_FLOAT32, 1.5
            what = "as float32 1.5"
        else:
            k.vtype, k.value = T_BOOL, 1
            what = "as bool true"
        return serialize(p), f"{k.key} re-encoded {what}"
    if kind == "count":
        choice = rng.randrange(4)
        huge = rng.choice((0, 1, 2**32, 2**63, 2**64 - 1, 10**9))
        if choice == 0:
            p.n_tensors = huge if rng.random() < 0.5 else len(p.tis) + rng.choice((-1, 1))
            return serialize(p), f"tensor count {p.n_tensors}"
        if choice == 1:
            p.n_kv = huge if rng.random() < 0.5 else len(p.kvs) + rng.choice((-1, 1))
            return serialize(p), f"metadata count {p.n_kv}"
        i = rng.randrange(len(p.kvs))
        if choice == 2 and p.kvs[i].vtype in (T_ARRAY, T_STRING):
            p.lies[("value", i)] = huge
            return serialize(p), f"length of {p.kvs[i].key} = {huge}"
        p.lies[("key", i)] = huge
        return serialize(p), f"length of key {p.kvs[i].key} = {huge}"
    if kind == "drop":
        k = p.kvs.pop(rng.randrange(len(p.kvs)))
        return serialize(p), f"drop {k.key}"
    if kind == "vocab":
        toks = p.kv("tokenizer.ggml.tokens")
        types = p.kv("tokenizer.ggml.token_type")
        n = rng.choice((0, 1, 100, 49151, 49153, 60000))
        old = list(toks.value)
        toks.value = old[:n] if n <= len(old) else old + [f"<extra_{i}>" for i in range(n - len(old))]
        if rng.random() < 0.5 and types is not None:
            tv = list(types.value)
            types.value = tv[:n] if n <= len(tv) else tv + [1] * (n - len(tv))
        return serialize(p), f"{n} tokens"
    if kind == "tensor":
        t = rng.choice(p.tis)
        choice = rng.randrange(3)
        if choice == 0:
            d = rng.randrange(len(t.ne))
            t.ne[d] = rng.choice((0, 1, 2, t.ne[d] - 1, t.ne[d] + 1, t.ne[d] * 2, 2**31, 2**32 + 32, 2**62,
                                  2**64 - 32, 2**63 + 256))
            return serialize(p), f"{t.name} ne[{d}] = {t.ne[d]}"
        if choice == 1:
            t.ggml_type = rng.choice((*range(0, 42), 255, 2**31, 2**32 - 1))
            return serialize(p), f"{t.name} type {t.ggml_type}"
        t.offset = rng.choice((1, 31, 2**32, 2**63, 2**64 - 32, len(p.data), len(p.data) - 32, t.offset + 32))
        return serialize(p), f"{t.name} offset {t.offset}"
    raise ValueError(kind)


def mutants(base: GGUFParts, count: int, seed: int) -> Iterator[tuple[str, bytes, str]]:
    """``count`` mutants cycling through :data:`KINDS`, made one at a time: (kind, bytes, description)."""
    rng = random.Random(seed)
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        raw, what = mutate(base, kind, rng)
        yield kind, raw, what


# ---- checking one file, in a forked child ------------------------------------------------------------------

def check_one(path: str) -> str:
    """What a user does with a downloaded file: load it, render a chat turn, sample four tokens.

    Returns a line of the outcome; a :class:`~engine.errors.FiresideError` propagates (the clean refusal).
    """
    from engine.chat_template import ChatTemplateError
    from engine.context import Context
    from engine.generate import generate
    from engine.model import load_model
    from engine.sampling import Sampler, SamplerParams

    model = load_model(path)
    ctx = Context(model, n_ctx=64, n_batch=16, n_threads=1)
    try:
        text = model.chat_template.render([{"role": "user", "content": "Hi"}], add_generation_prompt=True)
        tokens = model.chat_template.encode(text)
    except ChatTemplateError:  # a refusal too; go on with a plain prompt to reach the forward pass
        tokens = model.tokenizer.encode("Hello there", add_special=True)
    out = generate(ctx, tokens[-48:], sampler=Sampler(SamplerParams(seed=1)), max_tokens=4).text()
    return f"generated {out!r}"


def _child(path: str, mem_bytes: int, out_fd: int) -> None:
    import resource
    import traceback

    resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    from engine.errors import FiresideError

    try:
        line = check_one(path)
        status, code = f"ok {line}", 0
    except FiresideError as exc:
        status, code = f"error {type(exc).__name__}: {exc}", 3
    except BaseException:  # noqa: BLE001 - the defect this harness looks for
        status, code = "traceback " + traceback.format_exc(), 4
    os.write(out_fd, status.encode("utf-8", "replace")[:20000])
    os._exit(code)


def _run_forked(path: str, mem_bytes: int, timeout_s: float) -> tuple[str, str]:
    """(outcome, detail) of one file, checked in a forked child."""
    import signal

    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        try:
            _child(path, mem_bytes, wfd)
        finally:
            os._exit(5)
    os.close(wfd)
    deadline = time.monotonic() + timeout_s
    status = None
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.005)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(rfd)
        return "crash", f"hang: killed after {timeout_s:.0f} s"
    with os.fdopen(rfd, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    if os.WIFSIGNALED(status):
        return "crash", f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    code = os.WEXITSTATUS(status)
    kind = {0: "ok", 3: "error", 4: "traceback"}.get(code, "crash")
    detail = text.split(" ", 1)[1] if " " in text else f"exit status {code}"
    return kind, detail


def worker_main(mem_bytes: int, timeout_s: float) -> None:
    """Read file paths from stdin (one JSON string per line); print one JSON result per line."""
    import engine.model  # noqa: F401 - warm: the children inherit the imports
    import engine.context  # noqa: F401
    import engine.generate  # noqa: F401
    import engine.errors  # noqa: F401

    for line in sys.stdin:
        path = json.loads(line)
        kind, detail = _run_forked(path, mem_bytes, timeout_s)
        print(json.dumps([kind, detail]), flush=True)


@dataclass
class Result:
    index: int
    kind: str  # mutation kind
    what: str
    outcome: str  # ok / error / traceback / crash
    detail: str


def run_mutants(base: GGUFParts, count: int, seed: int, *, workers: int = 2, mem_bytes: int = 3 << 30,
                timeout_s: float = 30.0, keep_dir: Path | None = None) -> list[Result]:
    """Write and check ``count`` seeded mutants of ``base``; returns one :class:`Result` each.

    Mutants whose outcome is ``traceback`` or ``crash`` are kept in ``keep_dir`` (if given) as
    ``mutant-<seed>-<i>.gguf`` to reproduce them.
    """
    cases = mutants(base, count, seed)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs = [subprocess.Popen([sys.executable, "-m", "tests.gguf_fuzz", "--worker", "--mem", str(mem_bytes),
                               "--timeout", str(timeout_s)], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(max(1, workers))]
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="fireside-fuzz-") as tmp:
        try:
            index = 0
            while index < count:
                batch = []
                for proc in procs:
                    if index >= count:
                        break
                    kind, raw, what = next(cases)
                    path = Path(tmp) / f"mutant-{index}.gguf"
                    path.write_bytes(raw)
                    proc.stdin.write(json.dumps(str(path)) + "\n")
                    proc.stdin.flush()
                    batch.append((proc, index, kind, what, path))
                    index += 1
                for proc, i, kind, what, path in batch:
                    line = proc.stdout.readline()
                    if not line:
                        raise RuntimeError("a fuzz worker died")
                    outcome, detail = json.loads(line)
                    results.append(Result(i, kind, what, outcome, detail))
                    if outcome in ("traceback", "crash") and keep_dir is not None:
                        keep_dir.mkdir(parents=True, exist_ok=True)
                        path.replace(keep_dir / f"mutant-{seed}-{i}.gguf")
                    else:
                        path.unlink()
        finally:
            for proc in procs:
                proc.stdin.close()
                proc.wait(timeout=60)
    return results


def summary(results: list[Result]) -> str:
    """Counts per outcome and per mutation kind, and the first few defects."""
    by = Counter(r.outcome for r in results)
    lines = [f"{len(results)} mutants: " + ", ".join(f"{k} {by.get(k, 0)}" for k in ("ok", "error", "traceback",
                                                                                      "crash"))]
    for kind in KINDS:
        rs = [r for r in results if r.kind == kind]
        if rs:
            c = Counter(r.outcome for r in rs)
            lines.append(f"  {kind:10s} " + ", ".join(f"{k} {c[k]}" for k in ("ok", "error", "traceback", "crash")
                                                      if c[k]))
    errors = Counter(r.detail.split(":", 1)[0] for r in results if r.outcome == "error")
    lines.append("  refusals: " + ", ".join(f"{k} {v}" for k, v in errors.most_common()))
    for r in [r for r in results if r.outcome in ("traceback", "crash")][:20]:
        lines.append(f"  DEFECT #{r.index} {r.kind} ({r.what}): {r.outcome}: {r.detail.strip().splitlines()[-1]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mem", type=int, default=3 << 30, help="address-space cap per mutant, bytes")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per mutant before it counts as a hang")
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args(argv)
    if args.worker:
        worker_main(args.mem, args.timeout)
        return 0
    models = Path(os.environ.get("FIRESIDE_MODELS", ROOT / ".cache" / "models"))
    _, parts = base_file(models / SMOLLM2)
    t0 = time.perf_counter()
    results = run_mutants(parts, args.count, args.seed, workers=args.workers, mem_bytes=args.mem,
                          timeout_s=args.timeout, keep_dir=FUZZ_DIR / "defects")
    print(summary(results))
    print(f"{time.perf_counter() - t0:.0f} s; seed {args.seed}; defects kept in {FUZZ_DIR / 'defects'}")
    return 1 if any(r.outcome in ("traceback", "crash") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
