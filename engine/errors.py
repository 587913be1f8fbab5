"""The root of Fireside's user-facing errors.

Every problem a user can cause or meet (a damaged or hostile model file, an unsupported architecture
or type, a prompt longer than the context, a model file changed on disk, a download that fails) raises
a subclass of :class:`FiresideError` whose message is one readable sentence. The three front ends catch
this one type: the CLI prints ``error: <message>`` (a traceback only with ``--verbose``), the desktop
app shows the message, the server answers with one OpenAI-style error. Anything else that escapes is a
bug in Fireside, and is logged with its traceback (:mod:`engine.logs`).

Subclasses that describe bad input also derive from ``ValueError`` (as they did before this root
existed), so older ``except ValueError`` callers keep working.
"""
from __future__ import annotations


class FiresideError(Exception):
    """A problem to show the user as one message (no traceback)."""


class ModelFileChangedError(FiresideError):
    """The model file on disk is no longer the one that was loaded (replaced, rewritten or deleted).

    Raised before a generation starts; the user should reload the model.
    """


class ModelOutputError(FiresideError):
    """The forward pass produced NaN or infinite logits: the model file's weights are probably damaged."""


class PromptError(FiresideError, ValueError):
    """A prompt that cannot be run (empty, or token ids outside the vocabulary)."""
