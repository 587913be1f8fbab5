"""What the three PyInstaller specs (packaging/fireside-{linux,windows,macos}.spec) share.

A spec imports this with ``sys.path.insert(0, SPECPATH)``. The app is frozen from the source
checkout (``pathex`` is the repository root), with the compiled kernels built in place
(``make install``, or ``pip install -e .``). Weights never go inside the bundle.

* Entry script: ``packaging/fireside_main.py`` (``engine.cli.main``: no arguments or a ``.gguf``
  opens the GUI, otherwise the CLI).
* The compiled kernels ``cython_kernels/*.so`` / ``*.pyd`` are named as hidden imports (PyInstaller
  cannot see imports made from inside an extension module). One file per extension holds every CPU
  variant (GCC ``target_clones`` dispatch at run time), so there is nothing per-CPU to collect.
* The kernels need no runtime beyond the C library: their threads are their own pool
  (``cython_kernels/fs_pool.c``), not OpenMP.
* Unused Qt bindings and development-only packages are excluded.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
ASSETS = ROOT / "assets"
APP_NAME = "Fireside"
BUNDLE_ID = "app.fireside.Fireside"
DESCRIPTION = "Run large language models locally on your CPU"
ENTRY = PACKAGING / "fireside_main.py"


def version() -> str:
    """``engine.__version__``, read from the source (no import: the spec must not load the engine)."""
    text = (ROOT / "engine" / "__init__.py").read_text(encoding="utf-8")
    m = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', text, re.MULTILINE)
    if m is None:
        raise SystemExit("engine/__init__.py has no __version__")
    return m.group(1)


VERSION = version()

# Qt bindings the app does not use (it needs QtCore, QtGui, QtWidgets and may use QtSvg), and
# packages that are only for development, tests or benchmarks.
EXCLUDES = [
    *(f"PySide6.{m}" for m in (
        "Qt3DAnimation", "Qt3DCore", "Qt3DExtras", "Qt3DInput", "Qt3DLogic", "Qt3DRender", "QtBluetooth",
        "QtCharts", "QtConcurrent", "QtDataVisualization", "QtDBus", "QtDesigner", "QtHelp", "QtLabsStyleKit",
        "QtLocation", "QtMultimedia", "QtMultimediaWidgets", "QtNetworkAuth", "QtNfc", "QtOpenGL",
        "QtOpenGLWidgets", "QtPdf", "QtPdfWidgets", "QtPositioning", "QtPrintSupport", "QtQml", "QtQmlFeatures",
        "QtQuick", "QtQuick3D", "QtQuickControls2", "QtQuickTest", "QtQuickWidgets", "QtRemoteObjects",
        "QtScxml", "QtSensors", "QtSerialBus", "QtSerialPort", "QtSpatialAudio", "QtSql", "QtStateMachine",
        "QtTest", "QtTextToSpeech", "QtUiTools", "QtWebChannel", "QtWebEngineCore", "QtWebEngineQuick",
        "QtWebEngineWidgets", "QtWebSockets", "QtXml", "QtAxContainer")),
    "PyQt5", "PyQt6", "PySide2", "tkinter", "_tkinter", "matplotlib", "IPython", "jupyter_client",
    "pytest", "_pytest", "pytestqt", "openai", "llama_cpp", "Cython", "setuptools", "pip", "PIL",
    # huggingface_hub's optional Xet transfer client (11 MB): engine/download.py downloads over plain HTTP.
    "hf_xet",
]


def kernel_modules() -> list[str]:
    """Dotted names of the compiled kernels; a clear error if they are not built."""
    suffix = ".pyd" if sys.platform == "win32" else ".so"
    names = sorted({p.name.split(".")[0] for p in (ROOT / "cython_kernels").glob(f"*{suffix}")})
    if not names:
        raise SystemExit(f"no compiled kernels in {ROOT / 'cython_kernels'}: build them first (`make install`)")
    return [f"cython_kernels.{n}" for n in names]


def datas() -> list[tuple[str, str]]:
    """Files the app reads at run time: its icons (``assets/`` inside the bundle, as in the checkout)."""
    return [(str(ASSETS / "fireside.svg"), "assets"), (str(ASSETS / "icons"), "assets/icons")]


def analysis_kwargs() -> dict:
    """Keyword arguments of ``Analysis`` common to every OS."""
    return dict(
        pathex=[str(ROOT)],
        datas=datas(),
        hiddenimports=kernel_modules(),
        excludes=EXCLUDES,
        noarchive=False,
        optimize=0,  # asserts and docstrings stay: jinja2 and pydantic read docstrings
    )
