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


TEMPLATE_NAMES = {"model": "present", "gemma": "built-in Gemma template (the file has none)",
                  "chatml": "built-in ChatML template (the file has none)"}
BASE_MODEL_HINT = ("The file does not carry a chat template, so this is probably a base model: it continues text rather "
                   "than chatting, and replies may wander. For chat, look for an Instruct or -it version.")


def card_fields(info, n_ctx: int | None = None, template: str | None = None) -> list[tuple[str, str]]:
    """``(label, value)`` rows for a :class:`engine.model.ModelInfo`.

    Args:
        info: the model's ModelInfo. n_ctx: the context in use, tokens (None: not shown).
        template: the chat template in use, as :attr:`gui.engine_worker.LoadedModel.template` (``"model"``,
            ``"gemma"``, ``"chatml"``); None: say only whether the file has one.
    """
    if template is None:
        template = "model" if info.has_chat_template else "chatml"
    ctx = f"{info.n_ctx_train:,} tokens"
    if n_ctx:
        ctx += f" (using {n_ctx:,})"
    return [
        ("Architecture", info.architecture),
        ("Parameters", format_params(info.n_params)),
        ("Quantization", info.quantization),
        ("File size", format_size(info.file_size)),
        ("Context length", ctx),
        ("Chat template", TEMPLATE_NAMES.get(template, template)),
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
        self.hint = QLabel(self)  # the base-model hint, for files without a chat template
        self.hint.setObjectName("modelHint")
        self.hint.setWordWrap(True)
        self.hint.hide()
        box = QVBoxLayout(self)
        box.setContentsMargins(12, 6, 12, 6)
        box.setSpacing(2)
        box.addWidget(self.title)
        box.addWidget(self.details)
        box.addWidget(self.hint)

    def show_model(self, info, n_ctx: int | None = None, template: str | None = None, name: str | None = None) -> None:
        """Fill the card from a ModelInfo.

        Args:
            info, n_ctx, template: as :func:`card_fields`.
            name: the title (the window passes the file's stem); default ``info.name``. ``info.name``
                (``general.name``) is the title's tooltip.
        """
        self.title.setText(name or info.name)
        self.title.setToolTip(f"general.name: {info.name}")
        self.details.setText(" &nbsp;·&nbsp; ".join(f"<b>{escape(k)}</b> {escape(v)}"
                                                   for k, v in card_fields(info, n_ctx, template)))
        self.hint.setText(BASE_MODEL_HINT)
        self.hint.setVisible(not info.has_chat_template)

    def show_message(self, title: str, details: str) -> None:
        """Show a title and a line of plain text instead of a model (no model loaded, loading)."""
        self.title.setText(title)
        self.title.setToolTip("")
        self.details.setText(escape(details))
        self.hint.hide()

    def text(self) -> str:
        """The card's plain text (name, fields and the hint when shown)."""
        hint = f"\n{self.hint.text()}" if not self.hint.isHidden() else ""
        return f"{self.title.text()}\n{self.details.text()}{hint}"
