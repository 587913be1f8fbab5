"""A tool-capable copy of SmolLM2: the starter file with Qwen2.5-7B-Instruct's chat template (which renders
``tools`` and ``<tool_call>`` history, ``tests/data/chat_templates``) in ``tokenizer.chat_template``; both use
ChatML's ``<|im_start|>`` / ``<|im_end|>``. Built once into ``.cache/zoo-tools`` (git ignored) with the zoo's
reader and writer, named by a hash of the template and of this file."""
from __future__ import annotations

import hashlib
from pathlib import Path

from gguf import GGUFValueType

from zoo import ROOT, _write, read_source

TEMPLATE = Path(__file__).parent / "data" / "chat_templates" / "Qwen-Qwen2.5-7B-Instruct.jinja"
OUT_DIR = ROOT / ".cache" / "zoo-tools"


def build_tool_model(source: Path) -> Path:
    """The copy of ``source`` with the Qwen2.5 template (built if missing); returns its path."""
    template = TEMPLATE.read_text()
    tag = hashlib.sha256(template.encode() + Path(__file__).read_bytes()).hexdigest()[:12]
    path = OUT_DIR / f"{source.stem}-qwen-tools-{tag}.gguf"
    if path.is_file():
        return path
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    src = read_source(source)
    kv = dict(src.kv)
    kv["tokenizer.chat_template"] = (template, (GGUFValueType.STRING, None))
    _write(path, src.arch, kv, src.tensors)
    return path
