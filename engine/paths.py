"""Where Fireside keeps its files.

The models folder is the user data dir from platformdirs (``~/.local/share/fireside/models`` on
Linux), overridable with the ``FIRESIDE_MODELS`` environment variable (the Makefile points it at the
repository's git-ignored ``.cache/models`` so development runs and tests share one download).
"""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "fireside"


def models_dir() -> Path:
    """Return the models folder, creating it if needed.

    Returns:
        Path: ``$FIRESIDE_MODELS`` if set, else ``<user data dir>/models``.
    """
    env = os.environ.get("FIRESIDE_MODELS")
    path = Path(env).expanduser() if env else Path(platformdirs.user_data_dir(APP_NAME)) / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def list_models(folder: Path | None = None) -> list[Path]:
    """Return the ``.gguf`` files in the models folder, sorted by name.

    Args:
        folder: folder to list; defaults to :func:`models_dir`.
    """
    folder = models_dir() if folder is None else folder
    return sorted(p for p in folder.glob("*.gguf") if p.is_file())
