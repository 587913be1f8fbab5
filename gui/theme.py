"""Light and dark themes: the Fusion style with a light or dark palette, plus a small style sheet for the
chat's own widgets (message bubbles, code blocks, banners, model card).

"system" follows the platform's colour scheme (``QStyleHints.colorScheme``, Qt 6.5+) and switches when
it changes; where the platform says nothing (offscreen, some Linux desktops) it is light.

Code blocks are coloured by a Pygments style per theme (:data:`CODE_STYLES`), chosen so that every token
colour has a contrast of at least 4.5:1 (WCAG 2.2 AA for text) against that theme's code background.
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

_DARK = {
    QPalette.ColorRole.Window: "#202124", QPalette.ColorRole.WindowText: "#e8eaed",
    QPalette.ColorRole.Base: "#17181a", QPalette.ColorRole.AlternateBase: "#2a2b2e",
    QPalette.ColorRole.Text: "#e8eaed", QPalette.ColorRole.Button: "#2d2e31",
    QPalette.ColorRole.ButtonText: "#e8eaed", QPalette.ColorRole.Highlight: "#d9822b",
    QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.ToolTipBase: "#2d2e31",
    QPalette.ColorRole.ToolTipText: "#e8eaed", QPalette.ColorRole.Link: "#f0a45d",
    QPalette.ColorRole.PlaceholderText: "#8a8d91", QPalette.ColorRole.Mid: "#3c3d40",
    QPalette.ColorRole.Dark: "#111214", QPalette.ColorRole.Light: "#3a3b3f",
}
# Bubble, code, border, error and info colours per theme.
_COLOURS = {
    "light": dict(user="#fdf1e4", assistant="#ffffff", code="#f4f5f7", border="#dadce0", muted="#5f6368",
                  error_bg="#fde7e7", error_fg="#8a1c1c", info_bg="#e8f0fe", info_fg="#1a3d7c", accent="#c8641e"),
    "dark": dict(user="#3a2c20", assistant="#26272a", code="#1a1b1d", border="#3c3d40", muted="#a0a4a8",
                 error_bg="#4a1f1f", error_fg="#ffd7d7", info_bg="#1f2f4a", info_fg="#d7e6ff", accent="#f0a45d"),
}

# Pygments styles (https://pygments.org/styles/) for code blocks; only their token colours are used, on
# the theme's own "code" background. Worst token contrast: xcode 4.65 on #f4f5f7, one-dark 4.59 on #1a1b1d.
CODE_STYLES = {"light": "xcode", "dark": "one-dark"}
_THEME_PROPERTY = "firesideTheme"  # the QApplication property apply_theme sets to "light" or "dark"


def colours(name: str) -> dict[str, str]:
    """The named colours ("#rrggbb") of theme ``name`` ("light" or "dark"): user, assistant, code, border,
    muted, error_bg, error_fg, info_bg, info_fg, accent. Raises KeyError for another name."""
    return dict(_COLOURS[name])


def current(app: QApplication | None = None) -> str:
    """The theme in use, "light" or "dark": the one :func:`apply_theme` applied last, else judged from the
    palette (a dark window colour means dark)."""
    app = app or QApplication.instance()
    if app is None:
        return "light"
    name = app.property(_THEME_PROPERTY)
    if name in _COLOURS:
        return name
    return "dark" if app.palette().color(QPalette.ColorRole.Window).lightness() < 128 else "light"


def resolve(mode: str, app: QApplication | None = None) -> str:
    """``"light"`` or ``"dark"`` for a theme setting ("system", "light", "dark")."""
    if mode in ("light", "dark"):
        return mode
    app = app or QApplication.instance()
    return "dark" if app is not None and app.styleHints().colorScheme() == Qt.ColorScheme.Dark else "light"


def style_sheet(name: str) -> str:
    """The style sheet of the chat widgets for theme ``name`` ("light" or "dark")."""
    c = _COLOURS[name]
    return f"""
    QFrame#userMessage {{ background: {c['user']}; border: 1px solid {c['border']}; border-radius: 10px; }}
    QFrame#assistantMessage {{ background: {c['assistant']}; border: 1px solid {c['border']}; border-radius: 10px; }}
    QFrame#userMessage QTextBrowser, QFrame#assistantMessage QTextBrowser {{ background: transparent; }}
    QFrame#codeBlock {{ background: {c['code']}; border: 1px solid {c['border']}; border-radius: 6px; }}
    QLabel#codeLang, QLabel#messageRole {{ color: {c['muted']}; font-weight: bold; }}
    QLabel#replyStats {{ color: {c['muted']}; font-size: 8pt; }}
    QLabel#cutOffMarker {{ color: {c['accent']}; font-weight: bold; }}
    QToolButton#reasoningToggle {{ color: {c['muted']}; font-style: italic; }}
    QFrame#reasoningBody {{ border-left: 3px solid {c['border']}; }}
    QFrame#reasoningBody QTextBrowser {{ color: {c['muted']}; }}
    QFrame#modelCard {{ border-bottom: 1px solid {c['border']}; }}
    QLabel#modelTitle {{ font-size: 13pt; font-weight: bold; }}
    QLabel#welcomeTitle {{ font-size: 20pt; font-weight: bold; color: {c['accent']}; }}
    QFrame#dropZone {{ border: 2px dashed {c['border']}; border-radius: 12px; }}
    QFrame#errorBanner {{ background: {c['error_bg']}; color: {c['error_fg']}; border-radius: 6px; }}
    QFrame#errorBanner QLabel {{ color: {c['error_fg']}; }}
    QFrame#infoBanner {{ background: {c['info_bg']}; border-radius: 6px; }}
    QFrame#infoBanner QLabel {{ color: {c['info_fg']}; }}
    """


def apply_theme(app: QApplication, mode: str) -> str:
    """Apply a theme setting to the whole app; returns the theme used ("light" or "dark")."""
    name = resolve(mode, app)
    app.setProperty(_THEME_PROPERTY, name)  # before the palette, so PaletteChange handlers see the new theme
    app.setStyle("Fusion")
    if name == "dark":
        pal = QPalette()
        for role, colour in _DARK.items():
            pal.setColor(role, QColor(colour))
        for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
            pal.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6f7276"))
    else:
        pal = app.style().standardPalette()
    app.setPalette(pal)
    app.setStyleSheet(style_sheet(name))
    return name
