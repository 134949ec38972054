"""The engines a grid runs on: ``serial`` (this process), ``ray`` and ``slurm`` (submitit).

Ray and submitit are optional extras (``pip install 'merging-harness[ray]'`` /
``[slurm]``); they are imported only when chosen.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import HarnessError
from harness.grid.executors.base import NO_REQUESTS, Executor, Lost, Resources
from harness.grid.executors.serial import SerialExecutor

EXECUTORS = ("serial", "ray", "slurm")

__all__ = ["EXECUTORS", "Executor", "Lost", "Resources", "SerialExecutor", "make_executor"]


def make_executor(
    name: str,
    *,
    resources: Resources = NO_REQUESTS,
    address: str | None = None,
    partition: str | None = None,
    time: str | None = None,
    slurm_cluster: str = "slurm",
    slurm_folder: Path | None = None,
    max_parallel: int | None = None,
) -> Executor:
    """The executor ``--executor NAME`` asks for, its options checked (one-line errors)."""
    if resources.gpus is not None and resources.gpus < 0:
        raise HarnessError("--gpus-per-cell must be 0 or more")
    if name == "serial":
        engine_only = {
            "--address": address,
            "--partition": partition,
            "--time": time,
            "--gpus-per-cell": resources.gpus,
            "--cpus-per-cell": resources.cpus,
            "--mem": resources.mem_gb,
            "--max-parallel": max_parallel,
        }
        given = [flag for flag, value in engine_only.items() if value is not None]
        if given:
            raise HarnessError(
                f"{', '.join(given)} only apply with --executor ray or slurm; "
                "the serial grid runs in this process"
            )
        return SerialExecutor()
    if name == "ray":
        if partition is not None or time is not None:
            raise HarnessError("--partition and --time are Slurm options; use --executor slurm")
        from harness.grid.executors.ray import RayExecutor

        return RayExecutor(address=address, resources=resources, max_parallel=max_parallel)
    if name == "slurm":
        if address is not None:
            raise HarnessError("--address is a Ray option; use --executor ray")
        from harness.grid.executors.slurm import SlurmExecutor, parse_time

        return SlurmExecutor(
            folder=slurm_folder or Path(".submitit"),
            cluster=slurm_cluster,
            partition=partition,
            time_min=parse_time(time) if time is not None else 180,
            resources=resources,
            max_parallel=max_parallel,
        )
    raise HarnessError(f"--executor must be one of {', '.join(EXECUTORS)}, got {name!r}")
