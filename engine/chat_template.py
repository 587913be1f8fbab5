"""Chat templates: turn a list of messages into the prompt text a model was trained on.

The template is the file's ``tokenizer.chat_template`` (Jinja), rendered the way transformers'
``apply_chat_template`` does: a sandboxed, immutable Jinja environment with ``trim_blocks`` and
``lstrip_blocks``, the ``loopcontrols`` extension, ``{% generation %}`` blocks, the ``raise_exception``
and ``strftime_now`` globals, a ``tojson`` filter that keeps non-ASCII characters, and the variables
``messages``, ``add_generation_prompt``, ``bos_token``, ``eos_token`` (plus ``unk_token``/``pad_token``
when the vocabulary has them, ``tools``/``documents`` defaulting to ``None``, and any extra keyword).

Tool calls: OpenAI clients send an assistant message's ``tool_calls[i].function.arguments`` as JSON text, while
most templates written for transformers expect a dict (Llama 3.x and Qwen2.5 ``| tojson`` it, Mistral iterates it)
and a few expect the text (DeepSeek-R1 concatenates it). transformers renders whatever it is given - JSON text comes
out double-encoded, a dict raises in DeepSeek-R1's template - so each template is probed once (when a conversation
first has tool calls) for the form it renders as plain JSON, and arguments in the other form are converted to it
(JSON text that is not an object is left alone). Arguments already in the template's form, which is what
transformers' callers pass, render exactly as transformers renders them; the caller's messages are never modified.

Files without a template get a built-in one: Gemma's turn format for the ``gemma``/``gemma2``/``gemma3``
architectures, ChatML otherwise.

BOS: some templates render ``{{ bos_token }}`` themselves (Llama 3, Gemma's own template), others do
not (ChatML, the built-in Gemma fallback, which leaves BOS to the tokenizer). Encode a rendered prompt
with :meth:`ChatTemplate.encode`, which adds the tokenizer's BOS only if the text does not already start
with it - llama.cpp's rule - so a prompt never gets two.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from .errors import FiresideError

if TYPE_CHECKING:
    from .tokenizer import Tokenizer

GEMMA_ARCHITECTURES = frozenset({"gemma", "gemma2", "gemma3", "gemma3n"})

# Gemma's official template (google/gemma-3-*-it), without its leading ``{{ bos_token }}``: the tokenizer
# adds BOS (add_bos_token is true). A system prompt is folded into the first user turn.
GEMMA_TEMPLATE = """\
{%- if messages and messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{ '<start_of_turn>model\\n' }}
{%- endif -%}
"""

CHATML_TEMPLATE = """\
{%- for message in messages -%}
    {{ '<|im_start|>' + message['role'] + '\\n' }}
    {%- if message['content'] is string -%}
        {{ message['content'] }}
    {%- else -%}
        {%- for item in message['content'] if item['type'] == 'text' -%}{{ item['text'] }}{%- endfor -%}
    {%- endif -%}
    {{ '<|im_end|>\\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{ '<|im_start|>assistant\\n' }}
{%- endif -%}
"""


class ChatTemplateError(FiresideError, ValueError):
    """A chat template cannot be compiled or rendered; the message says where and why."""


class _TemplateException(jinja2.TemplateError):
    """Raised by the template itself through ``raise_exception``."""


def _raise_exception(message: str) -> None:
    raise _TemplateException(message)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


class _GenerationBlock(Extension):
    """``{% generation %}...{% endgeneration %}`` (used by transformers to mark assistant text): the
    body is rendered as is."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


#: Work one render may do, so a hostile template cannot hang the app or fill its memory: loop items
#: drawn from ``range`` in all (Jinja's sandbox caps each ``range`` at 100,000, not their nesting), and
#: the length of a string or list built by ``*``. Real templates iterate over the messages and never
#: come near either.
MAX_RENDER_ITEMS = 200_000
MAX_REPEAT_LEN = 1 << 22
_budget = threading.local()


def _bounded_range(*args: int) -> range:
    """``range`` drawing its length from this render's budget of :data:`MAX_RENDER_ITEMS`."""
    r = range(*args)
    left = getattr(_budget, "left", MAX_RENDER_ITEMS)
    if len(r) > left:
        raise SecurityError(f"the template asked for more than {MAX_RENDER_ITEMS:,} loop items in one render")
    _budget.left = left - len(r)
    return r


class _Environment(ImmutableSandboxedEnvironment):
    """transformers' environment, except that an unsafe attribute (``__class__``, ``mro``...) raises
    at once instead of quietly rendering as an empty string, and that ``range``, ``*`` and ``**`` are
    bounded (:data:`MAX_RENDER_ITEMS`, :data:`MAX_REPEAT_LEN`)."""

    intercepted_binops = frozenset({"*", "**"})

    def unsafe_undefined(self, obj: Any, attribute: str):
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")

    def call_binop(self, context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_REPEAT_LEN:
                    raise SecurityError(f"the template built a sequence longer than {MAX_REPEAT_LEN:,} items")
        elif (operator == "**" and isinstance(left, int) and isinstance(right, int)
              and abs(left) > 1 and right > 0 and abs(left).bit_length() * right > 1 << 16):
            raise SecurityError("the template computed a power too large to hold")
        return super().call_binop(context, operator, left, right)


@lru_cache(maxsize=1)
def _environment() -> _Environment:
    env = _Environment(trim_blocks=True, lstrip_blocks=True,
                       extensions=[_GenerationBlock, "jinja2.ext.loopcontrols"])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["range"] = _bounded_range
    return env


def _template_line(exc: BaseException) -> int | None:
    """Line of the template where a render error happened (Jinja maps its frames to template lines)."""
    line = getattr(exc, "lineno", None)
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _describe(exc: BaseException) -> str:
    lineno = _template_line(exc)
    where = f" (template line {lineno})" if lineno else ""
    return f"{type(exc).__name__}: {exc}{where}"


# The probe for the form of tool-call arguments a template renders as JSON (see the module docstring). The id has
# 9 alphanumeric characters, as Mistral's templates require.
_PROBE_ARGUMENTS = {"probe_argument": "probe value"}
_PROBE_NEEDLE = '"probe_argument": "probe value"'
_PROBE_TOOLS = [{"type": "function", "function": {"name": "probe_function", "description": "Probe.",
                                                  "parameters": {"type": "object", "properties": {
                                                      "probe_argument": {"type": "string"}}}}}]


def _probe_conversation(arguments: Any, content: str | None) -> list[dict]:
    return [{"role": "user", "content": "Probe"},
            {"role": "assistant", "content": content, "tool_calls": [
                {"id": "probecall", "type": "function",
                 "function": {"name": "probe_function", "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": "probecall", "name": "probe_function", "content": "Probed"}]


def _tool_call_functions(message: Any) -> list:
    """The mappings holding ``arguments`` in a message's tool calls: ``call["function"]`` (OpenAI's shape) or the
    call itself (the flat ``{"name", "arguments"}`` shape some callers use)."""
    if not isinstance(message, Mapping):
        return []
    calls = message.get("tool_calls")
    if not isinstance(calls, (list, tuple)):
        return []
    out = []
    for call in calls:
        if isinstance(call, Mapping):
            function = call.get("function")
            out.append(function if isinstance(function, Mapping) else call)
    return out


def _converted_arguments(arguments: Any, form: str) -> Any:
    """``arguments`` in ``form`` ("object" or "string"), or unchanged when it is already in it or cannot be."""
    if form == "object" and isinstance(arguments, str):
        try:
            parsed = json.loads(arguments)
        except ValueError:
            return arguments
        return parsed if isinstance(parsed, dict) else arguments
    if form == "string" and isinstance(arguments, Mapping):
        return json.dumps(dict(arguments), ensure_ascii=False)
    return arguments


class ChatTemplate:
    """A compiled chat template.

    Attributes:
        source: the template text used.
        is_fallback: True when the file had no template and a built-in one is used.
        bos_token, eos_token: texts passed to the template (``""`` when the vocabulary has none).
    """

    def __init__(self, source: str, tokenizer: "Tokenizer | None" = None, *, is_fallback: bool = False,
                 name: str = "chat template"):
        self.source = source
        self.is_fallback = is_fallback
        self.tokenizer = tokenizer
        self._name = name
        self.special_tokens: dict[str, str] = {}
        if tokenizer is not None:
            for key, tid in (("bos_token", tokenizer.bos_id), ("eos_token", tokenizer.eos_id),
                             ("unk_token", getattr(tokenizer, "unk_id", None)),
                             ("pad_token", getattr(tokenizer, "pad_id", None))):
                if tid is not None:
                    self.special_tokens[key] = tokenizer.token_text(tid)
        self.special_tokens.setdefault("bos_token", "")
        self.special_tokens.setdefault("eos_token", "")
        self.bos_token = self.special_tokens["bos_token"]
        self.eos_token = self.special_tokens["eos_token"]
        self._arguments_form: str | None = None  # "object", "string" or "either", once probed
        try:
            self._template = _environment().from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise ChatTemplateError(f"{name} has a syntax error at line {exc.lineno}: {exc.message}") from None
        except jinja2.TemplateError as exc:
            raise ChatTemplateError(f"{name} cannot be compiled: {_describe(exc)}") from None

    @classmethod
    def from_metadata(cls, metadata: dict, tokenizer: "Tokenizer") -> "ChatTemplate":
        """The file's ``tokenizer.chat_template``, or a built-in one picked by ``general.architecture``.

        Raises:
            ChatTemplateError: the file's template does not compile.
        """
        source = metadata.get("tokenizer.chat_template")
        if isinstance(source, str) and source.strip():
            return cls(source, tokenizer, name="the model's chat template (tokenizer.chat_template)")
        arch = str(metadata.get("general.architecture", ""))
        if arch in GEMMA_ARCHITECTURES:
            return cls(GEMMA_TEMPLATE, tokenizer, is_fallback=True, name="built-in Gemma chat template")
        return cls(CHATML_TEMPLATE, tokenizer, is_fallback=True, name="built-in ChatML chat template")

    def render(self, messages: list[dict], *, add_generation_prompt: bool = True, **kwargs: Any) -> str:
        """The prompt text for ``messages`` (``[{"role": "user", "content": "Hi"}, ...]``).

        Extra keyword arguments become template variables (``tools``, ``enable_thinking``...).

        Raises:
            ChatTemplateError: the template failed (it raised an exception itself, touched something the
                sandbox forbids, or hit a bug); the message names the cause and the template line.
        """
        variables: dict[str, Any] = {"tools": None, "documents": None, **self.special_tokens}
        variables.update(kwargs)
        variables["messages"] = self._with_tool_arguments_as_expected(messages)
        variables["add_generation_prompt"] = add_generation_prompt
        try:
            _budget.left = MAX_RENDER_ITEMS
            return self._template.render(**variables)
        except _TemplateException as exc:
            raise ChatTemplateError(f"{self._name} refused the conversation: {exc}"
                                    + (f" (template line {_template_line(exc)})" if _template_line(exc) else "")
                                    ) from None
        except SecurityError as exc:
            raise ChatTemplateError(f"{self._name} tried an unsafe operation, blocked by the sandbox: "
                                    f"{_describe(exc)}") from None
        except jinja2.TemplateError as exc:
            raise ChatTemplateError(f"{self._name} failed: {_describe(exc)}") from None
        except Exception as exc:  # errors raised from Python code the template calls (bad indexing...)
            raise ChatTemplateError(f"{self._name} failed: {_describe(exc)}") from None

    def _tool_arguments_form(self) -> str:
        """The form of tool-call arguments this template renders as plain JSON: "object" (a dict), "string"
        (JSON text) or "either" (both, or neither: then nothing is converted). Probed once, on a small
        conversation with one tool call, with and without content and tools."""
        if self._arguments_form is None:
            def renders_json(arguments: Any) -> bool:
                for content in ("", None):
                    for tools in (None, _PROBE_TOOLS):
                        try:
                            _budget.left = MAX_RENDER_ITEMS
                            out = self._template.render(messages=_probe_conversation(arguments, content), tools=tools,
                                                        documents=None, add_generation_prompt=True,
                                                        **self.special_tokens)
                        except Exception:
                            continue
                        if _PROBE_NEEDLE in out:
                            return True
                return False

            as_object = renders_json(dict(_PROBE_ARGUMENTS))
            as_string = renders_json(json.dumps(_PROBE_ARGUMENTS))
            self._arguments_form = ("object" if as_object and not as_string else
                                    "string" if as_string and not as_object else "either")
        return self._arguments_form

    def _with_tool_arguments_as_expected(self, messages: list) -> list:
        """``messages``, with tool-call arguments converted to the form the template expects where they are in
        the other one (copies of the messages concerned; the caller's are left as they are)."""
        if not isinstance(messages, (list, tuple)) or not any(
                "arguments" in function for message in messages for function in _tool_call_functions(message)):
            return messages
        form = self._tool_arguments_form()
        if form == "either":
            return messages

        def converted(holder: Mapping) -> Mapping:
            if "arguments" not in holder:
                return holder
            arguments = _converted_arguments(holder["arguments"], form)
            return holder if arguments is holder["arguments"] else {**holder, "arguments": arguments}

        out, changed = [], False
        for message in messages:
            if _tool_call_functions(message):
                calls = []
                for call in message["tool_calls"]:
                    if isinstance(call, Mapping) and isinstance(call.get("function"), Mapping):
                        function = converted(call["function"])
                        call = call if function is call["function"] else {**call, "function": function}
                    elif isinstance(call, Mapping):
                        call = converted(call)
                    calls.append(call)
                if any(new is not old for new, old in zip(calls, message["tool_calls"])):
                    message, changed = {**message, "tool_calls": calls}, True
            out.append(message)
        return out if changed else messages

    def renders_bos(self) -> bool:
        """Whether rendered prompts start with the BOS text (then do not add BOS again when encoding)."""
        if not self.bos_token:
            return False
        for probe in ([{"role": "user", "content": "Hi"}],
                      [{"role": "system", "content": "Hi"}, {"role": "user", "content": "Hi"}]):
            try:
                return self.render(probe).startswith(self.bos_token)
            except ChatTemplateError:
                continue
        return False

    def encode(self, text: str) -> list[int]:
        """Token ids of a rendered prompt: control tokens in it are parsed, and the tokenizer's BOS is
        added only if the text does not already start with the BOS text (no double BOS)."""
        if self.tokenizer is None:
            raise ChatTemplateError("this chat template has no tokenizer to encode with")
        tok = self.tokenizer
        add_special = not (self.bos_token and tok.add_bos and text.startswith(self.bos_token))
        return tok.encode(text, add_special=add_special, parse_special=True)

    def __repr__(self) -> str:
        return f"ChatTemplate({self._name}, {len(self.source)} chars)"
