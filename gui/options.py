"""Command-line options of ``fireside gui`` (kept free of Qt imports: the CLI builds every parser)."""
from __future__ import annotations

import argparse


def add_gui_args(p: argparse.ArgumentParser) -> None:
    """Add the ``gui`` options to ``p``."""
    p.add_argument("model", nargs="?", help="a .gguf file to load at start")


def cmd_gui(args: argparse.Namespace) -> int:
    """Open the window; returns the exit status."""
    raise NotImplementedError("the desktop app is being written")
