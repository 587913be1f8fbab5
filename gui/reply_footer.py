"""Under a finished reply: a cut-off marker with a Continue button (when it was cut by max tokens or
stopped), and a small muted line of its numbers (``engine.generate.GenerationStats``)."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

# GenerationStats.finish_reason (engine/generate.py) in words.
_REASONS = {"stop": "finished", "length": "max tokens", "cancelled": "stopped"}


def stats_text(stats) -> str:
    """One line of a reply's numbers, e.g. "24 tokens · 41.3 tokens/s · first token 0.12 s · finished".

    Args:
        stats: an ``engine.generate.GenerationStats``: ``n_generated`` tokens, ``decode_tps`` (tokens/s,
            left out when 0: fewer than two tokens), ``prefill_s`` (the prompt's processing, after which the
            first token is sampled: the time to first token, seconds), ``finish_reason`` and
            ``context_full``.
    """
    n = stats.n_generated
    parts = [f"{n} token" if n == 1 else f"{n} tokens"]
    if stats.decode_tps > 0:
        parts.append(f"{stats.decode_tps:.1f} tokens/s")
    if stats.prefill_s > 0:
        parts.append(f"first token {stats.prefill_s:.2f} s")
    reason = "context full" if stats.context_full else _REASONS.get(stats.finish_reason, stats.finish_reason)
    if reason:
        parts.append(reason)
    return " · ".join(parts)


def cut_off_text(stats) -> str:
    """The marker of a reply that did not finish by itself ("" when it did): "Cut off at max tokens",
    "Cut off: the context window is full" or "Stopped"."""
    if stats.finish_reason == "length":
        return "Cut off: the context window is full" if stats.context_full else "Cut off at max tokens"
    if stats.finish_reason == "cancelled":
        return "Stopped"
    return ""


class ReplyFooter(QWidget):
    """The marker row (``marker`` label, ``continue_button``) and the ``stats`` label; hidden until
    :meth:`show_stats`. The Continue button is offered for a reply cut by max tokens or stopped, not for a
    full context (continuing could not fit)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.marker = QLabel(self)
        self.marker.setObjectName("cutOffMarker")
        self.continue_button = QToolButton(self, text="Continue", toolTip="Generate more of this reply")
        self.stats = QLabel(self)
        self.stats.setObjectName("replyStats")
        self.stats.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.marker)
        row.addWidget(self.continue_button)
        row.addStretch(1)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 2, 0, 0)
        box.setSpacing(2)
        box.addLayout(row)
        box.addWidget(self.stats)
        self.can_continue = False
        self.marker.hide()
        self.continue_button.hide()
        self.hide()

    def clear(self) -> None:
        """Hide the numbers and the marker (the reply is being continued)."""
        self.can_continue = False
        self.marker.hide()
        self.continue_button.hide()
        self.hide()

    def show_stats(self, stats) -> None:
        """Show the numbers and, if the reply was cut, the marker and Continue (see :func:`stats_text`)."""
        self.stats.setText(stats_text(stats))
        self.stats.setToolTip(f"Prompt: {stats.n_prompt} tokens ({stats.n_reused} from the cache), "
                              f"read at {stats.prefill_tps:.1f} tokens/s")
        marker = cut_off_text(stats)
        self.marker.setText(marker)
        self.marker.setVisible(bool(marker))
        self.can_continue = bool(marker) and not stats.context_full
        self.continue_button.setVisible(self.can_continue)
        self.show()
