"""The packaged Linux app, built the way `make package` builds it, run frozen.

One build per session (module fixture), in a clean virtual environment holding only the project's
runtime dependencies and the ``package`` extra (no test tools), from this checkout with its compiled
kernels: ``packaging/build.py linux`` -> the tar.gz -> ``install.sh --prefix`` into a temporary
folder. Every check then runs the installed copy:

* ``--version``; the archive's layout (bundle, install.sh, .desktop, icons, MIME type; no weights);
* a greedy completion on the SmolLM2 starter model placed next to the executable (the bundled-model
  lookup), identical to the same command run from source;
* ``pull`` from the stand-in hub (huggingface_hub frozen), ``serve`` answering /v1/models (uvicorn and
  FastAPI frozen);
* the GUI started offscreen with no arguments, alive after 5 s, with no Traceback on stderr.

Marked ``slow`` (a few minutes on 2 cores; ``-m "not slow"`` leaves it out) but part of ``make test``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
from importlib.metadata import requires
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine import __version__
from fake_hub import FakeHub, make_small_gguf

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "The capital of France is"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux bundle builds only on Linux"),
]


@dataclass
class Installed:
    exe: Path  # <prefix>/bin/fireside (a symlink to the bundle's executable)
    app_dir: Path  # <prefix>/lib/fireside: the onedir bundle
    prefix: Path
    archive: Path
    home: Path
    models: Path  # an empty models folder (FIRESIDE_MODELS)
    python: Path  # the clean build environment's interpreter
    timings: dict


def _runtime_requirements() -> list[str]:
    """The project's dependencies plus its ``package`` extra (installed metadata of pyproject.toml's lists)."""
    reqs = []
    for req in requires("fireside") or []:
        spec, _, marker = req.partition(";")
        if not marker.strip() or re.search(r"""extra\s*==\s*["']package["']""", marker):
            reqs.append(spec.strip())
    assert any(r.lower().startswith("pyinstaller") for r in reqs), reqs
    return reqs


def _run(cmd, **kw) -> subprocess.CompletedProcess:
    """Run a command; on failure, fail the test with its output."""
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {result.returncode}\n"
                    f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}")
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("package")
    try:
        yield _build_and_install(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # about 1.5 GB: environment, build, archive, install


def _build_and_install(tmp: Path) -> Installed:
    timings = {}
    t0 = time.perf_counter()
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", venv])
    py = venv / "bin" / "python"
    _run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", *_runtime_requirements()])
    timings["venv"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    out = tmp / "out"
    build = _run([py, ROOT / "packaging" / "build.py", "linux", "--dist", tmp / "dist", "--work", tmp / "work",
                  "--out", out], cwd=ROOT, env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")})
    timings["build"] = time.perf_counter() - t1
    print(build.stdout[-600:])
    archives = list(out.glob(f"fireside-{__version__}-linux-*.tar.gz"))
    assert len(archives) == 1, build.stdout
    archive = archives[0]

    with tarfile.open(archive) as tar:
        tar.extractall(tmp / "x", filter="tar")
    prefix, home, models = tmp / "prefix", tmp / "home", tmp / "models"
    home.mkdir()
    models.mkdir()
    top = tmp / "x" / archive.name.removesuffix(".tar.gz")
    _run([top / "install.sh", "--prefix", prefix], env={**os.environ, "HOME": str(home)})
    timings["total"] = time.perf_counter() - t0
    print(f"package timings: {json.dumps({k: round(v, 1) for k, v in timings.items()})}")
    return Installed(prefix / "bin" / "fireside", prefix / "lib" / "fireside", prefix, archive, home, models, py,
                     timings)


def _env(app: Installed, **extra) -> dict:
    """A plain user environment for the frozen app: its own HOME and models folder, no Python settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "VIRTUAL_ENV", "QT_", "XDG_", "FIRESIDE_"))}
    env.update(HOME=str(app.home), XDG_CONFIG_HOME=str(app.home / ".config"),
               XDG_DATA_HOME=str(app.home / ".local" / "share"), XDG_CACHE_HOME=str(app.home / ".cache"),
               FIRESIDE_MODELS=str(app.models), HF_HUB_DISABLE_TELEMETRY="1")
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def model_beside_exe(installed, smollm2_path) -> Path:
    """The starter model placed next to the packaged executable (weights are never inside it)."""
    link = installed.app_dir / smollm2_path.name
    link.symlink_to(smollm2_path)
    yield link
    link.unlink()


def test_archive_layout_and_install(installed):
    with tarfile.open(installed.archive) as tar:
        names = tar.getnames()
    top = installed.archive.name.removesuffix(".tar.gz")
    for member in ("install.sh", "README.txt", "Fireside/Fireside", "share/applications/fireside.desktop",
                   "share/mime/packages/fireside-mime.xml", "share/icons/hicolor/256x256/apps/fireside.png",
                   "share/icons/hicolor/scalable/apps/fireside.svg"):
        assert f"{top}/{member}" in names, member
    internal = f"{top}/Fireside/_internal/"
    kernels = {n.rsplit("/", 1)[-1].split(".")[0] for n in names if n.startswith(internal + "cython_kernels/")}
    assert {"forward", "quants", "vecdot"} <= kernels
    assert not [n for n in names if n.endswith(".gguf")], "no weights inside the package"
    assert not [n for n in names if re.search(r"/(pytest|_pytest|PIL|openai)/", n)], "no test-only packages"

    desktop = (installed.prefix / "share" / "applications" / "fireside.desktop").read_text()
    assert f"Exec={installed.prefix / 'bin' / 'fireside'} %f" in desktop and "MimeType=application/x-gguf;" in desktop
    assert (installed.prefix / "share" / "icons" / "hicolor" / "48x48" / "apps" / "fireside.png").is_file()
    assert installed.exe.resolve() == (installed.app_dir / "Fireside").resolve()


def test_make_icons_in_the_build_environment(installed, tmp_path):
    """`make assets` (assets/make_icons.py, Pillow from the package extra) reproduces the committed icons."""
    _run([installed.python, ROOT / "assets" / "make_icons.py", "--out", tmp_path], env=_env(installed))
    for name in ("fireside.ico", "fireside.icns", *(f"icons/fireside-{n}.png" for n in (16, 48, 256, 1024))):
        fresh, committed = (tmp_path / name).read_bytes(), (ROOT / "assets" / name).read_bytes()
        # Same bytes with the same Qt; a newer Qt may antialias a little differently (same size, roughly).
        assert fresh == committed or abs(len(fresh) - len(committed)) < 0.05 * len(committed), name


def test_version(installed):
    result = _run([installed.exe, "--version"], env=_env(installed))
    assert result.stdout.strip() == f"fireside {__version__}"


def test_completion_next_to_exe_matches_source(installed, model_beside_exe, smollm2_path):
    args = ["run", "-p", PROMPT, "-n", "8", "--temp", "0", "-t", "2", "-c", "256"]
    # By name only: found next to the executable, the models folder being empty.
    frozen = _run([installed.exe, *args, "-m", model_beside_exe.stem], env=_env(installed))
    source = _run([sys.executable, "-m", "engine", *args, "-m", smollm2_path], cwd=ROOT)
    assert frozen.stdout.startswith(PROMPT) and len(frozen.stdout) > len(PROMPT) + 2
    assert frozen.stdout == source.stdout
    assert f"loaded {smollm2_path.name}" in frozen.stderr and "Traceback" not in frozen.stderr


def test_pull_from_hub(installed, smollm2_path, tmp_path):
    data = make_small_gguf(smollm2_path, tmp_path / "small.gguf").read_bytes()
    with FakeHub() as hub:
        hub.add_file("fireside-test/Tiny-GGUF", "Tiny-Q4_K_M.gguf", data)
        result = _run([installed.exe, "pull", "fireside-test/Tiny-GGUF", "-y", "--endpoint", hub.url],
                      env=_env(installed))
    target = installed.models / "Tiny-Q4_K_M.gguf"
    assert result.stdout.strip().splitlines()[-1] == str(target)
    assert target.read_bytes() == data
    target.unlink()


def test_server_answers(installed, model_beside_exe):
    proc = subprocess.Popen([str(installed.exe), "serve", "-m", model_beside_exe.stem, "--port", "0", "-c", "256"],
                            env=_env(installed), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url, lines, deadline = None, [], time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"(http://127\.0\.0\.1:\d+/v1)", line)
            url = m.group(1) if m else None
        assert url is not None, "".join(lines)
        with urllib.request.urlopen(f"{url}/models", timeout=10) as r:
            models = json.load(r)
        assert [m["id"] for m in models["data"]] == [model_beside_exe.stem]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_gui_starts_offscreen(installed, model_beside_exe):
    proc = subprocess.Popen([str(installed.exe)], env=_env(installed, QT_QPA_PLATFORM="offscreen"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(5)
        alive = proc.poll() is None
    finally:
        proc.terminate()
        try:
            _out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, err = proc.communicate()
    assert alive, f"the app exited with {proc.returncode}:\n{err[-3000:]}"
    assert "Traceback" not in err, err[-3000:]
