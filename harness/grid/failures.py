"""Failure files: a cell that raised leaves ``<run_id>.json.failed`` beside its record.

The file (JSON) holds the one-line reason, the traceback, the command that reproduces the
cell and where it ran. Its name does not end in ``.json``, so readers of the results never
take it for a record. ``harness grid`` skips a cell that failed before and says so;
``--retry-failed`` runs it again, and a cell that then succeeds removes its failure file.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from harness.cache import write_json_atomic

SUFFIX = ".failed"


@dataclass(frozen=True)
class Failure:
    """Why a cell failed: what ``harness grid`` shows, and what the file holds."""

    reason: str  # one line: "<ExceptionType>: <first line of the message>"
    command: str
    traceback: str = ""
    host: str = ""
    pid: int = 0
    job: str = ""
    created: str = ""


def failure_path(record: Path) -> Path:
    """Where the failure file of the cell whose record is ``record`` lives."""
    record = Path(record)
    return record.with_name(record.name + SUFFIX)


def one_line_reason(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    message = lines[0] if lines else ""
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def record_failure(
    record: Path, reason: str, *, command: str, traceback: str = "", job: str = ""
) -> Path:
    """Write (or replace) the cell's failure file atomically; returns its path."""
    failure = Failure(
        reason=reason,
        command=command,
        traceback=traceback,
        host=socket.gethostname(),
        pid=os.getpid(),
        job=job,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    path = failure_path(record)
    write_json_atomic(path, asdict(failure))
    return path


def read_failure(record: Path) -> Failure | None:
    """The cell's recorded failure, or None when it has none.

    An unreadable file still counts as a failure (its reason says so), so a cell is never
    silently retried because its failure file was damaged.
    """
    path = failure_path(record)
    try:
        data = json.loads(path.read_text())
        return Failure(**{key: data[key] for key in Failure.__dataclass_fields__ if key in data})
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as error:
        return Failure(reason=f"unreadable failure file {path.name} ({error})", command="")


def clear_failure(record: Path) -> None:
    """Remove the cell's failure file (it succeeded, or is being retried)."""
    failure_path(record).unlink(missing_ok=True)
