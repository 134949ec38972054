"""The one function an engine runs per grid cell, in any process on any node.

:func:`run_grid_cell` never raises for a failing cell: any exception inside the cell
(a HarnessError included) becomes a failure file and a ``failed`` result, so one bad
cell never stops a grid. Only an interrupt (Ctrl-C, a cancelled job) goes through, and
the cell's lock is released on the way out. It imports torch lazily, so a worker sets its
thread variables (:func:`enter_worker`) before the runtimes load.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import CellLockedError
from harness.grid.failures import clear_failure, one_line_reason, record_failure

# What a cell's outcome can be; "lost" is decided by the driver (the worker died).
DONE, SKIPPED, FAILED, LEFT, LOST = "done", "skipped", "failed", "left", "lost"
# The variables a worker needs to see what the driver sees.
FORWARDED_VARIABLES = ("HARNESS_CACHE", "HARNESS_PLUGINS", "HARNESS_MIRROR", "HF_HUB_OFFLINE")


@dataclass
class CellResult:
    """What came of one cell: small and picklable, sent back from the worker."""

    status: str
    seconds: float = 0.0  # the cell's own total_s when it ran; wall time in the worker else
    average: float | None = None
    record_path: str = ""
    reason: str = ""  # failed: the one-line reason; left: who holds the cell
    failure_path: str = ""
    notes: list[str] = field(default_factory=list)  # lines the runner logged (corrupt record)
    record: dict[str, Any] | None = None


def worker_environment() -> dict[str, str]:
    """The driver's harness variables, resolved, for :func:`enter_worker` elsewhere."""
    from harness.cache import cache_dir

    environment = {name: os.environ[name] for name in FORWARDED_VARIABLES if name in os.environ}
    environment["HARNESS_CACHE"] = str(cache_dir().resolve())
    return environment


def enter_worker(environment: dict[str, str]) -> None:
    """Set up a worker process: the driver's variables, thread caps, no progress bars."""
    from harness import progress
    from harness.threads import configure_threads

    os.environ.update(environment)
    configure_threads()
    progress.set_enabled(False)


def run_grid_cell(
    spec: Any,
    job: str = "",
    *,
    on_start: Callable[[], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> CellResult:
    """Run one cell (``spec``: a RunSpec) unless it is recorded; never raises for a failure.

    ``job`` is the engine's id of the job running it, written into the cell's lock. In the
    driver's own process (serial), ``on_start`` and ``log`` report as the cell goes; in a
    worker the logged lines come back in ``notes``.
    """
    from harness.run.runner import run_cell

    notes: list[str] = []
    started = time.perf_counter()
    record_path = Path(spec.path())
    try:
        outcome = run_cell(spec, log=log or notes.append, on_start=on_start, job=job)
    except CellLockedError as error:
        return CellResult(LEFT, time.perf_counter() - started, reason=error.holder, notes=notes)
    except Exception as error:  # any failure inside the cell: recorded, the grid goes on
        reason = one_line_reason(error)
        path = record_failure(
            record_path, reason, command=spec.command(), traceback=traceback.format_exc(), job=job
        )
        return CellResult(
            FAILED,
            time.perf_counter() - started,
            record_path=str(record_path),
            reason=reason,
            failure_path=str(path),
            notes=notes,
        )
    clear_failure(outcome.path)
    record = outcome.record
    return CellResult(
        DONE if outcome.ran else SKIPPED,
        float(record["timings"].get("total_s", 0.0)) if outcome.ran else 0.0,
        average=float(record["average"]),
        record_path=str(outcome.path),
        notes=notes,
        record=record,
    )
