"""Render the main window with a short real conversation to a PNG (``make screenshot``).

Usage: ``QT_QPA_PLATFORM=offscreen python -m gui.screenshot -m MODEL.gguf -o build/screenshot.png``.
The conversation lives in a temporary data dir (unless FIRESIDE_DATA_DIR is set), so the user's own
chats and settings are never shown or touched. Exit status 1 if the model fails or a step times out.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

DEFAULT_PROMPT = "Write a Python function that returns the square of a number, with a one-line explanation."


def _wait(app, signals, timeout_s: float):
    """Run the event loop until one of ``signals`` fires; returns (index, args) or None on timeout."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop, got = QEventLoop(), []
    for i, sig in enumerate(signals):
        sig.connect(lambda *a, i=i: (got.append((i, a)), loop.quit()))
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    return got[0] if got else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gui.screenshot", description=__doc__.splitlines()[0])
    p.add_argument("-m", "--model", required=True, help="the .gguf to load")
    p.add_argument("-o", "--output", default="build/screenshot.png", help="PNG to write")
    p.add_argument("-p", "--prompt", default=DEFAULT_PROMPT)
    p.add_argument("-n", "--max-tokens", type=int, default=120)
    p.add_argument("--theme", choices=("light", "dark"), default="light")
    p.add_argument("--size", default="1100x720", help="window size, WIDTHxHEIGHT")
    args = p.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("FIRESIDE_DATA_DIR", tempfile.mkdtemp(prefix="fireside-screenshot-"))

    from .app import create_app
    from .main_window import MainWindow
    from .settings import AppSettings, Settings

    # Greedy and seeded: the same picture each run.
    Settings().save(AppSettings(temperature=0.0, seed=1, max_tokens=args.max_tokens, n_ctx=1024, theme=args.theme,
                                system_prompt="You are a helpful assistant."))
    app = create_app()
    window = MainWindow()
    w, h = (int(x) for x in args.size.lower().split("x"))
    window.resize(w, h)
    window.show()
    window.open_model(args.model)
    got = _wait(app, [window.model_ready, window.model_failed], 120)
    if got is None or got[0] != 0:
        print(f"screenshot: the model did not load: {got[1][0] if got else 'timeout'}", file=sys.stderr)
        window.close()
        return 1
    window.send_message(args.prompt)
    got = _wait(app, [window.reply_finished, window.reply_failed], 300)
    if got is None or got[0] != 0:
        print(f"screenshot: no reply: {got[1][0] if got else 'timeout'}", file=sys.stderr)
        window.close()
        return 1
    for _ in range(5):  # let layouts settle (heights follow the rendered documents)
        app.processEvents()
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    ok = window.grab().save(str(out))
    window.close()
    if not ok:
        print(f"screenshot: could not write {out}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
