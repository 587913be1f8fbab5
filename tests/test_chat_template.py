"""Chat templates on the real starter models: SmolLM2's own (ChatML) template, the built-in Gemma and
ChatML fallbacks, BOS handling, the sandbox, and error messages."""
from __future__ import annotations

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
