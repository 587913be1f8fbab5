"""Structured output and tools: constrained decoding with llguidance on the real SmolLM2 model (JSON schemas
at temperature 0 and sampled), the tool-call parsers on literal replies of each format, forced calls in each
format, and the server's ``response_format`` / ``tools`` with the official ``openai`` client, on SmolLM2 with
Qwen2.5's tool template (``tests/tool_model.py``) and on plain SmolLM2 (the fallback for templates without
tools)."""
from __future__ import annotations

import json
import random
from pathlib import Path

import httpx
import jsonschema
import numpy as np
import openai
import pytest

from engine import tool_calls as TC
from engine.chat_template import ChatTemplate
from engine.constrain import ConstraintError, GrammarConstraint, json_schema_grammar, lark_grammar
from engine.context import Context
from engine.generate import generate
from engine.model import load_model
from engine.sampling import Sampler, SamplerParams
from engine.scheduler import Scheduler
from conftest import serving
from tool_model import build_tool_model

TEMPLATES = Path(__file__).parent / "data" / "chat_templates"
N_CTX = 1024

# ----------------------------------------------------------------------------- 20 schemas

NAME = {"type": "string", "minLength": 1, "maxLength": 24}
SCHEMAS: list[tuple[str, str, dict]] = [
    ("person", "Describe a person.", {
        "type": "object", "properties": {"name": NAME, "age": {"type": "integer", "minimum": 0, "maximum": 120}},
        "required": ["name", "age"], "additionalProperties": False}),
    ("enum_color", "Pick a color.", {
        "type": "object", "properties": {"color": {"enum": ["red", "green", "blue"]}}, "required": ["color"]}),
    ("bounded_number", "Give a temperature in Celsius.", {
        "type": "object", "properties": {"celsius": {"type": "number", "minimum": -40, "maximum": 50}},
        "required": ["celsius"], "additionalProperties": False}),
    ("exclusive_bounds", "Give a probability.", {
        "type": "object", "properties": {"p": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}},
        "required": ["p"], "additionalProperties": False}),
    ("string_array", "List three fruits.", {
        "type": "array", "items": {"type": "string", "maxLength": 20}, "minItems": 1, "maxItems": 3}),
    ("int_array", "List some prime numbers.", {
        "type": "array", "items": {"type": "integer", "minimum": 2, "maximum": 1000}, "minItems": 2,
        "maxItems": 5}),
    ("nested", "Describe a book and its author.", {
        "type": "object", "properties": {
            "title": NAME,
            "author": {"type": "object", "properties": {"name": NAME, "born": {"type": "integer", "minimum": 1000,
                                                                                "maximum": 2025}},
                       "required": ["name", "born"], "additionalProperties": False}},
        "required": ["title", "author"], "additionalProperties": False}),
    ("array_of_objects", "List two cities with their populations.", {
        "type": "object", "properties": {"cities": {
            "type": "array", "minItems": 1, "maxItems": 2,
            "items": {"type": "object", "properties": {"name": NAME, "population": {"type": "integer", "minimum": 0}},
                      "required": ["name", "population"], "additionalProperties": False}}},
        "required": ["cities"], "additionalProperties": False}),
    ("boolean", "Is the sky blue?", {
        "type": "object", "properties": {"answer": {"type": "boolean"}, "confidence": {"enum": ["low", "high"]}},
        "required": ["answer", "confidence"], "additionalProperties": False}),
    ("pattern", "Give a US phone number.", {
        "type": "object", "properties": {"phone": {"type": "string", "pattern": "^[0-9]{3}-[0-9]{3}-[0-9]{4}$"}},
        "required": ["phone"], "additionalProperties": False}),
    ("date_pattern", "When did the first moon landing happen?", {
        "type": "object", "properties": {"date": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}},
        "required": ["date"], "additionalProperties": False}),
    ("const", "Say hello.", {
        "type": "object", "properties": {"kind": {"const": "greeting"}, "text": NAME},
        "required": ["kind", "text"], "additionalProperties": False}),
    ("optional_fields", "Describe a dog.", {
        "type": "object", "properties": {"name": NAME, "breed": NAME, "age": {"type": "integer", "minimum": 0,
                                                                              "maximum": 30}},
        "required": ["name"], "additionalProperties": False}),
    ("any_of", "Give an id.", {
        "type": "object", "properties": {"id": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 99999},
                                                          {"type": "string", "pattern": "^[a-z]{3}[0-9]{3}$"}]}},
        "required": ["id"], "additionalProperties": False}),
    ("top_level_enum", "Which planet is largest?", {"enum": ["Mercury", "Venus", "Earth", "Mars", "Jupiter"]}),
    ("top_level_integer", "How many legs does a spider have?", {"type": "integer", "minimum": 0, "maximum": 100}),
    ("nullable", "Does a fish have a middle name?", {
        "type": "object", "properties": {"middle_name": {"type": ["string", "null"], "maxLength": 16}},
        "required": ["middle_name"], "additionalProperties": False}),
    ("unique_tags", "Tag this sentence: the cat sat on the mat.", {
        "type": "object", "properties": {"tags": {"type": "array", "maxItems": 3,
                                                  "items": {"enum": ["animal", "place", "action", "object"]}}},
        "required": ["tags"], "additionalProperties": False}),
    ("defs_ref", "Describe a line segment.", {
        "$defs": {"point": {"type": "object", "properties": {"x": {"type": "integer", "minimum": -100,
                                                                   "maximum": 100},
                                                             "y": {"type": "integer", "minimum": -100,
                                                                   "maximum": 100}},
                            "required": ["x", "y"], "additionalProperties": False}},
        "type": "object", "properties": {"start": {"$ref": "#/$defs/point"}, "end": {"$ref": "#/$defs/point"}},
        "required": ["start", "end"], "additionalProperties": False}),
    ("deep_nesting", "Describe a company.", {
        "type": "object", "properties": {"company": {"type": "object", "properties": {
            "name": NAME, "address": {"type": "object", "properties": {
                "city": NAME, "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                "required": ["city", "zip"], "additionalProperties": False},
            "employees": {"type": "integer", "minimum": 1, "maximum": 1000000}},
            "required": ["name", "address", "employees"], "additionalProperties": False}},
        "required": ["company"], "additionalProperties": False}),
]


def _prompt(model, question: str) -> list[int]:
    messages = [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": question}]
    return model.chat_template.encode(model.chat_template.render(messages, add_generation_prompt=True))


@pytest.fixture(scope="module")
def ctx(smollm2):
    return Context(smollm2, n_ctx=N_CTX, n_threads=2)


@pytest.mark.parametrize("seed", [None, 1, 2], ids=["greedy", "seed1", "seed2"])
@pytest.mark.parametrize("name,question,schema", SCHEMAS, ids=[s[0] for s in SCHEMAS])
def test_schema_output_parses_and_validates(smollm2, ctx, name, question, schema, seed):
    params = SamplerParams(temperature=0.0) if seed is None else SamplerParams(temperature=1.0, seed=seed)
    constraint = GrammarConstraint.for_json_schema(smollm2.tokenizer, schema)
    gen = generate(ctx, _prompt(smollm2, question), sampler=Sampler(params), max_tokens=200, constraint=constraint)
    text = gen.text()
    assert gen.stats.finish_reason == "stop", text
    assert constraint.error is None and constraint.is_accepting
    jsonschema.validate(json.loads(text), schema)


def test_json_object_mode(smollm2, ctx):
    for seed in (None, 3):
        params = SamplerParams(temperature=0.0) if seed is None else SamplerParams(seed=seed)
        constraint = GrammarConstraint.for_json_schema(smollm2.tokenizer, {"type": "object"})
        gen = generate(ctx, _prompt(smollm2, "Give me a JSON object about a cat, with at most three keys."),
                       sampler=Sampler(params), max_tokens=300, constraint=constraint)
        if gen.stats.finish_reason == "stop":
            assert isinstance(json.loads(gen.text()), dict)
        else:  # a free object may run past max_tokens; what came out is still a prefix of one
            assert gen.text().startswith("{")


def test_end_of_generation_only_when_the_grammar_accepts(smollm2):
    tok = smollm2.tokenizer
    constraint = GrammarConstraint.for_json_schema(tok, {"type": "integer", "minimum": 0, "maximum": 99})
    eog = sorted(tok.eog_ids)
    logits = np.zeros(tok.n_vocab, np.float32)
    constraint.mask(logits)
    assert np.all(np.isneginf(logits[eog]))  # nothing yet: no end token
    allowed = [i for i in np.flatnonzero(np.isfinite(logits))]
    assert allowed and all(tok.token_bytes(int(i)).decode("utf-8", "replace").isdigit() for i in allowed)
    seven = tok.encode("7", add_special=False, parse_special=False)
    assert len(seven) == 1 and not constraint.accept(seven[0])  # "7" could still become "75"
    logits = np.zeros(tok.n_vocab, np.float32)
    constraint.mask(logits)
    assert np.all(np.isfinite(logits[eog]))  # "7" is a whole answer: ending is allowed now
    assert constraint.accept(eog[0])
    # special tokens never match grammar text: "<|im_end|>" inside a JSON string is refused as one token
    s = GrammarConstraint.for_json_schema(tok, {"type": "string"})
    im_end = tok.encode("<|im_end|>", add_special=False, parse_special=True)
    assert len(im_end) == 1 and tok.is_control(im_end[0])
    logits = np.zeros(tok.n_vocab, np.float32)
    s.accept(tok.encode('"', add_special=False, parse_special=False)[0])
    s.mask(logits)
    assert np.isneginf(logits[im_end[0]])


@pytest.mark.parametrize("schema", [
    {"type": "frobnicate"},
    {"type": "integer", "minimum": 5, "maximum": 1},
    {"type": "string", "pattern": "(("},
    {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}},
])
def test_invalid_schemas_are_refused(smollm2, schema):
    with pytest.raises(ConstraintError):
        GrammarConstraint.for_json_schema(smollm2.tokenizer, schema)


def test_not_a_schema_is_refused():
    with pytest.raises(ConstraintError):
        json_schema_grammar([1, 2])


# ----------------------------------------------------------------------------- tool-call parsing

WEATHER = '{"city": "Paris", "unit": "celsius"}'
PARSE_CASES = [
    # (format, reply, expected content, expected [(name, arguments)])
    (TC.HERMES, f'<tool_call>\n{{"name": "get_weather", "arguments": {WEATHER}}}\n</tool_call>', None,
     [("get_weather", WEATHER)]),
    (TC.HERMES, 'Let me look.\n<tool_call>\n{"name": "a", "arguments": {}}\n</tool_call>\n'
                '<tool_call>\n{"name": "b", "arguments": {"x": [1, 2]}}\n</tool_call>', "Let me look.",
     [("a", "{}"), ("b", '{"x": [1, 2]}')]),
    (TC.HERMES, '<tool_call>\n{"name": "a", "arguments": "{\\"q\\": 1}"}\n</tool_call>', None, [("a", '{"q": 1}')]),
    (TC.HERMES, '<tool_call>\n{"name": "a", "arguments": {"q": "é"}}', None, [("a", '{"q": "é"}')]),  # unclosed
    (TC.HERMES, "Paris is sunny today.", "Paris is sunny today.", []),
    (TC.HERMES, "<tool_call>\nnot json\n</tool_call>", "<tool_call>\nnot json\n</tool_call>", []),
    (TC.HERMES, '{"name": "bare", "arguments": {}}', None, [("bare", "{}")]),
    (TC.LLAMA3, f'{{"name": "get_weather", "parameters": {WEATHER}}}', None, [("get_weather", WEATHER)]),
    (TC.LLAMA3, '<|python_tag|>{"name": "a", "parameters": {}}; {"name": "b", "parameters": {"n": 2}}', None,
     [("a", "{}"), ("b", '{"n": 2}')]),
    (TC.LLAMA3, '{"type": "function", "name": "f", "parameters": {"k": true}}', None, [("f", '{"k": true}')]),
    (TC.LLAMA3, "The answer is {not a call}.", "The answer is {not a call}.", []),
    (TC.LLAMA3, '{"answer": 42}', '{"answer": 42}', []),
    (TC.MISTRAL, f'[TOOL_CALLS][{{"name": "get_weather", "arguments": {WEATHER}, "id": "abc123XYZ"}}]', None,
     [("get_weather", WEATHER)]),
    (TC.MISTRAL, 'Sure.[TOOL_CALLS]get_weather[ARGS]{"city": "Rome"}[TOOL_CALLS]ping[ARGS]{}', "Sure.",
     [("get_weather", '{"city": "Rome"}'), ("ping", "{}")]),
    (TC.MISTRAL, "No tools needed.", "No tools needed.", []),
    (TC.MISTRAL, "[TOOL_CALLS]garbage", "[TOOL_CALLS]garbage", []),
]


def _stream(fmt: str, text: str, cuts: list[int]) -> tuple[str | None, list[tuple[str, str]]]:
    parser = TC.StreamParser(fmt)
    events, last = [], 0
    for cut in cuts + [len(text)]:
        events += parser.feed(text[last:cut])
        last = cut
    events += parser.finish()
    content = "".join(v for k, v in events if k == "content") or None
    return content, [(v.name, v.arguments) for k, v in events if k == "tool_call"]


@pytest.mark.parametrize("fmt,text,content,calls", PARSE_CASES)
def test_parse_tool_calls(fmt, text, content, calls):
    got_content, got = TC.parse(text, fmt)
    assert got_content == content
    assert [(c.name, c.arguments) for c in got] == calls
    assert all(c.id for c in got)
    rng = random.Random(len(text))
    for cuts in ([], list(range(1, len(text))), sorted(rng.sample(range(1, len(text)), min(5, len(text) - 1)))):
        assert _stream(fmt, text, cuts) == (content, calls)


def test_call_ids_and_openai_shape():
    call = TC.parse('<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>', TC.HERMES)[1][0]
    assert call.id.startswith("call_") and len(call.id) == 29
    assert call.openai(0) == {"index": 0, "id": call.id, "type": "function",
                              "function": {"name": "f", "arguments": "{}"}}
    mistral = TC.parse('[TOOL_CALLS][{"name": "f", "arguments": {}}]', TC.MISTRAL)[1][0]
    assert len(mistral.id) == 9 and mistral.id.isalnum()  # Mistral's templates want 9 characters


@pytest.mark.parametrize("file,fmt,renders", [
    ("Qwen-Qwen2.5-7B-Instruct.jinja", TC.HERMES, True),
    ("Qwen-Qwen3-0.6B.jinja", TC.HERMES, True),
    ("meta-llama-Llama-3.1-8B-Instruct.jinja", TC.LLAMA3, True),
    ("meta-llama-Llama-3.2-3B-Instruct.jinja", TC.LLAMA3, True),
    ("mistralai-Mistral-Nemo-Instruct-2407.jinja", TC.MISTRAL, True),
    ("google-gemma-2-2b-it.jinja", TC.HERMES, False),
])
def test_format_from_template(file, fmt, renders):
    template = ChatTemplate((TEMPLATES / file).read_text())
    assert TC.detect_format(template.source) == fmt
    assert TC.template_renders_tools(template) is renders


def test_smollm2_template_gets_the_fallback(smollm2):
    assert not TC.template_renders_tools(smollm2.chat_template)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    messages = [{"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "one"},
                {"role": "tool", "tool_call_id": "c2", "content": "two"}]
    out = TC.hermes_fallback(messages, tools)
    assert out[0]["role"] == "system" and '"name": "f"' in out[0]["content"] and "<tool_call>" in out[0]["content"]
    assert out[2] == {"role": "assistant", "content": '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>'}
    assert out[3] == {"role": "user", "content": "<tool_response>\none\n</tool_response>\n"
                                                 "<tool_response>\ntwo\n</tool_response>"}
    assert len(out) == 4
    text = smollm2.chat_template.render(out)
    assert "<tool_response>\none" in text


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30},
                                                    "unit": {"enum": ["celsius", "fahrenheit"]}},
                   "required": ["city", "unit"], "additionalProperties": False}}}
TIME_TOOL = {"type": "function", "function": {
    "name": "get_time", "description": "Get the time in a timezone",
    "parameters": {"type": "object", "properties": {"tz": {"type": "string", "maxLength": 30}}, "required": ["tz"]}}}


@pytest.mark.parametrize("fmt,source", [(TC.HERMES, ""), (TC.LLAMA3, ""), (TC.MISTRAL, ""),
                                        (TC.MISTRAL, "[TOOL_CALLS]{{ name }}[ARGS]")])
@pytest.mark.parametrize("name", [None, "get_time"])
def test_forced_call_in_each_format_parses_back(smollm2, ctx, fmt, source, name):
    tok = smollm2.tokenizer
    grammar = lark_grammar(TC.forced_call_grammar(tok, fmt, [WEATHER_TOOL, TIME_TOOL], name, source))
    constraint = GrammarConstraint(tok, grammar)
    gen = generate(ctx, _prompt(smollm2, "What is the weather in Paris?"), sampler=Sampler(SamplerParams(seed=5)),
                   max_tokens=120, constraint=constraint)
    text = gen.text()
    assert gen.stats.finish_reason == "stop", text
    content, calls = TC.parse(text, fmt)
    assert content is None and len(calls) == 1, text
    call = calls[0]
    assert call.name in (("get_weather", "get_time") if name is None else (name,))
    tool = WEATHER_TOOL if call.name == "get_weather" else TIME_TOOL
    jsonschema.validate(json.loads(call.arguments), tool["function"]["parameters"])


# ----------------------------------------------------------------------------- the server


@pytest.fixture(scope="module")
def tool_model(smollm2_path):
    return load_model(build_tool_model(smollm2_path))


@pytest.fixture(scope="module")
def tools_server(tool_model):
    with serving(tool_model, Scheduler(tool_model, n_ctx=N_CTX, n_threads=2, max_queue=8)) as server:
        yield server


@pytest.fixture(scope="module")
def plain_server(smollm2):
    with serving(smollm2, Scheduler(smollm2, n_ctx=N_CTX, n_threads=2, max_queue=8)) as server:
        yield server


def _client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=120)


ASK_WEATHER = [{"role": "user", "content": "What's the weather like in Paris today?"}]
RECIPE = {"type": "object", "properties": {
    "dish": NAME, "minutes": {"type": "integer", "minimum": 1, "maximum": 240},
    "ingredients": {"type": "array", "items": NAME, "minItems": 1, "maxItems": 4}},
    "required": ["dish", "minutes", "ingredients"], "additionalProperties": False}


def test_server_response_format_json_schema(tools_server):
    client = _client(tools_server)
    fmt = {"type": "json_schema", "json_schema": {"name": "recipe", "schema": RECIPE, "strict": True}}
    messages = [{"role": "user", "content": "Give me a quick pasta recipe."}]
    r = client.chat.completions.create(model="", messages=messages, response_format=fmt, temperature=0,
                                       max_tokens=200)
    assert r.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(r.choices[0].message.content), RECIPE)
    stream = client.chat.completions.create(model="", messages=messages, response_format=fmt, temperature=0,
                                            max_tokens=200, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == r.choices[0].message.content
    # the openai client's parse helper builds the same request from a schema and reads it back
    obj = client.chat.completions.create(model="", messages=[{"role": "user", "content": "Any JSON object."}],
                                         response_format={"type": "json_object"}, seed=4, max_tokens=300)
    if obj.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(obj.choices[0].message.content), dict)


def test_server_completions_json_schema(tools_server):
    client = _client(tools_server)
    schema = {"type": "array", "items": {"enum": ["red", "green", "blue", "yellow"]}, "minItems": 2, "maxItems": 3}
    r = client.completions.create(model="", prompt="Three primary colors as a JSON list:", max_tokens=40,
                                  temperature=0, extra_body={"json_schema": schema})
    jsonschema.validate(json.loads(r.choices[0].text), schema)
    r = client.completions.create(model="", prompt="Three primary colors as a JSON list:", max_tokens=40, seed=2,
                                  extra_body={"response_format": {"type": "json_schema",
                                                                  "json_schema": {"name": "c", "schema": schema}}})
    jsonschema.validate(json.loads(r.choices[0].text), schema)


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "get_weather"}}])
def test_server_tool_call_round_trip(tools_server, choice):
    client = _client(tools_server)
    tools = [WEATHER_TOOL, TIME_TOOL]
    r = client.chat.completions.create(model="", messages=ASK_WEATHER, tools=tools, tool_choice=choice,
                                       temperature=0, max_tokens=100)
    choice0 = r.choices[0]
    assert choice0.finish_reason == "tool_calls"
    assert choice0.message.content is None and len(choice0.message.tool_calls) == 1
    call = choice0.message.tool_calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    if isinstance(choice, dict):
        assert call.function.name == "get_weather"
    tool = WEATHER_TOOL if call.function.name == "get_weather" else TIME_TOOL
    jsonschema.validate(json.loads(call.function.arguments), tool["function"]["parameters"])

    stream = client.chat.completions.create(model="", messages=ASK_WEATHER, tools=tools, tool_choice=choice,
                                            temperature=0, max_tokens=100, stream=True)
    chunks = [c for c in stream if c.choices]
    deltas = [tc for c in chunks for tc in c.choices[0].delta.tool_calls or ()]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert [(d.index, d.function.name, d.function.arguments) for d in deltas] == \
        [(0, call.function.name, call.function.arguments)]
    assert not "".join(c.choices[0].delta.content or "" for c in chunks)

    messages = ASK_WEATHER + [choice0.message.model_dump(exclude_none=True),
                              {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature_c": 21,
                                                                                                "sky": "sunny"})}]
    reply = client.chat.completions.create(model="", messages=messages, tools=tools, temperature=0, max_tokens=40)
    assert reply.choices[0].finish_reason in ("stop", "length", "tool_calls")
    assert reply.choices[0].message.content or reply.choices[0].message.tool_calls


def test_server_tool_choice_none_renders_no_tools(tools_server):
    client = _client(tools_server)
    with_tools = client.chat.completions.create(model="", messages=ASK_WEATHER, tools=[WEATHER_TOOL],
                                                tool_choice="auto", temperature=0, max_tokens=1)
    none = client.chat.completions.create(model="", messages=ASK_WEATHER, tools=[WEATHER_TOOL], tool_choice="none",
                                          temperature=0, max_tokens=1)
    plain = client.chat.completions.create(model="", messages=ASK_WEATHER, temperature=0, max_tokens=1)
    assert none.usage.prompt_tokens == plain.usage.prompt_tokens < with_tools.usage.prompt_tokens
    assert none.choices[0].message.tool_calls is None


def test_server_tools_on_a_template_without_tools(plain_server):
    """SmolLM2's own template does not render tools: the Hermes fallback describes them and parses the call."""
    client = _client(plain_server)
    r = client.chat.completions.create(model="", messages=ASK_WEATHER, tools=[WEATHER_TOOL], tool_choice="required",
                                       temperature=0, max_tokens=100)
    assert r.choices[0].finish_reason == "tool_calls"
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    jsonschema.validate(json.loads(call.function.arguments), WEATHER_TOOL["function"]["parameters"])
    messages = ASK_WEATHER + [r.choices[0].message.model_dump(exclude_none=True),
                              {"role": "tool", "tool_call_id": call.id, "content": "21 C, sunny"}]
    reply = client.chat.completions.create(model="", messages=messages, temperature=0, max_tokens=30)
    assert reply.choices[0].message.content


def _error(r: httpx.Response) -> dict:
    assert r.status_code == 400, r.text
    return r.json()["error"]


def test_server_structured_bad_requests(plain_server):
    url = plain_server.url + "/v1/chat/completions"

    def post(**body):
        return httpx.post(url, json={"messages": ASK_WEATHER, "max_tokens": 4, **body}, timeout=60)

    bad_schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "integer", "minimum": 9,
                                                                                "maximum": 1}}}
    err = _error(post(response_format=bad_schema))
    assert err["code"] == "invalid_schema" and err["param"] == "response_format" and "minimum" in err["message"]
    assert _error(post(response_format={"type": "json_schema"}))["param"] == "response_format.json_schema"
    assert _error(post(response_format={"type": "xml"}))["param"] == "response_format.type"
    err = _error(post(tools=[WEATHER_TOOL], tool_choice={"type": "function", "function": {"name": "nope"}}))
    assert err["param"] == "tool_choice.function.name" and "get_weather" in err["message"]
    assert _error(post(tool_choice="required"))["param"] == "tool_choice"
    assert _error(post(tools=[WEATHER_TOOL], tool_choice="always"))["param"] == "tool_choice"
    assert _error(post(tools=[WEATHER_TOOL, WEATHER_TOOL]))["param"] == "tools"
    bad_tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "frobnicate"}}}
    err = _error(post(tools=[bad_tool], tool_choice="required"))
    assert err["code"] == "invalid_schema" and err["param"] == "tools"
    assert _error(post(tools=[{"type": "function", "function": {"name": "has space"}}]))["param"] == \
        "tools.0.function.name"
    err = _error(post(tools=[WEATHER_TOOL], tool_choice="required", response_format={"type": "json_object"}))
    assert err["code"] == "unsupported"
    r = httpx.post(plain_server.url + "/v1/completions", json={"prompt": "x", "json_schema": {"type": "nope"}},
                   timeout=60)
    assert _error(r)["param"] == "json_schema"


def test_unbounded_numbers_get_bounds():
    from engine.constrain import DECIMAL_STEP, NUMBER_LIMIT, bounded_numbers

    schema = {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "integer", "minimum": 0},
                                               "c": {"enum": [{"type": "number"}]}, "d": {"type": "string"}}}
    out = bounded_numbers(schema)
    assert out["properties"]["a"] == {"type": "number", "minimum": -NUMBER_LIMIT, "maximum": NUMBER_LIMIT,
                                      "multipleOf": DECIMAL_STEP}
    assert out["properties"]["b"] == {"type": "integer", "minimum": 0, "maximum": NUMBER_LIMIT}
    assert out["properties"]["c"] == schema["properties"]["c"] and out["properties"]["d"] == {"type": "string"}
    assert schema["properties"]["a"] == {"type": "number"}  # the caller's schema is left alone
