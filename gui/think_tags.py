"""Split a reply's ``<think>...</think>`` reasoning from its answer (no Qt).

DeepSeek-R1 and its distills, Qwen3 and QwQ write their reasoning between ``<think>`` and ``</think>``
before the answer (their chat templates; Qwen3 writes an empty ``<think>\\n\\n</think>`` when thinking is
off). Some templates (DeepSeek-R1's) end the prompt with ``<think>\\n`` themselves, so the reply holds
only the closing tag: pass ``starts_in_reasoning=True`` for those.

Only a section at the start of the reply counts (after white space), so an answer that talks about the
tags, or shows them in code, is left alone. The text is parsed whole each time, so a tag cut between
two streamed tokens (``"</th"`` + ``"ink>"``) is simply complete on the next call; meanwhile a trailing
piece of a tag is held back from both parts rather than shown.
"""
from __future__ import annotations

from dataclasses import dataclass

OPEN, CLOSE = "<think>", "</think>"


@dataclass(frozen=True)
class ThinkSplit:
    """A reply split in two.

    Attributes:
        reasoning: the text inside the section, stripped of surrounding white space ("" if none).
        answer: the text after the section (all of the text when there is none), leading white space
            dropped.
        thinking: True while the section is open (no ``</think>`` yet): the model is still reasoning.
        has_section: the reply has a reasoning section (possibly empty).
    """

    reasoning: str
    answer: str
    thinking: bool
    has_section: bool


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that is a proper beginning of ``tag`` (0 if none)."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


def split_think(text: str, starts_in_reasoning: bool = False) -> ThinkSplit:
    """Split ``text``, a whole reply or the part streamed so far (see the module doc)."""
    body = text.lstrip()
    if not starts_in_reasoning:
        if not body.startswith(OPEN):
            if body and OPEN.startswith(body):  # "<thi": maybe a tag still arriving
                return ThinkSplit("", "", False, False)
            return ThinkSplit("", text, False, False)
        body = body[len(OPEN):]
    elif body.startswith(OPEN):  # the template opened the section and the model repeated the tag
        body = body[len(OPEN):]
    end = body.find(CLOSE)
    if end < 0:
        held = _partial_suffix(body, CLOSE)
        return ThinkSplit(body[:len(body) - held].strip(), "", True, True)
    return ThinkSplit(body[:end].strip(), body[end + len(CLOSE):].lstrip(), False, True)
