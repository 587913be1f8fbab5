"""The model card: what the loaded model is (from ``model.info``) and how it is run."""
from __future__ import annotations

from html import escape

from PySide6.QtWidgets import QFrame, QLabel, QVBoxLayout, QWidget


def format_params(n: int) -> str:
    """A parameter count for people: 134515008 -> "135M", 2.6e9 -> "2.6B"."""
    if n >= 1e9:
        return f"{n / 1e9:.1f}B"
    if n >= 1e6:
        return f"{n / 1e6:.0f}M"
    return f"{n / 1e3:.0f}K"


def format_size(n_bytes: int) -> str:
    """A file size in binary units: "94 MiB", "4.1 GiB"."""
    if n_bytes >= 2**30:
        return f"{n_bytes / 2**30:.1f} GiB"
    return f"{n_bytes / 2**20:.0f} MiB"


def card_fields(info, n_ctx: int | None = None) -> list[tuple[str, str]]:
    """``(label, value)`` rows for a :class:`engine.model.ModelInfo` (and the context in use, tokens)."""
    ctx = f"{info.n_ctx_train:,} tokens"
    if n_ctx:
        ctx += f" (using {n_ctx:,})"
    return [
        ("Architecture", info.architecture),
        ("Parameters", format_params(info.n_params)),
        ("Quantization", info.quantization),
        ("File size", format_size(info.file_size)),
        ("Context length", ctx),
        ("Chat template", "present" if info.has_chat_template else "none (a generic fallback is used)"),
    ]


class ModelCard(QFrame):
    """A compact card: the model's name on top, then its fields on one wrapped line."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("modelCard")
        self.title = QLabel(self)
        self.title.setObjectName("modelTitle")
        self.details = QLabel(self)
        self.details.setWordWrap(True)
        box = QVBoxLayout(self)
        box.setContentsMargins(12, 6, 12, 6)
        box.setSpacing(2)
        box.addWidget(self.title)
        box.addWidget(self.details)

    def show_model(self, info, n_ctx: int | None = None) -> None:
        """Fill the card from a ModelInfo."""
        self.title.setText(info.name)
        self.details.setText(" &nbsp;·&nbsp; ".join(f"<b>{escape(k)}</b> {escape(v)}" for k, v in card_fields(info, n_ctx)))

    def text(self) -> str:
        """The card's plain text (name and fields)."""
        return f"{self.title.text()}\n{self.details.text()}"
