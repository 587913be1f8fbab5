"""Chat templates on the real starter models: SmolLM2's own (ChatML) template, the built-in Gemma and
ChatML fallbacks, BOS handling, the sandbox, and error messages; and real models' templates (Llama 3.x, Qwen2.5,
Qwen3, QwQ, Phi-3, Gemma 2, DeepSeek-R1, Mistral Nemo...) against the expected outputs of llama.cpp's
test-chat-template.cpp and renderings of transformers' apply_chat_template (tests/data/chat_templates/)."""
from __future__ import annotations

import copy
import json
import re
from datetime import datetime
from pathlib import Path

import pytest

from conftest import GEMMA3_FILE, SMOLLM2_FILE
from engine.chat_template import ChatTemplate, ChatTemplateError
from test_tokenizer import metadata_for, tokenizer_for

CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2+2?"},
]


def template_for(filename: str, **overrides) -> ChatTemplate:
    meta = dict(metadata_for(filename))
    for key, value in overrides.items():
        key = key.replace("__", ".")
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    return ChatTemplate.from_metadata(meta, tokenizer_for(filename))


def test_smollm2_template_system_and_user():
    tmpl = template_for(SMOLLM2_FILE)
    assert not tmpl.is_fallback
    assert tmpl.source == metadata_for(SMOLLM2_FILE)["tokenizer.chat_template"]
    assert tmpl.render(CONVERSATION) == (
        "<|im_start|>system\nYou are terse.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n")
    assert tmpl.render(CONVERSATION, add_generation_prompt=False) == (
        "<|im_start|>system\nYou are terse.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n")
    # without a system message the template supplies its own
    assert tmpl.render([{"role": "user", "content": "Hi"}]) == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_smollm2_prompt_tokens():
    tmpl = template_for(SMOLLM2_FILE)
    tok = tokenizer_for(SMOLLM2_FILE)
    ids = tmpl.encode(tmpl.render(CONVERSATION))
    assert ids == tok.encode(tmpl.render(CONVERSATION), add_special=True)  # add_bos is false: nothing added
    assert ids[0] == 1 and ids.count(1) == 3 and ids.count(2) == 2  # <|im_start|> x3, <|im_end|> x2
    assert ids[-4:] == [1] + tok.encode("assistant\n", add_special=False)


def test_gemma_fallback():
    tmpl = template_for(GEMMA3_FILE)
    assert tmpl.is_fallback and "tokenizer.chat_template" not in metadata_for(GEMMA3_FILE)
    assert tmpl.render(CONVERSATION) == (
        "<start_of_turn>user\nYou are terse.\n\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n")
    turns = CONVERSATION + [{"role": "assistant", "content": "4"}, {"role": "user", "content": "And 3+3?"}]
    assert tmpl.render(turns, add_generation_prompt=False) == (
        "<start_of_turn>user\nYou are terse.\n\nWhat is 2+2?<end_of_turn>\n"
        "<start_of_turn>model\n4<end_of_turn>\n"
        "<start_of_turn>user\nAnd 3+3?<end_of_turn>\n")
    assert tmpl.render([{"role": "user", "content": "Hi"}]) == \
        "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"


def test_gemma_prompt_has_one_bos():
    tmpl = template_for(GEMMA3_FILE)
    assert not tmpl.renders_bos()
    ids = tmpl.encode(tmpl.render(CONVERSATION))
    assert ids[:4] == [2, 105, 2364, 107]  # <bos> <start_of_turn> user \n
    assert ids.count(2) == 1 and ids[-3:] == [105, 4368, 107]  # ... <start_of_turn> model \n


def test_template_that_renders_bos_is_not_given_a_second_one():
    tok = tokenizer_for(GEMMA3_FILE)
    tmpl = ChatTemplate("{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m['role'] }}\n"
                        "{{ m['content'] }}<end_of_turn>\n{% endfor %}", tok)
    text = tmpl.render([{"role": "user", "content": "Hi"}])
    assert text.startswith("<bos><start_of_turn>") and tmpl.renders_bos()
    ids = tmpl.encode(text)
    assert ids[:2] == [2, 105] and ids.count(2) == 1


def test_gemma_fallback_role_order_error():
    tmpl = template_for(GEMMA3_FILE)
    with pytest.raises(ChatTemplateError, match="alternate"):
        tmpl.render([{"role": "assistant", "content": "Hi"}])


def test_chatml_fallback_for_other_architectures():
    tmpl = template_for(SMOLLM2_FILE, tokenizer__chat_template=None)
    assert tmpl.is_fallback
    assert tmpl.render(CONVERSATION) == (
        "<|im_start|>system\nYou are terse.<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n")
    parts = [{"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}]
    assert tmpl.render(parts, add_generation_prompt=False) == "<|im_start|>user\nHi there<|im_end|>\n"


@pytest.mark.parametrize("source", [
    "{{ messages.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__ }}",
    "{{ raise_exception.__globals__ }}",
    "{% set _ = messages.append({'role': 'user'}) %}",
    "{{ messages[0].update({'x': 1}) }}",
])
def test_sandbox_blocks_unsafe_access(source):
    tmpl = ChatTemplate(source, tokenizer_for(SMOLLM2_FILE))
    with pytest.raises(ChatTemplateError, match="unsafe"):
        tmpl.render([{"role": "user", "content": "Hi"}])


def test_error_messages_are_clear():
    tok = tokenizer_for(SMOLLM2_FILE)
    with pytest.raises(ChatTemplateError, match=r"syntax error at line 2"):
        ChatTemplate("{% for m in messages %}\n{% if %}{% endfor %}", tok)
    with pytest.raises(ChatTemplateError, match="chat template") as err:
        ChatTemplate.from_metadata({**metadata_for(SMOLLM2_FILE), "tokenizer.chat_template": "{{ x"}, tok)
    assert "tokenizer.chat_template" in str(err.value)
    tmpl = ChatTemplate("first\n{{ raise_exception('System role not supported') }}", tok)
    with pytest.raises(ChatTemplateError, match=r"refused the conversation: System role not supported "
                                                r"\(template line 2\)"):
        tmpl.render(CONVERSATION)
    tmpl = ChatTemplate("a\nb\n{{ messages[0]['content'].nope.deeper }}", tok)
    with pytest.raises(ChatTemplateError, match=r"UndefinedError.*line 3"):
        tmpl.render(CONVERSATION)


def test_transformers_environment_features():
    tok = tokenizer_for(GEMMA3_FILE)
    tmpl = ChatTemplate(
        "{{ bos_token }}|{{ eos_token }}|{{ messages | tojson }}|{{ strftime_now('%Y') | length }}|"
        "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}{{ m.role }}{% endfor %}|"
        "{% generation %}{{ flavor }}{% endgeneration %}|{{ tools is none }}\n"
        "  {% if add_generation_prompt %}\n  gen\n  {% endif %}\n", tok)
    out = tmpl.render([{"role": "user", "content": "héllo"}, {"role": "user", "content": "x"}], flavor="mint")
    assert out == ('<bos>|<eos>|[{"role": "user", "content": "héllo"}, {"role": "user", "content": "x"}]|4|'
                   "user|mint|True\n  gen\n")  # trim_blocks + lstrip_blocks


# --- Real model templates against reference renderings -------------------------------------------------------------
# tests/data/chat_templates/ holds llama.cpp's copies of real models' templates (models/templates/*.jinja) and two data
# files of expected renderings (see its README): llama_cpp_test_chat_template.json, the template strings and expected
# outputs of llama.cpp's tests/test-chat-template.cpp, and expected_renderings.json, what transformers'
# apply_chat_template gives for the .jinja files on conversations with a system prompt, thinking, tools and tool calls.

DATA_DIR = Path(__file__).resolve().parent / "data" / "chat_templates"
LLAMA_CPP_CASES = json.loads((DATA_DIR / "llama_cpp_test_chat_template.json").read_text(encoding="utf-8"))
RENDERINGS = json.loads((DATA_DIR / "expected_renderings.json").read_text(encoding="utf-8"))


class _Vocab:
    """The part of a tokenizer ChatTemplate reads (bos/eos ids and their texts), for templates without a GGUF."""

    def __init__(self, bos_token: str | None, eos_token: str | None):
        self._texts = {0: bos_token, 1: eos_token}
        self.bos_id = 0 if bos_token else None
        self.eos_id = 1 if eos_token else None
        self.unk_id = None

    def token_text(self, token_id: int) -> str:
        return self._texts[token_id]


def model_template(filename: str) -> ChatTemplate:
    tokens = RENDERINGS["special_tokens"][filename]
    source = (DATA_DIR / filename).read_text(encoding="utf-8")
    return ChatTemplate(source, _Vocab(tokens.get("bos_token"), tokens.get("eos_token")), name=filename)


def conversation(name: str) -> list[dict]:
    return copy.deepcopy(RENDERINGS["conversations"][name])


def template_kwargs(case: dict) -> dict:
    return {key: RENDERINGS["tools"][value[1:]] if isinstance(value, str) and value.startswith("$") else value
            for key, value in case["kwargs"].items()}


def merge_system_into_first_user(messages: list[dict]) -> list[dict]:
    """llama.cpp's rewrite for templates that drop or reject a system message (the data file's system_message_rule):
    the system text joins the first user message, separated by a newline."""
    out, pending = [], ""
    for message in messages:
        if message["role"] == "system":
            pending += ("\n" if pending else "") + message["content"]
            continue
        if message["role"] == "user" and pending:
            message = {**message, "content": pending + ("\n" + message["content"] if message["content"] else "")}
            pending = ""
        out.append(message)
    return out


def test_reference_data_is_complete():
    # the data files are what the tests below compare to: make sure none went missing or empty
    assert len(LLAMA_CPP_CASES["cases"]) == 32 and all(c["expected"] for c in LLAMA_CPP_CASES["cases"])
    assert sum(c["system_message"] == "merged_into_first_user" for c in LLAMA_CPP_CASES["cases"]) == 6
    jinja_files = sorted(p.name for p in DATA_DIR.glob("*.jinja"))
    assert len(jinja_files) == 9 and sorted(RENDERINGS["special_tokens"].keys() - {"_note"}) == jinja_files
    assert sorted({c["template"] for c in RENDERINGS["cases"]}) == jinja_files
    assert all(("expected" in c) != ("error" in c) for c in RENDERINGS["cases"])
    assert (DATA_DIR / "README.md").is_file()


@pytest.mark.parametrize("case", LLAMA_CPP_CASES["cases"], ids=[c["name"] for c in LLAMA_CPP_CASES["cases"]])
def test_llama_cpp_test_chat_template_cases(case):
    messages = copy.deepcopy(LLAMA_CPP_CASES["conversation"])
    if case["system_message"] == "merged_into_first_user":
        messages = merge_system_into_first_user(messages)
    tmpl = ChatTemplate(case["template"], _Vocab(case["bos_token"], case["eos_token"]))
    assert tmpl.render(messages, add_generation_prompt=LLAMA_CPP_CASES["add_generation_prompt"]) == case["expected"]


@pytest.mark.parametrize("case", RENDERINGS["cases"], ids=[c["id"] for c in RENDERINGS["cases"]])
def test_model_templates_render_like_transformers(case):
    tmpl = model_template(case["template"])
    messages = conversation(case["conversation"])
    kwargs = template_kwargs(case)
    if "error" in case:
        with pytest.raises(ChatTemplateError, match="refused the conversation: " + re.escape(case["error"])):
            tmpl.render(messages, add_generation_prompt=case["add_generation_prompt"], **kwargs)
    else:
        assert tmpl.render(messages, add_generation_prompt=case["add_generation_prompt"], **kwargs) == case["expected"]
    assert messages == RENDERINGS["conversations"][case["conversation"]]  # the caller's messages are left as they were


def _with_arguments(messages: list[dict], as_string: bool) -> list[dict]:
    messages = copy.deepcopy(messages)
    for message in messages:
        for call in message.get("tool_calls") or []:
            args = call["function"]["arguments"]
            if as_string and not isinstance(args, str):
                call["function"]["arguments"] = json.dumps(args, ensure_ascii=False)
            elif not as_string and isinstance(args, str):
                call["function"]["arguments"] = json.loads(args)
    return messages


@pytest.mark.parametrize("case_id", [
    "llama3.1-tools-in-user-message", "llama3.2-tools", "qwen2.5-tools", "qwen2.5-parallel-tool-calls",
    "qwen3-tools", "qwen3-parallel-tool-calls", "qwq-tools", "mistral-nemo-tools",  # templates that want a dict
    "deepseek-r1-tool-call", "deepseek-r1-tool-answered",  # a template that concatenates the JSON text
])
def test_tool_call_arguments_as_json_text_or_dict(case_id):
    """OpenAI clients send ``function.arguments`` as JSON text, templates written for transformers mostly expect a
    dict (Llama 3.x, Qwen 2.5 ``| tojson`` it) and DeepSeek-R1's expects the text: either form renders as the form the
    template expects would."""
    case = next(c for c in RENDERINGS["cases"] if c["id"] == case_id)
    tmpl = model_template(case["template"])
    for as_string in (True, False):
        messages = _with_arguments(conversation(case["conversation"]), as_string)
        before = copy.deepcopy(messages)
        out = tmpl.render(messages, add_generation_prompt=case["add_generation_prompt"], **template_kwargs(case))
        assert out == case["expected"], f"arguments as {'JSON text' if as_string else 'a dict'}"
        assert messages == before


def test_tool_call_arguments_that_are_not_a_json_object_are_left_alone():
    tmpl = model_template("Qwen-Qwen2.5-7B-Instruct.jinja")
    messages = conversation("tool_call")
    messages[2]["tool_calls"][0]["function"]["arguments"] = "not json"
    assert '"arguments": "not json"}' in tmpl.render(messages)  # what transformers renders: tojson of the text


def test_flat_tool_calls_with_json_text_arguments():
    # {"name", "arguments"} without the "function" wrapper, which Qwen's templates also accept
    case = next(c for c in RENDERINGS["cases"] if c["id"] == "qwen2.5-parallel-tool-calls")
    messages = conversation(case["conversation"])
    messages[1]["tool_calls"] = [{"name": c["function"]["name"], "arguments": json.dumps(c["function"]["arguments"])}
                                 for c in messages[1]["tool_calls"]]
    tmpl = model_template(case["template"])
    assert tmpl.render(messages, **template_kwargs(case)) == case["expected"]


def test_llama3_2_date_defaults_to_today():
    tmpl = model_template("meta-llama-Llama-3.2-3B-Instruct.jinja")
    before = datetime.now().strftime("%d %b %Y")
    out = tmpl.render(conversation("basic"))
    after = datetime.now().strftime("%d %b %Y")
    expected = next(c["expected"] for c in RENDERINGS["cases"] if c["id"] == "llama3.2-basic")
    assert out in (expected.replace("01 Jan 2025", before), expected.replace("01 Jan 2025", after))


def test_model_template_from_gguf_metadata_with_real_tokenizer():
    # the same Qwen3 template as a GGUF's tokenizer.chat_template, with a real tokenizer, and thinking switched off
    source = (DATA_DIR / "Qwen-Qwen3-0.6B.jinja").read_text(encoding="utf-8")
    tmpl = template_for(SMOLLM2_FILE, tokenizer__chat_template=source)
    assert not tmpl.is_fallback
    expected = next(c["expected"] for c in RENDERINGS["cases"] if c["id"] == "qwen3-enable-thinking-false")
    assert tmpl.render(conversation("basic"), enable_thinking=False) == expected
    ids = tmpl.encode(expected)
    assert ids.count(1) == 5 and ids.count(2) == 4  # SmolLM2 shares Qwen's <|im_start|>/<|im_end|>: 5 and 4 of them


# --- gpt-oss's harmony template ----------------------------------------------------------------------------------------
# tests/data/chat_templates/harmony/ holds llama.cpp's copy of gpt-oss's own template (models/templates/
# openai-gpt-oss-120b.jinja). Expected pieces from OpenAI's harmony response format: a system message with the
# reasoning effort and the valid channels, the caller's system prompt as a developer message ("# Instructions"),
# past assistant replies on the final channel with their reasoning (analysis) dropped, tools as a TypeScript-like
# namespace in the developer message, and the prompt ending where the assistant's next message starts.
HARMONY = Path(__file__).resolve().parent / "data" / "chat_templates" / "harmony" / "openai-gpt-oss-120b.jinja"


def test_gpt_oss_harmony_template():
    tmpl = ChatTemplate(HARMONY.read_text(encoding="utf-8"))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!", "thinking": "The user greets me."},
                {"role": "user", "content": "2+2?"}]
    out = tmpl.render(messages, reasoning_effort="high")
    assert out.startswith("<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n")
    assert "Reasoning: high\n\n# Valid channels: analysis, commentary, final." in out
    assert "<|start|>developer<|message|># Instructions\n\nBe brief.\n\n<|end|>" in out
    assert ("<|start|>user<|message|>Hi<|end|><|start|>assistant<|channel|>final<|message|>Hello!<|end|>"
            "<|start|>user<|message|>2+2?<|end|><|start|>assistant") in out and out.endswith("<|start|>assistant")
    assert "The user greets me." not in out  # a past turn's analysis channel is not sent again
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    with_tools = tmpl.render(messages[:2], tools=tools)
    assert "Reasoning: medium" in with_tools
    assert "namespace functions {\n\n// Weather\ntype get_weather = (_: {\ncity: string,\n}) => any;" in with_tools
