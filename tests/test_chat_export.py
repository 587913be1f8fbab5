"""Conversation search, export / import, each chat's model and system-prompt presets (issue 15, part D).

Real stores in tmp_path (SQLite files, migrated from the old schema where it matters), real widgets driven
with pytest-qt, settings in a temporary data dir's INI file.
"""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is imported

import json  # noqa: E402
import sqlite3  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from gui.chat_export import (ChatImportError, archive_json, conversation_json, conversation_markdown,  # noqa: E402
                             import_file, import_text, suggested_filename, write_export)
from gui.chat_file_task import ChatFileTask  # noqa: E402
from gui.conversation_model import ModelOffer, is_remote_path, model_to_offer  # noqa: E402
from gui.conversation_search import NO_MATCHES, ConversationSearch  # noqa: E402
from gui.conversations import MARKS, ConversationStore, fts5_available  # noqa: E402
from gui.markdown_blocks import Block, split_blocks  # noqa: E402
from gui.prompt_presets import BUILTIN_PRESETS, PresetError, PresetLibrary  # noqa: E402
from gui.settings import Settings  # noqa: E402
from gui.system_prompt_dialog import SystemPromptDialog  # noqa: E402

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
    assert again._db.execute("PRAGMA user_version").fetchone() == (2,)
    assert [m.reasoning for m in again.messages(1)] == [None, "thinking"]
    assert [m.stats for m in again.messages(1)] == [None, None]  # the version-2 column, empty for old rows
    again.close()


def test_reply_stats_are_kept_with_the_reply(tmp_path):
    from gui.conversations import stats_record

    class Stats:  # any object with the fields (a GenerationStats in the app)
        n_prompt, n_reused, n_generated, prefill_s, decode_s = 20, 4, 12, 0.25, 0.5
        finish_reason, context_full, text = "length", False, "not kept"

    store = ConversationStore(tmp_path / "c.sqlite3")
    conv = store.create("Stats")
    store.append(conv.id, "user", "Hi")
    record = stats_record(Stats())
    assert record == {"n_prompt": 20, "n_reused": 4, "n_generated": 12, "prefill_s": 0.25, "decode_s": 0.5,
                      "finish_reason": "length", "context_full": False}
    assert store.append(conv.id, "assistant", "Hello", stats=record).stats == record
    assert store.messages(conv.id)[1].stats == record
    store.update(conv.id, 1, "Hello there", stats=dict(record, n_generated=30, finish_reason="stop"))
    assert store.messages(conv.id)[1].stats["finish_reason"] == "stop"
    store.update(conv.id, 1, "Edited")  # an edited message's numbers no longer describe it
    assert store.messages(conv.id)[1].stats is None
    # A damaged record is dropped, the message is still read.
    store._db.execute("UPDATE messages SET stats = '{not json' WHERE position = 1")
    store._db.execute("UPDATE messages SET stats = '[1, 2]' WHERE position = 0")
    assert [m.stats for m in store.messages(conv.id)] == [None, None]
    assert [m.content for m in store.messages(conv.id)] == ["Hi", "Edited"]
    store.close()


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


# Export and import ---------------------------------------------------------------------------------

CODE = "def f(x):\n\treturn x  # tab, trailing blanks   \n\n    indented = '```'  \n"


def rich_conversation(store: ConversationStore) -> int:
    conv = store.create("Code & café ☕", system_prompt="Answer with ```code```.\nBe brief.",
                        model_path="/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    store.append(conv.id, "user", "Write f, please. Ünïcödé 𝄞 and a NUL \x00 byte")
    store.append(conv.id, "assistant", f"Here:\n\n```python\n{CODE}```\n\nDone.", reasoning="They want f.")
    store.append(conv.id, "user", "And a stopped reply?")
    store.append(conv.id, "assistant", "Sure:\n````js\nlet a = 1;\n```\nstill code")  # left open
    return conv.id


def message_tuples(store: ConversationStore, conv_id: int) -> list[tuple]:
    return [(m.position, m.role, m.content, m.reasoning) for m in store.messages(conv_id)]


def test_json_round_trip(tmp_path):
    src = ConversationStore(tmp_path / "src.sqlite3")
    conv_id = rich_conversation(src)
    text = conversation_json(src, conv_id)
    doc = json.loads(text)
    assert (doc["format"], doc["version"], doc["title"], doc["model"]) == (
        "fireside-chat", 1, "Code & café ☕", "SmolLM2-135M-Instruct.Q4_1.gguf")  # the name, not the folder
    assert doc["messages"][1]["reasoning"] == "They want f." and "reasoning" not in doc["messages"][0]
    path = tmp_path / suggested_filename(src.get(conv_id).title, ".json")
    write_export(path, text)
    assert path.name == "Code & café ☕.json"

    dst = ConversationStore(tmp_path / "dst.sqlite3")
    existing = dst.create("Already here")
    (new_id,) = import_file(dst, path)
    assert new_id != existing.id
    a, b = src.get(conv_id), dst.get(new_id)
    assert (b.title, b.system_prompt, b.model_path) == (a.title, a.system_prompt, "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert b.created == pytest.approx(a.created, abs=1e-5)
    assert message_tuples(dst, new_id) == message_tuples(src, conv_id)
    assert found(dst, "stopped") == ["Code & café ☕"]  # imported messages are searchable
    # Importing the same file again adds another copy; it never merges into or replaces a chat.
    (again,) = import_text(dst, path.read_bytes())
    assert again != new_id and len(dst.list()) == 3
    src.close()
    dst.close()


def test_archive_of_all_conversations(tmp_path):
    src = ConversationStore(tmp_path / "src.sqlite3")
    fill(src)
    rich_conversation(src)
    empty = src.create("Empty chat")
    doc = json.loads(archive_json(src))
    assert doc["format"] == "fireside-chats" and doc["version"] == 1
    assert [c["title"] for c in doc["conversations"]] == [c.title for c in src.list()]
    assert doc["conversations"][0]["messages"] == [] and doc["conversations"][0]["title"] == empty.title

    dst = ConversationStore(tmp_path / "dst.sqlite3")
    ids = import_text(dst, archive_json(src))
    assert len(ids) == 4
    for old, new in zip(src.list(), (dst.get(i) for i in ids)):
        assert (new.title, new.system_prompt) == (old.title, old.system_prompt)
        assert message_tuples(dst, new.id) == message_tuples(src, old.id)
    src.close()
    dst.close()


def good_chat(**changes) -> dict:
    doc = {"format": "fireside-chat", "version": 1, "title": "T", "system_prompt": None, "model": None,
           "created": "2026-01-02T03:04:05+00:00", "messages": [{"role": "user", "content": "hi"}]}
    doc.update(changes)
    return doc


BAD_IMPORTS = [
    (b"\xff\xfe not utf-8", "not UTF-8"),
    ("{", "not valid JSON"),
    ("[]", "must be a JSON object"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"format": "fireside-chat", "version": 1, "created": NaN}', "not a number"),
    ("9" * 5000, "not valid JSON"),
    (json.dumps({"format": "something-else"}), "not a Fireside chat export"),
    (json.dumps(good_chat(version=2)), "newer Fireside"),
    (json.dumps(good_chat(version=True)), "whole number"),
    (json.dumps(good_chat(version="1")), "whole number"),
    (json.dumps(good_chat(title=None)), "the file.title: must be text"),
    (json.dumps(good_chat(title="x" * 1001)), "longer than"),
    (json.dumps(good_chat(system_prompt=["x"])), "system_prompt: must be text or null"),
    (json.dumps(good_chat(model="../../etc/passwd")), "without folders"),
    (json.dumps(good_chat(created="yesterday")), "not an ISO 8601 time"),
    (json.dumps(good_chat(created=1e300)), "not a time"),
    (json.dumps(good_chat(messages={"role": "user"})), "messages: must be a list"),
    (json.dumps(good_chat(messages=["hi"])), "messages[0]: must be a JSON object"),
    (json.dumps(good_chat(messages=[{"role": "system", "content": "x"}])), 'messages[0].role: must be "user"'),
    (json.dumps(good_chat(messages=[{"role": "user", "content": 5}])), "messages[0].content: must be text"),
    ('{"format": "fireside-chat", "version": 1, "title": "\\ud800", "messages": []}', "lone UTF-16 surrogate"),
    (json.dumps(good_chat(messages=[{"role": "user", "content": "a", "reasoning": {}}])),
     "reasoning: must be text or null"),
    # One bad conversation in an archive: nothing from it is added.
    (json.dumps({"format": "fireside-chats", "version": 1, "conversations": [
        good_chat(), good_chat(messages=[{"role": "user"}])]}), "conversations[1].messages[0].content"),
    (json.dumps({"format": "fireside-chats", "version": 1, "conversations": {}}), "conversations: must be a list"),
]


@pytest.mark.parametrize("data,message", BAD_IMPORTS, ids=range(len(BAD_IMPORTS)))
def test_bad_imports_give_a_clear_error_and_add_nothing(tmp_path, data, message):
    store = ConversationStore(tmp_path / "c.sqlite3")
    kept = store.create("Mine")
    store.append(kept.id, "user", "my words")
    with pytest.raises(ChatImportError) as err:
        import_text(store, data)
    assert message in str(err.value)
    assert len(str(err.value)) < 300  # a message for a person, not a dump of the input
    assert [c.id for c in store.list()] == [kept.id]
    assert message_tuples(store, kept.id) == [(0, "user", "my words", None)]
    # The good version of the same chat imports.
    assert len(import_text(store, json.dumps(good_chat()))) == 1
    store.close()


def test_import_file_errors(tmp_path):
    store = ConversationStore(tmp_path / "c.sqlite3")
    with pytest.raises(ChatImportError, match="cannot read missing.json"):
        import_file(store, tmp_path / "missing.json")
    bad = tmp_path / "notes.json"
    bad.write_text("just words")
    with pytest.raises(ChatImportError, match="^notes.json: not valid JSON"):
        import_file(store, bad)
    assert store.list() == []
    store.close()


def test_markdown_keeps_code_verbatim(tmp_path):
    store = ConversationStore(tmp_path / "c.sqlite3")
    conv_id = rich_conversation(store)
    md = conversation_markdown(store, conv_id)
    assert md.startswith("# Code & café ☕\n\n*Exported from Fireside: created ")
    assert "model `SmolLM2-135M-Instruct.Q4_1.gguf`" in md
    blocks = split_blocks(md)
    codes = [b for b in blocks if b.kind == "code"]
    # The system prompt (holding ``` itself) and the code block come back exactly.
    assert codes[0] == Block("code", "Answer with ```code```.\nBe brief.", "text")
    assert codes[1] == Block("code", CODE.rstrip("\n"), "python")
    # The reply left inside an open fence is closed, so nothing after it turns into code.
    assert codes[2] == Block("code", "let a = 1;\n```\nstill code", "js")
    assert len(codes) == 3
    text = "\n".join(b.text for b in blocks if b.kind == "text")
    assert text.count("### User") == 2 and text.count("### Assistant") == 2
    assert "<details><summary>Reasoning</summary>\n\nThey want f.\n\n</details>" in text
    assert md.index("Write f, please.") < md.index("They want f.") < md.index("Here:") < md.index("And a stopped")
    with pytest.raises(LookupError, match="no conversation 999"):
        conversation_markdown(store, 999)
    store.close()


def test_suggested_filename():
    assert suggested_filename('a/b\\c:d*e?"f<g>h|i\nj', ".md") == "a b c d e f g h i j.md"
    assert suggested_filename("...", ".json") == "chat.json" and suggested_filename("", ".md") == "chat.md"
    assert len(suggested_filename("x" * 500, ".md")) == 83


# Each conversation's model -------------------------------------------------------------------------


def test_conversation_remembers_its_model(tmp_path, smollm2_path, gemma3_path):
    path = tmp_path / "c.sqlite3"
    store = ConversationStore(path)
    conv = store.create("with SmolLM2")
    store.append(conv.id, "user", "hi")
    before = store.get(conv.id).updated
    store.set_model(conv.id, smollm2_path)
    store.close()
    store = ConversationStore(path)
    conv = store.get(conv.id)
    assert conv.model_path == str(smollm2_path) and conv.updated == before  # kept; not a change to the chat
    models = smollm2_path.parent

    # Same model loaded (by path, or the same file through a link of another name): nothing to offer.
    assert model_to_offer(conv, smollm2_path, models) is None
    link = tmp_path / "renamed.gguf"
    link.symlink_to(smollm2_path)
    assert model_to_offer(conv, link, models) is None
    # Another model, or none: offer the stored file.
    for loaded in (gemma3_path, None):
        offer = model_to_offer(conv, loaded, tmp_path)
        assert offer == ModelOffer(smollm2_path.name, smollm2_path)
        assert offer.message() == f"This chat was with {smollm2_path.name}. Load it?"
        assert offer.button() == f"Load {smollm2_path.name}"
    # The file moved away: found by name in the models folder; found nowhere: said so, nothing to load.
    store.set_model(conv.id, f"/nowhere/{smollm2_path.name}")
    moved = store.get(conv.id)
    assert model_to_offer(moved, gemma3_path, models) == ModelOffer(smollm2_path.name, models / smollm2_path.name)
    lost = model_to_offer(moved, gemma3_path, tmp_path)
    assert lost.path is None and lost.button() is None and "not in your models folder" in lost.message()
    # No model recorded (an old chat, or forgotten): nothing to offer.
    store.set_model(conv.id, None)
    assert model_to_offer(store.get(conv.id), gemma3_path, models) is None
    assert model_to_offer(store.create("new"), None, models) is None
    # A remote model ("<API root>#<model>", RemoteModel.path) is never looked for as a file: no offer,
    # whatever is loaded; a chat with a local file still offers it while a remote model is in use.
    remote = f"http://127.0.0.1:8080/v1#{smollm2_path.stem}"
    assert is_remote_path(remote) and is_remote_path("HTTPS://host/v1#m") and not is_remote_path(str(smollm2_path))
    store.set_model(conv.id, remote)
    for loaded in (None, smollm2_path, remote, "https://other/v1#x"):
        assert model_to_offer(store.get(conv.id), loaded, models) is None
    store.set_model(conv.id, smollm2_path)
    assert model_to_offer(store.get(conv.id), remote, models) == ModelOffer(smollm2_path.name, smollm2_path)
    store.close()


def test_imported_chat_offers_its_model_from_the_models_folder(tmp_path, monkeypatch, smollm2_path, gemma3_path):
    src = ConversationStore(tmp_path / "src.sqlite3")
    conv = src.create("exported", model_path=str(smollm2_path))
    text = conversation_json(src, conv.id)
    assert str(smollm2_path.parent) not in text  # the folder stays private
    dst = ConversationStore(tmp_path / "dst.sqlite3")
    (new_id,) = import_text(dst, text)
    imported = dst.get(new_id)
    assert imported.model_path == smollm2_path.name
    offer = model_to_offer(imported, gemma3_path, smollm2_path.parent)
    assert offer == ModelOffer(smollm2_path.name, smollm2_path.parent / smollm2_path.name)
    # A bare name is looked up only in the models folder, never relative to the current directory.
    monkeypatch.chdir(smollm2_path.parent)
    assert model_to_offer(imported, gemma3_path, tmp_path).path is None
    src.close()
    dst.close()


# System-prompt presets -----------------------------------------------------------------------------


@pytest.fixture()
def settings(tmp_path, monkeypatch) -> Settings:
    monkeypatch.setenv("FIRESIDE_DATA_DIR", str(tmp_path / "data"))
    return Settings()


def test_preset_library_saves_in_the_settings_file(settings, tmp_path):
    lib = PresetLibrary(settings)
    assert [p.name for p in lib.all()] == [p.name for p in BUILTIN_PRESETS] and len(BUILTIN_PRESETS) >= 3
    lib.save("  Pirate   talk ", "Talk like a pirate.\nAlways.")
    lib.save("Haiku", "Answer in haiku = 5/7/5; [brackets] and \\ are fine")
    lib.save("Pirate talk", "Arr.")  # same name: replaced in place
    ini = (tmp_path / "data" / "settings.ini").read_text()
    assert "prompt_presets" in ini and "Haiku" in ini
    again = PresetLibrary(Settings())
    assert [(p.name, p.text, p.builtin) for p in again.all()[len(BUILTIN_PRESETS):]] == [
        ("Pirate talk", "Arr.", False), ("Haiku", "Answer in haiku = 5/7/5; [brackets] and \\ are fine", False)]
    for name, text, message in [("", "x", "name"), ("x" * 61, "x", "at most"), ("Concise", "x", "built-in"),
                                ("Blank", " \n ", "empty")]:
        with pytest.raises(PresetError, match=message):
            again.save(name, text)
    with pytest.raises(PresetError, match="cannot be deleted"):
        again.delete("Concise")
    with pytest.raises(PresetError, match="no preset"):
        again.delete("Nope")
    again.delete("Pirate talk")
    assert [p.name for p in PresetLibrary(Settings()).all()][len(BUILTIN_PRESETS):] == ["Haiku"]
    # A user preset that somehow has a built-in's name (an edited file) does not shadow the built-in.
    settings.set_prompt_presets([("Concise", "mine"), ("Haiku", "h")])
    assert lib.get("Concise").builtin and lib.get("Concise").text == BUILTIN_PRESETS[1].text


def test_system_prompt_dialog(qtbot, settings):
    dlg = SystemPromptDialog("My own careful prompt", settings)
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitExposed(dlg)
    assert dlg.preset_names() == [p.name for p in BUILTIN_PRESETS]
    assert dlg.presets.currentText() == "Presets…" and not dlg.delete_button.isEnabled()

    # Picking a built-in fills the editor; Ctrl+Z brings the user's text back.
    dlg.choose_preset("Concise")
    assert dlg.text() == BUILTIN_PRESETS[1].text and not dlg.delete_button.isEnabled()
    dlg.editor.setFocus()
    qtbot.keyClick(dlg.editor, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert dlg.text() == "My own careful prompt"

    # Save it under a name typed in the name field (Enter saves; it does not close the dialog).
    with qtbot.waitSignal(dlg.presets_changed):
        qtbot.keyClicks(dlg.name, "Careful")
        qtbot.keyClick(dlg.name, Qt.Key.Key_Return)
    assert dlg.isVisible() and dlg.message.text() == "Saved preset \u201cCareful\u201d."
    assert dlg.preset_names()[-1] == "Careful" and dlg.presets.currentText() == "Careful"
    assert dlg.delete_button.isEnabled()
    assert PresetLibrary(Settings()).get("Careful").text == "My own careful prompt"

    # A built-in's name, or no name: a message in the dialog, nothing saved.
    with qtbot.assertNotEmitted(dlg.presets_changed):
        dlg.name.setText("Programmer")
        qtbot.mouseClick(dlg.save_button, Qt.MouseButton.LeftButton)
        assert "built-in" in dlg.message.text()
        dlg.name.clear()
        qtbot.mouseClick(dlg.save_button, Qt.MouseButton.LeftButton)
        assert dlg.message.text() == "Give the preset a name."
    assert PresetLibrary(Settings()).get("Programmer").builtin

    # Pick the user's preset in another dialog and delete it; the editor keeps its text.
    dlg2 = SystemPromptDialog("", Settings())
    qtbot.addWidget(dlg2)
    dlg2.show()
    dlg2.choose_preset("Careful")
    assert dlg2.text() == "My own careful prompt" and dlg2.name.text() == "Careful"
    with qtbot.waitSignal(dlg2.presets_changed):
        qtbot.mouseClick(dlg2.delete_button, Qt.MouseButton.LeftButton)
    assert "Careful" not in dlg2.preset_names() and dlg2.text() == "My own careful prompt"
    assert PresetLibrary(Settings()).get("Careful") is None and not dlg2.delete_button.isEnabled()

    # OK gives the edited prompt back.
    dlg2.editor.setPlainText("  Final prompt \n")
    qtbot.mouseClick(dlg2.ok_button, Qt.MouseButton.LeftButton)
    assert dlg2.result() == dlg2.DialogCode.Accepted and dlg2.text() == "Final prompt"


# Files off the GUI thread --------------------------------------------------------------------------


def test_chat_file_task_exports_and_imports_in_a_worker(qtbot, tmp_path):
    store = ConversationStore(tmp_path / "c.sqlite3")  # the window's own connection
    ids = fill(store)
    task = ChatFileTask(store.path)
    archive = tmp_path / "all.json"
    with qtbot.waitSignal(task.exported, timeout=30_000) as done:
        task.export_all(archive)
    assert done.args == [str(archive)]
    assert [c["title"] for c in json.loads(archive.read_text(encoding="utf-8"))["conversations"]] == [
        "Cooking", "Python tips"]
    md = tmp_path / "one.md"
    with qtbot.waitSignal(task.exported, timeout=30_000):
        task.export_one(ids["py"], md)
    assert md.read_text(encoding="utf-8").startswith("# Python tips\n")

    # Import into the same database: the window's connection sees the new chats at once.
    with qtbot.waitSignal(task.imported, timeout=30_000) as done:
        task.import_file(archive)
    new_ids = done.args[0]
    assert len(new_ids) == 2 and len(store.list()) == 4
    assert message_tuples(store, new_ids[1]) == message_tuples(store, ids["py"])
    assert task.wait(30) and not task.busy()

    # Failures come back as messages; nothing changes.
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "fireside-chat", "version": 9}', encoding="utf-8")
    with qtbot.waitSignal(task.failed, timeout=30_000) as failed:
        task.import_file(bad)
    assert failed.args == ["Nothing was imported: bad.json: the file: version 9 was written by a newer "
                           "Fireside; this one reads version 1"]
    task.wait(30)
    with qtbot.waitSignal(task.failed, timeout=30_000) as failed:
        task.export_all(tmp_path / "no such folder" / "all.json")
    assert failed.args[0].startswith("Cannot write all.json: ")
    task.wait(30)
    with qtbot.waitSignal(task.failed, timeout=30_000) as failed:
        task.export_one(12345, tmp_path / "x.json")
    assert failed.args == ["Nothing was exported: there is no conversation 12345 (was it deleted?)"]
    assert len(store.list()) == 4 and not (tmp_path / "x.json").exists()
    task.wait(30)
    store.close()
