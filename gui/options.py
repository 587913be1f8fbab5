"""Command-line options of ``fireside gui`` (kept free of Qt imports: the CLI builds every parser)."""
from __future__ import annotations

import argparse
import os
import sys


def add_gui_args(p: argparse.ArgumentParser) -> None:
    """Add the ``gui`` options to ``p``."""
    p.add_argument("model", nargs="?", help="a .gguf file to load at start")
    p.add_argument("--terminal-fallback", action="store_true",
                   help="with no display, start the terminal chat (`fireside chat`) instead of failing")


def display_available(env: dict | None = None, platform: str | None = None) -> bool:
    """Whether a window can be shown: on Linux and other X11/Wayland systems a DISPLAY or WAYLAND_DISPLAY
    is needed unless QT_QPA_PLATFORM picks a platform (offscreen, vnc...); Windows and macOS always have one."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if platform.startswith(("win", "darwin", "cygwin")):
        return True
    return any(env.get(k) for k in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def cmd_gui(args: argparse.Namespace) -> int:
    """Open the window; returns the exit status."""
    if not display_available():
        msg = "no display available (DISPLAY and WAYLAND_DISPLAY are not set, nor QT_QPA_PLATFORM)"
        if not getattr(args, "terminal_fallback", False):
            print(f"error: {msg}; use `fireside chat` in a terminal", file=sys.stderr)
            return 1
        print(f"fireside: {msg}: starting the terminal chat (`fireside chat`) instead", file=sys.stderr)
        from engine.cli import main as cli_main

        return cli_main(["chat", *(["-m", args.model] if args.model else [])])
    from .app import run

    return run(args.model)
