"""Build the packaged Fireside app for one OS: ``python packaging/build.py {linux,windows,macos}``.

1. PyInstaller freezes the app with ``packaging/fireside-<os>.spec`` into a onedir bundle
   (default ``build/package/``; work files in ``build/pyinstaller/``).
2. The bundle is wrapped for its OS, into ``dist/``:

   * linux: ``fireside-<version>-linux-<arch>.tar.gz`` holding the bundle, ``install.sh``, the
     ``.desktop`` file, the icons and the shared-mime-info file for ``.gguf``;
   * windows: the Inno Setup installer from ``packaging/windows/fireside.iss`` (needs ``ISCC.exe``);
   * macos: ``Fireside.app`` in a ``.dmg`` by ``packaging/macos/make_dmg.sh`` (``hdiutil``).

PyInstaller cannot cross-compile: each OS builds on itself. Only the Linux path is exercised by the
tests (tests/test_packaging.py); see packaging/README.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

PACKAGING = Path(__file__).resolve().parent
ROOT = PACKAGING.parent
sys.path.insert(0, str(PACKAGING))
from fireside_spec import APP_NAME, ASSETS, VERSION  # noqa: E402

TARGETS = {"linux": "linux", "windows": "win32", "macos": "darwin"}
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def run_pyinstaller(target: str, dist: Path, work: Path) -> Path:
    """Freeze the app; returns the onedir bundle (or the ``.app`` on macOS)."""
    spec = PACKAGING / f"fireside-{target}.spec"
    cmd = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
           "--distpath", str(dist), "--workpath", str(work), str(spec)]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    return dist / (f"{APP_NAME}.app" if target == "macos" else APP_NAME)


def strip_debug_info(bundle: Path) -> None:
    """Drop debug sections from libpython and the kernels (about 25 MB), if ``strip`` exists.

    Not PyInstaller's ``strip=True``: a full strip of every library breaks the auditwheel-repaired
    ones (numpy's OpenBLAS: "ELF load command address/offset not page-aligned").
    """
    strip = shutil.which("strip")
    if strip is None:
        return
    internal = bundle / "_internal"
    targets = [*internal.glob("libpython3*.so*"), *internal.glob("cython_kernels/*.so")]
    for t in targets:
        if not t.is_symlink():
            subprocess.run([strip, "--strip-debug", str(t)], check=True)


def linux_archive(bundle: Path, out_dir: Path) -> Path:
    """``fireside-<version>-linux-<arch>.tar.gz``: the bundle plus what a desktop install needs."""
    arch = platform.machine().lower() or "x86_64"
    top = f"fireside-{VERSION}-linux-{arch}"
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = out_dir / f"{top}.tar.gz"
    linux = PACKAGING / "linux"
    extra = [
        (linux / "install.sh", "install.sh"),
        (linux / "README.txt", "README.txt"),
        (ASSETS / "fireside.desktop", "share/applications/fireside.desktop"),
        (ASSETS / "fireside-mime.xml", "share/mime/packages/fireside-mime.xml"),
        (ASSETS / "fireside.svg", "share/icons/hicolor/scalable/apps/fireside.svg"),
        *((ASSETS / "icons" / f"fireside-{n}.png", f"share/icons/hicolor/{n}x{n}/apps/fireside.png")
          for n in ICON_SIZES),
    ]
    tmp = archive.with_suffix(".partial")
    # compresslevel 6: within a few percent of 9 on these binaries, at about half the time.
    with tarfile.open(tmp, "w:gz", compresslevel=6) as tar:
        tar.add(bundle, arcname=f"{top}/{APP_NAME}")
        for src, name in extra:
            tar.add(src, arcname=f"{top}/{name}")
    tmp.replace(archive)
    return archive


def windows_installer(bundle: Path, out_dir: Path) -> Path | None:
    """Run Inno Setup's compiler on packaging/windows/fireside.iss, if ``ISCC`` is installed."""
    iscc = shutil.which("ISCC") or shutil.which("iscc")
    default = Path(os.environ.get("ProgramFiles(x86)", r"C:\Program Files (x86)")) / "Inno Setup 6" / "ISCC.exe"
    if iscc is None and default.is_file():
        iscc = str(default)
    if iscc is None:
        print("ISCC.exe (Inno Setup 6) not found: the bundle is built, the installer is not", file=sys.stderr)
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run([iscc, f"/DAppVersion={VERSION}", f"/DSourceDir={bundle}", f"/DOutputDir={out_dir}",
                    f"/DIconFile={ASSETS / 'fireside.ico'}", str(PACKAGING / "windows" / "fireside.iss")], check=True)
    return out_dir / f"Fireside-{VERSION}-windows-setup.exe"


def macos_dmg(app: Path, out_dir: Path) -> Path:
    """Wrap ``Fireside.app`` in a compressed disk image with packaging/macos/make_dmg.sh."""
    out_dir.mkdir(parents=True, exist_ok=True)
    dmg = out_dir / f"Fireside-{VERSION}-macos-{platform.machine()}.dmg"
    subprocess.run(["bash", str(PACKAGING / "macos" / "make_dmg.sh"), str(app), str(dmg)], check=True)
    return dmg


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Build the packaged Fireside app with PyInstaller.")
    p.add_argument("target", choices=sorted(TARGETS), help="the OS to build for (must be this one)")
    p.add_argument("--dist", type=Path, default=ROOT / "build" / "package", help="where the bundle goes")
    p.add_argument("--work", type=Path, default=ROOT / "build" / "pyinstaller", help="PyInstaller's work folder")
    p.add_argument("--out", type=Path, default=ROOT / "dist", help="where the archive/installer goes")
    p.add_argument("--no-archive", action="store_true", help="only the bundle, no tar.gz/installer/dmg")
    args = p.parse_args(argv)

    if not sys.platform.startswith(TARGETS[args.target]):
        print(f"error: a {args.target} build must run on {args.target} (PyInstaller does not cross-compile)",
              file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    bundle = run_pyinstaller(args.target, args.dist, args.work)
    if args.target == "linux":
        strip_debug_info(bundle)
    t_build = time.perf_counter() - t0
    print(f"bundle: {bundle} ({_du(bundle) / 2**20:.0f} MiB) in {t_build:.0f} s")
    if args.no_archive:
        return 0
    t1 = time.perf_counter()
    if args.target == "linux":
        result = linux_archive(bundle, args.out)
    elif args.target == "windows":
        result = windows_installer(bundle, args.out)
    else:
        result = macos_dmg(bundle, args.out)
    if result is not None:
        print(f"package: {result} ({result.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t1:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
