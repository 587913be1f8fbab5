"""Request bodies of the OpenAI-compatible endpoints (pydantic models) and their validation.

Field names and ranges follow OpenAI's API reference for ``/v1/chat/completions`` and
``/v1/completions`` (https://platform.openai.com/docs/api-reference), plus llama.cpp server's
sampling extras ``top_k``, ``min_p`` and ``repeat_penalty``. Validation is strict about types (JSON
``"0.5"`` is not a number, ``1`` is not a boolean) and every failure becomes one 400 error naming the
field (see :mod:`engine.server.errors`). Unknown fields are ignored, as llama.cpp's server does, so
clients that send extras (``user``, ``metadata``, ``store``...) work; fields whose meaning this server
cannot honour (``logit_bias``, the deprecated ``functions`` / ``function_call``, ``n`` > 1, ``suffix``)
are refused with a 400 instead of being silently dropped.

Structured output and tools (OpenAI's shapes; see :mod:`engine.server.structured` for what the server does
with them):

- ``response_format``: ``{"type": "text"}``, ``{"type": "json_object"}`` (any JSON object; llama-server's
  ``{"type": "json_object", "schema": {...}}`` too) or ``{"type": "json_schema", "json_schema": {"name": ...,
  "schema": {...}, "strict": ...}}``; also on ``/v1/completions``, which takes llama-server's top-level
  ``json_schema`` as well.
- ``tools``: ``[{"type": "function", "function": {"name", "description", "parameters", "strict"}}]``;
  ``tool_choice``: ``"none"``, ``"auto"`` (the default with tools), ``"required"`` or
  ``{"type": "function", "function": {"name": ...}}`` naming one of the tools (any other name is a 400);
  ``parallel_tool_calls`` is accepted (a forced call is always one call).
- messages: assistant turns may carry ``tool_calls`` (``arguments`` as JSON text, or an object) with
  ``content`` null, and ``tool`` role messages (``tool_call_id``, ``content``) return results.

Sampling fields left out take llama.cpp's defaults (:class:`~engine.sampling.SamplerParams`:
temperature 0.8, top_k 40, top_p 0.95, min_p 0.05), as llama-server does, not OpenAI's (1.0, off).
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from ..sampling import SamplerParams
from .errors import APIError, param_path

MAX_STOP_STRINGS = 16
MAX_TOP_LOGPROBS = 20


def _unsupported(what: str) -> PydanticCustomError:
    return PydanticCustomError("unsupported", "{what} is not supported by this server", {"what": what})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class StreamOptions(_Strict):
    """``stream_options``: ``include_usage`` adds a final chunk with usage and no choices."""

    include_usage: bool = False


_NAME_PATTERN = r"^[A-Za-z0-9_.\-]{1,64}$"  # OpenAI's rule for function names (dots allowed, as vLLM does)


class FunctionDefinition(_Strict):
    """``tools[].function``: a function the model may call. ``parameters`` is a JSON schema of its arguments
    object (absent: no arguments)."""

    name: str = Field(pattern=_NAME_PATTERN)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Strict):
    """One entry of ``tools``."""

    type: Literal["function"]
    function: FunctionDefinition


class _FunctionName(_Strict):
    name: str


class NamedToolChoice(_Strict):
    """``tool_choice: {"type": "function", "function": {"name": ...}}``: call this function."""

    type: Literal["function"]
    function: _FunctionName


class CalledFunction(_Strict):
    """``tool_calls[].function`` of an assistant message sent back: ``arguments`` as JSON text (OpenAI) or an
    object (what some clients send)."""

    name: str
    arguments: str | dict[str, Any] = "{}"


class ToolCallMessage(_Strict):
    """One ``tool_calls`` entry of an assistant message in the history."""

    id: str | None = None
    type: Literal["function"] = "function"
    function: CalledFunction


class JSONSchemaFormat(_Strict):
    """``response_format.json_schema``: ``schema`` is the JSON schema the reply must validate against (absent:
    any JSON value); ``name`` / ``description`` / ``strict`` are accepted (output is always constrained)."""

    name: str | None = None
    description: str | None = None
    schema_: dict[str, Any] | bool | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Strict):
    """``response_format``: ``text``, ``json_object`` (with llama-server's optional ``schema``) or
    ``json_schema``."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None
    schema_: dict[str, Any] | bool | None = Field(None, alias="schema")

    def constraint_schema(self) -> dict[str, Any] | bool | None:
        """The JSON schema to constrain to, or None for free text."""
        if self.type == "json_object":
            return self.schema_ if self.schema_ is not None else {"type": "object"}
        if self.type == "json_schema":
            if self.json_schema is None:
                raise APIError(400, "response_format type 'json_schema' needs a 'json_schema' object with its "
                                    "'schema'", param="response_format.json_schema")
            return self.json_schema.schema_ if self.json_schema.schema_ is not None else True
        return None


class ChatMessage(_Strict):
    """One message. ``content`` is a string, ``null`` (assistant turns only), or OpenAI's list of text parts
    ``[{"type": "text", "text": "..."}]``, which is joined with newlines as llama.cpp's server does.
    The ``developer`` role is OpenAI's newer name for ``system`` and is rendered as ``system``. Assistant
    messages may carry ``tool_calls``; ``tool`` messages carry a result (``content``) and ``tool_call_id``."""

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | None = None
    name: str | None = None
    tool_calls: list[ToolCallMessage] | None = None
    tool_call_id: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _join_parts(cls, value: Any) -> Any:
        if isinstance(value, list):
            texts = []
            for part in value:
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise PydanticCustomError("content_part", "content parts must be objects with a 'type'")
                if part["type"] != "text":
                    raise _unsupported(f"content part type {part['type']!r} (only 'text')")
                if not isinstance(part.get("text"), str):
                    raise PydanticCustomError("content_part", "a text content part needs a string 'text'")
                texts.append(part["text"])
            return "\n".join(texts)
        if value is not None and not isinstance(value, str):
            raise PydanticCustomError("content_type", "content must be a string or a list of text parts")
        return value

    def as_template_message(self) -> dict[str, Any]:
        """The dict the chat template renders: ``role`` and ``content``, plus ``tool_calls`` (OpenAI's shape;
        :mod:`engine.chat_template` converts the arguments to the form the template expects), and for a
        ``tool`` message its ``tool_call_id`` and ``name``."""
        role = "system" if self.role == "developer" else self.role
        out: dict[str, Any] = {"role": role, "content": self.content or ""}
        if self.tool_calls:
            out["tool_calls"] = [{"id": c.id or f"call_{i}", "type": "function",
                                  "function": {"name": c.function.name, "arguments": c.function.arguments}}
                                 for i, c in enumerate(self.tool_calls)]
        if role == "tool":
            if self.tool_call_id is not None:
                out["tool_call_id"] = self.tool_call_id
            if self.name is not None:
                out["name"] = self.name
        return out


class _GenerationFields(_Strict):
    """Fields shared by chat and legacy completions."""

    model: str | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    repeat_penalty: float | None = Field(None, gt=0.0)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    seed: int | None = None
    stop: list[str] | None = None
    n: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    logit_bias: dict[str, Any] | None = None
    response_format: ResponseFormat | None = None

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and len(value) > MAX_STOP_STRINGS:
            raise PydanticCustomError("too_many_stops", "at most {n} stop strings", {"n": MAX_STOP_STRINGS})
        if value is not None and not isinstance(value, list):
            raise PydanticCustomError("stop_type", "stop must be a string or a list of strings")
        return value

    @field_validator("n")
    @classmethod
    def _single_choice(cls, value: int | None) -> int | None:
        if value is not None and value != 1:
            raise _unsupported(f"n = {value} (only n = 1)")
        return value

    @field_validator("logit_bias")
    @classmethod
    def _no_logit_bias(cls, value: dict | None) -> dict | None:
        if value:
            raise _unsupported("logit_bias")
        return value

    def sampler_params(self) -> SamplerParams:
        """The sampling parameters; fields left out keep llama.cpp's defaults. A negative seed means a
        random one (llama.cpp's convention: -1 = random)."""
        d = SamplerParams()
        seed = self.seed if self.seed is not None and self.seed >= 0 else None
        return SamplerParams(
            temperature=d.temperature if self.temperature is None else self.temperature,
            top_k=d.top_k if self.top_k is None else self.top_k,
            top_p=d.top_p if self.top_p is None else self.top_p,
            min_p=d.min_p if self.min_p is None else self.min_p,
            repeat_penalty=d.repeat_penalty if self.repeat_penalty is None else self.repeat_penalty,
            presence_penalty=d.presence_penalty if self.presence_penalty is None else self.presence_penalty,
            frequency_penalty=d.frequency_penalty if self.frequency_penalty is None else self.frequency_penalty,
            seed=seed)

    def check(self) -> None:
        """Cross-field rules (none here; subclasses add theirs). Raises APIError 400."""

    def constraint_schema(self) -> dict[str, Any] | bool | None:
        """The JSON schema the output must follow (from ``response_format``), or None. Raises APIError 400."""
        return self.response_format.constraint_schema() if self.response_format is not None else None

    @property
    def stop_strings(self) -> list[str]:
        """Non-empty stop strings."""
        return [s for s in self.stop or () if s]

    @property
    def include_usage(self) -> bool:
        """Whether a stream ends with a usage chunk."""
        return bool(self.stream and self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_GenerationFields):
    """``POST /v1/chat/completions``. ``max_completion_tokens`` (OpenAI's newer name) wins over
    ``max_tokens``; with neither, generation runs until an end-of-turn token or a full context."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    functions: list[Any] | None = None
    function_call: Any = None

    @field_validator("functions", "function_call")
    @classmethod
    def _no_functions(cls, value: Any) -> Any:
        if value:
            raise _unsupported("the deprecated functions / function_call (send tools and tool_choice)")
        return value

    @field_validator("tool_choice", mode="before")
    @classmethod
    def _tool_choice_shape(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in ("none", "auto", "required"):
            raise PydanticCustomError("tool_choice", "tool_choice must be 'none', 'auto', 'required' or "
                                                     "{'type': 'function', 'function': {'name': ...}}, not {v!r}",
                                      {"v": value})
        if value is not None and not isinstance(value, (str, dict)):
            raise PydanticCustomError("tool_choice", "tool_choice must be a string or an object")
        if isinstance(value, dict):  # validated here, so errors name its fields rather than the union's arms
            return NamedToolChoice.model_validate(value)
        return value

    @property
    def active_tools(self) -> list[dict[str, Any]] | None:
        """The tools to render into the prompt as plain dicts (None without tools or with tool_choice "none")."""
        if not self.tools or self.tool_choice == "none":
            return None
        return [t.model_dump(exclude_none=True) for t in self.tools]

    @property
    def forced_tool(self) -> tuple[bool, str | None]:
        """``(forced, name)``: whether the reply must be a tool call, and to which function (None: any)."""
        if not self.tools:
            return False, None
        if self.tool_choice == "required":
            return True, None
        if isinstance(self.tool_choice, NamedToolChoice):
            return True, self.tool_choice.function.name
        return False, None

    @property
    def token_limit(self) -> int:
        """Most tokens to generate; -1: until the context is full."""
        for v in (self.max_completion_tokens, self.max_tokens):
            if v is not None:
                return v
        return -1

    @property
    def n_top_logprobs(self) -> int | None:
        """None when logprobs are off, else how many alternatives to attach per token."""
        if not self.logprobs:
            return None
        return self.top_logprobs or 0

    def check(self) -> None:
        """Cross-field rules. Raises APIError 400."""
        if self.top_logprobs is not None and not self.logprobs:
            raise APIError(400, "top_logprobs needs logprobs = true", param="top_logprobs")
        if self.tool_choice not in (None, "none", "auto") and not self.tools:
            raise APIError(400, "tool_choice requires tools: send the functions the model may call",
                           param="tool_choice")
        if isinstance(self.tool_choice, NamedToolChoice):
            names = [t.function.name for t in self.tools or ()]
            if self.tool_choice.function.name not in names:
                raise APIError(400, f"tool_choice names the function {self.tool_choice.function.name!r}, which is "
                                    f"not among the tools ({', '.join(map(repr, names))})",
                               param="tool_choice.function.name")
        if self.tools:
            names = [t.function.name for t in self.tools]
            dup = next((n for n in names if names.count(n) > 1), None)
            if dup is not None:
                raise APIError(400, f"two tools are named {dup!r}", param="tools")
        if self.forced_tool[0] and self.constraint_schema() is not None:
            raise _api_unsupported("a JSON response_format together with a forced tool call (tool_choice "
                                   "'required' or a named function)", "response_format")


class CompletionRequest(_GenerationFields):
    """``POST /v1/completions`` (legacy). ``prompt`` is a string, a list of one string, or token ids
    (a list of ints, or a list of one such list). ``max_tokens`` defaults to 16 as in OpenAI's API.
    ``logprobs`` (an int, the number of alternatives) gives the legacy ``tokens``/``token_logprobs``/
    ``top_logprobs``/``text_offset`` lists for the generated tokens; with ``echo`` it is refused
    (that would need the prompt tokens' own log-probabilities)."""

    prompt: str | list[int]
    echo: bool = False
    json_schema: dict[str, Any] | bool | None = None
    logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    suffix: str | None = None
    best_of: int | None = None

    @field_validator("prompt", mode="before")
    @classmethod
    def _one_prompt(cls, value: Any) -> Any:
        if isinstance(value, list) and value and all(isinstance(v, (str, list)) for v in value):
            if len(value) != 1:
                raise _unsupported(f"a batch of {len(value)} prompts (send one prompt per request)")
            value = value[0]
        if isinstance(value, list) and not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise PydanticCustomError("prompt_type", "prompt must be a string, a list of one string, or token ids")
        if isinstance(value, list) and not value:
            raise PydanticCustomError("prompt_empty", "prompt must not be empty")
        return value

    @field_validator("suffix")
    @classmethod
    def _no_suffix(cls, value: str | None) -> str | None:
        if value:
            raise _unsupported("suffix (fill-in-the-middle)")
        return value

    @field_validator("best_of")
    @classmethod
    def _best_of_one(cls, value: int | None) -> int | None:
        if value is not None and value != 1:
            raise _unsupported(f"best_of = {value} (only 1)")
        return value

    @property
    def token_limit(self) -> int:
        """Most tokens to generate (16 when not given, as OpenAI)."""
        return 16 if self.max_tokens is None else self.max_tokens

    def constraint_schema(self) -> dict[str, Any] | bool | None:
        """llama-server's top-level ``json_schema``, else ``response_format``'s schema, or None."""
        if self.json_schema is not None:
            return self.json_schema
        return super().constraint_schema()

    def check(self) -> None:
        """Cross-field rules. Raises APIError 400."""
        if self.echo and self.logprobs is not None:
            raise _api_unsupported("echo together with logprobs", "logprobs")
        if self.json_schema is not None and self.response_format is not None \
                and self.response_format.type != "text":
            raise APIError(400, "send either json_schema or response_format, not both", param="json_schema")


def _api_unsupported(what: str, param: str) -> APIError:
    return APIError(400, f"{what} is not supported by this server", param=param, code="unsupported")


def parse_body(model: type[_GenerationFields], body: bytes) -> Any:
    """Validate a JSON request body into ``model``.

    Raises:
        APIError: 400 for malformed JSON or invalid fields; the message lists every problem and
            ``param`` names the first field at fault.
    """
    if not body.strip():
        raise APIError(400, "The request body is empty; send a JSON object", code="invalid_json")
    try:
        request = model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if errors and errors[0]["type"] == "json_invalid":
            raise APIError(400, f"Invalid JSON in the request body: {errors[0]['msg']}",
                           code="invalid_json") from None
        problems = []
        for e in errors:
            where = param_path(e["loc"])
            problems.append(f"{where}: {e['msg']}" if where else e["msg"])
        code = "unsupported" if errors and errors[0]["type"] == "unsupported" else "invalid_value"
        raise APIError(400, "Invalid request: " + "; ".join(problems), param=param_path(errors[0]["loc"]),
                       code=code) from None
    request.check()
    return request
