"""The chat controller without any window: a real EngineWorker on its own QThread with the real SmolLM2
model, a temporary ConversationStore, and the controller's signals recorded in the GUI thread. Send, stream,
stop (the partial reply is kept), regenerate, edit, switch conversation mid-reply, a message refused as too
long, closing mid-reply, the context count of a saved conversation, and a reply queued behind another
request. Then the prompt of a turn: past replies' reasoning left out, and a template's thinking switch,
on the real SmolLM2 tokenizer.
"""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is imported

from dataclasses import replace  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import QThread  # noqa: E402

from engine.chat_template import ChatTemplate  # noqa: E402
from engine.sampling import SamplerParams  # noqa: E402
from engine.scheduler import GenerationRequest  # noqa: E402
from gui.chat_controller import ChatController, chat_title, context_label  # noqa: E402
from gui.conversations import ConversationStore, Message  # noqa: E402
from gui.engine_worker import EngineWorker  # noqa: E402
from gui.prompt import (answer_only, chat_messages, continuation_text, encode_prompt, supports_thinking,  # noqa: E402
                        template_variables)
from gui.settings import AppSettings  # noqa: E402
from qt_helpers import Recorder  # noqa: E402

LOAD_TIMEOUT_MS = 60_000
REPLY_TIMEOUT_MS = 120_000
SETTINGS = AppSettings(temperature=0.0, seed=1, max_tokens=24, n_ctx=512, n_threads=2)
STORY = "Tell me a long story about a fox."  # 200 tokens and more at temperature 0: time to stop it


class Harness:
    """A worker on its thread, a temp store and a controller; ``settings`` may be replaced by a test."""

    def __init__(self, qtbot, tmp_path):
        self.qtbot = qtbot
        self.settings = SETTINGS
        self.worker = EngineWorker()
        self.thread = QThread()
        self.worker.moveToThread(self.thread)
        self.thread.start()
        self.store = ConversationStore(tmp_path / "conversations.sqlite3")
        self.chat = ChatController(self.worker, self.store, lambda: self.settings)
        self.loaded = Recorder(self.worker.model_loaded)
        self.ended = Recorder(self.chat.reply_ended)
        self.failed = Recorder(self.chat.reply_failed)
        self.text = Recorder(self.chat.reply_text)
        self.status = Recorder(self.chat.status_changed)
        self.context = Recorder(self.chat.context_changed)
        self.returned = Recorder(self.chat.input_returned)
        self.shown = Recorder(self.chat.conversation_shown)

    def load(self, path, n_parallel: int = 4):
        before = len(self.loaded.calls)
        self.worker.load(path, self.settings.n_ctx, self.settings.n_threads, n_parallel)
        self.qtbot.waitUntil(lambda: len(self.loaded.calls) > before, timeout=LOAD_TIMEOUT_MS)
        loaded = self.loaded.calls[-1][0]
        self.chat.set_model(loaded)
        return loaded

    def reply(self, start) -> tuple:
        """Run ``start()`` and wait for the reply it starts to end; returns (text, stats)."""
        before = len(self.ended.calls)
        start()
        self.qtbot.waitUntil(lambda: len(self.ended.calls) > before or bool(self.failed.calls), timeout=REPLY_TIMEOUT_MS)
        assert not self.failed.calls, self.failed.calls
        return self.ended.calls[-1]

    def stored(self, conv_id=None) -> list[tuple[str, str]]:
        return [(m.role, m.content) for m in self.store.messages(conv_id or self.chat.conv_id)]

    def close(self):
        self.chat.close()
        self.worker.cancel_all()
        self.thread.quit()
        self.thread.wait()
        self.worker.shutdown()
        self.store.close()


@pytest.fixture()
def harness(qtbot, tmp_path):
    h = Harness(qtbot, tmp_path)
    yield h
    h.close()


def test_send_stream_stop_regenerate_edit(harness, smollm2_path):
    h = harness
    loaded = h.load(smollm2_path)
    assert loaded.name == smollm2_path.stem and loaded.template == "model" and not loaded.thinking
    assert h.chat.template_variables() == {}
    h.chat.set_model(replace(loaded, thinking=True))  # a template that reads enable_thinking
    assert h.chat.template_variables() == {"enable_thinking": True}
    h.chat.thinking = False
    assert h.chat.template_variables() == {"enable_thinking": False}
    h.chat.set_model(loaded)

    text, stats = h.reply(lambda: h.chat.send("What is the capital of France? Answer in one sentence."))
    pieces = "".join(p for (p,) in h.text.calls)
    assert text == pieces and text.strip() and stats.n_generated > 1
    assert h.stored() == [("user", "What is the capital of France? Answer in one sentence."), ("assistant", text)]
    assert [c.title for c in h.store.list()] == ["What is the capital of France? Answer in one se…"]
    assert h.context.calls[-1] == (stats.n_prompt + stats.n_generated, 512)
    assert h.status.calls[-1][0].endswith("tokens/s") and not h.chat.busy

    # Stop after three pieces: the partial reply is saved and shown.
    h.settings = replace(SETTINGS, max_tokens=200)
    h.text.calls.clear()
    stop_at_3 = Recorder(h.chat.reply_text, lambda calls: len(calls) == 3 and h.chat.stop())
    text, stats = h.reply(lambda: h.chat.send(STORY))
    assert stats.finish_reason == "cancelled" and 3 <= stats.n_generated < 200
    assert text == "".join(p for (p,) in stop_at_3.calls) and h.stored()[-1] == ("assistant", text)

    # Regenerate replaces the last reply; edit replaces what followed the message.
    h.settings = SETTINGS
    removed = Recorder(h.chat.messages_removed)
    text, stats = h.reply(h.chat.regenerate)
    assert removed.calls == [(3,)] and len(h.stored()) == 4 and h.stored()[-1] == ("assistant", text)
    text, _ = h.reply(lambda: h.chat.edit_and_resend(2, "Name one colour."))
    assert h.stored()[2:] == [("user", "Name one colour."), ("assistant", text)]
    assert h.shown.calls[-1][0] == h.chat.conv_id and [m.content for m in h.shown.calls[-1][1]] == [
        m for _, m in h.stored()[:3]]


def test_continue_goes_on_with_a_reply_cut_at_max_tokens(harness, smollm2_path):
    h = harness
    h.load(smollm2_path)
    h.settings = replace(SETTINGS, max_tokens=10)
    resumed = Recorder(h.chat.reply_resumed)
    h.chat.continue_reply()  # no conversation yet: nothing to continue
    first, stats = h.reply(lambda: h.chat.send(STORY))
    assert stats.finish_reason == "length" and stats.n_generated == 10, first
    h.chat.continue_reply(0)  # not the reply's position
    assert not resumed.calls and not h.chat.busy

    h.text.calls.clear()
    text, more = h.reply(lambda: h.chat.continue_reply(1))
    assert resumed.calls == [(1, first.rstrip())]
    new = "".join(p for (p,) in h.text.calls)
    assert new.strip() and text == first.rstrip() + new
    assert h.stored() == [("user", STORY), ("assistant", text)]  # updated in place, no second reply
    saved = h.store.messages(h.chat.conv_id)[1].stats  # the continuation's numbers, kept for a reopened chat
    assert saved["finish_reason"] == "length" and saved["n_generated"] == more.n_generated == 10
    assert more.n_generated == 10 and more.n_prompt > stats.n_prompt
    assert more.n_reused >= stats.n_prompt  # the slot still held the prompt and the reply so far

    # Greedy decoding from inside the turn goes on as one longer reply would have.
    h.settings = replace(SETTINGS, max_tokens=20)
    whole, _ = h.reply(h.chat.regenerate)
    assert whole == text


def test_continuation_prompt_ends_inside_the_reply(smollm2):
    template = smollm2.chat_template
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Count to five."},
                {"role": "assistant", "content": "One, two,"}]
    text = continuation_text(template, messages)
    assert text == template.render(messages[:-1], add_generation_prompt=True) + "One, two,"
    assert text == template.render(messages, add_generation_prompt=False).rsplit("One, two,", 1)[0] + "One, two,"
    # A template that rewrites the text: the generation prompt after the earlier messages, then the text.
    shouting = ChatTemplate("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content | upper }}<|im_end|>\n"
                            "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
                            smollm2.tokenizer)
    assert continuation_text(shouting, messages).endswith("<|im_start|>assistant\nOne, two,")
    with pytest.raises(ValueError):
        continuation_text(template, messages[:-1] + [{"role": "assistant", "content": "  "}])


def test_switching_mid_reply_saves_it_to_its_own_conversation(harness, smollm2_path):
    h = harness
    h.settings = replace(SETTINGS, max_tokens=200)
    h.load(smollm2_path)
    finished = Recorder(h.worker.finished)
    h.chat.send(STORY)
    first, req = h.chat.conv_id, h.chat.pending.req_id
    h.qtbot.waitUntil(lambda: len(h.chat.pending.parts) >= 2, timeout=REPLY_TIMEOUT_MS)
    h.chat.new_chat()
    assert h.chat.conv_id is None and h.chat.pending is None and req in h.chat.detached
    assert h.shown.calls[-1] == (None, []) and h.context.calls[-1] == (0, 512) and h.status.calls[-1] == ("",)
    h.qtbot.waitUntil(lambda: any(rid == req for rid, _ in finished.calls), timeout=REPLY_TIMEOUT_MS)
    stats = next(st for rid, st in finished.calls if rid == req)
    assert stats.finish_reason == "cancelled" and not h.chat.detached
    assert h.stored(first) == [("user", STORY), ("assistant", stats.text)] and stats.text
    assert not h.ended.calls  # the reply was no longer shown: no view was told to end it

    # Back to it: shown with its saved reply, and its length counted in the worker thread.
    assert h.chat.open_conversation(first)
    assert [m.content for m in h.shown.calls[-1][1]] == [STORY, stats.text]
    h.qtbot.waitUntil(lambda: h.context.calls[-1][0] > 0, timeout=REPLY_TIMEOUT_MS)
    model = h.worker.engine()[0]
    want = len(model.chat_template.encode(model.chat_template.render(
        [{"role": "user", "content": STORY}, {"role": "assistant", "content": stats.text}],
        add_generation_prompt=False)))
    assert h.context.calls[-1] == (want, 512)


def test_set_engine_mid_reply_saves_it_and_drops_the_old_engines_events(harness, smollm2_path):
    """Swapping engines (a remote model chosen, or back to the local one): the running reply is stopped
    and saved as it is, the old engine's later events (already queued, with request ids the new engine
    also uses) are dropped, and the new engine answers the next message."""
    h = harness
    loaded = h.load(smollm2_path)
    other = EngineWorker()
    other_thread = QThread()
    other.moveToThread(other_thread)
    other_thread.start()
    try:
        other_loaded = Recorder(other.model_loaded)
        other.load(smollm2_path, 512, 2, 1)
        h.qtbot.waitUntil(lambda: bool(other_loaded.calls), timeout=LOAD_TIMEOUT_MS)
        old_finished = Recorder(h.worker.finished)
        h.settings = replace(SETTINGS, max_tokens=200)
        busy = Recorder(h.chat.busy_changed)
        swap = Recorder(h.chat.reply_text, lambda calls: len(calls) == 3
                        and h.chat.set_engine(other, other_loaded.calls[0][0]))
        h.chat.send(STORY)
        h.qtbot.waitUntil(lambda: bool(old_finished.calls), timeout=REPLY_TIMEOUT_MS)
        h.qtbot.wait(200)  # the old worker's queued events reach the controller (and are dropped)
        partial = "".join(p for (p,) in swap.calls[:3])
        assert h.chat.worker is other and not h.chat.busy and busy.calls[-1] == (False,)
        assert len(swap.calls) == 3 and not h.ended.calls and not h.failed.calls
        assert h.stored() == [("user", STORY), ("assistant", partial)]
        # the new engine answers; its request ids start at 1 as the old one's did
        h.settings = SETTINGS
        text, stats = h.reply(lambda: h.chat.send("Name one colour."))
        assert text.strip() and stats.n_prompt > 0 and h.stored()[-1] == ("assistant", text)
        h.chat.set_engine(h.worker, loaded)  # back again: the same chat goes on with the first worker
        text, _ = h.reply(h.chat.regenerate)
        assert h.chat.worker is h.worker and h.stored()[-1] == ("assistant", text) and len(h.stored()) == 4
    finally:
        other.cancel_all()
        other_thread.quit()
        other_thread.wait()
        other.shutdown()


def test_context_count_of_a_saved_chat_once_the_model_loads(harness, smollm2_path):
    h = harness
    conv = h.store.create("saved")
    h.store.append(conv.id, "user", "Hello there, how are you today?")
    h.store.append(conv.id, "assistant", "I am fine, thank you.")
    h.chat.open_conversation(conv.id)
    assert h.context.calls[-1] == (0, 0)  # no model yet: nothing to count with
    h.load(smollm2_path)
    h.qtbot.waitUntil(lambda: h.context.calls[-1][0] > 0, timeout=REPLY_TIMEOUT_MS)
    n, n_ctx = h.context.calls[-1]
    assert n_ctx == 512 and 15 < n < 60


def test_message_refused_as_too_long_is_not_saved(harness, smollm2_path):
    h = harness
    h.load(smollm2_path)
    long_text = "lorem ipsum dolor " * 300
    notices = Recorder(h.chat.notice)
    h.chat.send(long_text)
    h.qtbot.waitUntil(lambda: bool(h.failed.calls), timeout=REPLY_TIMEOUT_MS)
    assert "does not fit the context window (512 tokens" in h.failed.calls[0][0]
    assert h.store.list() == [] and h.chat.conv_id is None  # the chat made for it is gone too
    assert h.returned.calls == [(long_text.strip(),)]
    assert notices.calls[-1][:3] == (h.failed.calls[0][0], "error", "context")
    # The next message replaces the refused one and is saved.
    h.failed.calls.clear()
    removed = Recorder(h.chat.messages_removed)
    text, _ = h.reply(lambda: h.chat.send("Say hello."))
    assert removed.calls == [(0,)] and h.stored() == [("user", "Say hello."), ("assistant", text)]


def test_close_mid_reply_saves_the_partial_reply(harness, smollm2_path):
    h = harness
    h.settings = replace(SETTINGS, max_tokens=200)
    h.load(smollm2_path)
    h.chat.send(STORY)
    conv = h.chat.conv_id
    h.qtbot.waitUntil(lambda: len(h.chat.pending.parts) >= 3, timeout=REPLY_TIMEOUT_MS)
    partial = h.chat.pending.text
    h.chat.close()
    saved = h.stored(conv)
    assert saved[0] == ("user", STORY) and saved[1][0] == "assistant" and saved[1][1].startswith(partial)
    assert len(saved) == 2 and partial.strip()


def test_reply_queued_behind_another_request(harness, smollm2_path):
    h = harness
    h.load(smollm2_path, n_parallel=1)
    sched = h.worker.engine()[1]
    model = h.worker.engine()[0]
    # What an API client of the local server does: a job on the shared scheduler that holds its one slot.
    prompt = model.chat_template.encode(model.chat_template.render([{"role": "user", "content": STORY}]))
    holder = sched.submit(GenerationRequest(prompt, SamplerParams(temperature=0.0), max_tokens=400))
    h.qtbot.waitUntil(lambda: sched.n_running == 1, timeout=REPLY_TIMEOUT_MS)
    h.chat.send("Say hello.")
    req = h.chat.pending.req_id
    h.qtbot.waitUntil(lambda: bool(h.status.calls) and h.status.calls[-1][0].startswith("Waiting for a free slot"),
                      timeout=REPLY_TIMEOUT_MS)
    assert h.status.calls[-1] == ("Waiting for a free slot (in use by another request)…",)
    assert h.worker.queue_position(req).ahead == 0
    holder.cancel()
    text, stats = h.reply(lambda: None)
    assert stats.n_generated > 0 and text.strip() and h.status.calls[-1][0].endswith("tokens/s")
    assert h.worker.queue_position(req) is None


def test_titles_and_context_label():
    assert chat_title("  Hello\n  world ") == "Hello world"
    assert len(chat_title("x" * 100)) == 48 and chat_title("x" * 100).endswith("…")
    assert context_label(257, 256) == "Context 256 / 256"
    assert context_label(217, 4096) == "Context 217 / 4096" and context_label(5, 0) == ""


# The prompt of a turn ------------------------------------------------------------------------------

THINKING_TEMPLATE = """\
{%- for m in messages -%}
<|im_start|>{{ m.role }}
{{ m.content }}<|im_end|>
{% endfor -%}
{%- if add_generation_prompt -%}
<|im_start|>assistant
{% if enable_thinking is defined and not enable_thinking %}<think>

</think>

{% endif -%}
{%- endif -%}"""


def test_past_reasoning_is_left_out_of_the_prompt(smollm2):
    assert answer_only("<think>\nLet me add.\n</think>\n\n4") == "4"
    assert answer_only("Let me add 2 and 2.\n</think>\n\nIt is 4.") == "It is 4."  # R1 distills: no opening tag
    assert answer_only("Sure. <think>still thinking") == "Sure."  # stopped while thinking
    assert answer_only("No tags here.") == "No tags here."
    history = [Message(1, 0, "user", "What is 2+2?"),
               Message(2, 1, "assistant", "<think>Two and two make four.</think>\n\n2+2 is 4."),
               Message(3, 2, "user", "And <think> as a word?")]
    messages = chat_messages(history, "Be brief.")
    assert messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"},
                        {"role": "assistant", "content": "2+2 is 4."},
                        {"role": "user", "content": "And <think> as a word?"}]  # the user's text is theirs
    tokens = encode_prompt(smollm2.chat_template, messages)
    text = smollm2.tokenizer.decode(tokens)
    assert "2+2 is 4." in text and "Two and two" not in text and "And <think> as a word?" in text
    raw = smollm2.tokenizer.decode(encode_prompt(smollm2.chat_template, [m.as_chat() for m in history]))
    assert "Two and two" in raw  # the template itself keeps it: the stripping is ours


def test_thinking_switch_is_a_template_variable(smollm2):
    plain = smollm2.chat_template
    assert not supports_thinking(plain) and template_variables(plain, False) == {}
    template = ChatTemplate(THINKING_TEMPLATE, smollm2.tokenizer)
    assert supports_thinking(template)
    messages = [{"role": "user", "content": "Hi"}]
    on = smollm2.tokenizer.decode(encode_prompt(template, messages, template_variables(template, True)))
    off = smollm2.tokenizer.decode(encode_prompt(template, messages, template_variables(template, False)))
    assert on.endswith("<|im_start|>assistant\n") and "<think>" not in on
    assert off.endswith("<think>\n\n</think>\n\n")
