"""Entry script of the packaged app (every PyInstaller spec in packaging/ freezes this file).

It is the ``fireside`` command: ``Fireside`` alone, or with a ``.gguf`` path (a file manager's
"Open with"), opens the desktop app; ``Fireside run|chat|serve|pull|...`` runs the CLI
(:func:`engine.cli.main` does the dispatch).
"""
import multiprocessing
import sys

from engine.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # a no-op unless something spawns a multiprocessing child
    sys.exit(main())
