"""Models placed next to a packaged executable (or in a macOS .app's Resources) are found.

``sys.frozen`` / ``sys.executable`` are what PyInstaller sets in a packaged app; here they are set by
hand on a fake layout (tests/test_packaging.py checks the real frozen app).
"""
from __future__ import annotations

import sys

import pytest

from engine import paths
from engine.cli import resolve_model


def test_not_frozen_has_no_bundled_dirs(tmp_path):
    assert paths.bundled_model_dirs(executable=tmp_path / "python", frozen=False) == []


def test_onedir_folder_and_macos_resources(tmp_path):
    onedir = tmp_path / "Fireside"
    onedir.mkdir()
    assert paths.bundled_model_dirs(executable=onedir / "Fireside", frozen=True, platform="linux") == [onedir]

    macos = tmp_path / "Fireside.app" / "Contents" / "MacOS"
    resources = tmp_path / "Fireside.app" / "Contents" / "Resources"
    macos.mkdir(parents=True)
    resources.mkdir()
    assert paths.bundled_model_dirs(executable=macos / "Fireside", frozen=True, platform="darwin") == [
        macos, resources]
    # Resources only count inside an .app on macOS.
    assert paths.bundled_model_dirs(executable=macos / "Fireside", frozen=True, platform="linux") == [macos]


@pytest.fixture()
def frozen_app(tmp_path, monkeypatch):
    """A fake packaged app with a model next to its executable, and an empty models folder."""
    app = tmp_path / "Fireside"
    app.mkdir()
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(app / "Fireside"))
    monkeypatch.setenv("FIRESIDE_MODELS", str(models))
    return app, models


def test_list_and_resolve_a_model_next_to_the_executable(frozen_app, smollm2_path):
    app, models = frozen_app
    beside = app / "Beside.gguf"
    beside.symlink_to(smollm2_path)
    assert paths.list_models() == [beside]
    assert paths.list_models(models) == []  # an explicit folder lists only that folder
    assert resolve_model("Beside") == beside
    assert resolve_model("Beside.gguf") == beside

    # A file of the same name in the models folder wins.
    own = models / "Beside.gguf"
    own.symlink_to(smollm2_path)
    assert paths.list_models() == [own]
    assert resolve_model("Beside") == own


@pytest.fixture()
def no_pip(monkeypatch):
    """Records any subprocess the starter-model code starts (a packaged app must start none)."""
    from engine import starter_models

    calls = []
    monkeypatch.setattr(starter_models.subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    return calls


def test_packaged_app_does_not_run_pip_for_a_missing_starter_model(frozen_app, no_pip, capsys):
    from engine.cli import main
    from engine.starter_models import DEFAULT_STARTER, StarterModelError, ensure_starter_model

    _app, models = frozen_app
    with pytest.raises(StarterModelError) as err:
        ensure_starter_model(DEFAULT_STARTER)
    message = str(err.value)
    assert DEFAULT_STARTER.filename in message and str(models) in message
    assert "source checkout" in message and "fireside pull" in message
    assert no_pip == [] and not list(models.iterdir())  # no pip, no partial file left behind

    # The CLI's default model (no -m) gives that as its one error line.
    assert main(["run", "-p", "hi", "-n", "1"]) == 1
    err_text = capsys.readouterr().err
    assert err_text.startswith("error: ") and "source checkout" in err_text and "Traceback" not in err_text
    assert no_pip == []


def test_packaged_app_uses_a_starter_model_beside_it_or_in_the_models_folder(frozen_app, no_pip, smollm2_path):
    from engine.starter_models import DEFAULT_STARTER, ensure_starter_model

    app, models = frozen_app
    beside = app / DEFAULT_STARTER.filename
    beside.symlink_to(smollm2_path)
    assert ensure_starter_model(DEFAULT_STARTER) == beside
    assert resolve_model(None) == beside and resolve_model("smollm2") == beside
    own = models / DEFAULT_STARTER.filename
    own.symlink_to(smollm2_path)
    assert ensure_starter_model(DEFAULT_STARTER) == own  # the models folder first, as everywhere
    assert no_pip == []
