"""The reply widget (gui/message_widget.py) driven as a user would, offscreen: highlighted code blocks
(Pygments), streamed code that is not re-lexed whole on every render, theme colours.

No model is needed: the widgets are fed real text (this repository's own source as a long code block).
"""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is imported

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from pygments.styles import get_style_by_name  # noqa: E402
from pygments.token import Comment, Keyword, String  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QGuiApplication  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from engine.generate import GenerationStats  # noqa: E402
from gui import theme  # noqa: E402
from gui.highlight import CHUNK_CHARS, IncrementalLexer, lexer_for, warm_up  # noqa: E402
from gui.message_widget import CodeBlock, MessageWidget  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def reply_widget(qtbot, text: str = "", role: str = "assistant", position: int = 1) -> MessageWidget:
    w = MessageWidget(role, text, position)
    qtbot.addWidget(w)
    w.resize(640, 480)
    with qtbot.waitExposed(w):
        w.show()
    return w


def code_blocks(w: MessageWidget) -> list[CodeBlock]:
    return [b for b in w._blocks if isinstance(b, CodeBlock)]


def colour_at(block: CodeBlock, line: int, column: int) -> str | None:
    fmt = block.highlighter.format_at(line, column)
    return fmt.foreground().color().name() if fmt.hasProperty(fmt.Property.ForegroundBrush) else None


def style_colour(style: str, ttype) -> str:
    return "#" + get_style_by_name(style).style_for_token(ttype)["color"].lower()


def shown_formats(block: CodeBlock) -> list[list[tuple]]:
    """What the code view shows: per line, its highlight ranges as (start, length, colour, bold, italic)."""
    doc, out = block.view.document(), []
    b = doc.begin()
    while b.isValid():
        out.append([(r.start, r.length, r.format.foreground().color().name(), r.format.fontWeight(),
                     r.format.fontItalic()) for r in b.layout().formats()])
        b = b.next()
    return out


def contrast(a: str, b: str) -> float:
    """WCAG 2.2 contrast ratio of two "#rrggbb" colours (https://www.w3.org/TR/WCAG22/#dfn-contrast-ratio)."""
    def lum(h: str) -> float:
        rgb = [int(h[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        r, g, b_ = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * r + 0.7152 * g + 0.0722 * b_
    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.fixture()
def light_theme(qapp):
    """Tests that switch the theme leave the app light, as the others expect."""
    theme.apply_theme(qapp, "light")
    yield qapp
    theme.apply_theme(qapp, "light")


# 1. Code blocks --------------------------------------------------------------------------------------

def test_fenced_code_is_highlighted_with_its_languages_lexer(qtbot, light_theme):
    text = ("Try this:\n\n```python\ndef f():\n    return 'x'  # note\n```\n\nOr in JS:\n\n```js\nlet a = 1;\n```\n"
            "\n```\nplain words\n```\n\n```nosuchlanguage\nreturn 1\n```")
    w = reply_widget(qtbot, text)
    py, js, plain, unknown = code_blocks(w)
    assert [b.lang.text() for b in (py, js, plain, unknown)] == ["python", "js", "code", "nosuchlanguage"]
    assert py.view.toPlainText() == "def f():\n    return 'x'  # note"
    style = theme.CODE_STYLES["light"]
    assert colour_at(py, 0, 0) == style_colour(style, Keyword)              # def
    assert colour_at(py, 1, 11) == style_colour(style, String)              # 'x'
    assert colour_at(py, 1, 16) == style_colour(style, Comment)             # # note
    assert colour_at(js, 0, 0) == style_colour(style, Keyword)              # let
    assert len({colour_at(py, 0, 0), colour_at(py, 1, 11), colour_at(py, 1, 16)}) == 3
    # No language, or one Pygments does not know: plain text, nothing coloured.
    assert shown_formats(plain) == [[]] and shown_formats(unknown) == [[]]


def test_copy_button_copies_the_code_alone(qtbot, light_theme):
    w = reply_widget(qtbot, "Run:\n```sh\nls -la\n```\nthen more text.")
    (block,) = code_blocks(w)
    qtbot.mouseClick(block.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == "ls -la"


@pytest.mark.parametrize("name", ["light", "dark"])
def test_code_colours_are_readable_on_the_themes_code_background(name):
    background = theme.colours(name)["code"]
    style = get_style_by_name(theme.CODE_STYLES[name])
    colours = {"#" + s["color"] for _ttype, s in style if s["color"]}
    assert len(colours) > 5
    worst = min(colours, key=lambda c: contrast(c, background))
    assert contrast(worst, background) >= 4.5, (name, worst)


def test_theme_switch_recolours_shown_code(qtbot, light_theme):
    w = reply_widget(qtbot, "```python\nimport os\n```")
    (block,) = code_blocks(w)
    assert colour_at(block, 0, 0) == style_colour(theme.CODE_STYLES["light"], Keyword)
    theme.apply_theme(light_theme, "dark")
    assert theme.current() == "dark"
    assert colour_at(block, 0, 0) == style_colour(theme.CODE_STYLES["dark"], Keyword)
    theme.apply_theme(light_theme, "light")
    assert colour_at(block, 0, 0) == style_colour(theme.CODE_STYLES["light"], Keyword)


def test_streamed_code_block_lexes_only_its_tail_and_ends_as_a_full_lex(qtbot, light_theme):
    # About 2,000 tokens of real Python, streamed as a reply in 40-character renders.
    source = (ROOT / "engine" / "generate.py").read_text()[:9000]
    reply = "Here is the module:\n\n```python\n" + source + "\n```\nThat is all."
    w = reply_widget(qtbot)
    block = None
    longest_line = max(len(line) for line in source.split("\n"))
    per_update = []
    for end in range(40, len(reply), 40):
        before = block.highlighter.lexer.lexed_chars if block else 0
        w.set_text(reply[:end])
        if block is None and code_blocks(w):
            block = code_blocks(w)[0]
            before = 0
        if block is not None and end < len(reply) - 20:  # while the fence is open
            per_update.append(block.highlighter.lexer.lexed_chars - before)
    assert len(per_update) > 200
    # Re-lexing the whole block each time would pass 8,000 characters per update near the end.
    assert max(per_update) <= 2 * CHUNK_CHARS + 40 + longest_line, max(per_update)
    w.set_text(reply)
    (block,) = code_blocks(w)
    assert block.view.toPlainText() == source
    whole = reply_widget(qtbot, reply)
    assert shown_formats(block) == shown_formats(code_blocks(whole)[0])
    full = IncrementalLexer("python")
    full.update(source, final=True)
    assert block.highlighter.lexer.lines == full.lines and any(full.lines)


def test_warm_up_prepares_lexers_off_the_gui_thread():
    lexer_for.cache_clear()
    thread = warm_up(["rust", "no-such-language"])
    assert thread.name == "fireside-lexers" and thread.daemon
    thread.join(timeout=60)
    assert not thread.is_alive() and lexer_for.cache_info().misses == 2
    rust = lexer_for("rust")  # the thread's lexer, from the cache
    assert lexer_for.cache_info().hits == 1 and rust.name == "Rust"
    assert "_tokens" in type(rust).__dict__  # its rules are compiled
    assert lexer_for("no-such-language") is None


# 2. Reasoning ----------------------------------------------------------------------------------------

def shown_answer(w: MessageWidget) -> str:
    return "\n".join(b.toPlainText() if not isinstance(b, CodeBlock) else b.view.toPlainText() for b in w._blocks)


def test_think_section_streamed_with_tags_cut_between_tokens(qtbot):
    w = reply_widget(qtbot)
    section = w.reasoning_section
    text = ""

    def stream(piece: str) -> None:
        nonlocal text
        text += piece
        w.set_text(text)

    stream("<th")  # maybe a tag: nothing shown yet
    assert section.isHidden() and shown_answer(w) == ""
    stream("ink>")
    assert section.isVisible() and section.toggle.text() == "Thinking…"
    stream("\nThe user wants 2+2.")
    stream(" That is 4.</th")
    assert section.text == "The user wants 2+2. That is 4." and section.toggle.text() == "Thinking…"
    assert shown_answer(w) == ""
    stream("ink>\n\nThe answer")
    assert section.toggle.text().startswith("Thought for ") and section.toggle.text().endswith(" s")
    stream(" is **4**.")
    assert shown_answer(w) == "The answer is 4." and w.answer == "The answer is **4**."
    assert w.text == text  # the whole reply is what gets stored
    w.set_reasoning_time(3.24)
    assert section.toggle.text() == "Thought for 3.2 s"
    w.finish_reply()
    assert section.toggle.text() == "Thought for 3.2 s"

    # Collapsed until clicked; a second click hides it again.
    assert not section.body.isVisible()
    qtbot.mouseClick(section.toggle, Qt.MouseButton.LeftButton)
    assert section.body.isVisible() and section.view.toPlainText() == "The user wants 2+2. That is 4."
    qtbot.mouseClick(section.toggle, Qt.MouseButton.LeftButton)
    assert not section.body.isVisible()
    qtbot.mouseClick(w.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == "The answer is **4**."


def test_saved_reply_with_reasoning_and_replies_without(qtbot):
    saved = reply_widget(qtbot, "<think>\nFirst, recall the capital.\n</think>\n\nParis.")
    assert not saved.live and saved.reasoning_section.isVisible()
    assert saved.reasoning_section.toggle.text() == "Reasoning" and shown_answer(saved) == "Paris."
    # Qwen3 with thinking off writes an empty section: nothing to show.
    empty = reply_widget(qtbot, "<think>\n\n</think>\n\nHello!")
    assert empty.reasoning_section.isHidden() and shown_answer(empty) == "Hello!"
    # Tags that are not at the start are part of the answer.
    prose = reply_widget(qtbot, "Models write `<think>` before reasoning.")
    assert prose.reasoning_section.isHidden() and "<think>" in shown_answer(prose)
    user = reply_widget(qtbot, "<think>my words</think>", role="user")
    assert user.reasoning_section.isHidden() and shown_answer(user) == "<think>my words</think>"
    # A saved reply cut off while reasoning is not "Thinking…" any more.
    cut = reply_widget(qtbot, "<think>Let me count: one, two")
    assert cut.reasoning_section.toggle.text() == "Reasoning" and cut.reasoning == "Let me count: one, two"
    # A reply without reasoning never shows the section while it streams.
    live = reply_widget(qtbot)
    for text in ("", "Hel", "Hello!"):
        live.set_text(text)
        assert live.reasoning_section.isHidden()


def test_prompt_that_opens_the_section(qtbot):
    w = reply_widget(qtbot)
    w.starts_in_reasoning = True  # DeepSeek-R1's template ends the prompt with "<think>\n"
    w.set_text("Hmm, 2+2")
    assert w.reasoning_section.toggle.text() == "Thinking…" and shown_answer(w) == ""
    w.set_text("Hmm, 2+2 is 4.\n</think>\n\n4")
    assert w.reasoning == "Hmm, 2+2 is 4." and shown_answer(w) == "4"


def test_reasoning_passed_by_the_engine(qtbot):
    w = reply_widget(qtbot)
    w.append_reasoning("Step one. ")
    assert w.reasoning_section.isVisible() and w.reasoning_section.toggle.text() == "Thinking…"
    w.append_reasoning("Step two.")
    w.set_text("Done")
    assert w.reasoning_section.toggle.text().startswith("Thought for ")
    w.finish_reply(GenerationStats(n_generated=9, finish_reason="stop", text="Done", reasoning="Step one. Step two."))
    assert w.reasoning == "Step one. Step two." and w.text == "Done"
    # Reasoning known only from the final stats (not streamed) is shown too.
    later = reply_widget(qtbot)
    later.set_text("Hi")
    assert later.reasoning_section.isHidden()
    later.finish_reply(GenerationStats(n_generated=3, finish_reason="stop", text="Hi", reasoning="Greet back."))
    assert later.reasoning_section.isVisible() and later.reasoning == "Greet back."
    assert later.reasoning_section.toggle.text() == "Reasoning"


# 3, 4. Stats line, cut-off marker, Continue ----------------------------------------------------------

def test_real_reply_cut_at_max_tokens_shows_stats_marker_and_continue(qtbot, smollm2):
    from engine.context import Context
    from engine.generate import generate
    from engine.sampling import Sampler, SamplerParams

    prompt = smollm2.chat_template.render([{"role": "user", "content": "Tell me a long story about a fox."}],
                                          add_generation_prompt=True)
    gen = generate(Context(smollm2, n_ctx=256), smollm2.chat_template.encode(prompt),
                   sampler=Sampler(SamplerParams(temperature=0)), max_tokens=8)
    w = reply_widget(qtbot, position=3)
    text = ""
    for tok in gen:
        text += tok.text
        w.set_text(text)
    stats = gen.stats
    assert stats.finish_reason == "length" and stats.n_generated == 8
    assert w.footer.isHidden()
    w.finish_reply(stats)
    assert w.footer.isVisible() and w.footer.marker.text() == "Cut off at max tokens"
    line = w.footer.stats.text()
    assert line.startswith("8 tokens · ") and f"{stats.decode_tps:.1f} tokens/s" in line
    assert f"first token {stats.prefill_s:.2f} s" in line and line.endswith("· max tokens")
    assert w.continue_button.isVisible()
    with qtbot.waitSignal(w.continue_requested) as blocker:
        qtbot.mouseClick(w.continue_button, Qt.MouseButton.LeftButton)
    assert blocker.args == [3]
    w.set_busy(True)  # while the continuation streams
    assert not w.continue_button.isEnabled()


def test_continue_only_on_the_last_reply_and_hidden_while_it_goes_on(qtbot):
    from gui.chat_view import ChatView

    view = ChatView()
    qtbot.addWidget(view)
    view.show()
    cut = GenerationStats(n_prompt=9, n_generated=8, prefill_s=0.1, decode_s=0.2, finish_reason="length")
    view.add_message("user", "Count.", 0)
    view.begin_stream(1)
    view.end_stream("One, two,", cut)
    first = view.messages[-1]
    qtbot.waitUntil(first.continue_button.isVisible)
    with qtbot.waitSignal(view.continue_requested) as blocker:
        qtbot.mouseClick(first.continue_button, Qt.MouseButton.LeftButton)
    assert blocker.args == [1]
    assert view.resume_stream(0, "Count.") is None  # not the last message
    assert view.resume_stream(1, "One, two,") is first
    assert first.continue_button.isHidden() and first.footer.isHidden() and first.live
    view.append_stream(" three,")
    view.end_stream(None, cut)
    assert first.text == "One, two, three," and not first.continue_button.isHidden() and len(view.messages) == 2
    view.add_message("user", "More.", 2)  # a later message: the old reply is no longer the last
    assert first.continue_button.isHidden()


def test_saved_reply_stats_come_back_with_the_chat(qtbot):
    from gui.chat_view import ChatView
    from gui.conversations import Message

    view = ChatView()
    qtbot.addWidget(view)
    view.show()
    cut = {"n_prompt": 9, "n_reused": 0, "n_generated": 8, "prefill_s": 0.1, "decode_s": 0.2,
           "finish_reason": "length", "context_full": False}
    done = dict(cut, finish_reason="stop")
    view.set_messages([Message(1, 0, "user", "Count."), Message(2, 1, "assistant", "One, two,", stats=done),
                       Message(3, 2, "user", "More."), Message(4, 3, "assistant", "Three,", stats=cut)])
    first, last = view.messages[1], view.messages[3]
    assert not first.footer.isHidden() and first.footer.stats.text().startswith("8 tokens · ")
    assert first.footer.marker.isHidden() and first.continue_button.isHidden()
    assert last.footer.marker.text() == "Cut off at max tokens" and not last.continue_button.isHidden()
    view.set_messages([Message(1, 0, "user", "Count."), Message(2, 1, "assistant", "Old reply.")])
    assert view.messages[1].footer.isHidden()  # no saved numbers: no footer


@pytest.mark.parametrize("stats, marker, line, can_continue", [
    (GenerationStats(n_prompt=20, n_generated=40, prefill_s=0.25, decode_s=1.3, finish_reason="stop"),
     "", "40 tokens · 30.0 tokens/s · first token 0.25 s · finished", False),
    (GenerationStats(n_prompt=20, n_generated=5, prefill_s=0.1, decode_s=0.2, finish_reason="cancelled"),
     "Stopped", "5 tokens · 20.0 tokens/s · first token 0.10 s · stopped", True),
    (GenerationStats(n_prompt=500, n_generated=12, prefill_s=2.0, decode_s=0.5, finish_reason="length",
                     context_full=True),
     "Cut off: the context window is full", "12 tokens · 22.0 tokens/s · first token 2.00 s · context full", False),
    (GenerationStats(n_prompt=9, n_generated=1, prefill_s=0.05, finish_reason="stop"),
     "", "1 token · first token 0.05 s · finished", False),
], ids=["finished", "stopped", "context-full", "one-token"])
def test_stats_line_and_marker_per_finish_reason(qtbot, stats, marker, line, can_continue):
    w = reply_widget(qtbot)
    w.set_text("Some reply.")
    w.finish_reply(stats)
    assert w.footer.stats.text() == line and w.footer.stats.isVisible()
    assert w.footer.marker.text() == marker and w.footer.marker.isVisible() == bool(marker)
    assert w.continue_button.isVisible() == can_continue


def test_user_messages_and_saved_replies_have_no_footer(qtbot):
    assert reply_widget(qtbot, "Hi", role="user").footer.isHidden()
    saved = reply_widget(qtbot, "Hello there.")
    saved.finish_reply()
    assert saved.footer.isHidden() and not saved.continue_button.isVisible()


# 5. Editing keys -------------------------------------------------------------------------------------

@pytest.fixture()
def edit_window(qtbot):
    """A user message in a window that, like the main window, has an enabled Esc shortcut (Stop)."""
    from PySide6.QtGui import QAction, QKeySequence
    from PySide6.QtWidgets import QLineEdit, QVBoxLayout, QWidget

    win = QWidget()
    qtbot.addWidget(win)
    box = QVBoxLayout(win)
    msg = MessageWidget("user", "What is 2+2?", 4, win)
    after = QLineEdit(win)  # something else to take the focus
    box.addWidget(msg)
    box.addWidget(after)
    stop = QAction("Stop", win)
    stop.setShortcut(QKeySequence("Esc"))
    win.addAction(stop)
    stop_calls = []
    stop.triggered.connect(lambda: stop_calls.append(1))
    win.resize(600, 400)
    with qtbot.waitActive(win):
        win.show()
        win.activateWindow()
    qtbot.mouseClick(msg.edit_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: msg.editor is not None and msg.editor.hasFocus())
    yield msg, stop_calls
    win.close()  # (and ``win`` stays referenced until here: a collected wrapper would delete it)


def test_tab_in_the_editor_moves_the_focus(qtbot, edit_window):
    msg, _ = edit_window
    editor = msg.editor
    qtbot.keyClick(editor, Qt.Key.Key_Tab)
    assert editor.toPlainText() == "What is 2+2?"
    assert not editor.hasFocus() and QApplication.focusWidget() is not None


def test_esc_cancels_the_edit_and_not_the_window_shortcut(qtbot, edit_window):
    msg, stop_calls = edit_window
    msg.editor.setPlainText("changed my mind")
    with qtbot.assertNotEmitted(msg.edit_submitted):
        qtbot.keyClick(msg.editor, Qt.Key.Key_Escape)
    assert msg.editor is None and stop_calls == []
    assert msg._blocks[0].isVisible() and msg.text == "What is 2+2?"


@pytest.mark.parametrize("key, modifiers", [
    (Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier),
    (Qt.Key.Key_Enter, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.KeypadModifier),
], ids=["ctrl-return", "ctrl-keypad-enter"])
def test_ctrl_enter_saves_and_resends(qtbot, edit_window, key, modifiers):
    msg, _ = edit_window
    msg.editor.setPlainText("What is 3+3?")
    with qtbot.waitSignal(msg.edit_submitted) as blocker:
        qtbot.keyClick(msg.editor, key, modifiers)
    assert blocker.args == [4, "What is 3+3?"] and msg.editor is None


def test_plain_enter_adds_a_line_and_blank_text_is_not_sent(qtbot, edit_window):
    msg, _ = edit_window
    editor = msg.editor
    editor.moveCursor(editor.textCursor().MoveOperation.End)
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    assert editor.toPlainText() == "What is 2+2?\n"
    editor.setPlainText("   ")
    assert not msg.save_button.isEnabled()
    with qtbot.assertNotEmitted(msg.edit_submitted):
        qtbot.keyClick(editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert msg.editor is editor and editor.toPlainText() == "   "  # still editing, nothing lost
