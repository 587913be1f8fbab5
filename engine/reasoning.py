"""Separate a chat reply's reasoning from its answer, for chat formats that mark them.

gpt-oss's harmony format (OpenAI's harmony response format; llama.cpp ``common/chat.cpp``, its gpt-oss
parser): after the prompt's ``<|start|>assistant`` the model writes messages on channels,

    <|channel|>analysis<|message|>the reasoning...<|end|><|start|>assistant<|channel|>final<|message|>the answer

ending with ``<|return|>`` (or ``<|call|>`` after a tool call), both end-of-generation tokens that never
reach the text. ``analysis`` is reasoning, ``final`` the answer; ``commentary`` is a preamble shown to the
user, or, addressed ``to=functions.NAME``, a tool call (not shown: tool calls are parsed elsewhere). Text
before any channel header counts as the answer, so a model that ignores the format loses nothing.
"""
from __future__ import annotations

HARMONY = "harmony"

_CHANNEL, _MESSAGE, _END, _START = "<|channel|>", "<|message|>", "<|end|>", "<|start|>"
_MARKERS = (_CHANNEL, _MESSAGE, _END, _START)


class HarmonySplitter:
    """Incremental splitter of a harmony reply into (answer, reasoning) text.

    Feed the decoded pieces in order with :meth:`push` (markers may be cut anywhere between pieces);
    :meth:`flush` at the end returns what was held back.
    """

    def __init__(self) -> None:
        self._buf = ""
        self._mode = "body"      # body: text of the current message; header: a channel header; role: after <|start|>
        self._sink = "content"   # where body text goes: content, reasoning, or None (a tool call)
        self._header = ""

    def _route(self, header: str) -> str | None:
        words = header.split()
        channel = words[0] if words else ""
        if channel == "analysis":
            return "reasoning"
        if channel == "commentary" and "to=" in header:
            return None
        return "content"

    def push(self, text: str) -> tuple[str, str]:
        """Add decoded text; returns the (answer, reasoning) text it completes."""
        self._buf += text
        content: list[str] = []
        reasoning: list[str] = []

        def emit(s: str) -> None:
            if not s:
                return
            if self._mode == "header":
                self._header += s
            elif self._mode == "body" and self._sink == "content":
                content.append(s)
            elif self._mode == "body" and self._sink == "reasoning":
                reasoning.append(s)
            # role text (the "assistant" after <|start|>) and tool calls are dropped

        while self._buf:
            i = self._buf.find("<|")
            if i < 0:
                # keep a trailing "<" that may start a marker
                keep = 1 if self._buf.endswith("<") else 0
                emit(self._buf[:len(self._buf) - keep])
                self._buf = self._buf[len(self._buf) - keep:]
                break
            emit(self._buf[:i])
            self._buf = self._buf[i:]
            marker = next((m for m in _MARKERS if self._buf.startswith(m)), None)
            if marker is None:
                if any(m.startswith(self._buf) for m in _MARKERS):
                    break  # a marker cut between pieces: wait for the rest
                emit("<|")  # not a marker: plain text
                self._buf = self._buf[2:]
                continue
            self._buf = self._buf[len(marker):]
            if marker == _CHANNEL:
                self._mode, self._header = "header", ""
            elif marker == _MESSAGE:
                if self._mode == "header":
                    self._sink = self._route(self._header)
                self._mode = "body"
            elif marker == _END:
                self._mode, self._sink = "role", None
            else:  # <|start|>
                self._mode, self._sink = "role", None
        return "".join(content), "".join(reasoning)

    def flush(self) -> tuple[str, str]:
        """The held-back text (a partial marker that never completed), as plain text of the current message."""
        rest, self._buf = self._buf, ""
        if self._mode == "body" and self._sink == "content":
            return rest, ""
        if self._mode == "body" and self._sink == "reasoning":
            return "", rest
        return "", ""


def reply_format(chat_template_source: str | None, is_token) -> str | None:
    """The reply format of a model: :data:`HARMONY` when its chat template writes harmony channels and
    ``is_token(text)`` says its vocabulary has the channel tokens; None otherwise (plain text)."""
    if chat_template_source and _CHANNEL in chat_template_source and is_token(_CHANNEL) and is_token(_MESSAGE):
        return HARMONY
    return None


def model_reply_format(model) -> str | None:
    """:func:`reply_format` of a loaded :class:`~engine.model.Model`."""
    tok = model.tokenizer

    def is_token(text: str) -> bool:
        return len(tok.encode(text, add_special=False, parse_special=True)) == 1

    return reply_format(getattr(model.chat_template, "source", None), is_token)


def splitter(fmt: str | None) -> HarmonySplitter | None:
    """A fresh splitter for a reply format (None for plain text)."""
    return HarmonySplitter() if fmt == HARMONY else None
