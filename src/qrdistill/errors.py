"""Every error a user can cause or fix, in one family.

Each derives from `QRDistillError`; its message is complete on its own (what went wrong, where,
and what to do), so the CLI prints any of them as one line and exits with status 2. Anything
else that escapes is a bug and keeps its traceback. The second base of each class is the
builtin it used to be, so `except ValueError` / `except RuntimeError` in callers still works.

This module imports nothing: every layer may raise these errors.
"""

from __future__ import annotations


class QRDistillError(Exception):
    """Base of every user-facing error: printed as one line, exit status 2."""


class BudgetReached(QRDistillError, RuntimeError):
    """A stage stopped at its `budget`; everything finished is kept. The message says what was
    spent and how far the stage got; the CLI exits with status 3 and says how to continue."""


class ConfigError(QRDistillError, ValueError):
    """A configuration problem; the message names the file and key and says what is allowed."""


class UsageError(QRDistillError, ValueError):
    """A command-line argument that cannot work."""


class DataError(QRDistillError, ValueError):
    """Bad input data. The message names the file, line and field, and says what to do."""


class BackendError(QRDistillError, RuntimeError):
    """A completion backend could not be used or a request failed for good; the message says
    which and why."""


class PipelineError(QRDistillError, RuntimeError):
    """The run cannot go on as asked; the message says what to do."""


class LockHeld(QRDistillError, RuntimeError):
    """Another process writes to this run directory; the message names it."""


class CheckpointMismatch(QRDistillError, ValueError):
    """A checkpoint that does not fit the configured students (other adapters, router or peer
    modules); the message says which checkpoint and what to do."""


class TrainingDiverged(QRDistillError, RuntimeError):
    """A loss became NaN or inf; the message says where and which checkpoint is the last good one."""
