"""The saved conversations: a small SQLite database in the user data dir (no Qt here).

Schema (``conversations.sqlite3``, ``PRAGMA user_version`` = :data:`SCHEMA_VERSION`):
    conversations(id, title, system_prompt NULL = use the default, created, updated,  -- times in Unix seconds
                  model_path NULL = not known)                                       -- added in version 1
    messages(id, conversation_id, position 0.., role "user"|"assistant", content,
             reasoning NULL = none,                                                  -- added in version 1
             stats NULL = none: a reply's numbers as JSON, see STATS_FIELDS)         -- added in version 2
    conversations_fts(title), messages_fts(content): SQLite FTS5 indexes kept in step by triggers, when the
        Python sqlite3 build has FTS5 (https://sqlite.org/fts5.html, "external content tables").

An older database (version 0: before model_path, reasoning and search; version 1: before stats) is
migrated on open by adding the missing columns; nothing is rewritten. The FTS indexes are an extra: where FTS5 is missing their triggers are
dropped (so writes still work) and :meth:`ConversationStore.search` uses LIKE; an index whose triggers
are missing is rebuilt from the tables on the next open with FTS5.

A :class:`ConversationStore` (one SQLite connection) is used only from the thread that opened it: the
window's from the GUI thread; gui/chat_file_task.py opens its own in a worker for big exports and imports.
Every change is committed at once (in WAL mode, without waiting for the disk), so a crash of the app loses
at most the reply being generated.
"""
from __future__ import annotations

import functools
import json
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from engine.paths import APP_NAME

DB_NAME = "conversations.sqlite3"
SCHEMA_VERSION = 2
ROLES = ("user", "assistant")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    system_prompt TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    UNIQUE (conversation_id, position)
);
"""
# Columns added after version 0, as (table, column, declaration).
_ADDED_COLUMNS = (("conversations", "model_path", "TEXT"), ("messages", "reasoning", "TEXT"),
                  ("messages", "stats", "TEXT"))
#: The numbers of a reply kept with it (``engine.generate.GenerationStats`` fields: tokens, seconds, the
#: finish reason), so its stats line and cut-off marker come back when the chat is reopened.
STATS_FIELDS = ("n_prompt", "n_reused", "n_generated", "prefill_s", "decode_s", "finish_reason", "context_full")


def stats_record(stats) -> dict | None:
    """The :data:`STATS_FIELDS` of ``stats`` (a ``GenerationStats`` or any object with them) as a dict,
    or None for None."""
    if stats is None:
        return None
    return {k: getattr(stats, k) for k in STATS_FIELDS if hasattr(stats, k)}


def _stats_json(stats: dict | None) -> str | None:
    return None if stats is None else json.dumps(stats)


def _stats_loads(text: str | None) -> dict | None:
    """A stored stats record; None for none or for text that is not one (the reply is shown without it)."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return {k: v for k, v in value.items() if k in STATS_FIELDS} if isinstance(value, dict) else None
# unicode61 with remove_diacritics 2: "cafe" finds "café"; words match by prefix (see _fts_query).
_FTS_TABLES = """
CREATE VIRTUAL TABLE IF NOT EXISTS conversations_fts USING fts5(
    title, content='conversations', content_rowid='id', tokenize='unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(
    content, content='messages', content_rowid='id', tokenize='unicode61 remove_diacritics 2');
"""
_FTS_TRIGGERS = {
    "fts_conversations_ai": "AFTER INSERT ON conversations BEGIN "
                            "INSERT INTO conversations_fts(rowid, title) VALUES (new.id, new.title); END",
    "fts_conversations_ad": "AFTER DELETE ON conversations BEGIN INSERT INTO conversations_fts"
                            "(conversations_fts, rowid, title) VALUES ('delete', old.id, old.title); END",
    "fts_conversations_au": "AFTER UPDATE OF title ON conversations BEGIN INSERT INTO conversations_fts"
                            "(conversations_fts, rowid, title) VALUES ('delete', old.id, old.title); "
                            "INSERT INTO conversations_fts(rowid, title) VALUES (new.id, new.title); END",
    "fts_messages_ai": "AFTER INSERT ON messages BEGIN "
                       "INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content); END",
    "fts_messages_ad": "AFTER DELETE ON messages BEGIN INSERT INTO messages_fts"
                       "(messages_fts, rowid, content) VALUES ('delete', old.id, old.content); END",
    "fts_messages_au": "AFTER UPDATE OF content ON messages BEGIN INSERT INTO messages_fts"
                       "(messages_fts, rowid, content) VALUES ('delete', old.id, old.content); "
                       "INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content); END",
}
SNIPPET_WORDS = 10  # words of context in a search snippet (FTS5 counts tokens; LIKE about 6 chars a word)
MARKS = ("«", "»")  # around matched words in snippets


@functools.cache
def fts5_available() -> bool:
    """Whether this Python's sqlite3 library has the FTS5 extension."""
    db = sqlite3.connect(":memory:")
    try:
        db.execute("CREATE VIRTUAL TABLE probe USING fts5(x)")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        db.close()


def data_dir() -> Path:
    """The app's data folder, created if needed: ``$FIRESIDE_DATA_DIR`` or platformdirs' user data dir."""
    env = os.environ.get("FIRESIDE_DATA_DIR")
    path = Path(env).expanduser() if env else Path(platformdirs.user_data_dir(APP_NAME))
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class Conversation:
    """One conversation's header. ``system_prompt`` None means "use the default from the settings".

    ``updated`` and ``created`` are Unix seconds. ``model_path`` is the model file last used to answer in
    it (a full path, or only a file name for an imported chat), None if not known.
    """

    id: int
    title: str
    system_prompt: str | None
    updated: float
    created: float = 0.0
    model_path: str | None = None


@dataclass(frozen=True)
class Message:
    """One message; ``position`` counts from 0 within its conversation."""

    id: int
    position: int
    role: str
    content: str
    reasoning: str | None = None  # a reasoning model's thinking, kept apart from the answer
    stats: dict | None = None  # a reply's numbers (STATS_FIELDS), None if not known

    def as_chat(self) -> dict:
        """The ``{"role", "content"}`` dict a chat template renders."""
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class NewConversation:
    """A whole conversation to add at once (an import): see :meth:`ConversationStore.add_conversations`.

    ``messages`` holds ``(role, content, reasoning or None)`` tuples in order; ``created`` is Unix seconds
    (None: now).
    """

    title: str
    system_prompt: str | None = None
    model_path: str | None = None
    created: float | None = None
    messages: Sequence[tuple[str, str, str | None]] = field(default_factory=tuple)


@dataclass(frozen=True)
class SearchHit:
    """One conversation found by :meth:`ConversationStore.search`.

    ``snippet`` is the matching text around the match, matched words between :data:`MARKS`; ``position`` is
    the matching message's position, None when the title matched.
    """

    conversation: Conversation
    snippet: str
    position: int | None


class ConversationStore:
    """Conversations and their messages in SQLite.

    Args:
        path: the database file; defaults to ``data_dir() / "conversations.sqlite3"``.
        use_fts: search with FTS5 (None: when the sqlite3 build has it; False: LIKE, and the FTS
            triggers are dropped so that writes do not need FTS5).

    Raises:
        sqlite3.DatabaseError: the file exists but is not a database.
    """

    _CONV_COLUMNS = "id, title, system_prompt, updated, created, model_path"

    def __init__(self, path: str | Path | None = None, use_fts: bool | None = None):
        self.path = Path(path) if path is not None else data_dir() / DB_NAME
        self._db = sqlite3.connect(self.path)
        self._db.execute("PRAGMA foreign_keys = ON")
        # WAL with synchronous=NORMAL: a commit appends to the log without an fsync (only checkpoints
        # sync), so saving a message does not stall the GUI thread on a busy disk; the database stays
        # consistent after a crash, at worst losing the last commits on power loss (sqlite.org/wal.html).
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.executescript(_SCHEMA)
        self._migrate()
        self.use_fts = fts5_available() if use_fts is None else use_fts
        self._set_up_fts()
        self._db.commit()

    def _migrate(self) -> None:
        """Bring an older database up to :data:`SCHEMA_VERSION` (columns added, nothing rewritten)."""
        with self._db:
            for table, column, decl in _ADDED_COLUMNS:
                have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
            (version,) = self._db.execute("PRAGMA user_version").fetchone()
            if version < SCHEMA_VERSION:
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _set_up_fts(self) -> None:
        """Create the FTS indexes and triggers (rebuilding an index that was not kept up), or drop the triggers."""
        have = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        with self._db:
            if not self.use_fts:
                for name in _FTS_TRIGGERS:
                    if name in have:
                        self._db.execute(f"DROP TRIGGER {name}")
                return
            self._db.executescript(_FTS_TABLES)
            if not all(name in have for name in _FTS_TRIGGERS):
                for name, body in _FTS_TRIGGERS.items():
                    self._db.execute(f"DROP TRIGGER IF EXISTS {name}")
                    self._db.execute(f"CREATE TRIGGER {name} {body}")
                self._db.execute("INSERT INTO conversations_fts(conversations_fts) VALUES ('rebuild')")
                self._db.execute("INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')")

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    # Conversations -------------------------------------------------------------------------------

    def create(self, title: str = "New chat", system_prompt: str | None = None,
               model_path: str | None = None) -> Conversation:
        """Add an empty conversation and return it (``model_path``: see :meth:`set_model`)."""
        now = time.time()
        with self._db:
            cur = self._db.execute(
                "INSERT INTO conversations (title, system_prompt, created, updated, model_path) "
                "VALUES (?, ?, ?, ?, ?)", (title, system_prompt, now, now, model_path))
        return Conversation(cur.lastrowid, title, system_prompt, now, now, model_path)

    def add_conversations(self, items: Sequence[NewConversation]) -> list[int]:
        """Add whole conversations with their messages in one transaction: all of them, or none.

        Returns:
            The new conversations' ids, in order.

        Raises:
            ValueError: a message's role is not "user" or "assistant" (nothing is added).
        """
        now = time.time()
        ids = []
        with self._db:
            for item in items:
                created = now if item.created is None else item.created
                cur = self._db.execute(
                    "INSERT INTO conversations (title, system_prompt, created, updated, model_path) "
                    "VALUES (?, ?, ?, ?, ?)", (item.title, item.system_prompt, created, now, item.model_path))
                for pos, (role, content, reasoning) in enumerate(item.messages):
                    _check_role(role)
                    self._db.execute("INSERT INTO messages (conversation_id, position, role, content, reasoning) "
                                     "VALUES (?, ?, ?, ?, ?)", (cur.lastrowid, pos, role, content, reasoning))
                ids.append(cur.lastrowid)
        return ids

    def list(self) -> list[Conversation]:
        """Every conversation, most recently updated first."""
        rows = self._db.execute(f"SELECT {self._CONV_COLUMNS} FROM conversations "
                                "ORDER BY updated DESC, id DESC").fetchall()
        return [Conversation(*r) for r in rows]

    def get(self, conv_id: int) -> Conversation | None:
        """The conversation with this id, or None if it was deleted."""
        row = self._db.execute(f"SELECT {self._CONV_COLUMNS} FROM conversations WHERE id = ?",
                               (conv_id,)).fetchone()
        return Conversation(*row) if row else None

    def set_model(self, conv_id: int, model_path: str | Path | None) -> None:
        """Remember the model file that answers in this conversation (None: forget it).

        The window calls it when a reply starts, so reopening the chat can offer that model again (see
        :func:`gui.conversation_model.model_to_offer`). Does not change the conversation's ``updated``.
        """
        with self._db:
            self._db.execute("UPDATE conversations SET model_path = ? WHERE id = ?",
                             (None if model_path is None else str(model_path), conv_id))

    def rename(self, conv_id: int, title: str) -> None:
        """Set a conversation's title (surrounding blanks stripped; empty becomes "Untitled")."""
        with self._db:
            self._db.execute("UPDATE conversations SET title = ? WHERE id = ?", (title.strip() or "Untitled", conv_id))

    def set_system_prompt(self, conv_id: int, prompt: str | None) -> None:
        """Override the default system prompt for one conversation (None: back to the default)."""
        with self._db:
            self._db.execute("UPDATE conversations SET system_prompt = ? WHERE id = ?", (prompt, conv_id))

    def delete(self, conv_id: int) -> None:
        """Delete a conversation and its messages."""
        with self._db:
            self._db.execute("DELETE FROM conversations WHERE id = ?", (conv_id,))

    # Messages ------------------------------------------------------------------------------------

    def messages(self, conv_id: int) -> list[Message]:
        """A conversation's messages in order."""
        rows = self._db.execute("SELECT id, position, role, content, reasoning, stats FROM messages "
                                "WHERE conversation_id = ? ORDER BY position", (conv_id,)).fetchall()
        return [Message(*r[:5], _stats_loads(r[5])) for r in rows]

    def append(self, conv_id: int, role: str, content: str, reasoning: str | None = None,
               stats: dict | None = None) -> Message:
        """Add a message at the end of a conversation and return it (``reasoning``: a reply's thinking;
        ``stats``: its numbers, :func:`stats_record`).

        Raises:
            ValueError: ``role`` is not "user" or "assistant".
        """
        _check_role(role)
        with self._db:
            (pos,) = self._db.execute("SELECT COALESCE(MAX(position) + 1, 0) FROM messages WHERE conversation_id = ?",
                                      (conv_id,)).fetchone()
            cur = self._db.execute("INSERT INTO messages (conversation_id, position, role, content, reasoning, "
                                   "stats) VALUES (?, ?, ?, ?, ?, ?)",
                                   (conv_id, pos, role, content, reasoning, _stats_json(stats)))
            self._touch(conv_id)
        return Message(cur.lastrowid, pos, role, content, reasoning, stats)

    def update(self, conv_id: int, position: int, content: str, stats: dict | None = None) -> None:
        """Replace the text of the message at ``position`` (and its stats; an edited message's are
        dropped: None)."""
        with self._db:
            self._db.execute("UPDATE messages SET content = ?, stats = ? WHERE conversation_id = ? AND position = ?",
                             (content, _stats_json(stats), conv_id, position))
            self._touch(conv_id)

    def truncate(self, conv_id: int, position: int) -> None:
        """Delete the messages at ``position`` and after (used by Regenerate and Edit)."""
        with self._db:
            self._db.execute("DELETE FROM messages WHERE conversation_id = ? AND position >= ?", (conv_id, position))
            self._touch(conv_id)

    def _touch(self, conv_id: int) -> None:
        self._db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (time.time(), conv_id))

    # Search --------------------------------------------------------------------------------------

    def search(self, text: str, limit: int = 50) -> list[SearchHit]:
        """Conversations whose title, or one of whose messages, holds every word of ``text``.

        Words match case-insensitively; with FTS5 they match the starts of words ("pyth" finds "Python",
        "cafe" finds "café") and hits are ranked by bm25, else (LIKE) anywhere in the text, newest chat
        first. A title match comes before message matches. Any text is safe: FTS5 syntax and LIKE
        wildcards in it are taken literally.

        Args:
            text: what the user typed; blank gives [].
            limit: most conversations returned.
        """
        words = text.split()
        if not words:
            return []
        hits = self._search_fts(words, limit) if self.use_fts else self._search_like(words, limit)
        return hits[:limit]

    def _search_fts(self, words: list[str], limit: int) -> list[SearchHit]:
        query = " ".join('"' + w.replace('"', '""') + '"*' for w in words)
        open_, close = MARKS
        found: dict[int, tuple[float, str, int | None]] = {}
        rows = self._db.execute(
            "SELECT rowid, snippet(conversations_fts, 0, ?, ?, '…', ?), bm25(conversations_fts) "
            "FROM conversations_fts WHERE conversations_fts MATCH ? ORDER BY rank LIMIT ?",
            (open_, close, SNIPPET_WORDS, query, limit)).fetchall()
        for conv_id, snippet, rank in rows:
            found[conv_id] = (rank - 1e9, snippet, None)  # titles first
        rows = self._db.execute(
            "SELECT m.conversation_id, m.position, snippet(messages_fts, 0, ?, ?, '…', ?), bm25(messages_fts) "
            "FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid WHERE messages_fts MATCH ? "
            "ORDER BY rank LIMIT ?", (open_, close, SNIPPET_WORDS, query, limit * 20)).fetchall()
        for conv_id, position, snippet, rank in rows:
            if conv_id not in found or rank < found[conv_id][0]:
                found[conv_id] = (rank, snippet, position)
        order = sorted(found.items(), key=lambda kv: kv[1][0])
        return self._hits([(conv_id, snippet, position) for conv_id, (_r, snippet, position) in order])

    def _search_like(self, words: list[str], limit: int) -> list[SearchHit]:
        patterns = ["%" + w.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" for w in words]
        title_where = " AND ".join(["title LIKE ? ESCAPE '\\'"] * len(words))
        content_where = " AND ".join(["content LIKE ? ESCAPE '\\'"] * len(words))
        found: dict[int, tuple[str, int | None]] = {}
        for conv_id, title in self._db.execute(
                f"SELECT id, title FROM conversations WHERE {title_where} ORDER BY updated DESC, id DESC LIMIT ?",
                (*patterns, limit)):
            found[conv_id] = (_like_snippet(title, words[0]), None)
        for conv_id, position, content in self._db.execute(
                f"SELECT m.conversation_id, m.position, m.content FROM messages m JOIN conversations c "
                f"ON c.id = m.conversation_id WHERE {content_where} ORDER BY c.updated DESC, c.id DESC, m.position",
                patterns):
            if conv_id not in found:
                found[conv_id] = (_like_snippet(content, words[0]), position)
                if len(found) >= limit:
                    break
        return self._hits([(conv_id, snippet, position) for conv_id, (snippet, position) in found.items()])

    def _hits(self, rows: list[tuple[int, str, int | None]]) -> list[SearchHit]:
        hits = []
        for conv_id, snippet, position in rows:
            conv = self.get(conv_id)
            if conv is not None:
                hits.append(SearchHit(conv, " ".join(snippet.split()), position))
        return hits


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"role must be 'user' or 'assistant', not {role!r}")


def _like_snippet(text: str, word: str) -> str:
    """About SNIPPET_WORDS words of ``text`` around the first case-insensitive ``word``, which is marked."""
    at = text.lower().find(word.lower())
    if at < 0:  # LIKE folds only ASCII case; str.lower folds more, so this is rare
        at = 0
        word = ""
    reach = SNIPPET_WORDS * 3
    start, end = max(0, at - reach), min(len(text), at + len(word) + reach)
    open_, close = MARKS
    middle = text[at:at + len(word)]
    out = text[start:at] + (open_ + middle + close if middle else "") + text[at + len(word):end]
    return ("…" if start > 0 else "") + out + ("…" if end < len(text) else "")
