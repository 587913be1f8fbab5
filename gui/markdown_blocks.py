"""Split a Markdown message into prose and fenced code blocks (no Qt), so each code block gets its own
widget with a Copy button.

Fences follow CommonMark (https://spec.commonmark.org/0.31.2/#fenced-code-blocks): a line of three or
more backticks or tildes, indented by at most three spaces, opens a block whose first word is its
language; a line with the same character, at least as many of them and nothing else, closes it. A
block still open at the end (a reply being streamed) runs to the end of the text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$")


@dataclass(frozen=True)
class Block:
    """``kind`` "text" (Markdown) or "code" (verbatim ``text``, ``lang`` possibly "").

    ``closed``: False for a code block whose closing fence has not come yet (a reply being streamed);
    not part of equality.
    """

    kind: str
    text: str
    lang: str = ""
    closed: bool = field(default=True, compare=False)


def split_blocks(markdown: str) -> list[Block]:
    """Split ``markdown`` into alternating text and code blocks, in order; empty text blocks are dropped."""
    blocks: list[Block] = []
    prose: list[str] = []
    code: list[str] = []
    fence = ""  # the opening fence while inside a code block
    lang = ""
    for line in markdown.split("\n"):
        if not fence:
            m = _FENCE.match(line)
            if m:
                if "".join(prose).strip():
                    blocks.append(Block("text", "\n".join(prose).strip("\n")))
                prose, code, fence, lang = [], [], m.group(1), m.group(2)
            else:
                prose.append(line)
        else:
            stripped = line.strip()
            if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence) and len(line) - len(line.lstrip(" ")) <= 3:
                blocks.append(Block("code", "\n".join(code), lang))
                fence = ""
            else:
                code.append(line)
    if fence:
        blocks.append(Block("code", "\n".join(code), lang, closed=False))
    elif "".join(prose).strip():
        blocks.append(Block("text", "\n".join(prose).strip("\n")))
    return blocks
