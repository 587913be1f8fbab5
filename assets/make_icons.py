"""Regenerate the app icons from assets/fireside.svg (``make assets``).

The SVG is rendered at every size by Qt's SVG renderer (``QSvgRenderer``, offscreen: no display
needed), so each size is drawn crisply rather than scaled down from one bitmap. Pillow writes the
files: ``assets/icons/fireside-<N>.png`` (N = 16 .. 512, plus 1024 for macOS), ``fireside.ico``
(Windows: 16 .. 256) and ``fireside.icns`` (macOS: 32 .. 1024, Pillow's ICNS writer). Writing with
Pillow rather than Qt keeps the output byte-for-byte reproducible.

Usage: ``python assets/make_icons.py [--out DIR]`` (default: the assets folder).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ASSETS = Path(__file__).resolve().parent
SOURCE = ASSETS / "fireside.svg"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512, 1024)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)  # the ICO format tops out at 256
ICNS_SIZES = (32, 64, 128, 256, 512, 1024)  # Pillow derives 16 from 32 for the ICNS table
_app = None  # the QGuiApplication, kept alive while rendering


def render(svg: Path, size: int):
    """Render ``svg`` to a ``size`` x ``size`` ``QImage`` (RGBA8888, transparent background)."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    global _app
    _app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])  # QPainter needs one
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg}: not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_RGBA8888)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter)
    painter.end()
    return image


def to_pillow(image):
    """A Pillow RGBA copy of an RGBA8888 ``QImage``."""
    from PIL import Image

    size = (image.width(), image.height())
    return Image.frombuffer("RGBA", size, bytes(image.constBits()), "raw", "RGBA", image.bytesPerLine(), 1).copy()


def make_icons(out: Path = ASSETS, svg: Path = SOURCE) -> list[Path]:
    """Write the PNGs, the ICO and the ICNS into ``out``; returns the written paths."""
    images = {size: to_pillow(render(svg, size)) for size in PNG_SIZES}
    icons = out / "icons"
    icons.mkdir(parents=True, exist_ok=True)
    written = []
    for size, im in images.items():
        path = icons / f"fireside-{size}.png"
        im.save(path, optimize=True)
        written.append(path)
    ico = out / "fireside.ico"
    images[256].save(ico, sizes=[(s, s) for s in ICO_SIZES], append_images=[images[s] for s in ICO_SIZES])
    icns = out / "fireside.icns"
    images[1024].save(icns, append_images=[images[s] for s in ICNS_SIZES if s != 1024])
    return [*written, ico, icns]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ASSETS, help="output folder (default: assets/)")
    args = p.parse_args(argv)
    for path in make_icons(args.out):
        print(path.relative_to(args.out) if path.is_relative_to(args.out) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
