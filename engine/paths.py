"""Where Fireside keeps its files.

The models folder is the user data dir from platformdirs (``~/.local/share/fireside/models`` on
Linux), overridable with the ``FIRESIDE_MODELS`` environment variable (the Makefile points it at the
repository's git-ignored ``.cache/models`` so development runs and tests share one download).
"""
from __future__ import annotations

import os
import sys
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


def bundled_model_dirs(executable: str | Path | None = None, frozen: bool | None = None,
                       platform: str | None = None) -> list[Path]:
    """Folders of a packaged app where a ``.gguf`` placed by hand is also found.

    Weights never go inside the executable; a model copied next to the packaged executable (the
    PyInstaller onedir folder), or into ``Fireside.app/Contents/Resources`` on macOS, is picked up
    beside the models folder. From a source checkout (not frozen) there are none.

    Args:
        executable: the running executable (default ``sys.executable``).
        frozen: whether this is a packaged app (default: PyInstaller's ``sys.frozen``).
        platform: ``sys.platform`` value (default: this one).

    Returns:
        Existing folders, without duplicates, in search order.
    """
    frozen = bool(getattr(sys, "frozen", False)) if frozen is None else frozen
    if not frozen:
        return []
    exe_dir = Path(sys.executable if executable is None else executable).resolve().parent
    dirs = [exe_dir]
    platform = sys.platform if platform is None else platform
    # macOS bundle: Fireside.app/Contents/MacOS/Fireside; resources live in Contents/Resources.
    if platform == "darwin" and exe_dir.name == "MacOS" and exe_dir.parent.name == "Contents":
        dirs.append(exe_dir.parent / "Resources")
    seen: list[Path] = []
    for d in dirs:
        if d.is_dir() and d not in seen:
            seen.append(d)
    return seen


def list_models(folder: Path | None = None) -> list[Path]:
    """Return the ``.gguf`` files in a folder, sorted by name.

    Args:
        folder: folder to list; defaults to the models folder (:func:`models_dir`) followed by the
            packaged app's folders (:func:`bundled_model_dirs`), a file name found in the models
            folder hiding the same name elsewhere.
    """
    if folder is not None:
        return sorted(p for p in folder.glob("*.gguf") if p.is_file())
    found: dict[str, Path] = {}
    for d in (models_dir(), *bundled_model_dirs()):
        for p in sorted(d.glob("*.gguf")):
            if p.is_file():
                found.setdefault(p.name, p)
    return sorted(found.values(), key=lambda p: p.name)
