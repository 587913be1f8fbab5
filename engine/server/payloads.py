"""Response objects in OpenAI's shapes: completions, stream chunks, usage, log-probabilities.

Shapes from OpenAI's API reference: ``chat.completion`` / ``chat.completion.chunk`` objects with
``choices[].message`` / ``choices[].delta``, ``usage``, and chat ``logprobs.content[]`` entries
(``token``, ``logprob``, ``bytes``, ``top_logprobs``); legacy ``text_completion`` objects with the
``tokens`` / ``token_logprobs`` / ``top_logprobs`` / ``text_offset`` log-probability lists.
"""
from __future__ import annotations

import math
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .. import __version__
from ..generate import GeneratedToken, GenerationStats

if TYPE_CHECKING:
    from ..model import Model
    from ..tokenizer import Tokenizer

SYSTEM_FINGERPRINT = f"fireside-{__version__}"
# What OpenAI reports for a log-probability of -inf (JSON has no infinity).
MIN_LOGPROB = -9999.0


def model_id(model: Model) -> str:
    """The id clients use for ``model``: its GGUF file name without ``.gguf``."""
    return Path(model.path).stem


def new_id(prefix: str) -> str:
    """A fresh response id such as ``chatcmpl-<hex>``."""
    return f"{prefix}-{uuid.uuid4().hex}"


def now() -> int:
    """Unix time in whole seconds (the ``created`` field)."""
    return int(time.time())


def usage(stats: GenerationStats) -> dict[str, int]:
    """Token counts of a finished generation. ``completion_tokens`` counts every sampled token, the
    end-of-turn token included (it was computed), as llama.cpp's server reports it."""
    return {"prompt_tokens": stats.n_prompt, "completion_tokens": stats.n_generated,
            "total_tokens": stats.n_prompt + stats.n_generated}


def model_card(model: Model) -> dict[str, Any]:
    """A ``/v1/models`` entry."""
    try:
        created = int(Path(model.path).stat().st_mtime)
    except OSError:
        created = 0
    return {"id": model_id(model), "object": "model", "created": created, "owned_by": "fireside"}


def _lp(value: float | None) -> float:
    if value is None or not math.isfinite(value):
        return MIN_LOGPROB
    return value


def _piece(tok: Tokenizer, token_id: int) -> tuple[str, list[int]]:
    raw = tok.token_bytes(token_id)
    return raw.decode("utf-8", errors="replace"), list(raw)


def chat_logprob(tok: Tokenizer, t: GeneratedToken) -> dict[str, Any]:
    """One ``logprobs.content`` entry of a chat completion for generated token ``t``."""
    text, raw = _piece(tok, t.id)
    top = []
    for tid, lp in t.top_logprobs:
        alt_text, alt_raw = _piece(tok, tid)
        top.append({"token": alt_text, "logprob": _lp(lp), "bytes": alt_raw})
    return {"token": text, "logprob": _lp(t.logprob), "bytes": raw, "top_logprobs": top}


def legacy_logprobs(tok: Tokenizer, tokens: Sequence[GeneratedToken], text_offset: int = 0) -> dict[str, Any]:
    """The legacy completions ``logprobs`` object for ``tokens``.

    ``text_offset[i]`` is where token i's text starts in the returned text (``text_offset`` is the
    length of anything before the generated text, such as an echoed prompt).
    """
    out: dict[str, list] = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    offset = text_offset
    for t in tokens:
        if t.id >= 0:
            out["tokens"].append(_piece(tok, t.id)[0])
            out["token_logprobs"].append(_lp(t.logprob))
            out["top_logprobs"].append({_piece(tok, tid)[0]: _lp(lp) for tid, lp in t.top_logprobs})
            out["text_offset"].append(offset)
        offset += len(t.text)
    return out


def chat_completion(cid: str, created: int, model: str, text: str | None, stats: GenerationStats,
                    logprobs: list[dict] | None, reasoning: str = "", tool_calls: list[dict] | None = None,
                    finish_reason: str | None = None) -> dict[str, Any]:
    """A whole ``chat.completion`` object (with llama-server's ``reasoning_content`` where the reply's
    reasoning was split off, and ``tool_calls`` when the reply called tools; ``finish_reason`` overrides
    the generation's, e.g. ``"tool_calls"``)."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if reasoning:
        message["reasoning_content"] = reasoning
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": cid, "object": "chat.completion", "created": created, "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [{"index": 0, "message": message,
                     "logprobs": None if logprobs is None else {"content": logprobs, "refusal": None},
                     "finish_reason": finish_reason or stats.finish_reason}],
        "usage": usage(stats),
    }


def chat_chunk(cid: str, created: int, model: str, delta: dict[str, Any], *, finish_reason: str | None = None,
               logprobs: list[dict] | None = None) -> dict[str, Any]:
    """One ``chat.completion.chunk`` with a single choice."""
    return {
        "id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [{"index": 0, "delta": delta,
                     "logprobs": None if logprobs is None else {"content": logprobs, "refusal": None},
                     "finish_reason": finish_reason}],
    }


def usage_chunk(obj: str, cid: str, created: int, model: str, stats: GenerationStats) -> dict[str, Any]:
    """The last chunk of a stream with ``stream_options.include_usage``: usage and no choices."""
    return {"id": cid, "object": obj, "created": created, "model": model, "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [], "usage": usage(stats)}


def completion(cid: str, created: int, model: str, text: str, stats: GenerationStats,
               logprobs: dict | None) -> dict[str, Any]:
    """A whole legacy ``text_completion`` object."""
    return {
        "id": cid, "object": "text_completion", "created": created, "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [{"index": 0, "text": text, "logprobs": logprobs, "finish_reason": stats.finish_reason}],
        "usage": usage(stats),
    }


def completion_chunk(cid: str, created: int, model: str, text: str, *, finish_reason: str | None = None,
                     logprobs: dict | None = None) -> dict[str, Any]:
    """One streamed legacy ``text_completion`` chunk."""
    return {
        "id": cid, "object": "text_completion", "created": created, "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [{"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish_reason}],
    }
