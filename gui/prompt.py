"""The prompt of a chat turn: the conversation's messages, with past replies' reasoning left out, rendered
by the model's chat template (no Qt here; the worker runs it in its thread).

Reasoning models write their thoughts before the answer. Their templates drop those thoughts from earlier
turns of the prompt (DeepSeek-R1's and Qwen3's templates keep only what follows the last ``</think>`` of an
assistant message; gpt-oss's harmony template renders past replies on the final channel only), so the
messages passed to a template hold the answers alone: :func:`answer_only` strips ``<think>`` sections
here too, whatever template the model has. gpt-oss's reasoning never reaches the stored text (the
scheduler splits it off, see :mod:`engine.reasoning`).
"""
from __future__ import annotations

from typing import Iterable

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
THINKING_VARIABLE = "enable_thinking"  # Qwen3's template variable (transformers' apply_chat_template kwarg)


def answer_only(text: str) -> str:
    """A reply without its ``<think>...</think>`` reasoning.

    What follows the last ``</think>`` is the answer (DeepSeek-R1 distills open the ``<think>`` in the
    generation prompt, so their replies hold only the closing tag); a ``<think>`` never closed (a reply
    stopped while thinking) leaves the text before it. Text without the tags is returned unchanged.
    """
    if THINK_CLOSE in text:
        return text.rsplit(THINK_CLOSE, 1)[1].lstrip()
    if THINK_OPEN in text:
        return text.split(THINK_OPEN, 1)[0].rstrip()
    return text


def chat_messages(history: Iterable, system_prompt: str | None, *, resume_last: bool = False) -> list[dict]:
    """The ``{"role", "content"}`` dicts a chat template renders.

    Args:
        history: stored messages (objects with ``role`` and ``content``: :class:`gui.conversations.Message`),
            in order.
        system_prompt: the conversation's system prompt; None or "" for none.
        resume_last: the last message is a reply to continue (:func:`encode_continuation`): it keeps its
            ``<think>`` section, since the model goes on from its own text, and loses trailing whitespace.
    """
    history = list(history)
    out = [{"role": "system", "content": system_prompt}] if system_prompt else []
    for i, m in enumerate(history):
        if resume_last and i == len(history) - 1:
            content = m.content.rstrip()
        else:
            content = answer_only(m.content) if m.role == "assistant" else m.content
        out.append({"role": m.role, "content": content})
    return out


def supports_thinking(template) -> bool:
    """Whether a :class:`~engine.chat_template.ChatTemplate` reads the ``enable_thinking`` variable."""
    return THINKING_VARIABLE in (getattr(template, "source", "") or "")


def template_variables(template, thinking: bool) -> dict:
    """The extra variables to render ``template`` with: ``enable_thinking`` where the template reads it."""
    return {THINKING_VARIABLE: bool(thinking)} if supports_thinking(template) else {}


def encode_prompt(template, messages: list[dict], variables: dict | None = None, *,
                  add_generation_prompt: bool = True) -> list[int]:
    """Token ids of ``messages`` rendered by ``template`` (BOS once, control tokens parsed).

    Raises:
        engine.chat_template.ChatTemplateError: the template refused or failed on the conversation.
    """
    text = template.render(messages, add_generation_prompt=add_generation_prompt, **(variables or {}))
    return template.encode(text)


def continuation_text(template, messages: list[dict], variables: dict | None = None) -> str:
    """The prompt text that resumes the last message of ``messages`` (a reply cut by max tokens or Stop).

    transformers' ``apply_chat_template(continue_final_message=True)``: the whole conversation rendered
    without a generation prompt, cut right after the last message's text, so the model goes on inside its
    own turn with the template's own assistant header (gpt-oss's final channel, Qwen3's think block)
    and no end-of-turn token. Where the template changed that text so it cannot be found, the turn is
    the generation prompt after the earlier messages followed by the text (llama-server's assistant
    prefill). The text is matched without its surrounding whitespace; pass it right-stripped
    (:func:`chat_messages` with ``resume_last``) so what is stored is what the model saw.

    Raises:
        ValueError: ``messages`` is empty or its last message has no text.
        engine.chat_template.ChatTemplateError: the template refused or failed on the conversation.
    """
    if not messages or not str(messages[-1].get("content") or "").strip():
        raise ValueError("there is no reply to continue")
    last = str(messages[-1]["content"]).strip()
    variables = variables or {}
    rendered = template.render(messages, add_generation_prompt=False, **variables)
    at = rendered.rfind(last)
    if at >= 0:
        return rendered[:at + len(last)]
    head = template.render(messages[:-1], add_generation_prompt=True, **variables)
    return head + str(messages[-1]["content"]).rstrip()


def encode_continuation(template, messages: list[dict], variables: dict | None = None) -> list[int]:
    """Token ids of :func:`continuation_text` (BOS once, control tokens parsed).

    Raises:
        ValueError: no reply to continue; engine.chat_template.ChatTemplateError: the template failed.
    """
    return template.encode(continuation_text(template, messages, variables))


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def fit_history(template, messages: list[dict], variables: dict | None, n_ctx: int,
                max_tokens: int, *, resume_last: bool = False) -> tuple[list[dict], list[int], int]:
    """The "keep the system prompt and drop the oldest turns" policy (Settings > Model > Context shift).

    Drops the oldest messages after the system prompt, one at a time, until the prompt leaves room for a
    reply of ``min(max_tokens, n_ctx // 4)`` tokens, never dropping the last message (nor, for a reply
    being continued, the message before it). While the reply
    grows past n_ctx, the engine's context shift (``Scheduler(context_shift=True)``, llama-server's
    n_keep / n_discard) keeps the first ``n_keep`` tokens: the system prompt as the template renders it.

    Args:
        template: the model's :class:`engine.chat_template.ChatTemplate`; messages: ``{"role", "content"}``
            dicts, the system prompt first if any; variables: extra template variables; n_ctx: tokens per
            slot; max_tokens: the reply's limit; resume_last: the last message is a reply to continue
            (the prompt is :func:`encode_continuation`'s).

    Returns:
        (the messages kept, their prompt token ids, n_keep in tokens). The prompt may still be n_ctx or
        longer when the last message alone is too long (the caller refuses it then).

    Raises:
        engine.chat_template.ChatTemplateError: the template refused or failed on the conversation.
    """
    def encode(msgs: list[dict]) -> list[int]:
        return encode_continuation(template, msgs, variables) if resume_last else encode_prompt(template, msgs,
                                                                                              variables)

    room = max(1, min(max_tokens, n_ctx // 4))
    system = [m for m in messages[:1] if m.get("role") == "system"]
    rest = list(messages[len(system):])
    tokens = encode(system + rest)
    last = 2 if resume_last else 1  # a reply being continued keeps the message it answers
    while len(tokens) + room > n_ctx and len(rest) > last:
        rest.pop(0)
        while len(rest) > last and rest[0].get("role") != "user":  # a turn starts with the user's message
            rest.pop(0)
        tokens = encode(system + rest)
    n_keep = 0
    if system:
        alone = encode_prompt(template, system, variables, add_generation_prompt=False)
        n_keep = _common_prefix(alone, tokens)
    return system + rest, tokens, n_keep
