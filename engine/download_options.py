"""Command-line options of ``fireside pull`` (kept free of heavy imports: the CLI builds every parser).

``fireside pull REPO_ID`` lists the repository's ``.gguf`` files (size, quantization) and downloads
the default pick (``Q4_K_M`` if present, else the smallest), asking first on a terminal;
``fireside pull REPO_ID FILE`` downloads that file. The work is in :mod:`engine.download`.
"""
from __future__ import annotations

import argparse
import sys


def add_pull_args(p: argparse.ArgumentParser) -> None:
    """Add the ``pull`` options to ``p``."""
    p.add_argument("repo_id", help="Hugging Face repository id, e.g. bartowski/SmolLM2-1.7B-Instruct-GGUF")
    p.add_argument("filename", nargs="?", help="the .gguf file in the repository (default: list, then pick)")
    p.add_argument("-l", "--list", action="store_true", help="only list the repository's .gguf files")
    p.add_argument("-y", "--yes", action="store_true", help="download the default pick without asking")
    p.add_argument("--revision", default=None, help="branch, tag or commit (default: main)")
    p.add_argument("--endpoint", default=None, help="hub URL (default: $HF_ENDPOINT or https://huggingface.co)")
    p.add_argument("-o", "--output-dir", default=None, help="destination folder (default: the models folder)")


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB" if n < 2**30 else f"{n / 2**30:,.2f} GiB"


def _ask(files, default) -> object:
    """Ask which file to download on a terminal; returns the chosen RemoteFile (or None to stop)."""
    while True:
        print(f"download which file? [number or name, Enter = {default.path}, q = quit] ",
              end="", flush=True, file=sys.stderr)
        answer = sys.stdin.readline()
        if not answer:
            return None
        answer = answer.strip()
        if answer == "":
            return default
        if answer.lower() in ("q", "quit"):
            return None
        if answer.isdigit() and 1 <= int(answer) <= len(files):
            return files[int(answer) - 1]
        for f in files:
            if answer in (f.path, f.name):
                return f
        print(f"no file {answer!r}", file=sys.stderr)


def cmd_pull(args: argparse.Namespace) -> int:
    """List and/or download; returns the exit status (1 with one ``error:`` line on failure)."""
    from huggingface_hub.utils import tqdm

    from .download import DownloadError, choose_default, download_gguf, list_gguf_files, partial_download
    from .paths import models_dir

    dest = models_dir() if args.output_dir is None else args.output_dir
    try:
        filename = args.filename
        if filename is None or args.list:
            files = list_gguf_files(args.repo_id, endpoint=args.endpoint, revision=args.revision)
            default = choose_default(files)
            print(f"{args.repo_id}: {len(files)} .gguf file(s)")
            for i, f in enumerate(files, 1):
                mark = "*" if f is default else " "
                print(f"{mark}{i:3d}  {f.path:56s} {f.quant or '?':9s} {_mib(f.size):>12s}")
            if args.list:
                return 0
            chosen = default if (args.yes or not sys.stdin.isatty()) else _ask(files, default)
            if chosen is None:
                return 0
            filename = chosen.path
            print(f"downloading {filename}", file=sys.stderr)

        part = partial_download(filename, dest)
        if part is not None:
            print(f"resuming: {_mib(part[0])} already downloaded", file=sys.stderr)
        bar, phase = None, None

        def on_progress(p) -> None:
            # One bar per phase: "download", then "verify" (the sha256 check).
            nonlocal bar, phase
            if p.phase != phase:
                if bar is not None:
                    bar.close()
                phase = p.phase
                bar = tqdm(total=p.total, initial=p.done, unit="B", unit_scale=True, unit_divisor=1024,
                           desc=p.phase, file=sys.stderr, dynamic_ncols=True)
            bar.update(p.done - bar.n)

        try:
            path = download_gguf(args.repo_id, filename, dest_dir=dest, endpoint=args.endpoint,
                                 revision=args.revision, on_progress=on_progress)
        finally:
            if bar is not None:
                bar.close()
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume", file=sys.stderr)
        return 130
    print(path)
    return 0
