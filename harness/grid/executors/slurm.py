"""Cells as Slurm jobs through submitit: one job-array task per cell.

``--partition``, ``--time``, ``--gpus-per-cell``, ``--cpus-per-cell`` and ``--mem`` become
the array's sbatch options; ``--max-parallel`` caps how many of its tasks run at once.
A pre-empted or timed-out task is requeued by submitit (the cell is checkpointable: it
restarts from scratch, its earlier attempt's lock taken over as it names the same job).
``--slurm-cluster local`` runs each cell as a local process and ``debug`` in this one,
with the same code path: that is how the tests drive it on a machine without Slurm.
Job logs and submitit's pickles go to ``--slurm-folder`` (``<results>/.submitit``).
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.grid.executors.base import (
    NO_REQUESTS,
    POLL_S,
    Executor,
    Lost,
    Resources,
    import_engine,
)

CLUSTERS = ("slurm", "local", "debug")


class SubmititCell:
    """The callable submitit pickles: the driver's variables, then ``fn`` under the job id.

    ``checkpoint`` makes it requeue on pre-emption or time-out instead of being lost.
    """

    def __init__(self, fn: Callable[[Any, str], Any], environment: dict[str, str]) -> None:
        self.fn = fn
        self.environment = environment

    def __call__(self, item: Any) -> Any:
        import submitit

        from harness.grid.cell import enter_worker

        enter_worker(self.environment)
        # scancel sends SIGTERM, which submitit only logs; stop the cell as Ctrl-C does so
        # it releases its lock (pre-emption comes as USR2 first: submitit requeues)
        try:
            previous = signal.signal(signal.SIGTERM, _interrupt)
        except ValueError:  # the debug executor, called from a thread other than main
            previous = None
        try:
            try:
                job = "submitit:" + str(submitit.JobEnvironment().job_id)
            except RuntimeError:  # the debug executor runs in the driver, outside a job
                job = ""
            return self.fn(item, job)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    def checkpoint(self, item: Any) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, item)


def parse_time(value: str) -> int:
    """Whole minutes (rounded up) from ``--time`` in Slurm's formats.

    ``MINUTES``, ``MINUTES:SECONDS``, ``HOURS:MINUTES:SECONDS``, ``DAYS-HOURS``,
    ``DAYS-HOURS:MINUTES`` and ``DAYS-HOURS:MINUTES:SECONDS``, as ``sbatch --time`` reads them.
    """
    text = value.strip()
    try:
        if "-" in text:
            day_text, rest = text.split("-", 1)
            parts = [int(part) for part in rest.split(":")]
            if len(parts) > 3:
                raise ValueError
            hours, minutes, seconds = (parts + [0, 0])[:3]
            hours += int(day_text) * 24
        else:
            parts = [int(part) for part in text.split(":")]
            if len(parts) > 3:
                raise ValueError
            if len(parts) == 3:
                hours, minutes, seconds = parts
            else:  # MINUTES or MINUTES:SECONDS
                hours, minutes, seconds = 0, parts[0], (parts + [0])[1]
    except ValueError:
        raise HarnessError(f"--time expects minutes or Slurm's H:MM:SS, got {value!r}") from None
    total = hours * 60 + minutes + (1 if seconds else 0)
    if min(hours, minutes, seconds) < 0 or total < 1:
        raise HarnessError(f"--time must be at least one minute, got {value!r}")
    return total


class SlurmExecutor(Executor):
    name = "slurm"

    def __init__(
        self,
        folder: Path,
        cluster: str = "slurm",
        partition: str | None = None,
        time_min: int = 180,
        resources: Resources = NO_REQUESTS,
        max_parallel: int | None = None,
    ) -> None:
        if cluster not in CLUSTERS:
            raise HarnessError(f"--slurm-cluster must be one of {', '.join(CLUSTERS)}")
        if not float(resources.gpus or 0).is_integer():
            raise HarnessError(
                f"--gpus-per-cell {resources.gpus:g}: Slurm allocates whole GPUs; to pack "
                "several cells on one GPU use --executor ray"
            )
        self.folder = Path(folder)
        self.cluster = cluster
        self.partition = partition
        self.time_min = time_min
        self.resources = resources
        super().__init__()
        self.max_parallel = max_parallel
        self.prepares_in_driver = cluster != "slurm"
        self._executor: Any = None

    def start(self) -> None:
        submitit = import_engine("submitit", "slurm")
        if self.cluster == "slurm" and shutil.which("sbatch") is None:
            raise HarnessError(
                "--executor slurm needs sbatch, which is not on PATH: run the grid on a Slurm "
                "login node (or --slurm-cluster local to try it on this machine)"
            )
        gpus = self.resources.gpus or 0
        self.folder.mkdir(parents=True, exist_ok=True)
        executor = submitit.AutoExecutor(folder=self.folder / "%j", cluster=self.cluster)
        parameters: dict[str, Any] = {
            "name": "harness-grid",
            "timeout_min": self.time_min,
            "gpus_per_node": int(gpus),
            "tasks_per_node": 1,
            "nodes": 1,
        }
        if self.resources.cpus:
            parameters["cpus_per_task"] = self.resources.cpus
        if self.resources.mem_gb:
            parameters["mem_gb"] = self.resources.mem_gb
        if self.cluster == "slurm":
            if self.partition:
                parameters["slurm_partition"] = self.partition
            if self.max_parallel:
                parameters["slurm_array_parallelism"] = self.max_parallel
        try:
            executor.update_parameters(**parameters)
        except (ValueError, NameError) as error:
            raise HarnessError(f"submitit refused the job options: {error}") from None
        self._executor = executor

    def describe(self) -> str:
        where = f"partition {self.partition}" if self.partition else "the default partition"
        if self.cluster != "slurm":
            where = f"submitit's {self.cluster} executor"
        return f"slurm on {where}, {self.resources.gpus or 0:g} GPU per cell, logs {self.folder}"

    def _submit(self, callable_: SubmititCell, items: Sequence[Any]) -> list[Any]:
        if len(items) == 1:
            return [self._executor.submit(callable_, items[0])]
        return list(self._executor.map_array(callable_, items))

    def map(
        self,
        fn: Callable[[Any, str], Any],
        items: Sequence[Any],
        tick: Callable[[], None] = lambda: None,
    ) -> Iterator[tuple[int, Any]]:
        from harness.grid.cell import worker_environment

        callable_ = SubmititCell(fn, worker_environment())
        # Slurm takes one array and runs --max-parallel of it at once; the local and debug
        # executors have no queue of their own, so they get at most that many at a time.
        window = len(items) if self.cluster == "slurm" else (self.max_parallel or _cpus())
        queue = list(enumerate(items))
        in_flight: dict[int, Any] = {}
        try:
            while queue or in_flight:
                if queue and len(in_flight) < window:
                    room = window - len(in_flight)
                    batch, queue = queue[:room], queue[room:]
                    jobs = self._submit(callable_, [item for _, item in batch])
                    in_flight.update({index: job for (index, _), job in zip(batch, jobs)})
                finished = [index for index, job in in_flight.items() if job.done()]
                for index in finished:
                    yield index, _result(in_flight.pop(index))
                if not finished:
                    time.sleep(POLL_S)
                tick()
        finally:  # finished, or interrupted: cancel what is still queued or running
            for job in in_flight.values():
                job.cancel(check=False)


def _result(job: Any) -> Any:
    """The cell's result, or Lost when the job died without one (killed, cancelled)."""
    try:
        return job.result()
    except Exception as error:  # submitit's UncompletedJobError / FailedJobError and kin
        lines = str(error).strip().splitlines()
        return Lost(f"{type(error).__name__}: {lines[0] if lines else ''}"[:300], job=_job_id(job))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _job_id(job: Any) -> str:
    return "submitit:" + str(job.job_id)


def _cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
