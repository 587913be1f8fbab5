"""Reply formats (engine/reasoning.py): gpt-oss's harmony channels split into the answer and the reasoning,
whatever way the decoded text is cut into pieces; the scheduler applies the split to the tokens it emits."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.reasoning import HARMONY, HarmonySplitter, model_reply_format, reply_format
from engine.sampling import SamplerParams
from engine.scheduler import GenerationRequest, Scheduler

HARMONY_TEMPLATE = Path(__file__).resolve().parent / "data" / "chat_templates" / "harmony" / "openai-gpt-oss-120b.jinja"

REPLY = ("<|channel|>analysis<|message|>The user asks 2+2. <b>Easy</b>: 4.<|end|>"
         "<|start|>assistant<|channel|>final<|message|>2 + 2 = **4** (<|not a marker)")


def _split(pieces: list[str]) -> tuple[str, str]:
    s = HarmonySplitter()
    content, reasoning = [], []
    for p in pieces:
        c, r = s.push(p)
        content.append(c)
        reasoning.append(r)
    c, r = s.flush()
    return "".join(content) + c, "".join(reasoning) + r


@pytest.mark.parametrize("seed", range(5))
def test_harmony_reply_split_for_any_cut(seed):
    rng = np.random.default_rng(seed)
    cuts = sorted(set(rng.integers(0, len(REPLY), size=int(rng.integers(1, 40))).tolist()))
    pieces = [REPLY[a:b] for a, b in zip([0, *cuts], [*cuts, len(REPLY)])]
    assert _split(pieces) == ("2 + 2 = **4** (<|not a marker)", "The user asks 2+2. <b>Easy</b>: 4.")


def test_harmony_one_character_at_a_time_tool_calls_and_plain_text():
    assert _split(list(REPLY))[0] == "2 + 2 = **4** (<|not a marker)"
    call = ("<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>commentary "
            "to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"Paris\"}")
    assert _split([call]) == ("", "Need weather.")  # a tool call is not part of the answer
    preamble = "<|channel|>commentary<|message|>Checking the weather now.<|end|>"
    assert _split([preamble]) == ("Checking the weather now.", "")
    assert _split(["Plain answer, no channels < 3"]) == ("Plain answer, no channels < 3", "")
    assert _split(["Cut short <|chan"]) == ("Cut short <|chan", "")  # a partial marker at the end is text


def test_reply_format_detection(smollm2):
    harmony = HARMONY_TEMPLATE.read_text(encoding="utf-8")
    assert reply_format(harmony, lambda t: True) == HARMONY
    assert reply_format(harmony, lambda t: False) is None  # the vocabulary lacks the channel tokens
    assert reply_format(smollm2.chat_template.source, lambda t: True) is None
    assert model_reply_format(smollm2) is None


def test_scheduler_with_a_reply_format_keeps_plain_replies_whole(smollm2):
    """A reply without channel markers comes through the harmony split as the whole answer, token by token,
    and in the final stats (the split is applied where the scheduler emits tokens)."""
    tokens = smollm2.chat_template.encode(smollm2.chat_template.render(
        [{"role": "user", "content": "Name a colour."}], add_generation_prompt=True))
    s = Scheduler(smollm2, n_ctx=256, n_threads=2)
    try:
        results = []
        for fmt in (None, HARMONY):
            job = s.submit(GenerationRequest(tokens, SamplerParams(temperature=0.0), max_tokens=12, reply_format=fmt))
            pieces, stats = [], None
            for kind, payload in job:
                if kind == "token":
                    pieces.append(payload.text)
                    assert payload.reasoning == ""
                elif kind == "done":
                    stats = payload
            results.append(("".join(pieces), stats.text, stats.reasoning))
        assert results[0] == results[1] and results[0][0] == results[0][1] and results[0][0]
    finally:
        s.close()


def test_chat_completion_carries_reasoning_content():
    """The server's whole-reply object gets llama-server's ``reasoning_content`` only when reasoning was split."""
    from engine.generate import GenerationStats
    from engine.server import payloads as P

    stats = GenerationStats(n_prompt=3, n_generated=5, finish_reason="stop")
    with_r = P.chat_completion("id", 0, "m", "4", stats, None, reasoning="2+2 is 4")
    assert with_r["choices"][0]["message"] == {"role": "assistant", "content": "4", "reasoning_content": "2+2 is 4"}
    assert "reasoning_content" not in P.chat_completion("id", 0, "m", "4", stats, None)["choices"][0]["message"]
