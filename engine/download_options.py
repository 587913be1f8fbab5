"""Command-line options of ``fireside pull`` (kept free of heavy imports: the CLI builds every parser)."""
from __future__ import annotations

import argparse


def add_pull_args(p: argparse.ArgumentParser) -> None:
    """Add the ``pull`` options to ``p``."""
    p.add_argument("repo_id", help="Hugging Face repository id, e.g. bartowski/SmolLM2-135M-Instruct-GGUF")
    p.add_argument("filename", nargs="?", help="the .gguf file in the repository")


def cmd_pull(args: argparse.Namespace) -> int:
    """Download and return the exit status."""
    raise NotImplementedError("fireside pull is being written")
