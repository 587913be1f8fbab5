"""Syntax highlighting of code blocks with Pygments, cheap enough to redo while a reply streams in.

:class:`IncrementalLexer` (no Qt) keeps the Pygments tokens of a code block as spans per line. While a
block grows it re-lexes only the text after an *anchor*: the start of a line whose preceding newline
Pygments lexed as plain whitespace (so not inside a multi-line string or comment, where the lexer would
be in another state). The anchor moves forward once more than :data:`CHUNK_CHARS` follow it, so each
update lexes at most about ``CHUNK_CHARS`` plus the new text, instead of the whole block. When the block
is complete (its closing fence arrived, or the reply ended) it is lexed once from the start, which
corrects any line the anchor heuristic got wrong.

Measured (Pygments 2.21, this project's 2-core build machine): lexing 8,000 characters of Python (about
2,000 tokens of a reply) takes 12-17 ms, re-done every 40 ms render (``gui/chat_view.py``) that would take
a third of the GUI thread; with the anchor an update lexes at most ~2,000 characters (3-4 ms).

:class:`CodeHighlighter` (a ``QSyntaxHighlighter``) shows those spans in a ``QTextDocument``, with the
colours of the theme's Pygments style (:data:`gui.theme.CODE_STYLES`); appended text is inserted at the
end of the document, so Qt re-lays out and re-highlights only the lines that changed.

The first block of a language costs more: importing its lexer module and compiling its regular
expressions took 61 ms for Python here (9-25 ms for bash, Rust, C++, JavaScript). :func:`warm_up` does
that for common languages in a background thread at start-up, so a reply's first code block does not.

A block without a language, or with one Pygments does not know, is plain text: ``pygments.lexers.
guess_lexer`` takes 90-160 ms per call here and guessed "Tera Term macro" for JavaScript and "scdoc" for
SQL, so it is not used.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING

from PySide6.QtGui import QColor, QFont, QSyntaxHighlighter, QTextCharFormat, QTextCursor, QTextDocument

from .theme import CODE_STYLES

if TYPE_CHECKING:
    from pygments.lexer import Lexer
    from pygments.token import _TokenType

# Pygments is imported on first use (a first code block, or warm_up), not with the chat's widgets: a
# window that shows no code keeps its ~1,300 objects out of the heap that every full GC pass walks.

CHUNK_CHARS = 2000
# Fence languages models write most; :func:`warm_up` prepares their lexers.
COMMON_LANGUAGES = ("python", "bash", "javascript", "typescript", "json", "c", "cpp", "rust", "go", "java",
                    "html", "css", "sql", "yaml")

Span = tuple  # (column, length, Pygments token type) within one line


@lru_cache(maxsize=64)
def lexer_for(lang: str) -> Lexer | None:
    """The Pygments lexer for a fence's language name or alias ("python", "py", "js", "c++", ...), or None
    when ``lang`` is empty or unknown (the block is then plain text). Lexers keep every character
    (no stripping), so token offsets are offsets in the block's text."""
    name = lang.strip().lower()
    if not name:
        return None
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        return get_lexer_by_name(name, stripnl=False, stripall=False, ensurenl=False)
    except ClassNotFound:
        return None


def warm_up(langs: Iterable[str] = COMMON_LANGUAGES) -> threading.Thread:
    """Import and compile the lexers of ``langs`` in a daemon thread (started, and returned) so that the
    first code block in each language is not delayed in the GUI thread. Unknown names are skipped."""
    def run() -> None:
        for lang in langs:
            lexer = lexer_for(lang)
            if lexer is not None:
                list(lexer.get_tokens_unprocessed("x\n"))  # creating it compiled its rules; lex once too

    thread = threading.Thread(target=run, name="fireside-lexers", daemon=True)
    thread.start()
    return thread


class IncrementalLexer:
    """The Pygments tokens of one code block as spans per line, updated as the block grows.

    Args:
        lang: the fence's language (see :func:`lexer_for`); unknown or empty gives no spans.

    Attributes:
        lines: per line of the text, the ``(column, length, token type)`` spans, in order.
        lexed_chars: how many characters were given to the lexer so far (the work done).
    """

    def __init__(self, lang: str = ""):
        self.lang = lang
        self.lexer = lexer_for(lang)
        self.text = ""
        self.lines: list[list[Span]] = [[]]
        self.lexed_chars = 0
        self._anchor_line = 0  # lines before it are not lexed again until the block is final
        self._anchor_pos = 0   # offset in text of the anchor line's first character
        self._final = False

    def update(self, text: str, final: bool = False) -> set[int]:
        """Lex ``text``, the block's whole current text; ``final`` when it will not grow any more.

        Returns:
            the numbers of the lines whose spans differ from before (lines past the old end included).
        """
        if text == self.text and (self._final or not final):
            return set()
        grows = text.startswith(self.text) and not final
        if not grows:
            self._anchor_line = self._anchor_pos = 0
        old, first = self.lines, self._anchor_line
        self.text, self._final = text, final
        tail_lines, safe = self._lex(text[self._anchor_pos:])
        self.lines = old[:first] + tail_lines
        if grows:
            self._move_anchor(safe)
        return {i for i in range(first, len(self.lines)) if i >= len(old) or old[i] != self.lines[i]}

    def _lex(self, tail: str) -> tuple[list[list[Span]], list[int]]:
        """Spans per line of ``tail`` (which starts a line), and the tail-relative numbers of the lines
        that start after a newline lexed as whitespace."""
        lines: list[list[Span]] = [[]]
        safe: list[int] = []
        if self.lexer is None:
            lines = [[] for _ in range(tail.count("\n") + 1)]
            return lines, []
        self.lexed_chars += len(tail)
        from pygments.token import Text

        line_start = 0
        for pos, ttype, value in self.lexer.get_tokens_unprocessed(tail):
            for k, part in enumerate(value.split("\n")):
                if k:
                    line_start = pos
                    lines.append([])
                    if ttype in Text:
                        safe.append(len(lines) - 1)
                if part:
                    lines[-1].append((pos - line_start, len(part), ttype))
                    pos += len(part)
                pos += 1  # the "\n" that followed this part, if any
        while len(lines) < tail.count("\n") + 1:  # a lexer that dropped trailing text: keep the count right
            lines.append([])
        return lines, safe

    def _move_anchor(self, safe: list[int]) -> None:
        """Move the anchor to the last safe line start when more than CHUNK_CHARS follow it."""
        if len(self.text) - self._anchor_pos <= CHUNK_CHARS or not safe:
            return
        last_line = self.text.count("\n", self._anchor_pos)  # tail-relative number of the (growing) last line
        candidates = [i for i in safe if 0 < i < last_line]
        if not candidates:
            return
        rel = candidates[-1]
        pos = self._anchor_pos
        for _ in range(rel):
            pos = self.text.index("\n", pos) + 1
        self._anchor_line += rel
        self._anchor_pos = pos


@lru_cache(maxsize=1024)
def char_format(style_name: str, ttype: _TokenType) -> QTextCharFormat:
    """The text format of Pygments token type ``ttype`` in style ``style_name``: its colour, bold,
    italic and underline (not its background: code blocks keep the theme's own)."""
    from pygments.styles import get_style_by_name

    st = get_style_by_name(style_name).style_for_token(ttype)
    fmt = QTextCharFormat()
    if st["color"]:
        fmt.setForeground(QColor("#" + st["color"]))
    if st["bold"]:
        fmt.setFontWeight(QFont.Weight.Bold)
    if st["italic"]:
        fmt.setFontItalic(True)
    if st["underline"]:
        fmt.setFontUnderline(True)
    return fmt


class CodeHighlighter(QSyntaxHighlighter):
    """Holds a code block's text in ``document`` and colours it with Pygments.

    Args:
        document: the (plain text) document of the code view; :meth:`set_code` sets its text.
        theme: "light" or "dark", selecting the Pygments style in :data:`gui.theme.CODE_STYLES`.
    """

    def __init__(self, document: QTextDocument, theme: str = "light"):
        super().__init__(document)
        document.setUndoRedoEnabled(False)  # a streamed block is thousands of edits; nothing to undo
        self.theme = theme
        self.style_name = CODE_STYLES[theme]
        self.lexer = IncrementalLexer("")

    def set_code(self, text: str, lang: str = "", final: bool = False) -> None:
        """Show ``text`` in language ``lang``; ``final`` when the block is complete (see the module doc).

        Text that extends the current text is appended, so only the changed lines are laid out again.
        """
        if lang != self.lexer.lang:
            self.lexer = IncrementalLexer(lang)
        doc = self.document()
        old = doc.toPlainText()
        n_old = doc.blockCount()
        changed = self.lexer.update(text, final)
        if text != old:
            if text.startswith(old):
                cursor = QTextCursor(doc)
                cursor.movePosition(QTextCursor.MoveOperation.End)
                cursor.insertText(text[len(old):])  # Qt re-highlights the edited and the new lines
            else:
                doc.setPlainText(text)  # every line is highlighted again
                return
        for i in sorted(changed):
            if i < n_old - 1 or text == old:  # lines the edit did not touch
                self.rehighlightBlock(doc.findBlockByNumber(i))

    def set_theme(self, theme: str) -> None:
        """Recolour with the Pygments style of ``theme`` ("light" or "dark")."""
        if theme != self.theme:
            self.theme, self.style_name = theme, CODE_STYLES[theme]
            self.rehighlight()

    def format_at(self, line: int, column: int) -> QTextCharFormat:
        """The highlight format applied at ``column`` of line ``line`` (an empty format where none is)."""
        ranges = self.document().findBlockByNumber(line).layout().formats()
        for r in ranges:
            if r.start <= column < r.start + r.length:
                return QTextCharFormat(r.format)
        return QTextCharFormat()

    def highlightBlock(self, text: str) -> None:  # noqa: N802 - Qt's name
        """Qt calls this for each line to colour; the spans come from :class:`IncrementalLexer`."""
        n = self.currentBlock().blockNumber()
        if 0 <= n < len(self.lexer.lines):
            for col, length, ttype in self.lexer.lines[n]:
                self.setFormat(col, length, char_format(self.style_name, ttype))
