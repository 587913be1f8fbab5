"""Hostile and damaged model files: one clear error each, never a crash, a hang or a traceback.

The files are written here, from the fuzz harness's base model (SmolLM2's real tokenizer and metadata,
a 2-block llama of seeded random weights, ``tests/gguf_fuzz.py``) with one field changed each, and from
a copy of the SmolLM2 starter file for the file-changed-on-disk checks.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gguf_fuzz as F
from conftest import ROOT
from engine.context import Context
from engine.errors import FiresideError, ModelFileChangedError, ModelOutputError, PromptError
from engine.generate import generate
from engine.gguf_file import GGUFError
from engine.model import load_model
from engine.sampling import Sampler, SamplerParams

FUZZ_MUTANTS = 400
FUZZ_SEED = 20261202


@pytest.fixture(scope="module")
def base(smollm2_path) -> F.GGUFParts:
    return F.base_file(smollm2_path)[1]


def _write(tmp_path: Path, parts: F.GGUFParts, name: str = "m.gguf") -> Path:
    path = tmp_path / name
    path.write_bytes(F.serialize(parts))
    return path


def _edited(base: F.GGUFParts, key: str, value, vtype: int | None = None, etype: int | None = None) -> F.GGUFParts:
    p = base.copy()
    kv = p.kv(key)
    if kv is None:
        p.kvs.append(F.KV(key, vtype if vtype is not None else F.T_UINT32, value, etype))
    else:
        kv.value = value
        if vtype is not None:
            kv.vtype, kv.etype = vtype, etype
    return p


def _generate(path: Path, n: int = 4) -> str:
    model = load_model(path)
    ctx = Context(model, n_ctx=64, n_batch=16, n_threads=1)
    tokens = model.tokenizer.encode("Hello there", add_special=True)
    return generate(ctx, tokens, sampler=Sampler(SamplerParams(seed=1)), max_tokens=n).text()


def test_base_model_runs(base, tmp_path):
    """The unmutated base file loads and generates: the refusals below are the edits' doing."""
    assert isinstance(_generate(_write(tmp_path, base)), str)


@pytest.mark.parametrize("key, value, vtype, etype, expect", [
    # fs_rope once wrote v[2i+1] for every i < n_rot/2: past the head, into the heap.
    ("llama.rope.dimension_count", 2147483647, F.T_UINT32, None, "rope.dimension_count = 2147483647"),
    ("llama.rope.dimension_count", 2**40, F.T_UINT64, None, "rope.dimension_count"),
    ("llama.rope.dimension_count", 15, F.T_UINT32, None, "must be even"),
    ("llama.embedding_length", 0, F.T_UINT32, None, "embedding_length = 0"),
    ("llama.attention.key_length", 0, F.T_UINT32, None, "key_length = 0"),
    ("llama.attention.head_count", 3, F.T_UINT32, None, "head_count"),
    ("llama.context_length", 0, F.T_UINT32, None, "context_length = 0"),
    ("llama.context_length", 2**64 - 1, F.T_UINT64, None, "context_length"),
    ("llama.block_count", 4_000_000_000, F.T_UINT32, None, "block_count = 4000000000"),
    ("llama.block_count", 1, F.T_UINT32, None, "does not match the tensors"),
    ("llama.block_count", [2], F.T_ARRAY, F.T_UINT32, "block_count = an array of 1 must be an integer"),
    ("llama.embedding_length", "64", F.T_STRING, None, "must be an integer"),
    ("llama.attention.layer_norm_rms_epsilon", float("nan"), F.T_FLOAT32, None, "layer_norm_rms_epsilon = nan"),
    ("llama.rope.freq_base", 1e-45, F.T_FLOAT32, None, "rope.freq_base"),
    ("llama.rope.freq_base", float("inf"), F.T_FLOAT32, None, "rope.freq_base"),
    ("general.alignment", 3, F.T_UINT32, None, "general.alignment"),
    ("general.architecture", 7, F.T_UINT32, None, "general.architecture"),
])
def test_bad_hyper_parameter_is_one_gguf_error(base, tmp_path, key, value, vtype, etype, expect):
    path = _write(tmp_path, _edited(base, key, value, vtype, etype))
    with pytest.raises(GGUFError) as info:
        load_model(path)
    assert expect in str(info.value) and str(path) in str(info.value)


def test_dimension_near_2_64_does_not_wrap(base, tmp_path):
    p = base.copy()
    t = next(t for t in p.tis if t.name == "blk.0.attn_q.weight")
    t.ne[1] = 2**64 - 32
    with pytest.raises(GGUFError, match="blk.0.attn_q.weight"):
        load_model(_write(tmp_path, p))


def test_tokenizer_size_must_match_the_embedding_rows(base, tmp_path):
    for n in (100, 49153):
        p = base.copy()
        toks = p.kv("tokenizer.ggml.tokens")
        toks.value = list(toks.value)[:n] + [f"<x{i}>" for i in range(max(0, n - len(toks.value)))]
        types = p.kv("tokenizer.ggml.token_type")
        types.value = list(types.value)[:n] + [1] * max(0, n - len(types.value))
        with pytest.raises(GGUFError, match=f"the tokenizer has {n} tokens but token_embd.weight has 49152 rows"):
            load_model(_write(tmp_path, p, f"v{n}.gguf"))


def test_nan_weights_stop_generation_with_a_clear_error(base, tmp_path):
    p = base.copy()
    t = next(t for t in p.tis if t.name == "output_norm.weight")
    data = bytearray(p.data)
    data[t.offset:t.offset + 4 * F.N_EMBD] = np.full(F.N_EMBD, np.nan, np.float32).tobytes()
    p.data = bytes(data)
    with pytest.raises(ModelOutputError, match="NaN/inf logits at token .*the file is probably damaged"):
        _generate(_write(tmp_path, p))


def test_empty_prompt_and_bad_token_ids_are_prompt_errors(base, tmp_path):
    model = load_model(_write(tmp_path, base))
    ctx = Context(model, n_ctx=32, n_threads=1)
    with pytest.raises(PromptError, match="empty prompt"):
        list(generate(ctx, [], sampler=Sampler(SamplerParams(seed=1)), max_tokens=2))
    with pytest.raises(PromptError, match="outside the vocabulary"):
        ctx.prefill([1, 49152])


def test_compiled_model_checks_what_it_is_given(base, tmp_path):
    """The Cython boundary refuses weights whose shape disagrees with the config (it would read past them)."""
    from cython_kernels.forward import CompiledModel

    model = load_model(_write(tmp_path, base))
    import engine.model as M

    hp = model.hparams
    gf = model.gguf
    table = M.architecture_module(hp.arch).tensors(hp)
    layers = []
    for il in range(hp.n_layer):
        layer = M._layer_tensors(gf, hp, table, il)
        layer["rope"] = M._layer_rope(hp, il, (None, None))
        layer["window"] = 0
        layers.append(layer)
    tok = M._matrix(gf, "token_embd.weight", (hp.n_vocab, hp.n_embd))
    norm = M._vector(gf, "output_norm.weight", hp.n_embd)
    CompiledModel(M._config(hp), layers, tok, tok, norm)  # as given: fine
    short = dict(layers[0]["wq"], data=layers[0]["wq"]["data"][:-1])
    with pytest.raises(ValueError, match="layer 0 wq"):
        CompiledModel(M._config(hp), [dict(layers[0], wq=short), layers[1]], tok, tok, norm)
    with pytest.raises(ValueError, match="n_rot"):
        CompiledModel(M._config(hp), [dict(layers[0], rope=dict(layers[0]["rope"], n_rot=2 * hp.head_dim)),
                                      layers[1]], tok, tok, norm)
    with pytest.raises(ValueError, match="output_norm"):
        CompiledModel(M._config(hp), layers, tok, tok, norm[:-1])


def test_fuzzed_files_never_crash(base, capsys):
    """Seeded mutants of every kind (header bits, data, truncation, values, types, counts, vocabulary,
    tensor infos), each checked in its own forked child with a 3 GiB address-space cap and a timeout."""
    results = F.run_mutants(base, FUZZ_MUTANTS, FUZZ_SEED, workers=2, mem_bytes=3 << 30, timeout_s=60,
                            keep_dir=F.FUZZ_DIR / "defects")
    report = F.summary(results)
    with capsys.disabled():
        print("\n" + report)
    assert len(results) == FUZZ_MUTANTS
    defects = [r for r in results if r.outcome in ("traceback", "crash")]
    assert not defects, report
    # The mutations reach past the header: some files still load and generate, some are refused at
    # generation time (NaN logits), so the check covers the forward pass too.
    assert sum(r.outcome == "ok" for r in results) >= 20
    assert any(r.kind == "flip_data" and "ModelOutputError" in r.detail for r in results)


# ---- the file changes under a loaded model -----------------------------------------------------------

@pytest.fixture()
def model_copy(smollm2_path, tmp_path) -> Path:
    path = tmp_path / "model.gguf"
    shutil.copyfile(smollm2_path, path)
    return path


def _run(model, n=2):
    ctx = Context(model, n_ctx=64, n_threads=1)
    return generate(ctx, model.tokenizer.encode("Hi", add_special=True), sampler=Sampler(SamplerParams(seed=1)),
                    max_tokens=n).text()


def test_file_rewritten_in_place_is_refused(model_copy):
    model = load_model(model_copy)
    _run(model)
    inode = os.stat(model_copy).st_ino
    with open(model_copy, "r+b") as f:  # what `cp other.gguf model.gguf` does: same inode, new bytes
        f.seek(100)
        f.write(b"\0")
    os.utime(model_copy, ns=(model.identity.mtime_ns + 10**9, model.identity.mtime_ns + 10**9))
    assert os.stat(model_copy).st_ino == inode
    with pytest.raises(ModelFileChangedError, match="changed on disk; reload it"):
        _run(model)


def test_file_replaced_or_deleted_is_refused(model_copy, tmp_path):
    model = load_model(model_copy)
    other = tmp_path / "other.gguf"
    shutil.copyfile(model_copy, other)
    os.replace(other, model_copy)  # a download renamed over it: new inode
    with pytest.raises(ModelFileChangedError, match="changed on disk"):
        _run(model)
    model = load_model(model_copy)
    os.unlink(model_copy)
    with pytest.raises(ModelFileChangedError, match="gone from disk"):
        _run(model)


# ---- the front ends show one line ----------------------------------------------------------------------

def _cli(*args, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_cli_shows_one_line_and_the_traceback_only_with_verbose(base, tmp_path):
    bad = _write(tmp_path, _edited(base, "llama.rope.dimension_count", 2147483647))
    r = _cli("run", "-m", str(bad), "-p", "Hi", "-n", "2")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [f"error: {bad}: metadata key llama.rope.dimension_count = 2147483647 "
                                             f"must be even and at most the head size 16"]
    r = _cli("run", "-m", str(bad), "-p", "Hi", "-n", "2", "--verbose")
    assert r.returncode == 1 and "Traceback (most recent call last)" in r.stderr


def test_an_internal_error_is_logged_not_shown(tmp_path, monkeypatch, capsys):
    """A bug (an exception that is not a FiresideError) prints one line naming the log file, which holds the
    traceback."""
    from engine import cli

    import logging

    monkeypatch.setenv("FIRESIDE_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setattr("engine.logs._handler", None)
    logger = logging.getLogger("fireside")
    monkeypatch.setattr(logger, "handlers", [])  # this test's file handler goes with the test

    def broken(args):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(cli, "cmd_models", broken)
    assert cli.main(["models"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internal error (RuntimeError: kaboom)" in err[0] and "fireside.log" in err[0]
    for h in logger.handlers:
        h.flush()
    log = (tmp_path / "logs" / "fireside.log").read_text()
    assert "Traceback (most recent call last)" in log and "kaboom" in log
    assert issubclass(GGUFError, FiresideError)


def test_server_answers_a_changed_file_with_one_openai_error(model_copy):
    """The server keeps running; the request gets a 500 OpenAI error with code model_file_changed."""
    import httpx

    from engine.scheduler import Scheduler
    from engine.server.runner import InProcessServer

    model = load_model(model_copy)
    scheduler = Scheduler(model, n_ctx=128, n_threads=1)
    server = InProcessServer(lambda: (model, scheduler), host="127.0.0.1", port=0)
    server.start()
    try:
        body = {"prompt": "Hi", "max_tokens": 2, "temperature": 0}
        assert httpx.post(f"{server.url}/v1/completions", json=body, timeout=60).status_code == 200
        st = model_copy.stat()
        os.utime(model_copy, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        r = httpx.post(f"{server.url}/v1/completions", json=body, timeout=60)
        assert r.status_code == 500
        err = r.json()["error"]
        assert err["code"] == "model_file_changed" and "changed on disk; reload it" in err["message"]
        assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200 and server.running
    finally:
        server.stop()
        scheduler.close()


@pytest.mark.parametrize("template, expect", [
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "loop items"),
    ('{{ "x" * 10**9 }}', "sequence longer"),
    ("{{ 10 ** 100000000 }}", "power too large"),
    ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "RecursionError"),
])
def test_hostile_chat_template_is_stopped(smollm2_path, template, expect):
    """A template that would loop for hours or fill the memory is refused at once with one error."""
    import time

    from engine.chat_template import ChatTemplate, ChatTemplateError
    from engine.gguf_file import GGUFFile
    from engine.tokenizer import Tokenizer

    with GGUFFile(smollm2_path) as gf:
        metadata = dict(gf.metadata, **{"tokenizer.chat_template": template})
    ct = ChatTemplate.from_metadata(metadata, Tokenizer.from_metadata(metadata))
    t0 = time.monotonic()
    with pytest.raises(ChatTemplateError, match=expect):
        ct.render([{"role": "user", "content": "Hi"}])
    assert time.monotonic() - t0 < 10
