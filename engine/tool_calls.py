"""Tool calls: which format a model writes them in, parsing them out of its reply (whole or streamed), the
grammar that forces one, and a fallback for chat templates that cannot render tools.

Formats (the model's own, picked from its chat template's text, as llama.cpp's ``common/chat.cpp`` picks
its ``common_chat_format``):

- ``"hermes"``: Hermes 2 Pro, Qwen2.5 and Qwen3 - ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>``,
  one block per call, text before the first block is content. Chosen when the template contains
  ``<tool_call>``, and for any other template that renders tools without a known marker.
- ``"llama3"``: Llama 3.1 / 3.2 / 3.3 - the whole reply is ``{"name": ..., "parameters": {...}}`` (several
  separated by ``;`` are accepted), optionally after ``<|python_tag|>``. Chosen when the template contains
  ``<|python_tag|>`` or ``ipython``.
- ``"mistral"``: Mistral / Mixtral / Mistral Nemo and Small - ``[TOOL_CALLS][{"name": ..., "arguments": {...}}]``,
  or the newer (v11+ tokenizer) ``[TOOL_CALLS]name[ARGS]{...}``; everything after the marker is calls.
  Chosen when the template contains ``[TOOL_CALLS]``.

The OpenAI side (https://platform.openai.com/docs/api-reference/chat/create): each parsed call becomes
``{"id": "call_...", "type": "function", "function": {"name": ..., "arguments": "<JSON text>"}}``; a reply
with calls has ``finish_reason: "tool_calls"`` and ``content: null`` when there is no other text. Text that
looks like a call but does not parse as one is left in ``content``, unchanged.

Templates that do not render tools (rendering with and without a tool gives the same text, e.g. SmolLM2's
ChatML or Gemma's) get the tools described in a system message in the Hermes/Qwen2.5 wording and their
tool-call / tool-result history written as ``<tool_call>`` / ``<tool_response>`` text (:func:`hermes_fallback`),
and replies are parsed as ``"hermes"``.
"""
from __future__ import annotations

import json
import re
import secrets
import string
import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from .constrain import JSON_OPTIONS, bounded_numbers

if TYPE_CHECKING:
    from .chat_template import ChatTemplate
    from .tokenizer import Tokenizer

HERMES, LLAMA3, MISTRAL = "hermes", "llama3", "mistral"

HERMES_OPEN, HERMES_CLOSE = "<tool_call>", "</tool_call>"
PYTHON_TAG = "<|python_tag|>"
MISTRAL_MARKER, MISTRAL_ARGS = "[TOOL_CALLS]", "[ARGS]"


@dataclass(frozen=True)
class ToolCall:
    """One parsed call: the function's name, its arguments as JSON text, and an id for the client."""

    name: str
    arguments: str
    id: str

    def openai(self, index: int | None = None) -> dict[str, Any]:
        """OpenAI's ``tool_calls[]`` entry (with ``index`` for a stream delta)."""
        out: dict[str, Any] = {"id": self.id, "type": "function",
                               "function": {"name": self.name, "arguments": self.arguments}}
        if index is not None:
            out = {"index": index, **out}
        return out


def new_call_id(fmt: str | None = None) -> str:
    """A fresh call id: ``call_`` + 24 hex digits, or 9 letters and digits for Mistral (its templates refuse
    any other length when the call comes back in the history)."""
    if fmt == MISTRAL:
        return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(9))
    return "call_" + secrets.token_hex(12)


def detect_format(template_source: str) -> str:
    """The tool-call format of a chat template (see the module docstring); ``"hermes"`` when none is recognized."""
    if MISTRAL_MARKER in template_source:
        return MISTRAL
    if HERMES_OPEN in template_source:
        return HERMES
    if PYTHON_TAG in template_source or "ipython" in template_source:
        return LLAMA3
    return HERMES


_PROBE_TOOLS = [{"type": "function", "function": {
    "name": "fireside_probe_tool", "description": "Probe.",
    "parameters": {"type": "object", "properties": {"x": {"type": "string"}}}}}]
_renders: "weakref.WeakKeyDictionary[ChatTemplate, bool]" = weakref.WeakKeyDictionary()
_renders_lock = threading.Lock()


def template_renders_tools(template: "ChatTemplate") -> bool:
    """Whether ``template`` puts a ``tools`` list into the prompt (probed once per template: the name of a probe
    tool must appear in the rendering)."""
    with _renders_lock:
        known = _renders.get(template)
    if known is None:
        probe = [{"role": "user", "content": "Hi"}]
        try:
            known = "fireside_probe_tool" in template.render(probe, tools=_PROBE_TOOLS)
        except Exception:  # noqa: BLE001 - a template that breaks on tools does not render them
            known = False
        with _renders_lock:
            _renders[template] = known
    return known


# ----------------------------------------------------------------------------- parsing whole replies


def _call_from_obj(obj: Any, fmt: str, args_keys: tuple[str, ...] = ("arguments", "parameters")) -> ToolCall | None:
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("function"), dict) and "name" not in obj:  # {"type": "function", "function": {...}}
        obj = obj["function"]
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return None
    args: Any = {}
    for key in args_keys:
        if key in obj:
            args = obj[key]
            break
    if isinstance(args, str):
        try:
            json.loads(args)
        except ValueError:
            return None
        text = args
    else:
        text = json.dumps(args, ensure_ascii=False)
    call_id = obj.get("id") if isinstance(obj.get("id"), str) and obj.get("id") else new_call_id(fmt)
    return ToolCall(name, text, call_id)


def _json_objects(text: str, sep: str = "") -> list[Any] | None:
    """Every JSON value in ``text`` (whitespace, and ``sep`` characters, between them), or None if anything else
    is there."""
    decoder = json.JSONDecoder()
    out, i = [], 0
    while True:
        while i < len(text) and (text[i].isspace() or text[i] in sep):
            i += 1
        if i >= len(text):
            return out
        try:
            value, i = decoder.raw_decode(text, i)
        except ValueError:
            return None
        out.append(value)


def _parse_hermes_block(body: str) -> ToolCall | None:
    try:
        return _call_from_obj(json.loads(body), HERMES)
    except ValueError:
        return None


def _parse_llama3(text: str) -> list[ToolCall] | None:
    body = text.strip()
    if body.startswith(PYTHON_TAG):
        body = body[len(PYTHON_TAG):]
    values = _json_objects(body, ";")
    if not values:
        return None
    calls = [_call_from_obj(v, LLAMA3, ("parameters", "arguments")) for v in values]
    return None if any(c is None for c in calls) else calls


def _parse_mistral(body: str) -> list[ToolCall] | None:
    """What follows the first ``[TOOL_CALLS]``: a JSON array (or object) of calls, or ``name[ARGS]{...}`` items
    (each after its own ``[TOOL_CALLS]``)."""
    if MISTRAL_ARGS in body:
        calls = []
        for item in body.split(MISTRAL_MARKER):
            if not item.strip():
                continue
            name, sep, args = item.partition(MISTRAL_ARGS)
            name = name.strip()
            if not sep or not name:
                return None
            call = _call_from_obj({"name": name, "arguments": _json_or_none(args)}, MISTRAL)
            if call is None:
                return None
            calls.append(call)
        return calls or None
    values = _json_objects(body)
    if not values:
        return None
    items = [x for v in values for x in (v if isinstance(v, list) else [v])]
    calls = [_call_from_obj(v, MISTRAL) for v in items]
    return None if not calls or any(c is None for c in calls) else calls


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return "\x00not json"  # a string that is not JSON text: _call_from_obj refuses it


_HERMES_BLOCK = re.compile(re.escape(HERMES_OPEN) + r"(.*?)(?:" + re.escape(HERMES_CLOSE) + r"|$)", re.DOTALL)


def parse(text: str, fmt: str) -> tuple[str | None, list[ToolCall]]:
    """Split a whole reply into its content and its tool calls.

    Returns:
        ``(content, calls)``: ``content`` is the reply with the parsed calls taken out and stripped, None when
        nothing is left and there are calls; ``calls`` is empty when the reply holds none (then ``content``
        is ``text`` unchanged).
    """
    calls: list[ToolCall] = []
    content = text
    if fmt == HERMES:
        parts, last = [], 0
        for m in _HERMES_BLOCK.finditer(text):
            call = _parse_hermes_block(m.group(1))
            if call is None:
                continue
            parts.append(text[last:m.start()])
            last = m.end()
            calls.append(call)
        if not calls:  # a template of unknown format: a bare JSON call is accepted too
            bare = _parse_llama3(text)
            return (None, bare) if bare else (text, [])
        parts.append(text[last:])
        content = "".join(parts)
    elif fmt == LLAMA3:
        found = _parse_llama3(text)
        if not found:
            return text, []
        calls, content = found, ""
    elif fmt == MISTRAL:
        head, sep, body = text.partition(MISTRAL_MARKER)
        found = _parse_mistral(body) if sep else None
        if not found:
            return text, []
        calls, content = found, head
    else:
        raise ValueError(f"unknown tool-call format {fmt!r}")
    content = content.strip()
    return (content or None), calls


# ----------------------------------------------------------------------------- streaming


def _held_prefix(buf: str, marker: str) -> int:
    """Length of the longest end of ``buf`` that could be the start of ``marker``."""
    for n in range(min(len(buf), len(marker) - 1), 0, -1):
        if marker.startswith(buf[-n:]):
            return n
    return 0


class StreamParser:
    """Tool calls out of a reply arriving piece by piece.

    :meth:`feed` each text piece and then call :meth:`finish`; both return events, ``("content", text)`` to
    send as a content delta or ``("tool_call", ToolCall)`` when a whole call has arrived. Content is passed
    on at once except for text that could still begin a call (a partial ``<tool_call>`` marker, or, for
    Llama 3, a reply that starts with ``{``), which is held until it is decided. Whitespace next to calls is
    dropped, as in :func:`parse`.
    """

    def __init__(self, fmt: str):
        self.fmt = fmt
        self._buf = ""
        self._mode = "text"  # "text", "call" (inside a call, until its end), "rest" (everything left is calls)
        self._started = False  # any content emitted yet
        self._calls = 0
        self._ws = ""  # whitespace held back (dropped if a call follows)

    def _content(self, text: str, out: list) -> None:
        if not text:
            return
        text = self._ws + text
        stripped = text.rstrip()
        self._ws = text[len(stripped):]
        if stripped:
            out.append(("content", stripped))
            self._started = True

    def _call(self, call: ToolCall, out: list) -> None:
        self._ws = ""
        self._calls += 1
        out.append(("tool_call", call))

    def feed(self, text: str) -> list[tuple[str, Any]]:
        """Events for the next piece of the reply."""
        out: list[tuple[str, Any]] = []
        self._buf += text
        while self._buf:
            if self._mode == "rest":
                return out
            if self.fmt == HERMES:
                if self._mode == "text":
                    i = self._buf.find(HERMES_OPEN)
                    if i < 0:
                        keep = _held_prefix(self._buf, HERMES_OPEN)
                        if not self._started and not self._calls and self._buf.lstrip()[:1] in ("{", ""):
                            return out  # a bare JSON call may be coming (template of unknown format)
                        self._content(self._buf[:len(self._buf) - keep], out)
                        self._buf = self._buf[len(self._buf) - keep:]
                        return out
                    self._content(self._buf[:i], out)
                    self._buf, self._mode = self._buf[i:], "call"
                j = self._buf.find(HERMES_CLOSE)
                if j < 0:
                    return out
                block, self._buf = self._buf[:j + len(HERMES_CLOSE)], self._buf[j + len(HERMES_CLOSE):]
                self._mode = "text"
                call = _parse_hermes_block(block[len(HERMES_OPEN):-len(HERMES_CLOSE)])
                if call is None:
                    self._content(block, out)
                else:
                    self._call(call, out)
            elif self.fmt == LLAMA3:
                head = self._buf.lstrip()
                if not self._started:
                    if PYTHON_TAG.startswith(head):  # only whitespace, or part of the tag: undecided
                        return out
                    if head.startswith(("{", PYTHON_TAG)):
                        self._mode = "rest"
                        return out
                self._content(self._buf, out)
                self._buf = ""
            elif self.fmt == MISTRAL:
                i = self._buf.find(MISTRAL_MARKER)
                if i >= 0:
                    self._content(self._buf[:i], out)
                    self._buf, self._mode = self._buf[i:], "rest"
                    return out
                keep = _held_prefix(self._buf, MISTRAL_MARKER)
                self._content(self._buf[:len(self._buf) - keep], out)
                self._buf = self._buf[len(self._buf) - keep:]
                return out
            else:
                raise ValueError(f"unknown tool-call format {self.fmt!r}")
        return out

    def finish(self) -> list[tuple[str, Any]]:
        """Events for whatever is still held once the reply has ended."""
        out: list[tuple[str, Any]] = []
        buf, self._buf = self._buf, ""
        if buf:
            if self.fmt == HERMES and self._mode == "call":
                call = _parse_hermes_block(buf[len(HERMES_OPEN):])
                if call is not None:
                    self._call(call, out)
                    return out
            elif self._mode == "rest" or (self.fmt in (LLAMA3, HERMES) and not self._started):
                content, calls = parse(buf, self.fmt)
                for call in calls:
                    self._call(call, out)
                if calls:
                    buf = content or ""
            self._content(buf, out)
        if self._ws and not self._calls:  # a reply without calls keeps its text as it is
            out.append(("content", self._ws))
        self._ws = ""
        return out

    @property
    def n_calls(self) -> int:
        """How many tool calls have been emitted."""
        return self._calls


# ----------------------------------------------------------------------------- forcing a call


def _function(tool: dict) -> dict:
    return tool["function"]


def call_schema(tools: Iterable[dict], fmt: str, name: str | None = None) -> dict[str, Any]:
    """JSON schema of one call object (``{"name": ..., "arguments"/"parameters": ...}``) to one of ``tools``
    (OpenAI ``{"type": "function", "function": {...}}`` dicts), or to the one called ``name``."""
    args_key = "parameters" if fmt == LLAMA3 else "arguments"
    options = []
    for tool in tools:
        fn = _function(tool)
        if name is not None and fn["name"] != name:
            continue
        params = bounded_numbers(fn.get("parameters") or {"type": "object", "properties": {}})
        options.append({"type": "object", "properties": {"name": {"const": fn["name"]}, args_key: params},
                        "required": ["name", args_key], "additionalProperties": False})
    if not options:
        raise ValueError(f"no tool named {name!r}")
    schema = options[0] if len(options) == 1 else {"anyOf": options}
    return {**schema, "x-guidance": dict(JSON_OPTIONS)}


def _special(tok: "Tokenizer", text: str) -> str:
    """A Lark terminal for ``text``: ``<[id]>`` where it is a single control token, else the quoted text."""
    ids = tok.encode(text, add_special=False, parse_special=True)
    if len(ids) == 1 and tok.is_control(ids[0]):
        return f"<[{ids[0]}]>"
    return json.dumps(text)


def forced_call_grammar(tok: "Tokenizer", fmt: str, tools: list[dict], name: str | None = None,
                        template_source: str = "") -> str:
    """Lark grammar (llguidance's dialect) of a reply that is exactly one call in ``fmt`` to one of ``tools``
    (or to ``name``): what ``tool_choice: "required"`` or a named function forces."""
    schema = json.dumps(call_schema(tools, fmt, name))
    if fmt == HERMES:
        return f'start: "{HERMES_OPEN}\\n" call "\\n{HERMES_CLOSE}"\ncall: %json {schema}\n'
    if fmt == LLAMA3:
        return f"start: call\ncall: %json {schema}\n"
    if fmt == MISTRAL:
        marker = _special(tok, MISTRAL_MARKER)
        if MISTRAL_ARGS in template_source:  # v11+: [TOOL_CALLS]name[ARGS]{...}
            alts = []
            for tool in tools:
                fn = _function(tool)
                if name is not None and fn["name"] != name:
                    continue
                params = fn.get("parameters") or {"type": "object", "properties": {}}
                params = {**bounded_numbers(params), "x-guidance": dict(JSON_OPTIONS)}
                alts.append(f"{json.dumps(fn['name'])} {_special(tok, MISTRAL_ARGS)} %json {json.dumps(params)}")
            rules = "\n".join(f"c{i}: {a}" for i, a in enumerate(alts))
            return f"start: {marker} ({' | '.join(f'c{i}' for i in range(len(alts)))})\n{rules}\n"
        return f'start: {marker} "[" call "]"\ncall: %json {schema}\n'
    raise ValueError(f"unknown tool-call format {fmt!r}")


# ----------------------------------------------------------------------------- templates without tools

HERMES_TOOLS_PROMPT = """# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{tools}
</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{{"name": <function-name>, "arguments": <args-json-object>}}
</tool_call>"""


def _arguments_obj(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def hermes_fallback(messages: list[dict], tools: list[dict] | None) -> list[dict]:
    """``messages`` rewritten for a template that renders neither tools nor tool messages: the tools (when
    given) described in the system message, in Qwen2.5's wording; assistant ``tool_calls`` appended to the
    content as ``<tool_call>`` blocks; ``tool`` results as a user message of ``<tool_response>`` blocks
    (consecutive ones merged). Only ``role`` / ``content`` remain."""
    out: list[dict] = []
    if tools:
        listing = "\n".join(json.dumps(t, ensure_ascii=False) for t in tools)
        prompt = HERMES_TOOLS_PROMPT.format(tools=listing)
        if messages and messages[0]["role"] == "system":
            out.append({"role": "system", "content": (messages[0].get("content") or "") + "\n\n" + prompt})
            messages = messages[1:]
        else:
            out.append({"role": "system", "content": prompt})
    for m in messages:
        role, content = m["role"], m.get("content") or ""
        if role == "assistant" and m.get("tool_calls"):
            blocks = []
            for call in m["tool_calls"]:
                fn = call.get("function", call)
                blocks.append(HERMES_OPEN + "\n" + json.dumps(
                    {"name": fn.get("name"), "arguments": _arguments_obj(fn.get("arguments"))},
                    ensure_ascii=False) + "\n" + HERMES_CLOSE)
            content = "\n".join(([content] if content else []) + blocks)
        elif role == "tool":
            block = f"<tool_response>\n{content}\n</tool_response>"
            if out and out[-1].get("_tool"):
                out[-1]["content"] += "\n" + block
                continue
            out.append({"role": "user", "content": block, "_tool": True})
            continue
        out.append({"role": role, "content": content})
    for m in out:
        m.pop("_tool", None)
    return out
