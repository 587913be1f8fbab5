"""The chat's state between the engine worker and the views: which conversation is open, the reply being
generated, replies left to finish in the background, and the chat turns (send, regenerate, edit, stop).

A :class:`ChatController` holds no widget, so it is tested without a window (tests/test_chat_controller.py).
It is the only writer of conversations' messages to the :class:`~gui.conversations.ConversationStore`
while the app runs; the views (chat view, sidebar, status bar, banner) follow its signals, the way
gpt4all-chat's ``Chat`` object sits between its ``ChatLLM`` worker and its QML views.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from PySide6.QtCore import QObject, QTimer, Signal

from . import events
from .conversations import ConversationStore, Message, stats_record
from .engine_worker import EngineWorker, LoadedModel
from .prompt import chat_messages
from .settings import AppSettings
from .signals import emit

TITLE_CHARS = 48
QUEUE_POLL_MS = 500  # how often the queue position of a waiting reply is read again

#: :attr:`ChatController.notice` tags: a notice with a tag is withdrawn once its cause is gone.
CONTEXT_NOTICE = "context"   # a conversation too long for the context window: gone with another conversation
REPLY_NOTICE = "reply"       # a failed reply or bad sampling settings: gone with the next good reply


def chat_title(first_text: str) -> str:
    """A conversation's title from its first message: one line, at most ``TITLE_CHARS`` characters."""
    line = " ".join(first_text.split())
    return line if len(line) <= TITLE_CHARS else line[:TITLE_CHARS - 1].rstrip() + "…"


def context_label(n_used: int, n_ctx: int) -> str:
    """``"Context N / n_ctx"`` (N clamped to n_ctx: the last token generated is counted but never stored),
    or "" without a model."""
    if n_ctx <= 0:
        return ""
    return f"Context {max(0, min(n_used, n_ctx))} / {n_ctx}"


@dataclass
class PendingReply:
    """A reply being generated.

    Attributes:
        req_id: the worker's request id; conv_id: the conversation it is saved to.
        position: its position in the conversation.
        shown: False once its conversation is no longer the open one (it finishes in the background).
        parts: the text pieces received so far.
        sent: for a reply to a newly sent message, ``(position, text, created)`` of that message
            (``created``: the conversation was created for it), so a refused message can be taken back.
        resumed: the saved text of a reply being continued (Continue), which the new text extends; None
            for a new reply.
    """

    req_id: int
    conv_id: int
    position: int
    shown: bool = True
    parts: list[str] = field(default_factory=list)
    sent: tuple[int, str, bool] | None = None
    resumed: str | None = None

    @property
    def text(self) -> str:
        """The reply so far (a continued reply's earlier text included)."""
        return (self.resumed or "") + "".join(self.parts)


class ChatController(QObject):
    """The open conversation and its replies.

    Args:
        worker: the :class:`EngineWorker` (living in its own thread); :meth:`set_engine` swaps it (for a
            remote model's :class:`gui.remote_engine.RemoteEngine` and back).
        store: the conversations.
        settings: returns the current :class:`AppSettings` (sampling, max tokens, default system prompt).

    Signals:
        conversation_shown(conv_id | None, messages): show these messages in place of the chat's (a new,
            unsaved chat: None and []).
        conversations_changed(): the list of conversations (titles, order) changed.
        message_added(role, text, position): a user message was saved; show it.
        messages_removed(position): remove the messages shown at ``position`` and after.
        reply_started(position): a reply begins at ``position``; reply_text(piece): its next text.
        reply_resumed(position, text): the reply shown at ``position`` goes on (Continue) from ``text``;
            reply_text and reply_ended follow as for a new reply.
        reply_ended(text | None, stats): the shown reply is complete (None: it was stopped before any text
            and is removed).
        reply_failed(message): the shown reply failed (it is removed); a notice follows.
        busy_changed(bool): a reply is (no longer) being generated in the open conversation.
        status_changed(text): the reply's state for the status bar ("Reading the prompt…", "12.3 tokens/s").
        context_changed(n_used, n_ctx): tokens the open conversation takes in the context (0, 0: no model).
        notice(text, kind, tag, action): a message for the banner; kind "error" or "info"; tag "" or one of
            :data:`CONTEXT_NOTICE`, :data:`REPLY_NOTICE`; action None or ("Reload", model path): the
            model file changed on disk.
        notice_withdrawn(tag): the cause of a tagged notice is gone.
        input_returned(text): a message was refused before it was saved: give its text back to the input.
    """

    conversation_shown = Signal(object, object)
    conversations_changed = Signal()
    message_added = Signal(str, str, int)
    messages_removed = Signal(int)
    reply_started = Signal(int)
    reply_resumed = Signal(int, str)
    reply_text = Signal(str)
    reply_ended = Signal(object, object)
    reply_failed = Signal(str)
    busy_changed = Signal(bool)
    status_changed = Signal(str)
    context_changed = Signal(int, int)
    notice = Signal(str, str, str, object)
    notice_withdrawn = Signal(str)
    input_returned = Signal(str)

    def __init__(self, worker: EngineWorker, store: ConversationStore, settings: Callable[[], AppSettings],
                 parent: QObject | None = None):
        super().__init__(parent)
        self.worker = worker
        self.store = store
        self._settings = settings
        self.conv_id: int | None = None
        self.pending: PendingReply | None = None
        self.detached: dict[int, PendingReply] = {}
        self.loaded: LoadedModel | None = None
        self.thinking = True  # enable_thinking, for templates that read it
        self.draft_system_prompt: str | None = None  # for the new chat, until its first message saves it
        self._count_ticket = 0
        self._refused_at: int | None = None  # position of a refused message still shown
        self._closed = False
        self._queue_timer = QTimer(self, interval=QUEUE_POLL_MS)
        self._queue_timer.timeout.connect(self._poll_queue)
        self._connect_engine(worker)

    # Engine --------------------------------------------------------------------------------------

    #: The engine signals the controller follows, and its slot for each (an engine lacking one is fine).
    ENGINE_SIGNALS = (("token", "_on_token"), ("finished", "_on_finished"), ("failed", "_on_failed"),
                      ("prompt_progress", "_on_prompt_progress"), ("reply_started", "_on_reply_started"),
                      ("queued", "_on_queued"), ("counted", "_on_counted"))

    @property
    def can_continue(self) -> bool:
        """Whether the engine can continue a reply (Continue): False for a remote model's engine, whose
        class says ``can_continue = False``."""
        return bool(getattr(self.worker, "can_continue", True))

    def set_engine(self, engine, loaded=None) -> None:
        """Use ``engine`` for the chat turns from now on (an :class:`EngineWorker` or a
        :class:`gui.remote_engine.RemoteEngine`: anything with ``generate`` / ``cancel`` and the signals
        of :data:`ENGINE_SIGNALS`; those it lacks are skipped, and without ``count_tokens`` the context
        use is not counted).

        Every running reply of the old engine is stopped and what it has written is saved, as when the
        app closes; the old engine's later events are dropped, even those already queued (both engines
        number their requests from 1). The old engine itself is left running: the caller shuts it down
        if it is done with it. ``loaded`` is the model now in use (as :meth:`set_model`); the same engine
        again only sets the model.
        """
        if engine is not self.worker:
            self._save_running()
            self._relay.close()
            self.worker = engine
            self._connect_engine(engine)
        self.set_model(loaded)

    def _connect_engine(self, engine) -> None:
        self._relay = _EngineRelay(self, engine)

    def _save_running(self) -> None:
        """Stop the open conversation's reply and those finishing in the background, saving their text
        so far (their engine's later events are not waited for)."""
        was_busy = self.pending is not None
        self._cancel_and_save_all()
        if was_busy:  # the shown reply ends with what it has (as Stop), or goes if it had nothing
            emit(self.busy_changed, False)
            emit(self.status_changed, "")
            if self.conv_id is not None:
                self._show(self.conv_id, self.store.messages(self.conv_id))

    # Model ---------------------------------------------------------------------------------------

    def set_model(self, loaded: LoadedModel | None) -> None:
        """The model now loaded (None: none); the open conversation's context use is counted again."""
        self.loaded = loaded
        self._recount()

    @property
    def n_ctx(self) -> int:
        """The loaded model's context length in tokens (0 without a model)."""
        return self.loaded.n_ctx if self.loaded is not None else 0

    def template_variables(self) -> dict:
        """Extra chat-template variables: ``enable_thinking`` when the model's template reads it."""
        thinking = getattr(self.loaded, "thinking", False)
        return {"enable_thinking": self.thinking} if thinking else {}

    # Conversations -------------------------------------------------------------------------------

    def new_chat(self) -> None:
        """Start a new conversation (saved when its first message is sent); a running reply goes on in the
        background and is saved to its own conversation."""
        self._detach_pending()
        self.conv_id = None
        self.draft_system_prompt = None
        self._show(None, [])

    def open_conversation(self, conv_id: int) -> bool:
        """Show a saved conversation (a running reply elsewhere is stopped and saved). Returns False if it
        is the open one already or does not exist."""
        if conv_id == self.conv_id or self.store.get(conv_id) is None:
            return False
        self._detach_pending()
        self.conv_id = conv_id
        self._show(conv_id, self.store.messages(conv_id))
        return True

    def delete_conversation(self, conv_id: int) -> None:
        """Delete a conversation; if it is the open one, a new chat takes its place."""
        if conv_id == self.conv_id:
            self._detach_pending()
            self.conv_id = None
            self._show(None, [])
        self.store.delete(conv_id)
        emit(self.conversations_changed)

    def rename(self, conv_id: int, title: str) -> str | None:
        """Rename a conversation; returns the title the store keeps (blank becomes "Untitled"), or None if
        the conversation is gone."""
        self.store.rename(conv_id, title)
        conv = self.store.get(conv_id)
        return conv.title if conv is not None else None

    def system_prompt(self) -> str:
        """The system prompt of the open conversation (or of the new chat): its own or the default."""
        conv = self.store.get(self.conv_id) if self.conv_id is not None else None
        own = conv.system_prompt if conv is not None else self.draft_system_prompt
        return own if own is not None else self._settings().system_prompt

    def set_system_prompt(self, text: str) -> None:
        """Set the open conversation's system prompt (the default's text: back to following the default).
        For a new chat it is kept until its first message creates the conversation: no empty chat is
        saved."""
        text = text.strip()
        value = None if text == self._settings().system_prompt.strip() else text
        if self.conv_id is not None and self.store.get(self.conv_id) is not None:
            self.store.set_system_prompt(self.conv_id, value)
        else:
            self.draft_system_prompt = value
        self._recount()

    def _show(self, conv_id: int | None, messages: list[Message]) -> None:
        self._refused_at = None
        emit(self.conversation_shown, conv_id, messages)
        emit(self.notice_withdrawn, CONTEXT_NOTICE)
        emit(self.status_changed, "")
        self._recount()

    def _recount(self) -> None:
        """Ask the worker for the open conversation's length in tokens (answered by ``_on_counted``;
        an engine without ``count_tokens``, a remote one, is not asked)."""
        self._count_ticket = 0
        history = self.store.messages(self.conv_id) if self.conv_id is not None else []
        if not history or self.loaded is None or not hasattr(self.worker, "count_tokens"):
            emit(self.context_changed, 0, self.n_ctx)
            return
        self._count_ticket = self.worker.count_tokens(self._prompt(history), self.template_variables())

    def _on_counted(self, ticket: int, n_tokens: int) -> None:
        if self._closed or ticket != self._count_ticket:
            return
        self._count_ticket = 0
        if n_tokens >= 0:
            emit(self.context_changed, n_tokens, self.n_ctx)

    # Chat turns ----------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """True while a reply is being generated in the open conversation."""
        return self.pending is not None

    def send(self, text: str) -> bool:
        """Save a user message to the open conversation (creating it if needed) and start the reply.

        Returns False when nothing was sent: blank text, a reply already running, or no model (a notice
        says so).
        """
        text = text.strip()
        if not text or self.pending is not None or self._closed:
            return False
        if self.loaded is None:
            emit(self.notice, "Load a model first: drop a .gguf file here or use File > Open model.", "info", "",
                 None)
            return False
        if self._refused_at is not None:
            emit(self.messages_removed, self._refused_at)
            self._refused_at = None
        created = self.conv_id is None or self.store.get(self.conv_id) is None
        if created:
            conv = self.store.create(chat_title(text), self.draft_system_prompt)
            self.conv_id, self.draft_system_prompt = conv.id, None
            emit(self.conversations_changed)
        msg = self.store.append(self.conv_id, "user", text)
        emit(self.message_added, "user", text, msg.position)
        if not self._start_reply(sent=(msg.position, text, created)):
            self._take_back(msg.position, text, created)
            return False
        return True

    def regenerate(self) -> None:
        """Replace the last reply of the open conversation with a new one."""
        if self.pending is not None or self.conv_id is None or self.loaded is None:
            return
        msgs = self.store.messages(self.conv_id)
        if not msgs:
            return
        if msgs[-1].role == "assistant":
            self.store.truncate(self.conv_id, msgs[-1].position)
            emit(self.messages_removed, msgs[-1].position)
        self._start_reply()

    def continue_reply(self, position: int | None = None) -> None:
        """Generate more of the last reply of the open conversation (cut by max tokens or Stop).

        The prompt ends inside that reply (:func:`gui.prompt.encode_continuation`), the new text is added
        to it and saved in its place. Nothing happens while a reply runs, without a model, or when the
        last message is not a reply (or not the one at ``position``, where given); for a remote model
        (:attr:`can_continue` False) a notice says Continue is for local models.
        """
        if self.pending is not None or self.conv_id is None or self.loaded is None or self._closed:
            return
        if not self.can_continue:
            emit(self.notice, "Continue works with local models only: a remote server starts every reply "
                              "afresh. Use Regenerate instead.", "info", REPLY_NOTICE, None)
            return
        history = self.store.messages(self.conv_id)
        if not history or history[-1].role != "assistant" or not history[-1].content.strip():
            return
        last = history[-1]
        if position is not None and last.position != position:
            return
        messages = chat_messages(history, self.system_prompt(), resume_last=True)
        self._start_reply(messages=messages, resumed=(last.position, messages[-1]["content"]))

    def edit_and_resend(self, position: int, text: str) -> None:
        """Replace the user message at ``position``, drop what followed it, and reply again."""
        if self.pending is not None or self.conv_id is None:
            return
        self.store.update(self.conv_id, position, text)
        self.store.truncate(self.conv_id, position + 1)
        self._show(self.conv_id, self.store.messages(self.conv_id))
        if self.loaded is not None:
            self._start_reply()

    def stop(self) -> None:
        """Stop the reply being generated; the text so far is kept."""
        if self.pending is not None:
            self.worker.cancel(self.pending.req_id)

    def close(self) -> None:
        """Save what every running reply has written so far (the app is closing) and forget them; later
        worker events are ignored."""
        if self._closed:
            return
        self._closed = True
        self._cancel_and_save_all()

    def _cancel_and_save_all(self) -> None:
        """Cancel the shown reply and those finishing in the background, save what each has written, and
        forget them."""
        replies = ([self.pending] if self.pending is not None else []) + list(self.detached.values())
        self.pending = None
        self.detached.clear()
        self._queue_timer.stop()
        for p in replies:
            self.worker.cancel(p.req_id)
            if p.text.strip():
                self._save(p)

    def _save(self, p: PendingReply, reasoning: str | None = None, stats=None) -> None:
        """Save a reply to its conversation (if it still exists): appended, or a continued reply updated;
        ``stats`` (its GenerationStats, None when the app closed mid-reply) is kept with it."""
        if self.store.get(p.conv_id) is None:
            return
        if p.resumed is not None:
            if p.parts:
                self.store.update(p.conv_id, p.position, p.text, stats=stats_record(stats))
        else:
            self.store.append(p.conv_id, "assistant", p.text, reasoning=reasoning or None, stats=stats_record(stats))

    def _prompt(self, history: list[Message]) -> list[dict]:
        return chat_messages(history, self.system_prompt())

    def _start_reply(self, sent: tuple[int, str, bool] | None = None, messages: list[dict] | None = None,
                     resumed: tuple[int, str] | None = None) -> bool:
        """Start a reply to the open conversation: a new one after its messages, or (``resumed``:
        ``(position, text)`` of its last reply, with ``messages`` from ``chat_messages(resume_last=True)``)
        more of that reply. False when the settings are invalid (a notice says so)."""
        history = self.store.messages(self.conv_id)
        settings = self._settings()
        try:
            params = settings.sampler_params()
        except ValueError as exc:
            emit(self.notice, f"Invalid sampling settings: {exc}", "error", REPLY_NOTICE, None)
            return False
        emit(self.notice_withdrawn, REPLY_NOTICE)
        emit(self.notice_withdrawn, CONTEXT_NOTICE)  # a new reply: its own failure, if any, is told afresh
        if messages is None:
            messages = self._prompt(history)
        req_id = self.worker.generate(messages, params, settings.max_tokens, self.template_variables(),
                                      resume_last=resumed is not None)
        if self.loaded is not None:  # the chat remembers its model (offered again when it is reopened)
            self.store.set_model(self.conv_id, str(self.loaded.path))
        if resumed is not None:
            position, text = resumed
            self.pending = PendingReply(req_id, self.conv_id, position, resumed=text)
            emit(self.reply_resumed, position, text)
        else:
            position = len(history)
            self.pending = PendingReply(req_id, self.conv_id, position, sent=sent)
            emit(self.reply_started, position)
        emit(self.status_changed, "Reading the prompt…")
        emit(self.busy_changed, True)
        return True

    def _take_back(self, position: int, text: str, created: bool) -> None:
        """Unsave a user message that was refused before any reply, and give its text back to the input.
        It stays shown (with the notice that says why) until the next message or conversation."""
        conv_id = self.conv_id
        self.store.truncate(conv_id, position)
        if created and not self.store.messages(conv_id):
            self.store.delete(conv_id)
            self.conv_id = None
            emit(self.conversations_changed)
        self._refused_at = position
        emit(self.input_returned, text)

    def _find(self, req_id: int) -> PendingReply | None:
        if self._closed:
            return None
        if self.pending is not None and self.pending.req_id == req_id:
            return self.pending
        return self.detached.get(req_id)

    def _on_reply_started(self, req_id: int) -> None:
        if self.pending is not None and self.pending.req_id == req_id and not self.pending.parts:
            self._queue_timer.stop()
            emit(self.status_changed, "Reading the prompt…")

    def _on_queued(self, req_id: int, state: events.QueueState) -> None:
        if self.pending is not None and self.pending.req_id == req_id:
            self._show_queue(state)
            self._queue_timer.start()

    def _poll_queue(self) -> None:
        ask = getattr(self.worker, "queue_position", None)
        state = ask(self.pending.req_id) if self.pending is not None and ask is not None else None
        if state is None:
            self._queue_timer.stop()
        else:
            self._show_queue(state)

    def _show_queue(self, state: events.QueueState) -> None:
        if state.ahead:
            ahead = f"{state.ahead} request{'s' if state.ahead != 1 else ''} ahead"
        else:
            ahead = f"all {state.n_slots} in use" if state.n_slots > 1 else "in use by another request"
        emit(self.status_changed, f"Waiting for a free slot ({ahead})…")

    def _on_prompt_progress(self, req_id: int, done: int, total: int) -> None:
        if self.pending is not None and self.pending.req_id == req_id and total > 64:
            emit(self.status_changed, f"Reading the prompt {done}/{total}…")

    def _on_token(self, req_id: int, text: str) -> None:
        p = self._find(req_id)
        if p is None:
            return
        p.parts.append(text)
        if p is self.pending:
            emit(self.reply_text, text)
            if len(p.parts) == 1:
                self._queue_timer.stop()
                emit(self.status_changed, "Generating…")

    def _on_finished(self, req_id: int, stats) -> None:
        p = self._find(req_id)
        if p is None:
            return
        text = p.text
        kept = bool(text.strip()) or stats.finish_reason != "cancelled"
        if kept:
            self._save(p, getattr(stats, "reasoning", ""), stats)
        if p is not self.pending:
            self.detached.pop(req_id, None)
            return
        self.pending = None
        self._queue_timer.stop()
        emit(self.busy_changed, False)
        emit(self.status_changed, f"{stats.decode_tps:.1f} tokens/s" if stats.n_generated else "")
        if stats.n_prompt:
            emit(self.context_changed, stats.n_prompt + stats.n_generated, self.n_ctx)
        if stats.context_full:
            emit(self.notice, "The context window is full, so the reply was cut short. Start a new chat or raise "
                              "the context size in Settings.", "info", CONTEXT_NOTICE, None)
        emit(self.conversations_changed)
        emit(self.reply_ended, text if kept else None, stats)

    def _on_failed(self, req_id: int, failure: events.ReplyFailure) -> None:
        p = self._find(req_id)
        if p is None:
            return
        if p is not self.pending:
            self.detached.pop(req_id, None)
            return
        self.pending = None
        self._queue_timer.stop()
        emit(self.messages_removed, p.position)
        if p.resumed is not None:  # a reply that failed to go on stays as it was saved
            emit(self.message_added, "assistant", p.resumed, p.position)
        emit(self.busy_changed, False)
        emit(self.status_changed, "")
        if failure.reason == events.TOO_LONG and p.sent is not None and p.conv_id == self.conv_id:
            self._take_back(*p.sent)
        tag = CONTEXT_NOTICE if failure.reason in (events.TOO_LONG, events.CONTEXT_FULL) else REPLY_NOTICE
        text, action = failure.message, None
        if failure.reason == events.FILE_CHANGED and self.loaded is not None:
            text, action = f"{failure.message} Reload it to go on.", ("Reload", self.loaded.path)
        emit(self.notice, text, "error", tag, action)
        emit(self.reply_failed, failure.message)

    def _detach_pending(self) -> None:
        """Stop the running reply and let it finish in the background (it is saved to its conversation)."""
        if self.pending is not None:
            p, self.pending = self.pending, None
            self.worker.cancel(p.req_id)
            p.shown = False
            self.detached[p.req_id] = p
            self._queue_timer.stop()
            emit(self.busy_changed, False)


class _EngineRelay(QObject):
    """Receives one engine's signals in the controller's thread and passes them on while it is the
    controller's engine: after :meth:`close`, events still queued from that engine are dropped (Qt
    delivers queued calls even after a disconnect)."""

    def __init__(self, controller: ChatController, engine):
        super().__init__(controller)
        self.controller: ChatController | None = controller
        self.engine = engine
        self.signals = []
        for name, _slot in ChatController.ENGINE_SIGNALS:
            signal = getattr(engine, name, None)
            if signal is not None:
                signal.connect(getattr(self, name))
                self.signals.append((signal, getattr(self, name)))

    # One plain method per signal, written in the class body: PySide6 queues a call to a QObject's own
    # method into that object's thread (methods added to the class later, or lambdas, run in the
    # engine's thread instead: tried, the window's replies then never end).
    def token(self, *args) -> None:
        self._forward("_on_token", args)

    def finished(self, *args) -> None:
        self._forward("_on_finished", args)

    def failed(self, *args) -> None:
        self._forward("_on_failed", args)

    def prompt_progress(self, *args) -> None:
        self._forward("_on_prompt_progress", args)

    def reply_started(self, *args) -> None:
        self._forward("_on_reply_started", args)

    def queued(self, *args) -> None:
        self._forward("_on_queued", args)

    def counted(self, *args) -> None:
        self._forward("_on_counted", args)

    def _forward(self, slot: str, args: tuple) -> None:
        if self.controller is not None:
            getattr(self.controller, slot)(*args)

    def close(self) -> None:
        """Stop passing events on, and disconnect from the engine."""
        self.controller = None
        for signal, slot in self.signals:
            try:
                signal.disconnect(slot)
            except (RuntimeError, TypeError):  # already gone with its engine
                pass
        self.signals.clear()

