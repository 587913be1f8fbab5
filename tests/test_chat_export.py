"""Conversation search, export / import, each chat's model and system-prompt presets (issue 15, part D).

Real stores in tmp_path (SQLite files, migrated from the old schema where it matters), real widgets driven
with pytest-qt, settings in a temporary data dir's INI file.
"""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is imported

import sqlite3  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from gui.conversation_search import NO_MATCHES, ConversationSearch  # noqa: E402
from gui.conversations import MARKS, ConversationStore, fts5_available  # noqa: E402

# The schema of the store before search, model_path and reasoning (version 0), verbatim.
OLD_SCHEMA = """
CREATE TABLE conversations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL, system_prompt TEXT,
    created REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    position INTEGER NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL,
    UNIQUE (conversation_id, position));
"""
FTS_MODES = [pytest.param(True, id="fts5"), pytest.param(False, id="like")]


def found(store: ConversationStore, text: str) -> list[str]:
    return [h.conversation.title for h in store.search(text)]


def fill(store: ConversationStore) -> dict[str, int]:
    py = store.create("Python tips")
    store.append(py.id, "user", "How do I flatten a list?")
    store.append(py.id, "assistant", "Use a comprehension:\n```python\n[x for row in rows for x in row]\n```")
    cook = store.create("Cooking")
    store.append(cook.id, "user", "A café au lait with 50% milk_foam, please")
    store.append(cook.id, "assistant", "Heat the milk, then froth it.")
    return {"py": py.id, "cook": cook.id}


@pytest.fixture(params=FTS_MODES)
def use_fts(request) -> bool:
    if request.param and not fts5_available():
        pytest.fail("this Python's sqlite3 has no FTS5: the LIKE tests still cover search")
    return request.param


# Search --------------------------------------------------------------------------------------------


def test_search_titles_and_messages(tmp_path, use_fts):
    store = ConversationStore(tmp_path / "c.sqlite3", use_fts=use_fts)
    ids = fill(store)
    hits = store.search("flatten")
    assert [(h.conversation.id, h.position) for h in hits] == [(ids["py"], 0)]
    assert f"{MARKS[0]}flatten{MARKS[1]}" in hits[0].snippet
    title_hit = store.search("cooking")[0]
    assert title_hit.conversation.id == ids["cook"] and title_hit.position is None
    # Every word must match (in one message or the title), in any case.
    assert found(store, "HEAT froth") == ["Cooking"]
    assert found(store, "heat flatten") == []
    # Code inside a reply is searchable; the snippet is one line.
    hit = store.search("comprehension")[0]
    assert hit.position == 1 and "\n" not in hit.snippet
    assert store.search("") == [] and store.search("   ") == []
    # Edits, renames, truncation and deletes keep the index in step.
    store.update(ids["py"], 0, "How do I reverse a list?")
    assert found(store, "flatten") == [] and found(store, "reverse") == ["Python tips"]
    store.rename(ids["cook"], "Kitchen")
    assert found(store, "cooking") == [] and found(store, "kitchen") == ["Kitchen"]
    store.truncate(ids["cook"], 1)
    assert found(store, "froth") == []
    store.delete(ids["py"])
    assert found(store, "reverse") == [] and found(store, "comprehension") == []
    store.close()


def test_search_takes_any_text_literally(tmp_path, use_fts):
    store = ConversationStore(tmp_path / "c.sqlite3", use_fts=use_fts)
    fill(store)
    # LIKE wildcards and FTS5 syntax neither fail nor match everything.
    for text in ['"', "'", "AND", "OR NOT", "*", "(", "NEAR(zz yy)", "title:zz", "\\", "%%"]:
        assert found(store, text) == [], text
    assert found(store, "milk_foam") == ["Cooking"]
    assert found(store, "50%") == ["Cooking"]
    if not use_fts:  # LIKE matches inside words; an escaped % or _ is only itself
        assert found(store, "_") == ["Cooking"] and found(store, "k_f") == ["Cooking"]
        assert found(store, "x_r") == []
    else:  # FTS5 matches the starts of words, folding accents
        assert found(store, "cafe") == ["Cooking"] and found(store, "flat") == ["Python tips"]
        assert found(store, "latten") == [] and found(store, "(milk_foam)") == ["Cooking"]  # punctuation ignored
    store.close()


def test_old_database_is_migrated_and_indexed(tmp_path):
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.execute("INSERT INTO conversations VALUES (1, 'Old chat', 'Be terse.', 100.0, 200.0)")
    db.execute("INSERT INTO messages VALUES (1, 1, 0, 'user', 'an unusual word: zephyr')")
    db.commit()
    db.close()

    store = ConversationStore(path)
    conv = store.get(1)
    assert (conv.title, conv.system_prompt, conv.created, conv.updated, conv.model_path) == (
        "Old chat", "Be terse.", 100.0, 200.0, None)
    assert [(m.role, m.content, m.reasoning) for m in store.messages(1)] == [
        ("user", "an unusual word: zephyr", None)]
    assert found(store, "zephyr") == ["Old chat"]  # the index was built from the existing rows
    store.append(1, "assistant", "ok", reasoning="thinking")
    store.close()
    again = ConversationStore(path)
    assert again._db.execute("PRAGMA user_version").fetchone() == (1,)
    assert [m.reasoning for m in again.messages(1)] == [None, "thinking"]
    again.close()


def test_index_rebuilt_after_use_without_fts(tmp_path):
    if not fts5_available():
        pytest.fail("needs FTS5")
    path = tmp_path / "c.sqlite3"
    ConversationStore(path).close()
    # Opened by a Python without FTS5: its triggers go, so writes work and search uses LIKE.
    plain = ConversationStore(path, use_fts=False)
    conv = plain.create("Written without FTS")
    plain.append(conv.id, "user", "quokka")
    assert found(plain, "quokka") == ["Written without FTS"]
    plain.close()
    # Back with FTS5: the stale index is rebuilt, so what was written meanwhile is found.
    fts = ConversationStore(path)
    assert found(fts, "quokka") == ["Written without FTS"] and found(fts, "without") == ["Written without FTS"]
    fts.close()


def test_search_widget_reports_the_chosen_conversation(qtbot, tmp_path):
    store = ConversationStore(tmp_path / "c.sqlite3")
    ids = fill(store)
    w = ConversationSearch(store)
    qtbot.addWidget(w)
    w.show()
    qtbot.keyClicks(w.edit, "froth")
    qtbot.waitUntil(lambda: w.result_ids() == [ids["cook"]])
    item = w.results.item(0)
    assert item.text().startswith("Cooking\n") and "froth" in item.text()
    with qtbot.waitSignal(w.message_chosen) as chosen, qtbot.waitSignal(w.conversation_chosen) as conv:
        qtbot.keyClick(w.edit, Qt.Key.Key_Return)
    assert chosen.args == [ids["cook"], 1] and conv.args == [ids["cook"]]

    # No matches: a disabled line that picks nothing.
    w.edit.setText("nothing like this")
    w.run_search()
    assert w.result_ids() == [] and w.results.item(0).text() == NO_MATCHES
    with qtbot.assertNotEmitted(w.conversation_chosen):
        qtbot.keyClick(w.edit, Qt.Key.Key_Return)
        w.results.itemActivated.emit(w.results.item(0))

    # Enter right after typing searches at once and opens the top hit; a click opens a result too.
    w.edit.clear()
    with qtbot.waitSignal(w.conversation_chosen) as conv:
        qtbot.keyClicks(w.edit, "list")
        qtbot.keyClick(w.edit, Qt.Key.Key_Return)
    assert conv.args == [ids["py"]]
    rect = w.results.visualItemRect(w.results.item(0))
    with qtbot.waitSignal(w.conversation_chosen) as conv:
        qtbot.mouseClick(w.results.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert conv.args == [ids["py"]]
    # Clearing the box clears the results.
    w.edit.clear()
    w.run_search()
    assert w.results.count() == 0
    store.close()
