"""Supported architectures, keyed by ``general.architecture``.

Adding one is one file with a ``read_hparams(gf) -> HParams`` function plus a line here.
"""
from __future__ import annotations

from types import ModuleType

from . import gemma3, llama

ARCHITECTURES: dict[str, ModuleType] = {
    "llama": llama,
    "gemma3": gemma3,
}
# Files that name another architecture but are llama blocks with no differences that matter here.
ALIASES: dict[str, str] = {
    "mistral": "llama",
}


def supported_architectures() -> list[str]:
    """Names accepted in ``general.architecture``, sorted."""
    return sorted([*ARCHITECTURES, *ALIASES])


def architecture_module(name: str) -> ModuleType | None:
    """Return the module describing an architecture, or None if unsupported."""
    return ARCHITECTURES.get(ALIASES.get(name, name))
