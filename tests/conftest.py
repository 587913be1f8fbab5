"""Shared fixtures: the real starter models, fetched by `make models` into FIRESIDE_MODELS.

A missing model file fails the test with a clear message; it is never skipped.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = Path(os.environ.get("FIRESIDE_MODELS", ROOT / ".cache" / "models"))
# llama.cpp reference data copied from the team's shared/reference (provenance in its README.md).
REFERENCE_DIR = ROOT / "tests" / "reference"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3_FILE = "gemma-3-270m-q4_k_m.gguf"


def model_path(filename: str) -> Path:
    """Path of a starter model; fails the test if it has not been fetched."""
    path = MODELS_DIR / filename
    if not path.is_file():
        pytest.fail(f"starter model {path} is missing: run `make models` (or `fireside fetch-starter --all`)")
    return path


def reference_file(name: str) -> Path:
    """A file under tests/reference; fails the test if absent."""
    path = REFERENCE_DIR / name
    if not path.is_file():
        pytest.fail(f"reference file {path} is missing (tests/reference is part of the repository)")
    return path


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    return model_path(SMOLLM2_FILE)


@pytest.fixture(scope="session")
def gemma3_path() -> Path:
    return model_path(GEMMA3_FILE)


@pytest.fixture(scope="session", params=[SMOLLM2_FILE, GEMMA3_FILE], ids=["smollm2", "gemma3"])
def any_model_path(request) -> Path:
    return model_path(request.param)


@pytest.fixture(scope="session")
def token_ids_reference() -> dict:
    return json.loads(reference_file("token_ids.json").read_text())


_loaded: dict = {}


def loaded_model(filename: str):
    """Load a starter model once per test session (loading is cheap, but keeps tests quick)."""
    from engine.model import load_model

    if filename not in _loaded:
        _loaded[filename] = load_model(model_path(filename))
    return _loaded[filename]


@pytest.fixture(scope="session")
def smollm2():
    return loaded_model(SMOLLM2_FILE)


@pytest.fixture(scope="session")
def gemma3():
    return loaded_model(GEMMA3_FILE)


@contextlib.contextmanager
def serving(model, scheduler, get_engine=None, **server_kw):
    """A real :class:`engine.server.runner.InProcessServer` on 127.0.0.1, port 0, serving ``model`` with
    ``scheduler`` (or whatever ``get_engine()`` returns); on exit the server stops and the scheduler is
    closed. ``server_kw``: InProcessServer's options (api_key, cors_origins ...)."""
    from engine.server.runner import InProcessServer

    server = InProcessServer(get_engine or (lambda: (model, scheduler)), host="127.0.0.1", port=0, **server_kw)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        scheduler.close()


def collect_job(job) -> tuple[str, object, list[str]]:
    """Run a Scheduler job to its end: ``(text, GenerationStats, the event kinds in order)``; an
    ``error`` event is raised."""
    parts, stats, kinds = [], None, []
    for kind, payload in job:
        kinds.append(kind)
        if kind == "token":
            parts.append(payload.text)
        elif kind == "done":
            stats = payload
        elif kind == "error":
            raise payload
    return "".join(parts), stats, kinds


def recording_scheduler(*args, **kw):
    """A real :class:`engine.scheduler.Scheduler` (same arguments) that also keeps, in ``.jobs``, the jobs
    it was given, so a test can check how they ended. The engine is imported on first use, not when
    pytest collects."""
    global _RECORDING
    if _RECORDING is None:
        from engine.scheduler import Scheduler

        class RecordingScheduler(Scheduler):
            def __init__(self, *a, **k):
                super().__init__(*a, **k)
                self.jobs = []

            def submit(self, request, on_event=None):
                job = super().submit(request, on_event)
                self.jobs.append(job)
                return job

        _RECORDING = RecordingScheduler
    return _RECORDING(*args, **kw)


_RECORDING = None
