"""The `fireside` command line, run as a user would (a subprocess), on the real starter models."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import GEMMA3_FILE, MODELS_DIR, ROOT, SMOLLM2_FILE, reference_file


def fireside(*args: str, stdin: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, input=stdin, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "FIRESIDE_MODELS": str(MODELS_DIR), **(env or {})})


def test_run_streams_greedy_completion_and_timings(smollm2_path):
    out = fireside("run", "-m", str(smollm2_path), "-p", "The capital of France is", "-n", "8", "--temp", "0")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("The capital of France is Paris.")
    assert "prompt eval time" in out.stderr and "tokens per second" in out.stderr


def test_default_model_and_names(smollm2_path, gemma3_path):
    # No -m: the SmolLM2 starter model; a name in the models folder or an alias works too.
    for args in ((), ("-m", "gemma3"), ("-m", GEMMA3_FILE)):
        out = fireside("run", *args, "-p", "Hello", "-n", "2", "--temp", "0")
        assert out.returncode == 0, out.stderr


def test_tokenize_ids_match_llama_cpp(any_model_path, token_ids_reference):
    key = any_model_path.name.removesuffix(".gguf")
    case = token_ids_reference[key][0]
    out = fireside("tokenize", "-m", str(any_model_path), "-p", case["text"], "--ids")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == case["ids"]


def test_models_lists_the_folder(smollm2_path):
    out = fireside("models")
    assert out.returncode == 0
    assert SMOLLM2_FILE in out.stdout


@pytest.mark.parametrize("content", [b"", b"not a model at all", b"GGUF\x03\x00\x00\x00"])
def test_bad_model_is_one_clear_error(tmp_path, content):
    path = tmp_path / "broken.gguf"
    path.write_bytes(content)
    out = fireside("run", "-m", str(path), "-p", "hi", "-n", "1")
    assert out.returncode == 1
    assert out.stderr.startswith("error: ") and str(path) in out.stderr
    assert "Traceback" not in out.stderr


def test_unknown_model_name():
    out = fireside("run", "-m", "no-such-model", "-p", "hi")
    assert out.returncode == 1 and "no-such-model" in out.stderr and "Traceback" not in out.stderr


def test_prompt_longer_than_context():
    out = fireside("run", "-c", "16", "-p", "word " * 50, "-n", "1")
    assert out.returncode == 1 and "n_ctx = 16" in out.stderr and "Traceback" not in out.stderr


def test_chat_uses_template_and_answers(smollm2_path):
    out = fireside("chat", "-m", str(smollm2_path), "--temp", "0", "-n", "24", "--system", "You are a helpful assistant.",
                   stdin="What is the capital of France?\n\n")
    assert out.returncode == 0, out.stderr
    assert "Paris" in out.stdout


def test_perplexity_command_prints_llama_cpp_style(smollm2_path):
    out = fireside("perplexity", "-m", str(smollm2_path), "-f", str(reference_file("texts/apache-2.0.txt")),
                   "-c", "128", "--chunks", "2")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("[1]") and "Final estimate: PPL = " in out.stdout


def test_models_lists_those_next_to_a_packaged_app(tmp_path, monkeypatch, capsys, smollm2_path):
    # In-process: sys.frozen / sys.executable are what PyInstaller sets in the packaged app.
    from engine.cli import main

    app = tmp_path / "Fireside"
    app.mkdir()
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(app / "Fireside"))
    monkeypatch.setenv("FIRESIDE_MODELS", str(models))
    (app / "Beside.gguf").symlink_to(smollm2_path)
    (app / "Shadowed.gguf").symlink_to(smollm2_path)
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert f"models folder: {models}\n" in out and "fireside pull" in out  # not fetch-starter: no pip here
    assert f"bundled with the app: {app}\n" in out
    assert out.index(f"{app}\n") < out.index("Beside.gguf") and "Shadowed.gguf" in out

    # A name in the models folder hides the one beside the app (as `-m NAME` resolves it).
    (models / "Shadowed.gguf").symlink_to(smollm2_path)
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert out.count("Shadowed.gguf") == 1 and out.index("Shadowed.gguf") < out.index(f"{app}\n")

    # Not frozen (a source checkout): no bundled folders at all.
    monkeypatch.setattr(sys, "frozen", False)
    assert main(["models"]) == 0
    assert "bundled" not in capsys.readouterr().out
