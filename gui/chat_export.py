"""Export conversations to Markdown or JSON, and import Fireside's JSON back (no Qt here).

JSON format, version 1 (UTF-8; what :func:`conversation_dict` writes and :func:`parse_export` reads)::

    {"format": "fireside-chat", "version": 1,
     "title": "Trip ideas",
     "system_prompt": "Be brief." | null,          # null: the app's default system prompt
     "model": "SmolLM2-135M-Instruct.Q4_1.gguf" | null,   # the model's file name, never its folder
     "created": "2026-12-03T17:30:00.123456+00:00",        # ISO 8601 with a UTC offset
     "messages": [{"role": "user" | "assistant", "content": "...",
                   "reasoning": "..."}]                     # reasoning only where a reply had some

All conversations at once (:func:`archive_json`)::

    {"format": "fireside-chats", "version": 1, "exported": "<ISO 8601>",
     "conversations": [<one "fireside-chat" object as above>, ...]}

Readers ignore keys they do not know; a higher ``version`` is refused (it may mean something else). An
import is checked whole before anything is added, and then added in one transaction, so bad or hostile
input (wrong types, unknown roles, lone surrogates, NaN, absurd sizes, deep nesting) raises
:class:`ChatImportError` with a message naming the bad field, and the store is left as it was.

Markdown (:func:`conversation_markdown`) is for reading, not for import: a title heading, the system
prompt in a fence, then a ``### User`` / ``### Assistant`` heading per message with its text verbatim
(code blocks included); a fence a message leaves open (a stopped reply) is closed after it.
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .conversations import ROLES, Conversation, ConversationStore, Message, NewConversation

FORMAT = "fireside-chat"
ARCHIVE_FORMAT = "fireside-chats"
VERSION = 1
MAX_FILE_BYTES = 64 * 1024 * 1024  # an export bigger than this is refused unread
MAX_CONVERSATIONS = 100_000
MAX_MESSAGES = 100_000  # per conversation
MAX_TITLE_CHARS = 1000
ROLE_HEADINGS = {"user": "User", "assistant": "Assistant"}


class ChatImportError(ValueError):
    """The data is not a valid Fireside chat export; the message says what is wrong (and where)."""


# Export ------------------------------------------------------------------------------------------


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()


def _load(store: ConversationStore, conv_id: int) -> tuple[Conversation, list[Message]]:
    conv = store.get(conv_id)
    if conv is None:
        raise LookupError(f"there is no conversation {conv_id} (was it deleted?)")
    return conv, store.messages(conv_id)


def model_name(model_path: str | None) -> str | None:
    """The file name of a stored model path (a path or already a name), None for None or ""."""
    return Path(model_path.replace("\\", "/")).name or None if model_path else None


def conversation_dict(store: ConversationStore, conv_id: int) -> dict[str, Any]:
    """One conversation as a version-1 ``fireside-chat`` object (see the module docstring).

    Raises:
        LookupError: no conversation has this id.
    """
    conv, messages = _load(store, conv_id)
    out_messages = []
    for m in messages:
        item = {"role": m.role, "content": m.content}
        if m.reasoning:
            item["reasoning"] = m.reasoning
        out_messages.append(item)
    return {"format": FORMAT, "version": VERSION, "title": conv.title, "system_prompt": conv.system_prompt,
            "model": model_name(conv.model_path), "created": _iso(conv.created), "messages": out_messages}


def conversation_json(store: ConversationStore, conv_id: int) -> str:
    """:func:`conversation_dict` as indented JSON text (non-ASCII kept as is).

    Raises:
        LookupError: no conversation has this id.
    """
    return json.dumps(conversation_dict(store, conv_id), ensure_ascii=False, indent=2) + "\n"


def archive_json(store: ConversationStore) -> str:
    """Every conversation (most recently updated first) as one ``fireside-chats`` JSON text."""
    doc = {"format": ARCHIVE_FORMAT, "version": VERSION, "exported": _iso(datetime.now(timezone.utc).timestamp()),
           "conversations": [conversation_dict(store, c.id) for c in store.list()]}
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


def _unclosed_fence(text: str) -> str | None:
    """The fence that would close a code block ``text`` leaves open (CommonMark rules), else None."""
    open_fence = None
    for line in text.split("\n"):
        m = _FENCE_OPEN.match(line)
        if not m:
            continue
        fence, rest = m.groups()
        if open_fence is None:
            if not (fence[0] == "`" and "`" in rest):  # a backtick fence's info string has no backticks
                open_fence = fence
        elif fence[0] == open_fence[0] and len(fence) >= len(open_fence) and not rest.strip():
            open_fence = None
    return open_fence


def _fenced(text: str, info: str = "text") -> str:
    """``text`` in a backtick fence longer than any backtick run inside it, so it stays verbatim."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text}\n{fence}"


def _verbatim(text: str) -> str:
    """A message's Markdown as is, with a fence it leaves open closed after it."""
    fence = _unclosed_fence(text)
    return text if fence is None else f"{text}\n{fence}"


def conversation_markdown(store: ConversationStore, conv_id: int) -> str:
    """One conversation as Markdown for reading (see the module docstring).

    Raises:
        LookupError: no conversation has this id.
    """
    conv, messages = _load(store, conv_id)
    title = " ".join(conv.title.split()) or "Untitled"
    facts = [f"created {datetime.fromtimestamp(conv.created, timezone.utc):%Y-%m-%d %H:%M} UTC"]
    if (name := model_name(conv.model_path)) is not None:
        facts.append(f"model `{name}`")
    parts = [f"# {title}", "*Exported from Fireside: " + ", ".join(facts) + "*"]
    if conv.system_prompt:
        parts += ["**System prompt**", _fenced(conv.system_prompt)]
    for m in messages:
        parts.append(f"### {ROLE_HEADINGS.get(m.role, m.role)}")
        if m.reasoning:
            parts += ["<details><summary>Reasoning</summary>", _verbatim(m.reasoning), "</details>"]
        parts.append(_verbatim(m.content))
    return "\n\n".join(parts) + "\n"


def suggested_filename(title: str, suffix: str) -> str:
    """A safe file name for an export of the chat ``title`` (``suffix`` like ".md"), for a save dialog."""
    stem = re.sub(r'[\x00-\x1f<>:"/\\|?*]+', " ", title)
    stem = " ".join(stem.split()).strip(" .")[:80] or "chat"
    return stem + suffix


def write_export(path: str | Path, text: str) -> None:
    """Write an export as UTF-8 with the lines as they are, replacing ``path`` only once it is complete.

    Raises:
        OSError: the folder is not writable, the disk is full, ...
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".fireside-export-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# Import ------------------------------------------------------------------------------------------


def _reject_constant(name: str):
    raise ChatImportError(f"the JSON holds {name}, which is not a number")


def _text(value: Any, where: str, *, optional: bool = False, max_chars: int | None = None) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        want = "text or null" if optional else "text"
        raise ChatImportError(f"{where}: must be {want}, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ChatImportError(f"{where}: holds an invalid character (a lone UTF-16 surrogate)") from None
    if max_chars is not None and len(value) > max_chars:
        raise ChatImportError(f"{where}: longer than {max_chars} characters")
    return value


def _created(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ChatImportError(f"{where}: must be an ISO 8601 time, not {type(value).__name__}")
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise ChatImportError(f"{where}: {value[:40]!r} is not an ISO 8601 time") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        try:
            return when.timestamp()
        except (OverflowError, OSError, ValueError):
            raise ChatImportError(f"{where}: {value[:40]!r} is out of range") from None
    if not math.isfinite(value) or not 0 <= value < 1e11:  # Unix seconds, for older hand-made files
        raise ChatImportError(f"{where}: {value} is not a time")
    return float(value)


def _check_header(doc: Any, want: str, where: str) -> None:
    if not isinstance(doc, dict):
        raise ChatImportError(f"{where}: must be a JSON object, not {type(doc).__name__}")
    fmt = doc.get("format")
    if fmt != want:
        raise ChatImportError(f"{where}: not a Fireside chat export (\"format\" is {str(fmt)[:40]!r}, "
                              f"expected {want!r})")
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ChatImportError(f"{where}: \"version\" must be a whole number")
    if version > VERSION:
        raise ChatImportError(f"{where}: version {version} was written by a newer Fireside; this one reads "
                              f"version {VERSION}")
    if version < 1:
        raise ChatImportError(f"{where}: version {version} does not exist")


def _conversation(doc: Any, where: str) -> NewConversation:
    _check_header(doc, FORMAT, where)
    title = _text(doc.get("title"), f"{where}.title", max_chars=MAX_TITLE_CHARS)
    system_prompt = _text(doc.get("system_prompt"), f"{where}.system_prompt", optional=True)
    model = _text(doc.get("model"), f"{where}.model", optional=True, max_chars=MAX_TITLE_CHARS)
    if model is not None and (not model or "/" in model or "\\" in model or model in (".", "..")):
        raise ChatImportError(f"{where}.model: must be a model's file name, without folders")
    created = _created(doc.get("created"), f"{where}.created")
    raw = doc.get("messages")
    if not isinstance(raw, list):
        raise ChatImportError(f"{where}.messages: must be a list")
    if len(raw) > MAX_MESSAGES:
        raise ChatImportError(f"{where}.messages: more than {MAX_MESSAGES} messages")
    messages = []
    for i, m in enumerate(raw):
        at = f"{where}.messages[{i}]"
        if not isinstance(m, dict):
            raise ChatImportError(f"{at}: must be a JSON object, not {type(m).__name__}")
        role = m.get("role")
        if role not in ROLES:
            raise ChatImportError(f"{at}.role: must be \"user\" or \"assistant\", not {str(role)[:40]!r}")
        content = _text(m.get("content"), f"{at}.content")
        reasoning = _text(m.get("reasoning"), f"{at}.reasoning", optional=True) or None
        messages.append((role, content, reasoning))
    return NewConversation(title=title.strip() or "Untitled", system_prompt=system_prompt, model_path=model,
                           created=created, messages=tuple(messages))


def parse_export(data: str | bytes) -> list[NewConversation]:
    """Check a ``fireside-chat`` or ``fireside-chats`` JSON text and return its conversations.

    Args:
        data: the JSON text, or its UTF-8 bytes (a BOM is allowed).

    Raises:
        ChatImportError: not UTF-8, not JSON, not this format, or a field of the wrong kind (the message
            names it, e.g. ``conversations[2].messages[5].role``).
    """
    if isinstance(data, bytes):
        if len(data) > MAX_FILE_BYTES:
            raise ChatImportError(f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise ChatImportError(f"the file is not UTF-8 text (byte {e.start})") from None
    elif len(data) > MAX_FILE_BYTES:
        raise ChatImportError(f"the text is longer than {MAX_FILE_BYTES} characters")
    try:
        doc = json.loads(data, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise ChatImportError(f"not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
    except RecursionError:
        raise ChatImportError("the JSON is nested too deeply") from None
    except ValueError as e:  # e.g. an integer with too many digits
        raise ChatImportError(f"not valid JSON: {e}") from None
    if isinstance(doc, dict) and doc.get("format") == ARCHIVE_FORMAT:
        _check_header(doc, ARCHIVE_FORMAT, "the file")
        convs = doc.get("conversations")
        if not isinstance(convs, list):
            raise ChatImportError("conversations: must be a list")
        if len(convs) > MAX_CONVERSATIONS:
            raise ChatImportError(f"conversations: more than {MAX_CONVERSATIONS}")
        return [_conversation(c, f"conversations[{i}]") for i, c in enumerate(convs)]
    return [_conversation(doc, "the file")]


def import_text(store: ConversationStore, data: str | bytes) -> list[int]:
    """Add the conversations of an export to ``store`` as new conversations, all or none.

    Returns:
        The new conversations' ids.

    Raises:
        ChatImportError: see :func:`parse_export`; nothing was added.
    """
    return store.add_conversations(parse_export(data))


def import_file(store: ConversationStore, path: str | Path) -> list[int]:
    """:func:`import_text` on a file's contents.

    Raises:
        ChatImportError: the file is unreadable, too big or not a valid export (nothing was added).
    """
    path = Path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ChatImportError(f"{path.name} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
        data = path.read_bytes()
    except OSError as e:
        raise ChatImportError(f"cannot read {path.name}: {e.strerror or e}") from None
    try:
        return import_text(store, data)
    except ChatImportError as e:
        raise ChatImportError(f"{path.name}: {e}") from None
