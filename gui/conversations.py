"""The saved conversations: a small SQLite database in the user data dir (no Qt here).

Schema (``conversations.sqlite3``):
    conversations(id, title, system_prompt NULL = use the default, created, updated)  -- times in Unix seconds
    messages(id, conversation_id, position 0.., role "user"|"assistant", content)

One :class:`ConversationStore` is used from the GUI thread only; every change is committed at once (in
WAL mode, without waiting for the disk), so a crash of the app loses at most the reply being generated.
"""
from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from engine.paths import APP_NAME

DB_NAME = "conversations.sqlite3"
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


def data_dir() -> Path:
    """The app's data folder, created if needed: ``$FIRESIDE_DATA_DIR`` or platformdirs' user data dir."""
    env = os.environ.get("FIRESIDE_DATA_DIR")
    path = Path(env).expanduser() if env else Path(platformdirs.user_data_dir(APP_NAME))
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class Conversation:
    """One conversation's header. ``system_prompt`` None means "use the default from the settings"."""

    id: int
    title: str
    system_prompt: str | None
    updated: float


@dataclass(frozen=True)
class Message:
    """One message; ``position`` counts from 0 within its conversation."""

    id: int
    position: int
    role: str
    content: str

    def as_chat(self) -> dict:
        """The ``{"role", "content"}`` dict a chat template renders."""
        return {"role": self.role, "content": self.content}


class ConversationStore:
    """Conversations and their messages in SQLite.

    Args:
        path: the database file; defaults to ``data_dir() / "conversations.sqlite3"``.

    Raises:
        sqlite3.DatabaseError: the file exists but is not a database.
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else data_dir() / DB_NAME
        self._db = sqlite3.connect(self.path)
        self._db.execute("PRAGMA foreign_keys = ON")
        # WAL with synchronous=NORMAL: a commit appends to the log without an fsync (only checkpoints
        # sync), so saving a message does not stall the GUI thread on a busy disk; the database stays
        # consistent after a crash, at worst losing the last commits on power loss (sqlite.org/wal.html).
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.executescript(_SCHEMA)
        self._db.commit()

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    # Conversations -------------------------------------------------------------------------------

    def create(self, title: str = "New chat", system_prompt: str | None = None) -> Conversation:
        """Add an empty conversation and return it."""
        now = time.time()
        with self._db:
            cur = self._db.execute(
                "INSERT INTO conversations (title, system_prompt, created, updated) VALUES (?, ?, ?, ?)",
                (title, system_prompt, now, now))
        return Conversation(cur.lastrowid, title, system_prompt, now)

    def list(self) -> list[Conversation]:
        """Every conversation, most recently updated first."""
        rows = self._db.execute(
            "SELECT id, title, system_prompt, updated FROM conversations ORDER BY updated DESC, id DESC").fetchall()
        return [Conversation(*r) for r in rows]

    def get(self, conv_id: int) -> Conversation | None:
        """The conversation with this id, or None if it was deleted."""
        row = self._db.execute("SELECT id, title, system_prompt, updated FROM conversations WHERE id = ?",
                               (conv_id,)).fetchone()
        return Conversation(*row) if row else None

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
        rows = self._db.execute("SELECT id, position, role, content FROM messages WHERE conversation_id = ? "
                                "ORDER BY position", (conv_id,)).fetchall()
        return [Message(*r) for r in rows]

    def append(self, conv_id: int, role: str, content: str) -> Message:
        """Add a message at the end of a conversation and return it.

        Raises:
            ValueError: ``role`` is not "user" or "assistant".
        """
        if role not in ("user", "assistant"):
            raise ValueError(f"role must be 'user' or 'assistant', not {role!r}")
        with self._db:
            (pos,) = self._db.execute("SELECT COALESCE(MAX(position) + 1, 0) FROM messages WHERE conversation_id = ?",
                                      (conv_id,)).fetchone()
            cur = self._db.execute("INSERT INTO messages (conversation_id, position, role, content) VALUES (?, ?, ?, ?)",
                                   (conv_id, pos, role, content))
            self._touch(conv_id)
        return Message(cur.lastrowid, pos, role, content)

    def update(self, conv_id: int, position: int, content: str) -> None:
        """Replace the text of the message at ``position``."""
        with self._db:
            self._db.execute("UPDATE messages SET content = ? WHERE conversation_id = ? AND position = ?",
                             (content, conv_id, position))
            self._touch(conv_id)

    def truncate(self, conv_id: int, position: int) -> None:
        """Delete the messages at ``position`` and after (used by Regenerate and Edit)."""
        with self._db:
            self._db.execute("DELETE FROM messages WHERE conversation_id = ? AND position >= ?", (conv_id, position))
            self._touch(conv_id)

    def _touch(self, conv_id: int) -> None:
        self._db.execute("UPDATE conversations SET updated = ? WHERE id = ?", (time.time(), conv_id))
