"""System-prompt presets: a few built in, plus the user's own kept in the settings (no widgets here).

:class:`PresetLibrary` lists them (built-ins first, then the user's in saved order) and saves or deletes
the user's through :meth:`gui.settings.Settings.set_prompt_presets`. Built-ins cannot be changed or
deleted, and no user preset may take a built-in's name.
"""
from __future__ import annotations

from dataclasses import dataclass

from .settings import Settings

MAX_NAME_CHARS = 60


@dataclass(frozen=True)
class PromptPreset:
    """A named system prompt; ``builtin`` True for the app's own (read-only) presets."""

    name: str
    text: str
    builtin: bool = False


BUILTIN_PRESETS = (
    PromptPreset("Helpful assistant", "You are a helpful, honest assistant. Answer clearly and say when you "
                 "are not sure.", True),
    PromptPreset("Concise", "Answer as briefly as possible: one or two sentences, no preamble.", True),
    PromptPreset("Programmer", "You are an expert programmer. Give working code in fenced code blocks with "
                 "the language named, then a short explanation.", True),
    PromptPreset("Translator", "Translate the user's text into English (or into the language they ask "
                 "for). Reply with the translation only.", True),
    PromptPreset("Teacher", "Explain step by step, as to a curious beginner, with a small example.", True),
)


class PresetError(ValueError):
    """A preset cannot be saved or deleted; the message says why, for the user."""


class PresetLibrary:
    """The built-in presets and the user's saved ones.

    Args:
        settings: where the user's presets are kept.
    """

    def __init__(self, settings: Settings):
        self.settings = settings

    def all(self) -> list[PromptPreset]:
        """Built-ins first, then the user's (a saved one that clashes with a built-in's name is hidden)."""
        builtin_names = {p.name for p in BUILTIN_PRESETS}
        user = [PromptPreset(n, t) for n, t in self.settings.prompt_presets() if n not in builtin_names]
        return [*BUILTIN_PRESETS, *user]

    def get(self, name: str) -> PromptPreset | None:
        """The preset called ``name``, or None."""
        return next((p for p in self.all() if p.name == name), None)

    def save(self, name: str, text: str) -> PromptPreset:
        """Save ``text`` as the user preset ``name`` (blanks around the name stripped), replacing one of that
        name; a new one goes last.

        Returns:
            The saved preset.

        Raises:
            PresetError: the name is empty, too long or a built-in's, or the text is blank.
        """
        name = " ".join(name.split())
        if not name:
            raise PresetError("Give the preset a name.")
        if len(name) > MAX_NAME_CHARS:
            raise PresetError(f"A preset name can have at most {MAX_NAME_CHARS} characters.")
        if any(p.name == name for p in BUILTIN_PRESETS):
            raise PresetError(f"\u201c{name}\u201d is a built-in preset; choose another name.")
        if not text.strip():
            raise PresetError("The prompt is empty: write it first, then save it as a preset.")
        user = self.settings.prompt_presets()
        if any(n == name for n, _ in user):
            user = [(n, text if n == name else t) for n, t in user]
        else:
            user.append((name, text))
        self.settings.set_prompt_presets(user)
        return PromptPreset(name, text)

    def delete(self, name: str) -> None:
        """Delete the user preset ``name``.

        Raises:
            PresetError: it is a built-in, or there is no such preset.
        """
        if any(p.name == name for p in BUILTIN_PRESETS):
            raise PresetError(f"\u201c{name}\u201d is built in and cannot be deleted.")
        user = self.settings.prompt_presets()
        if not any(n == name for n, _ in user):
            raise PresetError(f"There is no preset \u201c{name}\u201d.")
        self.settings.set_prompt_presets([(n, t) for n, t in user if n != name])
