"""Typed events between the engine worker and the chat controller (frozen dataclasses, no Qt).

The :class:`~engine.scheduler.Scheduler` reports a job's progress as ``(kind, payload)`` tuples; the
worker turns them into these objects once, in :meth:`gui.engine_worker.EngineWorker._relay`, so nothing
in the GUI matches event kinds by string.
"""
from __future__ import annotations

from dataclasses import dataclass

#: :attr:`ReplyFailure.reason` values.
TOO_LONG = "too_long"          # the prompt does not fit the context window: refused before it ran
CONTEXT_FULL = "context_full"  # the context filled while the reply ran
FILE_CHANGED = "file_changed"  # the model file changed on disk: reload it
TEMPLATE = "template"          # the chat template could not format the conversation
ERROR = "error"                # anything else (no model, queue full, an internal error)


@dataclass(frozen=True)
class ReplyFailure:
    """Why a chat turn failed.

    Attributes:
        message: one or two sentences for the user (what happened and what to do).
        reason: one of :data:`TOO_LONG`, :data:`CONTEXT_FULL`, :data:`FILE_CHANGED`, :data:`TEMPLATE`,
            :data:`ERROR`.
        n_prompt: the prompt's length in tokens when known (0 otherwise).
    """

    message: str
    reason: str = ERROR
    n_prompt: int = 0


@dataclass(frozen=True)
class QueueState:
    """A chat turn waiting for a free slot of the Scheduler.

    Attributes:
        ahead: requests queued before this one (an upper bound: see
            :meth:`gui.engine_worker.EngineWorker.queue_position`).
        n_slots: the Scheduler's slots, all busy while this one waits.
    """

    ahead: int
    n_slots: int
