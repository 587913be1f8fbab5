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
