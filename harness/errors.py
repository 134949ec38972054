"""User-facing errors: each one line that says what is wrong and how to fix it.

The CLI prints a HarnessError as ``error: <message>`` and exits non-zero without a
traceback (unless --debug); any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class HarnessError(Exception):
    """An error caused by input the user can fix; the message says how."""

    exit_code = 2


class UnknownNameError(HarnessError):
    """A method, suite, task or hyperparameter name that is not registered."""


class HyperparameterError(HarnessError):
    """A hyperparameter value of the wrong type or out of range."""


class CheckpointError(HarnessError):
    """A checkpoint that is missing, corrupt, or does not match the base model."""


class ArtifactNotFoundError(HarnessError):
    """A model or dataset that is neither reachable on the hub nor in the mirror."""


class RecordError(HarnessError):
    """A run record that is corrupt or does not follow the schema."""


class ResultsDirError(HarnessError):
    """A results directory that cannot be created or written."""


class CellLockedError(HarnessError):
    """A run (grid cell) that another live process holds the lock of."""

    def __init__(self, message: str, holder: str = "") -> None:
        super().__init__(message)
        self.holder = holder  # "pid N on HOST (since T)", for the grid's summary
