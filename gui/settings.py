"""The app's settings, kept with QSettings: sampling, context, theme, models folder, local server, recent files,
the user's system-prompt presets.

Where they live: QSettings' native place for organization/application "Fireside" (the registry on
Windows, ``~/.config/Fireside/Fireside.conf`` on Linux, a plist on macOS), or, when
``$FIRESIDE_DATA_DIR`` is set (tests, portable installs), ``$FIRESIDE_DATA_DIR/settings.ini``.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

from engine.sampling import SamplerParams

from .conversations import data_dir

MAX_RECENT = 8
THEMES = ("system", "light", "dark")


@dataclass
class AppSettings:
    """Everything the settings dialog edits.

    Attributes:
        n_threads: kernel threads (0 = all cores); n_ctx: context tokens per slot (0 = min(model's, 4096)).
        n_parallel: slots, i.e. replies computed at once with continuous batching (the window's chat and
            the local server's clients each get one; every slot keeps its own n_ctx of KV cache).
        context_shift: a chat that outgrows n_ctx keeps its system prompt and drops its oldest turns
            (gui/prompt.py fit_history; the engine's context shift while a reply grows).
        temperature, top_k, top_p, min_p, repeat_penalty: sampling (llama.cpp's meanings).
        seed: RNG seed, -1 = a new random seed each reply.
        max_tokens: most tokens per reply.
        system_prompt: default system prompt ("" = none); a conversation can override it.
        theme: "system", "light" or "dark".
        models_dir: the models folder ("" = engine.paths.models_dir()).
        server_enabled, server_host, server_port, server_api_key: the in-process OpenAI server.
    """

    n_threads: int = 0
    n_ctx: int = 0
    n_parallel: int = 4
    context_shift: bool = False
    # sampling defaults are the engine's (llama.cpp's), defined once in SamplerParams
    temperature: float = SamplerParams.temperature
    top_k: int = SamplerParams.top_k
    top_p: float = SamplerParams.top_p
    min_p: float = SamplerParams.min_p
    repeat_penalty: float = SamplerParams.repeat_penalty
    seed: int = -1
    max_tokens: int = 1024
    system_prompt: str = ""
    theme: str = "system"
    models_dir: str = ""
    server_enabled: bool = False
    server_host: str = "127.0.0.1"
    server_port: int = 8080
    server_api_key: str = ""

    def sampler_params(self) -> SamplerParams:
        """The :class:`SamplerParams` for a reply.

        Raises:
            ValueError: an out-of-range value (SamplerParams checks them).
        """
        return SamplerParams(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p, min_p=self.min_p,
                             repeat_penalty=self.repeat_penalty, seed=None if self.seed < 0 else self.seed)


def make_qsettings() -> QSettings:
    """The QSettings store (see the module docstring for where it is)."""
    if os.environ.get("FIRESIDE_DATA_DIR"):
        return QSettings(str(data_dir() / "settings.ini"), QSettings.Format.IniFormat)
    return QSettings(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, "Fireside", "Fireside")


def _convert(value, default):
    """QSettings gives strings back from INI files: convert to the default's type (bad values: default)."""
    if value is None:
        return default
    try:
        if isinstance(default, bool):
            return value if isinstance(value, bool) else str(value).lower() in ("true", "1", "yes")
        return type(default)(value)
    except (TypeError, ValueError):
        return default


class Settings:
    """Reads and writes :class:`AppSettings`, the recent models and window geometry.

    Args:
        qsettings: the store; defaults to :func:`make_qsettings`.
    """

    def __init__(self, qsettings: QSettings | None = None):
        self.q = qsettings if qsettings is not None else make_qsettings()

    def load(self) -> AppSettings:
        """The saved settings, defaults for anything missing or unreadable."""
        d = AppSettings()
        values = {f.name: _convert(self.q.value(f"app/{f.name}"), getattr(d, f.name)) for f in fields(AppSettings)}
        s = AppSettings(**values)
        if s.theme not in THEMES:
            s.theme = "system"
        return s

    def save(self, s: AppSettings) -> None:
        """Store ``s`` (written to disk at once)."""
        for k, v in asdict(s).items():
            self.q.setValue(f"app/{k}", v)
        self.q.sync()

    def models_folder(self) -> Path:
        """The models folder: the setting, else :func:`engine.paths.models_dir`."""
        from engine.paths import models_dir

        custom = self.load().models_dir
        return Path(custom).expanduser() if custom else models_dir()

    # Recent models -------------------------------------------------------------------------------

    def recent_models(self) -> list[str]:
        """Recently loaded model paths, newest first, only those that still exist."""
        value = self.q.value("recent/models") or []
        items = [value] if isinstance(value, str) else list(value)
        return [p for p in items if p and Path(p).is_file()]

    def add_recent_model(self, path: str | Path) -> None:
        """Put ``path`` first in the recent list (at most MAX_RECENT kept)."""
        p = str(Path(path).resolve())
        items = [p] + [x for x in self.recent_models() if x != p]
        self.q.setValue("recent/models", items[:MAX_RECENT])
        self.q.sync()

    def last_model(self) -> str | None:
        """The model loaded when the app was last closed, if it still exists."""
        v = self.q.value("recent/last_model")
        return v if v and Path(str(v)).is_file() else None

    def set_last_model(self, path: str | None) -> None:
        self.q.setValue("recent/last_model", path or "")

    # Window geometry -----------------------------------------------------------------------------

    def window_state(self) -> dict[str, QByteArray]:
        """Saved ``geometry``, ``state`` and ``splitter`` blobs (missing keys absent)."""
        out = {}
        for key in ("geometry", "state", "splitter"):
            v = self.q.value(f"window/{key}")
            if isinstance(v, QByteArray) and not v.isEmpty():
                out[key] = v
        return out

    def save_window_state(self, **blobs: QByteArray) -> None:
        for key, v in blobs.items():
            self.q.setValue(f"window/{key}", v)
        self.q.sync()

    # System-prompt presets -----------------------------------------------------------------------

    def prompt_presets(self) -> list[tuple[str, str]]:
        """The user's saved system-prompt presets as (name, text), in saved order.

        Kept as a QSettings array ``prompt_presets`` (``name``, ``text`` keys); entries that are not two
        strings (a hand-edited file) are skipped. The built-in presets are not stored (gui/prompt_presets.py).
        """
        out = []
        n = self.q.beginReadArray("prompt_presets")
        try:
            for i in range(n):
                self.q.setArrayIndex(i)
                name, text = self.q.value("name"), self.q.value("text")
                if isinstance(name, str) and isinstance(text, str) and name.strip():
                    out.append((name, text))
        finally:
            self.q.endArray()
        return out

    def set_prompt_presets(self, presets: list[tuple[str, str]]) -> None:
        """Replace the user's saved presets with ``presets`` ((name, text) pairs), written to disk at once."""
        self.q.remove("prompt_presets")
        self.q.beginWriteArray("prompt_presets", len(presets))
        try:
            for i, (name, text) in enumerate(presets):
                self.q.setArrayIndex(i)
                self.q.setValue("name", name)
                self.q.setValue("text", text)
        finally:
            self.q.endArray()
        self.q.sync()
