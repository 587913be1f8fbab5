"""Which model a reopened conversation was held with, and whether to offer loading it (no Qt here).

The store keeps each conversation's model (:meth:`gui.conversations.ConversationStore.set_model`): the
full path of the file that answered, or only its file name for an imported chat, or for a remote model
``"<API root>#<model id>"`` (:attr:`gui.remote_engine.RemoteModel.path`). When the user opens a
conversation while another model (or none) is loaded, :func:`model_to_offer` says what to offer: nothing
for a remote model (it is picked again in File > Remote servers, which holds its address and key).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .chat_export import model_name
from .conversations import Conversation


@dataclass(frozen=True)
class ModelOffer:
    """A model to offer for a conversation.

    Attributes:
        name: the model's file name ("SmolLM2-135M-Instruct.Q4_1.gguf").
        path: the file to load, or None when it is neither where it was nor in the models folder.
    """

    name: str
    path: Path | None

    def message(self) -> str:
        """A sentence for the window's banner."""
        if self.path is None:
            return f"This chat was with {self.name}, which is not in your models folder."
        return f"This chat was with {self.name}. Load it?"

    def button(self) -> str | None:
        """The banner button's label ("Load <name>"), None when there is nothing to load."""
        return None if self.path is None else f"Load {self.name}"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.expanduser().absolute() == b.expanduser().absolute()


def is_remote_path(model_path: str | None) -> bool:
    """Whether a stored model path names a remote model (``http(s)://…#model``), not a file."""
    text = (model_path or "").strip().lower()
    return text.startswith(("http://", "https://")) and "#" in text


def model_to_offer(conv: Conversation, loaded: str | Path | None, models_dir: str | Path) -> ModelOffer | None:
    """What to offer when ``conv`` is opened with ``loaded`` the model in use.

    The stored file is looked for where it was, then by name directly in ``models_dir`` (one ``stat`` each,
    no folder scan).

    Args:
        conv: the conversation being opened.
        loaded: the loaded model's path, None if none is.
        models_dir: the models folder (``Settings.models_folder()``).

    Returns:
        None when the conversation has no model recorded, its model is a remote one
        (:func:`is_remote_path`: never looked for as a file), or its model is the loaded one (the same
        file, or a file of the same name: a copy or a moved file); otherwise a :class:`ModelOffer` (its ``path``
        None if the file cannot be found).
    """
    if is_remote_path(conv.model_path):
        return None
    name = model_name(conv.model_path)
    if name is None:
        return None
    if loaded is not None and not is_remote_path(str(loaded)) and Path(loaded).name == name:
        return None
    stored = Path(conv.model_path).expanduser()
    candidates = [stored] if stored.name != conv.model_path else []  # a bare name is only looked up
    candidates.append(Path(models_dir).expanduser() / name)
    found = next((p for p in candidates if p.is_file()), None)
    if found is not None and loaded is not None and not is_remote_path(str(loaded)) \
            and _same_file(found, Path(loaded)):
        return None
    return ModelOffer(name, found)
