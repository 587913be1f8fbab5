"""Start the desktop app: QApplication, theme, main window (the ``fireside-gui`` entry point)."""
from __future__ import annotations

import argparse
import sys

from .options import add_gui_args


def create_app(argv: list[str] | None = None):
    """The QApplication (created once), named so QSettings and the desktop know it; theme applied."""
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QApplication

    from .settings import Settings
    from .theme import apply_theme

    app = QApplication.instance()
    if app is None:
        QCoreApplication.setOrganizationName("Fireside")
        QCoreApplication.setApplicationName("Fireside")
        app = QApplication([sys.argv[0] if sys.argv else "fireside", *(argv or [])])
        app.setDesktopFileName("fireside")
    theme = Settings().load().theme
    apply_theme(app, theme)

    def follow_system(_scheme) -> None:  # "system" theme: follow the platform when it switches
        mode = Settings().load().theme
        if mode == "system":
            apply_theme(app, mode)

    app.styleHints().colorSchemeChanged.connect(follow_system)
    return app


def log_uncaught_exceptions() -> None:
    """Send exceptions that escape a Qt slot to the log file (``engine.logs``) as well as stderr; the
    window keeps running (PySide6 reports them and goes on)."""
    from engine.logs import log_exception

    previous = sys.excepthook

    def hook(kind, exc, tb) -> None:
        if exc is not None and not isinstance(exc, KeyboardInterrupt):
            log_exception(exc.with_traceback(tb), "app")
        previous(kind, exc, tb)

    sys.excepthook = hook


def run(model: str | None = None) -> int:
    """Open the main window (loading ``model`` if given) and run the event loop; returns the exit status."""
    from .main_window import MainWindow

    log_uncaught_exceptions()
    app = create_app()
    window = MainWindow(model_path=model)
    window.show()
    return app.exec()


def main(argv: list[str] | None = None) -> int:
    """``fireside-gui [MODEL.gguf]``."""
    p = argparse.ArgumentParser(prog="fireside-gui", description="The Fireside desktop app.")
    add_gui_args(p)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    from .options import cmd_gui

    return cmd_gui(args)


if __name__ == "__main__":
    sys.exit(main())
