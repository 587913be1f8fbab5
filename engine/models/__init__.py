"""Supported architectures, keyed by ``general.architecture``.

Each module owns one architecture: ``read_hparams(gf) -> HParams`` (hyper-parameters and the switches
of the compiled block) and ``tensors(hp) -> TensorTable``. Adding one is one file plus a line here and
a zoo case (``engine/models/README.md``).
"""
from __future__ import annotations

from types import ModuleType

from . import (gemma2, gemma3, gpt_oss, granite, granitemoe, llama, mistral3, olmo2, olmoe, phi3, qwen2, qwen2moe,
               qwen3, qwen3moe, smollm3)

ARCHITECTURES: dict[str, ModuleType] = {
    "llama": llama,
    "qwen2": qwen2,
    "qwen2moe": qwen2moe,
    "qwen3": qwen3,
    "qwen3moe": qwen3moe,
    "phi3": phi3,
    "gemma2": gemma2,
    "gemma3": gemma3,
    "gpt-oss": gpt_oss,
    "granite": granite,
    "granitemoe": granitemoe,
    "olmo2": olmo2,
    "olmoe": olmoe,
    "smollm3": smollm3,
    "mistral3": mistral3,
}
# Files that name another architecture but are that architecture's blocks with no differences that matter.
ALIASES: dict[str, str] = {
    "mistral": "llama",
}
# Mixture-of-experts architectures llama.cpp runs; those without a module here are refused with a message
# saying that this kind of MoE model is not supported yet. A module that reads expert tensors sets MOE = True.
MOE_ARCHITECTURES = frozenset({
    "qwen2moe", "qwen3moe", "gpt-oss", "mixtral", "olmoe", "granitemoe", "deepseek", "deepseek2", "dbrx",
    "phimoe", "grok", "arctic", "jamba", "llama4", "minimax-m2", "glm4moe", "ernie4_5-moe", "hunyuan-moe",
    "dots1", "bailingmoe", "bailingmoe2", "qwen3next", "qwen3vlmoe", "lfm2moe", "smallthinker", "nemotron_h_moe",
})


def supported_architectures() -> list[str]:
    """Names accepted in ``general.architecture``, sorted."""
    return sorted([*ARCHITECTURES, *ALIASES])


def architecture_module(name: str) -> ModuleType | None:
    """Return the module describing an architecture, or None if unsupported."""
    return ARCHITECTURES.get(ALIASES.get(name, name))
