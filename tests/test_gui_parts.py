"""The desktop app's Qt-free parts: the conversation store, Markdown code-block splitting, display detection,
and the terminal fallback of `fireside gui` (a subprocess with no display)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import MODELS_DIR, ROOT
from gui.conversations import ConversationStore
from gui.markdown_blocks import Block, split_blocks
from gui.options import display_available


def test_store_round_trip_and_order(tmp_path):
    store = ConversationStore(tmp_path / "c.sqlite3")
    a = store.create("first")
    b = store.create("second", system_prompt="Be brief.")
    store.append(a.id, "user", "hello")
    m = store.append(a.id, "assistant", "hi there")
    assert m.position == 1
    assert [c.id for c in store.list()] == [a.id, b.id]  # a was updated last
    store.rename(b.id, "  renamed  ")
    store.update(a.id, 1, "hi!")
    store.close()

    again = ConversationStore(tmp_path / "c.sqlite3")
    assert [(c.title, c.system_prompt) for c in again.list()] == [("first", None), ("renamed", "Be brief.")]
    assert [m.as_chat() for m in again.messages(a.id)] == [{"role": "user", "content": "hello"},
                                                          {"role": "assistant", "content": "hi!"}]
    again.truncate(a.id, 1)
    assert [m.content for m in again.messages(a.id)] == ["hello"]
    assert again.append(a.id, "user", "next").position == 1
    again.delete(a.id)
    assert again.get(a.id) is None and again.messages(a.id) == []
    with pytest.raises(ValueError, match="role"):
        again.append(b.id, "system", "x")
    again.close()


def test_store_uses_data_dir_env(tmp_path, monkeypatch):
    monkeypatch.setenv("FIRESIDE_DATA_DIR", str(tmp_path / "data"))
    store = ConversationStore()
    assert store.path == tmp_path / "data" / "conversations.sqlite3" and store.path.is_file()
    store.close()


def test_split_blocks_fences_and_streaming():
    text = "Intro **bold**\n\n```python\ndef f():\n    return 1\n```\nAfter.\n~~~\nraw ``` inside\n~~~"
    assert split_blocks(text) == [
        Block("text", "Intro **bold**"), Block("code", "def f():\n    return 1", "python"),
        Block("text", "After."), Block("code", "raw ``` inside", ""),
    ]
    # A fence still open (a reply being streamed) runs to the end; a shorter fence does not close it.
    assert split_blocks("Hi\n````js\nlet a;\n```\nmore") == [Block("text", "Hi"),
                                                          Block("code", "let a;\n```\nmore", "js")]
    assert split_blocks("") == [] and split_blocks("plain") == [Block("text", "plain")]


def test_display_available():
    assert not display_available({}, "linux")
    assert display_available({"DISPLAY": ":0"}, "linux")
    assert display_available({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    assert display_available({"QT_QPA_PLATFORM": "offscreen"}, "linux")
    assert display_available({}, "darwin") and display_available({}, "win32")


def test_gui_without_display_falls_back_to_terminal_chat(smollm2_path, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(FIRESIDE_MODELS=str(MODELS_DIR), FIRESIDE_DATA_DIR=str(tmp_path))
    if not sys.platform.startswith("linux"):
        pytest.fail("this check is written for Linux (no DISPLAY means no window)")
    run = lambda *a: subprocess.run([sys.executable, "-m", "engine", *a], cwd=ROOT, input="", capture_output=True,
                                    text=True, timeout=300, env=env)
    out = run("gui", "--terminal-fallback", str(smollm2_path))
    assert out.returncode == 0, out.stderr
    assert "no display" in out.stderr and "fireside chat" in out.stderr  # said so, then chatted (empty stdin: quit)
    assert "fireside chat:" in out.stderr
    out = run("gui", str(smollm2_path))  # without the fallback flag: a clear error, no Qt abort
    assert out.returncode == 1 and "no display" in out.stderr
