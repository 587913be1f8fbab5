"""Structured output and tools for the server: from a request to a prompt, a constraint and a reply parser.

- ``response_format`` json_object / json_schema: the reply is decoded under an llguidance grammar of the
  schema (:class:`engine.constrain.GrammarConstraint`), so it always parses and validates (unless
  ``max_tokens`` or the context cuts it short: ``finish_reason`` is then ``"length"``). The JSON is compact
  (``{"a": 1, "b": [2, 3]}``). A schema llguidance refuses (an unknown type, a bad regex, bounds that
  exclude every value) is a 400 ``invalid_schema`` naming ``response_format`` before anything is queued.
- ``tools``: rendered through the model's chat template (``tools=[...]``) when it renders them; replies are
  parsed in the template's own format (:mod:`engine.tool_calls`) into ``tool_calls`` with finish_reason
  ``"tool_calls"``. A template that does not render tools (SmolLM2's, Gemma's, the built-in ChatML) gets
  :func:`engine.tool_calls.hermes_fallback`: the tools described in a system message in Qwen2.5's words,
  the call history as ``<tool_call>`` / ``<tool_response>`` text, and Hermes parsing - so tools work with
  any model, as well as that model follows the instructions.
- ``tool_choice``: ``"auto"`` (default) lets the model choose; ``"none"`` renders no tools and parses
  nothing; ``"required"`` or a named function decodes under the grammar of exactly one call (to any of the
  tools, or to that one) in the template's format, with the arguments constrained by the function's
  ``parameters`` schema.

Like llama.cpp's server, the grammar applies from the reply's first token (a reasoning model does not
think first under a constraint).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..chat_template import ChatTemplateError
from ..constrain import ConstraintError, GrammarConstraint, check_grammar, json_schema_grammar, lark_grammar
from ..tokenizer import TokenizerError
from .. import tool_calls as TC
from .errors import APIError

if TYPE_CHECKING:
    from ..model import Model
    from .schemas import ChatCompletionRequest, CompletionRequest


@dataclass
class ChatPlan:
    """What a chat request becomes: prompt ids, a fresh constraint (or None), and the tool-call format to parse
    the reply with (None: no tools, the reply is content)."""

    tokens: list[int]
    constraint: GrammarConstraint | None
    tool_format: str | None


def _constraint(model: "Model", grammar: str, param: str) -> GrammarConstraint:
    try:
        check_grammar(model.tokenizer, grammar)
        return GrammarConstraint(model.tokenizer, grammar)
    except ConstraintError as exc:
        raise APIError(400, f"Invalid JSON schema: {exc}", param=param, code="invalid_schema") from None


def _schema_constraint(model: "Model", schema: Any, param: str) -> GrammarConstraint:
    try:
        grammar = json_schema_grammar(schema)
    except ConstraintError as exc:
        raise APIError(400, f"Invalid JSON schema: {exc}", param=param, code="invalid_schema") from None
    return _constraint(model, grammar, param)


def _has_tool_history(messages: list[dict]) -> bool:
    return any(m.get("tool_calls") or m["role"] == "tool" for m in messages)


def plan_chat(model: "Model", req: "ChatCompletionRequest") -> ChatPlan:
    """Thread pool: render the conversation (with tools when asked), tokenize it and build the constraint.

    Raises:
        APIError: 400 ``chat_template_error`` when the template fails, ``invalid_schema`` for a schema (of
            ``response_format`` or of a tool's ``parameters``) llguidance refuses.
    """
    template = model.chat_template
    messages = [m.as_template_message() for m in req.messages]
    tools = req.active_tools
    fmt: str | None = None
    try:
        if tools is not None or _has_tool_history(messages):
            if TC.template_renders_tools(template):
                fmt = TC.detect_format(template.source)
                text = template.render(messages, add_generation_prompt=True, tools=tools)
            else:
                fmt = TC.HERMES
                text = template.render(TC.hermes_fallback(messages, tools), add_generation_prompt=True)
        else:
            text = template.render(messages, add_generation_prompt=True)
        tokens = template.encode(text)
    except (ChatTemplateError, TokenizerError) as exc:
        raise APIError(400, str(exc), param="messages", code="chat_template_error") from None
    if tools is None:
        fmt = None  # tool_choice "none" (or no tools): the reply is content
    constraint = None
    forced, name = req.forced_tool
    if forced:
        grammar = lark_grammar(TC.forced_call_grammar(model.tokenizer, fmt or TC.HERMES, tools or [], name,
                                                      template.source))
        constraint = _constraint(model, grammar, "tools")
    else:
        schema = req.constraint_schema()
        if schema is not None:
            constraint = _schema_constraint(model, schema, "response_format")
    return ChatPlan(tokens, constraint, fmt)


def completion_constraint(model: "Model", req: "CompletionRequest") -> GrammarConstraint | None:
    """Thread pool: the constraint of a legacy completion's ``json_schema`` / ``response_format``, or None.
    Raises APIError 400 ``invalid_schema``."""
    schema = req.constraint_schema()
    if schema is None:
        return None
    return _schema_constraint(model, schema, "json_schema" if req.json_schema is not None else "response_format")


def tool_reply(text: str, fmt: str | None, finish_reason: str) -> tuple[str | None, list[dict] | None, str]:
    """``(content, tool_calls, finish_reason)`` of a whole chat reply: calls parsed in ``fmt`` (None: none)
    in OpenAI's shape, and ``"tool_calls"`` as the finish reason when there are some and the reply ended
    by itself."""
    if fmt is None:
        return text, None, finish_reason
    content, calls = TC.parse(text, fmt)
    if not calls:
        return text, None, finish_reason
    return content, [c.openai() for c in calls], "tool_calls" if finish_reason == "stop" else finish_reason
