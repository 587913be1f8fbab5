"""The icons and desktop files in assets/: generated images up to date with the SVG, files well-formed.

Read with Qt only (Pillow, which writes the ICO/ICNS, comes with the ``package`` extra, not ``test``;
tests/test_packaging.py runs ``assets/make_icons.py`` itself in its clean environment).
"""
from __future__ import annotations

import configparser
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from PySide6.QtGui import QImage, QImageReader  # noqa: E402

ASSETS = Path(__file__).resolve().parent.parent / "assets"
sys.path.insert(0, str(ASSETS))
import make_icons  # noqa: E402


def _rgba(image: QImage) -> np.ndarray:
    """(height, width, 4) uint8 RGBA copy of a QImage."""
    image = image.convertToFormat(QImage.Format.Format_RGBA8888)
    rows = np.frombuffer(bytes(image.constBits()), np.uint8).reshape(image.height(), image.bytesPerLine())
    return rows[:, : image.width() * 4].reshape(image.height(), image.width(), 4).copy()


def test_committed_pngs_match_the_svg(qapp):
    for size in make_icons.PNG_SIZES:
        committed = QImage(str(ASSETS / "icons" / f"fireside-{size}.png"))
        assert (committed.width(), committed.height()) == (size, size) and committed.hasAlphaChannel()
        fresh = _rgba(make_icons.render(make_icons.SOURCE, size)).astype(np.int16)
        # Another Qt version may antialias a little differently; an edited SVG differs by far more.
        assert np.abs(fresh - _rgba(committed)).mean() < 2.0, f"fireside-{size}.png is stale: run `make assets`"
    big = _rgba(QImage(str(ASSETS / "icons" / "fireside-256.png")))
    assert big[0, 0, 3] == 0 and big[128, 128, 3] == 255  # rounded tile: clear corners, opaque middle


def test_ico_and_icns_hold_every_size(qapp):
    for name, sizes in (("fireside.ico", make_icons.ICO_SIZES), ("fireside.icns", make_icons.ICNS_SIZES)):
        reader = QImageReader(str(ASSETS / name))
        found = set()
        for i in range(reader.imageCount()):
            reader.jumpToImage(i)
            image = reader.read()
            assert not image.isNull(), (name, i, reader.errorString())
            found.add(image.width())
        assert found >= set(sizes), (name, sorted(found))


def test_desktop_entry_and_mime_type():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # keys are case-sensitive in desktop files
    entry.read(ASSETS / "fireside.desktop")
    d = entry["Desktop Entry"]
    assert d["Type"] == "Application" and d["Exec"] == "fireside %f" and d["Icon"] == "fireside"
    assert "application/x-gguf" in d["MimeType"].split(";")

    ns = {"m": "http://www.freedesktop.org/standards/shared-mime-info"}
    mime = ET.parse(ASSETS / "fireside-mime.xml").getroot().find("m:mime-type", ns)
    assert mime.get("type") == "application/x-gguf"
    assert mime.find("m:glob", ns).get("pattern") == "*.gguf"
    assert mime.find("m:magic/m:match", ns).get("value") == "GGUF"
