"""Settings > Model > Long chats ("keep the system prompt and drop the oldest turns"): gui/prompt.py's
fit_history on SmolLM2's real chat template and tokenizer, and the window's worker with a small n_ctx
answering a chat that has outgrown it instead of refusing it."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from engine.sampling import SamplerParams  # noqa: E402
from gui.prompt import encode_continuation, encode_prompt, fit_history  # noqa: E402

SYSTEM = {"role": "system", "content": "You are a pirate. Answer like one."}


def _chat(n_turns: int) -> list[dict]:
    out = [SYSTEM]
    for i in range(n_turns):
        out.append({"role": "user", "content": f"Question {i}: tell me about the sea and its ships, please."})
        out.append({"role": "assistant", "content": f"Answer {i}: arr, the sea be wide and full of ships " * 3})
    out.append({"role": "user", "content": "And the last question?"})
    return out


def test_drops_oldest_turns_keeps_system_and_last(smollm2):
    t = smollm2.chat_template
    messages = _chat(12)
    full = encode_prompt(t, messages)
    n_ctx = len(full) // 2
    kept, tokens, n_keep = fit_history(t, messages, None, n_ctx, 64)
    assert kept[0] == SYSTEM and kept[-1] == messages[-1]
    assert kept[1]["role"] == "user" and len(kept) < len(messages)
    assert kept[1:] == messages[len(messages) - len(kept) + 1:]  # a suffix of the chat: the oldest went
    assert len(tokens) + 64 <= n_ctx and tokens == encode_prompt(t, kept)
    system_alone = encode_prompt(t, [SYSTEM], add_generation_prompt=False)
    assert 0 < n_keep <= len(system_alone) and tokens[:n_keep] == system_alone[:n_keep]
    # A chat that fits is left whole.
    assert fit_history(t, messages, None, len(full) + 200, 64)[0] == messages


def test_a_reply_being_continued_keeps_the_question_it_answers(smollm2):
    t = smollm2.chat_template
    messages = _chat(12)[:-1]  # ends with a reply, to be continued
    last_turn = messages[-2:]
    full = encode_continuation(t, messages)
    kept, tokens, _ = fit_history(t, messages, None, len(full) // 2, 64, resume_last=True)
    assert kept[0] == SYSTEM and kept[-2:] == last_turn and len(kept) < len(messages)
    assert tokens == encode_continuation(t, kept)
    assert smollm2.tokenizer.decode(tokens).endswith(last_turn[-1]["content"].rstrip())
    # Too small for more than that turn: the question stays with its reply.
    kept, _, _ = fit_history(t, messages, None, 16, 64, resume_last=True)
    assert kept == [SYSTEM] + last_turn


def test_worker_answers_a_chat_longer_than_its_context(qtbot, smollm2_path):
    from gui.engine_worker import EngineWorker
    from PySide6.QtCore import QThread

    worker = EngineWorker()
    thread = QThread()
    worker.moveToThread(thread)
    thread.start()
    try:
        finished, failed = [], []
        worker.finished.connect(lambda rid, stats: finished.append(stats))
        worker.failed.connect(lambda rid, f: failed.append(f))
        for shift in (False, True):
            with qtbot.waitSignal(worker.model_loaded, timeout=60_000):
                worker.load(smollm2_path, 256, 2, 1, shift)
            finished.clear()
            failed.clear()
            worker.generate(_chat(12), SamplerParams(temperature=0.0), 16)
            qtbot.waitUntil(lambda: bool(finished or failed), timeout=120_000)
            if shift:  # the oldest turns left out: answered
                assert not failed and finished[0].n_generated > 0 and finished[0].n_prompt < 256
            else:  # the whole chat does not fit: refused, as before
                assert failed and failed[0].reason == "too_long" and not finished
    finally:
        worker.cancel_all()
        thread.quit()
        thread.wait()
        worker.shutdown()
