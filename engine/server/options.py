"""Command-line options of ``fireside serve`` (kept free of heavy imports: the CLI builds every parser)."""
from __future__ import annotations

import argparse


def add_serve_args(p: argparse.ArgumentParser) -> None:
    """Add the ``serve`` options to ``p``."""
    p.add_argument("-m", "--model", help="GGUF path or name in the models folder")


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the server until interrupted; returns the exit status."""
    raise NotImplementedError("fireside serve is being written")
